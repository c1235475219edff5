"""Part 6 of the service benchmark: the transparency log over the activity log of parts 3 and
4 (1,000,000 leaves in a full run). Inclusion and consistency proofs over HTTP, random leaves,
the tree size the whole log: p50/p95 server-side (Server-Timing) and client-side on loopback,
each request followed by the same server's POST /noop timed the same way (the measured
baseline); then the tree part of a verify pass against raw SHA-256 of the same leaf bytes
(bench.log_verify).

The cached log gets its Merkle tree (if it was seeded before the tree existed) when
bench.seed hands it over, once, before anything is timed; how long that took is reported."""

from __future__ import annotations

import base64
import http.client
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson

from bench import seed
from bench.event_rows import connect_ro
from bench.figures import Figures, say
from bench.log_verify import bench_tree_verify
from bench.part_queries import pct
from bench.server import Server, get_ok, ledger_server
from domain import merkle
from persistence.store import EventStore

LIMIT_MS = 5.0
WARMUP = 30


def bench_log(cfg: dict[str, Any], figs: Figures, work: Path) -> dict[str, Any]:
    n = cfg["log_events"]
    say(f"\n[6] the transparency log at {n:,} leaves")
    db, res = _log_with_tree(n)
    views = seed.views_for(db, log=say)
    env = {
        "LEDGER_SERVER_TIMING": "1",
        "LEDGER_SESSION_TIMEOUT": "1e12",  # nothing expires: the log must not grow
        "LEDGER_VIEWS_URL": f"sqlite:///{views}",
    }
    rng = random.Random(15)
    with ledger_server(work, db, env) as srv:
        srv.wait_views()  # the server at rest: no projection work beside the proofs
        size = _check_proofs(srv, db, rng)
        res["tree_size"] = size
        c = srv.conn(timeout=60)
        for kind in ("inclusion", "consistency"):
            res[kind] = _latencies(c, kind, size, cfg["log_proofs"], rng)
            _latency_figures(figs, kind, res[kind])
        c.close()
    res["verify"] = bench_tree_verify(db, figs, cfg["log_verify_rounds"])
    return res


def _log_with_tree(n: int) -> tuple[Path, dict[str, Any]]:
    """The cached log of `n` events with its tree (seeded now if missing): how many leaves
    its stored tree covered before, and how long getting it took (seed or tree catch-up)."""
    cached = seed.OUT / f"activity-{n}-v{seed.SEED_VERSION}" / "ledger.db"
    before = _tree_coverage(cached) if cached.exists() else None
    t0 = time.perf_counter()
    db = seed.activity_log(n, log=say)
    secs = time.perf_counter() - t0
    if before is None:
        say(f"  seeded the log (its tree built with its appends) in {secs:.1f}s")
    else:
        say(f"  cached log: its stored tree covered {before:,} leaves; caught up in {secs:.1f}s")
    return db, {"tree_covered_before": before, "tree_ready_s": secs, "seeded": before is None}


def _tree_coverage(db: Path) -> int:
    """How many leaves the stored tree's blocks cover (0 without a tree at all)."""
    conn = connect_ro(db)
    try:
        row = conn.execute("SELECT MAX(idx) FROM log_nodes WHERE level = 4").fetchone()
    except sqlite3.OperationalError:  # no log_nodes table: a log from before the tree
        return 0
    finally:
        conn.close()
    return 0 if row[0] is None else (int(row[0]) + 1) * 16


def _check_proofs(srv: Server, db: Path, rng: random.Random) -> int:
    """The tree's size from the signed checkpoint, and one proof of each kind verified (RFC
    9162) against it, outside the timing: the benchmark times right answers."""
    note = _get(srv, "/v1/log/checkpoint").decode().split("\n")
    size, root = int(note[1]), base64.b64decode(note[2])
    i = rng.randrange(size)
    leaf = base64.b64decode(_json(srv, f"/v1/log/leaves?start={i}&end={i + 1}")["leaves"][0])
    proof = _json(srv, f"/v1/log/proof/inclusion?leaf_index={i}&tree_size={size}")["hashes"]
    merkle.verify_inclusion(i, size, merkle.leaf_hash(leaf), _hashes(proof), root)
    first = rng.randrange(1, size) if size > 1 else 1
    if first < size:
        store = EventStore(f"sqlite:///{db}")
        try:
            first_root = store.tree.root(first)
        finally:
            store.dispose()
        proof = _json(srv, f"/v1/log/proof/consistency?first={first}&second={size}")["hashes"]
        merkle.verify_consistency(first, size, first_root, root, _hashes(proof))
    say(f"  checkpoint: {size:,} leaves; an inclusion and a consistency proof verify")
    return size


