"""`python -m bench.run [--smoke] [--json PATH]`: the service benchmark, every figure beside
its baseline measured in the same run (bench.baselines), with the ratio and the target.

1. keepalive ingest over HTTP (64 connections, wrk) vs the same server's POST /noop, and vs
   the eventsourcing library's one-save-per-event rate;
2. bulk ingest through POST /v1/events:batch vs raw sqlite3 executemany (FULL and NORMAL);
3. rebuilding the four views from the activity log vs raw SELECT + orjson, with peak RSS at
   a quarter of the log and all of it;
4. `ledger replay stats` vs SELECT + orjson and `ledger replay verify` vs SELECT + sha256;
5. query latency (Server-Timing) and server RSS over a views DB of many sessions.

Latency and RSS figures have absolute limits: their "baseline" column is the limit and the
ratio is value / limit. Seeds are cached in bench/out/ (bench.seed).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench import baselines as bl
from bench import seed

ROOT = Path(__file__).resolve().parent.parent
FULL = {
    "http_s": 15.0,
    "warmup_s": 2.0,
    "http_sessions": 10_000,
    "es_events": 20_000,
    "es_s": 20.0,
    "bulk_events": 300_000,
    "bulk_lines": 5000,
    "log_events": 1_000_000,
    "select_s": 10.0,
    "sessions": 1_000_000,
    "queries": 200,
    "query_budget_s": 90.0,
    "wide_stats_n": 20,
}
SMOKE = {
    "http_s": 2.0,
    "warmup_s": 1.0,
    "http_sessions": 500,
    "es_events": 500,
    "es_s": 2.0,
    "bulk_events": 20_000,
    "bulk_lines": 5000,
    "log_events": 20_000,
    "select_s": 1.0,
    "sessions": 10_000,
    "queries": 200,
    "query_budget_s": 20.0,
    "wide_stats_n": 3,
}
LIMITS_MS = {"list": 20.0, "detail": 5.0, "count": 10.0, "stats": 50.0}
RSS_LIMIT_MB = 250.0


def say(msg: str) -> None:
    print(msg, flush=True)


class Figures:
    """The final table: one row per figure, its baseline, ratio, target and verdict."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        name: str,
        value: float,
        unit: str,
        baseline: float,
        baseline_name: str,
        target: float | None,
        op: str = ">=",
        detail: str = "",
    ) -> None:
        ratio = value / baseline if baseline > 0 else float("nan")
        met = None if target is None else (ratio >= target if op == ">=" else ratio <= target)
        self.rows.append(
            {
                "name": name,
                "value": value,
                "unit": unit,
                "baseline": baseline,
                "baseline_name": baseline_name,
                "ratio": ratio,
                "target": target,
                "op": op,
                "met": met,
                "detail": detail,
            }
        )
        t = "-" if target is None else f"{op} {target:g}x"
        say(
            f"  => {name}: {value:,.1f} {unit} vs {baseline_name} {baseline:,.1f} = {ratio:.3f}x"
            f" (target {t}: {'n/a' if met is None else 'MET' if met else 'NOT MET'})"
        )

    def table(self) -> str:
        head = ("figure", "value", "baseline", "ratio", "target", "met?")
        rows = [
            (
                r["name"],
                f"{r['value']:,.1f} {r['unit']}",
                f"{r['baseline']:,.1f} ({r['baseline_name']})",
                f"{r['ratio']:.3f}x",
                "-" if r["target"] is None else f"{r['op']} {r['target']:g}x",
                "n/a" if r["met"] is None else ("yes" if r["met"] else "NO"),
            )
            for r in self.rows
        ]
        w = [max(len(str(x[i])) for x in [head, *rows]) for i in range(len(head))]
        lines = ["  ".join(str(v).ljust(w[i]) for i, v in enumerate(head))]
        lines.append("  ".join("-" * n for n in w))
        lines += ["  ".join(str(v).ljust(w[i]) for i, v in enumerate(r)) for r in rows]
        return "\n".join(lines)


