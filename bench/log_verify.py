"""The tree part of `ledger replay verify` over a benchmark log: reading the events (verify's
own reader, replay.verify.read_chunks, on a read-only engine as the CLI opens it) and folding
every leaf into a tree of its own (replay.witness.TreeScan), events/s, against raw sqlite3
reading the same rows the same way (the same keyset pages of verify's chunk) and taking
hashlib.sha256 of each one's leaf bytes, no tree. Passes alternate, medians compared.

Then one pass of each stage alone says where the tree's time goes: reading, building the leaf
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
from replay.source import readonly_engine
from replay.verify import CHUNK, SELECT_AFTER, read_chunks
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
    """`rounds` pairs of passes (the raw baseline, then the tree's), medians compared."""
    url = f"sqlite:///{db}"
    store = EventStore(url)
    store.read_engine.dispose()
    store.read_engine = readonly_engine(url)  # as `ledger replay verify` opens it
    try:
        base: list[float] = []
        tree: list[float] = []
        root = b""
        for _ in range(rounds):
            rows, secs = raw_leaf_sha256(db)
            base.append(rows / secs)
            n, secs, root = tree_scan(store)
            tree.append(n / secs)
        if (n, root) != store.tree.latest():
            raise RuntimeError("the scan's tree is not the stored tree")
        say(
            "  verify's tree pass: "
            + ", ".join(f"{r:,.0f}" for r in tree)
            + " leaves/s; raw SELECT + leaf bytes + sha256: "
            + ", ".join(f"{r:,.0f}" for r in base)
            + " rows/s (alternating)"
        )
        rate, base_rate = statistics.median(tree), statistics.median(base)
        parts = where_the_time_goes(store, n, n / rate)
    finally:
        store.dispose()
    figs.add(
        "log_tree_verify",
        rate,
        "ev/s",
        base_rate,
        "SELECT+leaf bytes+sha256 rows/s",
        TARGET,
        detail=f"{n:,} leaves, read_chunks + witness.TreeScan, medians of {rounds} alternating "
        "passes; the root equals the stored tree's",
    )
    return {"leaves": n, "tree_eps": tree, "raw_eps": base, "us_per_event": parts}