def _get(srv: Server, path: str) -> bytes:
    c = srv.conn()
    try:
        return get_ok(c, path)[1]
    finally:
        c.close()


def _json(srv: Server, path: str) -> Any:
    return orjson.loads(_get(srv, path))


def _hashes(b64: list[str]) -> list[bytes]:
    return [base64.b64decode(h) for h in b64]


def _timed(c: http.client.HTTPConnection, method: str, path: str) -> tuple[float, float]:
    """(server-side ms from Server-Timing, client-side ms) of one request on `c`."""
    t0 = time.perf_counter()
    c.request(method, path)
    r = c.getresponse()
    body = r.read()
    client = (time.perf_counter() - t0) * 1000
    if r.status != 200:
        raise RuntimeError(f"{method} {path}: {r.status} {body[:300]!r}")
    st = r.getheader("server-timing") or ""
    return float(st.split("dur=", 1)[1].split(",")[0].split(";")[0]), client


def _proof_path(kind: str, size: int, rng: random.Random) -> str:
    if kind == "inclusion":
        return f"/v1/log/proof/inclusion?leaf_index={rng.randrange(size)}&tree_size={size}"
    return f"/v1/log/proof/consistency?first={rng.randrange(1, size)}&second={size}"


def _latencies(
    c: http.client.HTTPConnection, kind: str, size: int, count: int, rng: random.Random
) -> dict[str, Any]:
    """`count` proofs of `kind`, each followed by a POST /noop on the same connection (both
    after WARMUP discarded pairs); p50/p95 of each, server-side and client-side."""
    times: dict[str, list[float]] = {
        "server": [],
        "client": [],
        "noop_server": [],
        "noop_client": [],
    }
    for i in range(WARMUP + count):
        s, cl = _timed(c, "GET", _proof_path(kind, size, rng))
        ns, nc = _timed(c, "POST", "/noop")
        if i >= WARMUP:
            for key, v in zip(times, (s, cl, ns, nc), strict=True):
                times[key].append(v)
    out: dict[str, Any] = {"n": count}
    for key, vs in times.items():
        out[f"{key}_p50_ms"], out[f"{key}_p95_ms"] = pct(vs, 0.5), pct(vs, 0.95)
    say(
        f"  {kind:<11} n={count}: server p50 {out['server_p50_ms']:.2f} p95 "
        f"{out['server_p95_ms']:.2f} ms, client p50 {out['client_p50_ms']:.2f} p95 "
        f"{out['client_p95_ms']:.2f} ms; POST /noop server p95 {out['noop_server_p95_ms']:.2f},"
        f" client p50 {out['noop_client_p50_ms']:.2f} p95 {out['noop_client_p95_ms']:.2f} ms"
    )
    return out


def _latency_figures(figs: Figures, kind: str, r: dict[str, Any]) -> None:
    noop = (
        f"POST /noop interleaved: server p95 {r['noop_server_p95_ms']:.2f} ms, client p95 "
        f"{r['noop_client_p95_ms']:.2f} ms"
    )
    figs.add(
        f"log_{kind}_p95",
        r["server_p95_ms"],
        "ms",
        LIMIT_MS,
        "limit ms",
        1.0,
        op="<=",
        detail=f"server-side (Server-Timing), p50 {r['server_p50_ms']:.2f} ms, n={r['n']}; {noop}",
    )
    figs.add(
        f"log_{kind}_client_p95",
        r["client_p95_ms"],
        "ms",
        LIMIT_MS,
        "limit ms",
        1.0,
        op="<=",
        detail=f"client-side on loopback, p50 {r['client_p50_ms']:.2f} ms; {noop}",
    )
    figs.add(
        f"log_{kind}_vs_noop",
        r["client_p95_ms"],
        "ms",
        r["noop_client_p95_ms"],
        "POST /noop client p95 ms, interleaved",
        None,
        op="<=",
        detail="information: a proof's client-side p95 against the same server's no-op",
    )