# -- the service under test -------------------------------------------------------------------


class KeyedConnection(http.client.HTTPConnection):
    """An HTTP connection that sends the bench's API key with every request."""

    def __init__(self, host: str, port: int, key: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.auth = {"Authorization": f"Bearer {key}"}

    def request(
        self, method: str, url: str, body: Any = None, headers: Any = None, **kw: Any
    ) -> None:  # type: ignore[override]
        super().request(method, url, body, {**self.auth, **(headers or {})}, **kw)


class Server:
    """`ledger serve` in its own process (with its projection worker process)."""

    def __init__(self, proc: subprocess.Popen[bytes], base: str, port: int, key: str) -> None:
        self.proc, self.base, self.port, self.key = proc, base, port, key
        self.auth = {"Authorization": f"Bearer {key}"}

    def conn(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        return KeyedConnection("127.0.0.1", self.port, self.key, timeout)

    def get_json(self, path: str) -> Any:
        c = self.conn()
        try:
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError(f"GET {path}: {r.status} {body[:300]!r}")
            return orjson.loads(body)
        finally:
            c.close()

    def position(self) -> int:
        return int(self.get_json("/v1/ledger/digest")["position"])

    def wait_views(self, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = self.get_json("/healthz")
            if h["views_position"] >= h["log_position"]:
                return
            time.sleep(0.1)
        raise RuntimeError("the projection worker did not catch up")

    def worker_pid(self) -> int | None:
        kids = _children(self.proc.pid)
        return kids[0] if kids else None


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
    return out


def proc_mem_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a live process, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(val.split()[0]) / 1024
    return out


@contextlib.contextmanager
def ledger_server(
    workdir: Path, db: Path, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    env = dict(
        os.environ,
        LEDGER_DATABASE_URL=f"sqlite:///{db}",
        LEDGER_BLOB_DIR=str(workdir / "blobs"),
        PYTHONPATH=str(ROOT),
        LEDGER_BENCH_NOOP="1",  # the framework baseline route, served only when asked
        **(extra_env or {}),
    )
    # Every request needs an API key: make one on the bench's database before the start
    # (a name of its own each time: a seeded database is reused from run to run).
    name = f"bench-{os.getpid()}-{time.time_ns()}"
    key = subprocess.run(
        [sys.executable, "-m", "api.cli", "keys", "create", name, "--scope", "admin"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    port = bl.free_port()
    log = (workdir / f"server-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(proc, f"http://127.0.0.1:{port}", port, key)
    try:
        deadline = time.monotonic() + 120
        while not bl._http_probe("127.0.0.1", port, "/healthz"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((workdir / f"server-{port}.log").read_text()[-3000:])
            time.sleep(0.1)
        yield server
    finally:
        worker = server.worker_pid() if proc.poll() is None else None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if worker is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGKILL)
        log.close()


def post_batch(conn: http.client.HTTPConnection, body: bytes) -> dict[str, Any]:
    conn.request("POST", "/v1/events:batch", body, {"Content-Type": "application/x-ndjson"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError(f"events:batch answered {r.status}: {data[:300]!r}")
    out: dict[str, Any] = orjson.loads(data)
    if out["rejected"]:
        raise RuntimeError(f"events:batch rejected lines: {out['rejected'][:3]}")
    return out


def ndjson(lines: list[dict[str, Any]]) -> bytes:
    return b"\n".join(orjson.dumps(x) for x in lines) + b"\n"


# -- 1. keepalive ingest over HTTP ------------------------------------------------------------


def bench_keepalive(cfg: dict[str, Any], figs: Figures, work: Path) -> dict[str, Any]:
    say("\n[1] HTTP keepalive ingest (64 connections, separate load process)")
    n, secs = cfg["http_sessions"], cfg["http_s"]
    res: dict[str, Any] = {}

    def library() -> dict[str, Any]:
        say("  eventsourcing library, one save per event ...")
        r = bl.measure_eventsourcing_lib(cfg["es_events"], max_duration_s=cfg["es_s"])
        say(f"  eventsourcing lib {r['rate']:,.0f} events/s ({r['events']} events)")
        return r

    # The library's rate brackets the HTTP runs (before and after, mean used), as the no-op
    # brackets the keepalive run: this machine's speed drifts within a minute.
    es_before = library()
    with ledger_server(work, work / "keepalive.db") as srv:
        c = srv.conn()
        for i in range(0, n, 5000):
            post_batch(
                c,
                ndjson(
                    [
                        {"command": "start", "session_id": f"s-{k}", "project": "bench"}
                        for k in range(i, min(n, i + 5000))
                    ]
                ),
            )
        c.close()
        # Both loads send the key (the no-op is open, but gets the same request bytes).
        script = bl.keepalive_lua(n, headers=srv.auth)
        noop_script = bl.body_lua("POST", bl.NOOP_BODY, srv.auth)
        ka_url, noop_url = srv.base + "/v1/sessions/{id}/keepalive", srv.base + "/noop"
        srv.wait_views()
        bl.http_load(ka_url, "POST", script, 64, cfg["warmup_s"])
        bl.http_load(noop_url, "POST", noop_script, 64, cfg["warmup_s"])
        runs: dict[str, Any] = {}
        for label in ("noop1", "keepalive", "noop2"):
            srv.wait_views()  # a catching-up worker would slow whichever run came next
            p0 = srv.position()
            t0 = time.perf_counter()
            if label == "keepalive":
                r = bl.http_load(ka_url, "POST", script, 64, secs)
            else:
                r = bl.http_load(noop_url, "POST", noop_script, 64, secs)
            r["wall_s"] = time.perf_counter() - t0
            r["rise"] = srv.position() - p0
            t1 = time.perf_counter()
            srv.wait_views()
            r["views_behind_s"] = time.perf_counter() - t1
            runs[label] = r
            say(
                f"  {label:<9} {r['rps']:>9,.0f} req/s  p50 {r['p50_ms']:.1f} ms  p99 "
                f"{r['p99_ms']:.1f} ms  errors {r['errors']}  requests {r['requests']}"
                f"  log +{r['rise']}  ({r['tool']})"
            )
        say(
            "  the views had caught up "
            f"{runs['keepalive']['views_behind_s']:.1f} s after the keepalive load stopped"
        )
        ka = runs["keepalive"]
        acked = ka["requests"] - int(ka.get("error_detail", {}).get("status", 0))
        durable = min(ka["rise"], acked) / ka["wall_s"]
        noop = (runs["noop1"]["rps"] + runs["noop2"]["rps"]) / 2
        res.update(runs=runs, durable_eps=durable, noop_rps=noop, acked=acked)
    # The ceiling of any endpoint on this machine: the same uvicorn serving a bare ASGI
    # no-op (no framework, no work), under the same load.
    raw = bl.measure_noop_http(secs, 64, warmup_s=cfg["warmup_s"], app="bench.noop_app:raw")
    say(f"  raw ASGI no-op (uvicorn, no framework, separate process) {raw['rps']:,.0f} req/s")
    res["raw_asgi_rps"] = raw["rps"]
    es_after = library()
    mean = (es_before["rate"] + es_after["rate"]) / 2
    es = {"rate": mean, "before": es_before, "after": es_after}
    res["eventsourcing"] = es
    detail = (
        f"errors={ka['errors']} rps={ka['rps']:,.0f} p99={ka['p99_ms']:.1f}ms "
        f"views caught up {ka['views_behind_s']:.1f}s after"
    )
    figs.add("keepalive_vs_noop", durable, "ev/s", noop, "noop rps", 0.6, detail=detail)
    figs.add(
        "keepalive_vs_eventsourcing",
        durable,
        "ev/s",
        es["rate"],
        "es lib ev/s, mean of before and after",
        2.0,
        detail=f"{detail}; library before {es_before['rate']:,.0f}, after "
        f"{es_after['rate']:,.0f} ev/s",
    )
    figs.add(
        "keepalive_vs_raw_asgi",
        durable,
        "ev/s",
        raw["rps"],
        "raw ASGI no-op rps",
        None,
        detail="2x the library's rate is "
        f"{2 * es['rate']:,.0f} ev/s; a bare uvicorn no-op serves {raw['rps']:,.0f} req/s",
    )
    return res


# -- 2. bulk ingest ---------------------------------------------------------------------------


def bulk_bodies(total: int, per_body: int, streams: int = 1000) -> list[bytes]:
    """`streams` starts, then keepalives round-robin; paths make payloads ~120 bytes like the
    baseline's rows."""
    rng = random.Random(3)
    lines: list[dict[str, Any]] = [
        {"command": "start", "session_id": f"b-{i}", "project": f"p{i % 10}"}
        for i in range(min(streams, total))
    ]
    i = 0
    while len(lines) < total:
        lines.append(
            {
                "command": "keepalive",
                "session_id": f"b-{i % streams}",
                "visible": True,
                "path": f"/projects/p{i % 10}/runs/r-{rng.randrange(10**6):06d}/tests/"
                f"test_case_{rng.randrange(10**4):04d}?tab=logs&page={i % 7}",
            }
        )
        i += 1
    return [ndjson(lines[k : k + per_body]) for k in range(0, total, per_body)]


def bench_bulk(cfg: dict[str, Any], figs: Figures, work: Path) -> dict[str, Any]:
    say("\n[2] bulk ingest through POST /v1/events:batch (2 keep-alive client threads)")
    total, per = cfg["bulk_events"], cfg["bulk_lines"]
    bodies = bulk_bodies(total, per)
    res: dict[str, Any] = {}

    def raw(sync: str) -> dict[str, Any]:
        r = bl.measure_raw_sqlite_executemany(
            total, per, synchronous=sync, max_duration_s=120, db_dir=str(work)
        )
        say(f"  raw sqlite3 executemany sync={sync}: {r['rate']:,.0f} rows/s ({r['rows']} rows)")
        return r

    # The FULL baseline brackets the ledger's run, as the no-op brackets the keepalive one:
    # this machine's speed drifts within a minute, and one side measured alone would carry it.
    full_before = raw("FULL")
    db = work / "bulk.db"
    with ledger_server(work, db) as srv:
        p0 = srv.position()
        todo = list(reversed(bodies))
        lock = threading.Lock()
        errors: list[BaseException] = []

        def client() -> None:
            c = srv.conn(timeout=300)
            try:
                while True:
                    with lock:
                        if not todo or errors:
                            return
                        body = todo.pop()
                    post_batch(c, body)
            except BaseException as exc:
                errors.append(exc)
            finally:
                c.close()

        threads = [threading.Thread(target=client) for _ in range(2)]
        t0 = time.perf_counter()
        # The first body starts the sessions the others keep alive: it lands before them.
        first = srv.conn(timeout=300)
        post_batch(first, todo.pop())
        first.close()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        if errors:
            raise errors[0]
        rise = srv.position() - p0
    payload_avg = _avg_payload(db)
    eps = rise / wall
    say(
        f"  ledger: {rise} events in {wall:.2f}s = {eps:,.0f} events/s"
        f" (avg payload {payload_avg:.0f} B)"
    )
    res.update(events=rise, seconds=wall, eps=eps, payload_bytes=payload_avg)
    full_after = raw("FULL")
    res["sqlite_full"] = {
        **full_after,
        "rate": (full_before["rate"] + full_after["rate"]) / 2,
        "before": full_before,
        "after": full_after,
    }
    res["sqlite_normal"] = raw("NORMAL")
    d = (
        f"{rise} events, bodies of {per} lines, payload ~{payload_avg:.0f} B; FULL before "
        f"{full_before['rate']:,.0f}, after {full_after['rate']:,.0f} rows/s"
    )
    figs.add(
        "bulk_vs_sqlite_full",
        eps,
        "ev/s",
        res["sqlite_full"]["rate"],
        "sqlite FULL rows/s, mean of before and after",
        0.5,
        detail=d,
    )
    figs.add(
        "bulk_vs_sqlite_normal",
        eps,
        "ev/s",
        res["sqlite_normal"]["rate"],
        "sqlite NORMAL rows/s",
        None,
        detail=d,
    )
    return res


def _scalar(db: Path, sql: str) -> Any:
    """One value from the database file, read-only (the bench reads, never writes, a log)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def _avg_payload(db: Path) -> float:
    return float(_scalar(db, "SELECT avg(length(payload)) FROM events") or 0)


# -- 3 and 4. rebuild, replay stats, replay verify ---------------------------------------------


def child_rebuild(db: str, views: str, until: int | None) -> None:
    """In a fresh process: `ledger replay rebuild`'s code path on a fresh views DB (to the
    head: load, swap, indexes), or its load alone to `until`; print time and peak RSS."""
    from persistence.schema import make_engine
    from persistence.store import EventStore
    from projections.runner import ProjectionRunner
    from projections.tables import ViewTables
    from replay.rebuild import rebuild

    store = EventStore(f"sqlite:///{db}")
    engine = make_engine(f"sqlite:///{views}", immediate=True, durable=False, cache_mb=64)
    t0 = time.perf_counter()
    if until is None:
        pos = rebuild(store, engine, progress=False).position
    else:
        runner = ProjectionRunner(store, engine, ViewTables(bulk=True))
        runner.create_schema()
        pos = runner.load(until=until)
    secs = time.perf_counter() - t0
    # A large load runs a second loader process beside this one (ProjectionRunner.load):
    # count its peak too, as if both peaks coincided (an upper bound on the pair's RSS).
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "events": pos,
                "seconds": secs,
                "maxrss_mb": (rss_kb + child_kb) / 1024,
                "parent_rss_mb": rss_kb / 1024,
                "child_rss_mb": child_kb / 1024,
            }
        )
    )


def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[str, float]:
    t0 = time.perf_counter()
    out = subprocess.run(
        cmd,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    secs = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out.stdout, secs


def rebuild_in_child(db: Path, work: Path, until: int | None) -> dict[str, Any]:
    views = work / f"views-{until or 'all'}.db"
    args = [sys.executable, "-m", "bench.run", "--child-rebuild", str(db), str(views)]
    stdout, wall = _run([*args, str(until or 0)])
    r: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    r["wall_s"] = wall
    for p in work.glob(views.name + "*"):
        p.unlink()
    return r


def bench_replay(cfg: dict[str, Any], figs: Figures, work: Path) -> dict[str, Any]:
    n = cfg["log_events"]
    say(f"\n[3] rebuild of the four views from a log of {n:,} events")
    db = seed.activity_log(n, log=say)
    head = _head(db)
    res: dict[str, Any] = {"log_events": head}
    for mode in ("orjson", "sha256"):
        r = bl.measure_raw_select(db, mode, duration_s=cfg["select_s"])
        say(
            f"  raw SELECT + {mode}: {r['rate']:,.0f} rows/s ({r['passes']} passes,"
            f" mismatches {r['mismatches']})"
        )
        res[f"select_{mode}"] = r
    # Memory flat: the same load (no index building) to a quarter of the log and to all of it.
    quarter = rebuild_in_child(db, work, head // 4)
    whole = rebuild_in_child(db, work, head)
    for r in (quarter, whole):
        say(
            f"  load to {r['events']:,}: {r['seconds']:.1f}s, peak RSS {r['maxrss_mb']:.0f} MB"
            f" ({r['parent_rss_mb']:.0f} + second loader {r['child_rss_mb']:.0f})"
        )
    full = rebuild_in_child(db, work, None)
    rate = full["events"] / full["seconds"]
    say(
        f"  rebuild to {full['events']:,}: {full['seconds']:.1f}s = {rate:,.0f} events/s,"
        f" peak RSS {full['maxrss_mb']:.0f} MB"
    )
    res.update(rebuild_quarter=quarter, load_all=whole, rebuild_all=full, rebuild_eps=rate)
    # The orjson baseline again, right after: with the one before it, it brackets the rebuild
    # (this machine's speed drifts within a minute).
    after = bl.measure_raw_select(db, "orjson", duration_s=cfg["select_s"])
    say(f"  raw SELECT + orjson, after the rebuild: {after['rate']:,.0f} rows/s")
    res["select_orjson_after"] = after
    before = res["select_orjson"]["rate"]
    orj, sha = (before + after["rate"]) / 2, res["select_sha256"]["rate"]
    figs.add(
        "rebuild_views",
        rate,
        "ev/s",
        orj,
        "SELECT+orjson rows/s, mean of before and after",
        0.25,
        detail=f"{full['events']:,} events in {full['seconds']:.1f}s; SELECT+orjson before "
        f"{before:,.0f}, after {after['rate']:,.0f} rows/s",
    )
    figs.add(
        "rebuild_peak_rss",
        whole["maxrss_mb"],
        "MB",
        quarter["maxrss_mb"],
        f"RSS at {quarter['events']:,} events MB",
        1.25,
        op="<=",
        detail="memory flat: peak RSS of the load at the whole log vs at a quarter",
    )

    say("\n[4] ledger replay stats / verify over the same log (CLI in a subprocess)")
    env = {
        "LEDGER_DATABASE_URL": f"sqlite:///{db}",
        "LEDGER_VIEWS_URL": f"sqlite:///{work / 'none-views.db'}",
        "LEDGER_BLOB_DIR": str(work / "blobs"),
        "TMPDIR": str(work),
    }
    cli = [sys.executable, "-m", "api.cli", "replay"]
    out, secs = _run([*cli, "stats", "--by", "status", "--format", "json"], env)
    groups = orjson.loads(out)["groups"]
    stats_rate = head / secs
    say(f"  replay stats: {secs:.1f}s = {stats_rate:,.0f} events/s ({len(groups)} groups)")
    out, vsecs = _run([*cli, "verify", "--json"], env)
    verdict = orjson.loads(out)
    if not verdict["ok"]:
        raise RuntimeError(f"replay verify found problems: {verdict['problems']}")
    verify_rate = head / vsecs
    say(f"  replay verify: {vsecs:.1f}s = {verify_rate:,.0f} events/s (ok)")
    res.update(stats_s=secs, stats_eps=stats_rate, verify_s=vsecs, verify_eps=verify_rate)
    figs.add(
        "replay_stats",
        stats_rate,
        "ev/s",
        orj,
        "SELECT+orjson rows/s",
        0.25,
        detail=f"whole CLI run {secs:.1f}s",
    )
    figs.add(
        "replay_verify",
        verify_rate,
        "ev/s",
        sha,
        "SELECT+sha256 rows/s",
        0.5,
        detail=f"whole CLI run {vsecs:.1f}s",
    )
    return res


def _head(db: Path) -> int:
    return int(_scalar(db, "SELECT max(position) FROM events") or 0)


# -- 5. queries at many sessions ---------------------------------------------------------------


def query_paths(kind: str, n_sessions: int, rng: random.Random) -> list[str]:
    """The request mix of one kind; cycled through in order."""
    from urllib.parse import urlencode

    if kind == "detail":
        return [f"/v1/sessions/s-{rng.randrange(n_sessions)}" for _ in range(50)]
    day = 86400
    week_ago = seed.T_END - 7 * day
    if kind == "list":
        mixes: list[dict[str, Any]] = [
            {},
            {"status": "passed"},
            {"project": "project-3", "sort": "duration"},
            {"user": "user-42", "sort": "ended_at", "order": "asc"},
            {"build": "build-117"},
            {"tag": "suite:nightly"},
            {"started_after": week_ago, "sort": "started_at"},
            {"type": "api", "sort": "last_seen_at"},
            # A keepalive-moved sort under a filter of ~1% of the sessions.
            {"user": "user-42", "sort": "last_seen_at"},
            {"active": "true"},
            {"status": "failed", "project": "project-5", "sort": "number"},
        ]
        # Every question at every depth (a page of 50 at offsets 0, 50, 500 and 2000).
        return [
            "/v1/sessions?" + urlencode({**m, "limit": 50, "offset": off}, doseq=True)
            for off in (0, 50, 500, 2000)
            for m in mixes
        ]
    if kind == "count":
        mixes = [{}, {"status": "failed"}, {}, {"project": "project-7"}, {"user": "user-13"}]
        return ["/v1/sessions/count" + (f"?{urlencode(m)}" if m else "") for m in mixes]
    if kind == "stats":
        d0 = seed.T_END - 7 * day
        frm = time.strftime("%Y-%m-%d", time.gmtime(d0))
        to = time.strftime("%Y-%m-%d", time.gmtime(seed.T_END - 1))
        return [
            "/v1/stats?by=status",
            f"/v1/stats?by=day&from={frm}&to={to}",
            "/v1/stats?by=project",
        ]
    raise ValueError(kind)


def timed_get(c: http.client.HTTPConnection, path: str) -> float:
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    if r.status != 200:
        raise RuntimeError(f"GET {path}: {r.status} {body[:300]!r}")
    st = r.getheader("server-timing") or ""
    return float(st.split("dur=", 1)[1].split(",")[0].split(";")[0])


def pct(vals: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(vals)
    return s[max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))]


def bench_queries(cfg: dict[str, Any], figs: Figures, work: Path) -> dict[str, Any]:
    n = cfg["sessions"]
    say(f"\n[5] queries at {n:,} sessions (server-side time from Server-Timing)")
    db = seed.sessions_log(n, log=say)
    views = seed.views_for(db, log=say)
    env = {
        "LEDGER_SERVER_TIMING": "1",
        "LEDGER_SESSION_TIMEOUT": "1e12",
        "LEDGER_VIEWS_URL": f"sqlite:///{views}",
    }
    res: dict[str, Any] = {"sessions": n}
    rng = random.Random(5)
    with ledger_server(work, db, env) as srv:
        srv.wait_views()
        c = srv.conn(timeout=300)
        for kind in ("list", "detail", "count", "stats"):
            paths = query_paths(kind, n, rng)
            warm_end = time.monotonic() + cfg["query_budget_s"] / 4
            for p in paths[:20]:  # warm the page cache; discarded
                timed_get(c, p)
                if time.monotonic() > warm_end:
                    break
            per: dict[str, list[float]] = {}
            t_end = time.monotonic() + cfg["query_budget_s"]
            i = 0
            while i < cfg["queries"] and (i < len(paths) or time.monotonic() < t_end):
                p = paths[i % len(paths)]
                per.setdefault(p, []).append(timed_get(c, p))
                i += 1
            allv = [v for vs in per.values() for v in vs]
            p50, p95 = pct(allv, 0.5), pct(allv, 0.95)
            say(
                f"  {kind:<6} n={len(allv):<4} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms"
                f"  (target p95 <= {LIMITS_MS[kind]:g} ms)"
            )
            if kind != "detail":
                for p, vs in per.items():
                    say(f"      {p[:90]:<90} p50 {pct(vs, 0.5):8.2f}  p95 {pct(vs, 0.95):8.2f}")
            res[kind] = {
                "n": len(allv),
                "p50_ms": p50,
                "p95_ms": p95,
                "per_path": {
                    p: {"p50_ms": pct(v, 0.5), "p95_ms": pct(v, 0.95), "n": len(v)}
                    for p, v in per.items()
                },
            }
            figs.add(
                f"{kind}_p95",
                p95,
                "ms",
                LIMITS_MS[kind],
                "limit ms",
                1.0,
                op="<=",
                detail=f"p50 {p50:.2f} ms, n={len(allv)}",
            )
        # Groupings with many values (100 users, 200 builds): reported, outside the target mix.
        for p in ("/v1/stats?by=user", "/v1/stats?by=build"):
            timed_get(c, p)
            vs = [timed_get(c, p) for _ in range(cfg["wide_stats_n"])]
            res.setdefault("wide_stats", {})[p] = {"p50_ms": pct(vs, 0.5), "p95_ms": pct(vs, 0.95)}
            say(f"      {p:<90} p50 {pct(vs, 0.5):8.2f}  p95 {pct(vs, 0.95):8.2f}  (outside)")
        c.close()
        mem = proc_mem_mb(srv.proc.pid)
        wpid = srv.worker_pid()
        wmem = proc_mem_mb(wpid) if wpid else {"VmRSS": 0.0, "VmHWM": 0.0}
    say(
        f"  server RSS {mem['VmRSS']:.0f} MB (peak {mem['VmHWM']:.0f}),"
        f" worker RSS {wmem['VmRSS']:.0f} MB (peak {wmem['VmHWM']:.0f})"
    )
    res.update(server_mem=mem, worker_mem=wmem)
    figs.add(
        "server_rss",
        mem["VmRSS"],
        "MB",
        RSS_LIMIT_MB,
        "limit MB",
        1.0,
        op="<=",
        detail=f"peak {mem['VmHWM']:.0f} MB",
    )
    figs.add(
        "worker_rss",
        wmem["VmRSS"],
        "MB",
        RSS_LIMIT_MB,
        "limit MB",
        None,
        op="<=",
        detail=f"peak {wmem['VmHWM']:.0f} MB (reported separately)",
    )
    return res


# -- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, short runs (< 3 min)")
    ap.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    ap.add_argument("--only", nargs="+", choices=("keepalive", "bulk", "replay", "queries"))
    ap.add_argument(
        "--child-rebuild", nargs=3, metavar=("DB", "VIEWS", "UNTIL"), help=argparse.SUPPRESS
    )
    a = ap.parse_args(argv)
    if a.child_rebuild:
        db, views, until = a.child_rebuild
        child_rebuild(db, views, int(until) or None)
        return 0
    cfg = SMOKE if a.smoke else FULL
    parts = {
        "keepalive": bench_keepalive,
        "bulk": bench_bulk,
        "replay": bench_replay,
        "queries": bench_queries,
    }
    figs = Figures()
    raw: dict[str, Any] = {}
    t0 = time.perf_counter()
    say(
        f"bench.run ({'smoke' if a.smoke else 'full'}), {os.cpu_count()} cpus, "
        f"load tool {'wrk' if bl.shutil.which('wrk') else 'pyload'}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-run-") as d:
        for name, fn in parts.items():
            if a.only and name not in a.only:
                continue
            w = Path(d) / name
            w.mkdir()
            raw[name] = fn(cfg, figs, w)
    total = time.perf_counter() - t0
    say("\n" + figs.table())
    say(f"({'smoke' if a.smoke else 'full'} run, {total:.0f}s)")
    if a.json:
        out = Path(a.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        doc = {"smoke": a.smoke, "total_s": total, "config": cfg, "figures": figs.rows, "raw": raw}
        out.write_bytes(
            orjson.dumps(
                doc,
                option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
