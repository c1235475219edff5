"""The tree part of `ledger replay verify` over a benchmark log: reading the events (verify's
own reader, replay.log_rows.read_chunks, on a read-only engine as the CLI opens it) and folding
every leaf into a tree of its own (replay.witness.TreeScan), events/s, against raw sqlite3
reading the same rows the same way (the same keyset pages of verify's chunk) and taking
hashlib.sha256 of each one's leaf bytes, no tree. Passes alternate, medians compared.

The same tree folded as verify folds it by default, in worker processes (replay.tree_jobs),
is the figure held to the target; the one-process figure is printed beside it. Then one pass
of each stage alone says where the tree's time goes: reading, building the leaf
bytes, hashing them (persistence.tree.leaf_hashes_of), and the rest (node hashes, the scan)."""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.event_rows import connect_ro
from bench.figures import Figures, say
from persistence.store import EventStore
from persistence.tree import leaf_hashes_of
from replay.log_rows import CHUNK, SELECT_AFTER, read_chunks
from replay.source import readonly_engine
from replay.tree_jobs import TreeJobs, default_jobs
from replay.verify import verify
from replay.witness import TreeScan

TARGET = 0.8


def raw_leaf_sha256(db: Path) -> tuple[int, float]:
    """The baseline: (rows, seconds) of raw sqlite3 keyset pages of verify's SELECT, each
    row's leaf bytes built (chain.row_leaf's) and hashlib.sha256 of them."""
    conn = connect_ro(db)
    sql = SELECT_AFTER.format(mark="?")
    dumps, sha256, join = orjson.dumps, hashlib.sha256, b"".join
    try:
        t0 = time.perf_counter()
        after = rows_done = 0
        while True:
            rows = conn.execute(sql, (after, CHUNK)).fetchall()
            for p, s, v, t, sv, at, pl, _h in rows:
                sha256(join((b"[1,", dumps([p, s, v, t, sv, at])[1:-1], b",", pl, b"]"))).digest()
            rows_done += len(rows)
            if len(rows) < CHUNK:
                return rows_done, time.perf_counter() - t0
            after = rows[-1][0]
    finally:
        conn.close()


def tree_scan(store: EventStore) -> tuple[int, float, bytes]:
    """The measured figure: (leaves, seconds, root) of verify's reader feeding a TreeScan."""
    t0 = time.perf_counter()
    scan = TreeScan(())
    for rows in read_chunks(store):
        scan.feed(rows)
    return scan.size, time.perf_counter() - t0, scan.frontier.root()


def tree_jobs_scan(store: EventStore, jobs: int) -> tuple[int, float, bytes]:
    """The same figure as verify folds it by default: parts in `jobs` worker processes."""
    t0 = time.perf_counter()
    scan = TreeJobs(store, (), jobs).result()
    return scan.size, time.perf_counter() - t0, scan.frontier.root()


def full_verify(store: EventStore, jobs: int) -> tuple[int, float]:
    """(events, seconds) of a whole `verify` pass (chain, versions, payloads, tree; no blobs)."""
    t0 = time.perf_counter()
    verdict = verify(store, None, jobs=jobs)
    if not verdict.ok:
        raise RuntimeError(f"the benchmark log does not verify: {verdict.as_dict()}")
    return verdict.events, time.perf_counter() - t0


def _stage(store: EventStore, work: Callable[[list[Any]], object]) -> float:
    t0 = time.perf_counter()
    for rows in read_chunks(store):
        work(rows)
    return time.perf_counter() - t0


def _leaf_bytes(rows: list[Any]) -> list[bytes]:
    dumps, join = orjson.dumps, b"".join
    return [
        join((b"[1,", dumps([p, s, v, t, sv, at])[1:-1], b",", pl, b"]"))
        for p, s, v, t, sv, at, pl, _h in rows
    ]


def where_the_time_goes(store: EventStore, n: int, tree_s: float) -> dict[str, float]:
    """µs an event of each stage of the tree's pass: one pass of reading alone, of reading
    and building leaf bytes, of reading and leaf hashes; the tree's own median pass."""
    read = _stage(store, lambda rows: None)
    built = _stage(store, _leaf_bytes)
    hashed = _stage(store, leaf_hashes_of)
    us = 1e6 / n
    parts = {
        "reading": read * us,
        "leaf bytes": (built - read) * us,
        "leaf SHA-256": (hashed - built) * us,
        "node hashes and the scan": (tree_s - hashed) * us,
        "total": tree_s * us,
    }
    say("  where the tree's pass goes, µs an event (one pass of each stage alone):")
    say("    " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))
    return parts


def bench_tree_verify(db: Path, figs: Figures, rounds: int) -> dict[str, Any]:
    """`rounds` rounds of passes (the raw baseline, the tree's in one process, the tree's in
    worker processes as verify runs it), medians compared; then one whole verify each way."""
    url = f"sqlite:///{db}"
    store = EventStore(url)
    store.read_engine.dispose()
    store.read_engine = readonly_engine(url)  # as `ledger replay verify` opens it
    jobs = default_jobs()
    try:
        base: list[float] = []
        tree: list[float] = []
        spread: list[float] = []
        for _ in range(rounds):
            rows, secs = raw_leaf_sha256(db)
            base.append(rows / secs)
            n, secs, root = tree_scan(store)
            tree.append(n / secs)
            n2, secs, root2 = tree_jobs_scan(store, jobs)
            spread.append(n2 / secs)
        if not (n, root) == (n2, root2) == store.tree.latest():
            raise RuntimeError("the scan's tree is not the stored tree")
        say(f"  verify's tree pass, one process: {_rates(tree)} leaves/s; in {jobs} worker "
            f"processes: {_rates(spread)} leaves/s; raw SELECT + leaf bytes + sha256: "
            f"{_rates(base)} rows/s (alternating)")  # fmt: skip
        rate, one_rate, base_rate = map(statistics.median, (spread, tree, base))
        parts = where_the_time_goes(store, n, n / one_rate)
        whole = {j: full_verify(store, j) for j in (1, jobs)}
        each = [f"{j} job(s) {e / s:,.0f} events/s ({s:.1f} s)" for j, (e, s) in whole.items()]
        say("  a whole verify (no blobs): " + ", ".join(each))
    finally:
        store.dispose()
    detail = f"{n:,} leaves, read_chunks + witness.TreeScan, medians of {rounds} alternating passes"
    figs.add(
        "log_tree_verify",
        rate,
        "ev/s",
        base_rate,
        "SELECT+leaf bytes+sha256 rows/s",
        TARGET,
        detail=f"{detail}, folded in {jobs} processes as verify does (replay.tree_jobs); "
        "the root equals the stored tree's",
    )
    figs.add(
        "log_tree_verify_1proc",
        one_rate,
        "ev/s",
        base_rate,
        "SELECT+leaf bytes+sha256 rows/s",
        None,
        detail=f"{detail}, one process (verify --jobs 1)",
    )
    return {
        "leaves": n,
        "jobs": jobs,
        "tree_eps": tree,
        "tree_jobs_eps": spread,
        "raw_eps": base,
        "us_per_event": parts,
        "whole_verify_s": {str(j): s for j, (_e, s) in whole.items()},
    }


def _rates(rates: list[float]) -> str:
    return ", ".join(f"{r:,.0f}" for r in rates)
