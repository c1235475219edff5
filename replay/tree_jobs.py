"""The tree part of `ledger replay verify` spread over worker processes, while the verifying
process itself runs the chain's checks (replay/verify.py).

Hashing is CPU work under one interpreter lock, and an RFC 6962 tree costs about two SHA-256
per leaf: one process cannot fold a large log faster than it hashes it. The leaves are cut
into parts of 2**k leaves (the last one shorter), each starting at a multiple of 2**k, so a
part's compact range is made of whole subtrees of the full tree. Each worker reads its
part's rows by position from its own read-only connection and folds them (witness.TreeScan);
the parent joins the parts' compact ranges in order (domain.merkle.Frontier.join) into the
same frontier, blocks and checkpoint roots one sequential pass gives (a test holds the two
side by side). A part is planned by leaf index, never by position arithmetic, so a log with
gaps folds the same leaves in the same order as the sequential pass.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.pool import Pool
from typing import Any

from sqlalchemy import text

from domain.merkle import Frontier
from persistence.store import EventStore
from persistence.tree import STORED_LEVEL
from replay.log_rows import CHUNK, Row, pages
from replay.source import readonly_engine
from replay.witness import TreeScan

# Below this many leaves one process folds the tree faster than workers start.
MIN_LEAVES = 100_000
MAX_JOBS = 4


def default_jobs() -> int:
    return max(1, min(MAX_JOBS, os.cpu_count() or 1))


def worth_it(store: EventStore) -> bool:
    """Whether the log holds MIN_LEAVES events or more (one indexed lookup)."""
    sql = text("SELECT 1 FROM events ORDER BY position LIMIT 1 OFFSET :k")
    with store.read_engine.connect() as conn:
        return conn.execute(sql, {"k": MIN_LEAVES - 1}).first() is not None


@dataclass(frozen=True)
class Part:
    first_leaf: int
    leaves: int
    first_position: int  # the position of its first leaf's row
    wanted: tuple[int, ...]  # checkpoint sizes within it, relative to its first leaf


@dataclass(frozen=True)
class Plan:
    leaves: int
    last_position: int  # the sequential checks stop here, at the planned last leaf
    parts: tuple[Part, ...]


def plan(store: EventStore, sizes: Iterable[int], jobs: int, level: int | None = None) -> Plan:
    """The parts of the log as it is now: about four per job, of 2**level leaves."""
    with store.read_engine.connect() as conn, conn.begin():
        n, last = conn.execute(
            text("SELECT count(*), coalesce(max(position), 0) FROM events")
        ).one()
        if level is None:
            level = max(STORED_LEVEL, (max(1, n // (4 * jobs))).bit_length() - 1)
        width = 1 << level
        sql = text("SELECT position FROM events ORDER BY position LIMIT 1 OFFSET :k")
        wanted = sorted(set(sizes))
        parts = []
        for first in range(0, n, width):
            end = min(n, first + width)
            position = conn.execute(sql, {"k": first}).scalar_one()
            inside = tuple(w - first for w in wanted if first < w <= end)
            parts.append(Part(first, end - first, int(position), inside))
    return Plan(int(n), int(last), tuple(parts))


def _rows(url: str, part: Part) -> Iterator[list[Row]]:
    """The part's rows in position order, a keyset page at a time."""
    engine = readonly_engine(url)
    try:
        with engine.connect() as conn, conn.begin():
            yield from pages(conn, part.first_position - 1, CHUNK, count=part.leaves)
    finally:
        engine.dispose()


def fold_part(url: str, part: Part) -> tuple[list[bytes], list[tuple[int, bytes]], dict[int, Any]]:
    """One worker's job: the part's blocks, compact range and compact ranges at the sizes."""
    scan = TreeScan(part.wanted)
    for rows in _rows(url, part):
        scan.feed(rows)
    return scan.blocks, scan.frontier.nodes(), scan.cuts


class TreeJobs:
    """The tree of a planned pass, folded by `jobs` processes in the background: start it,
    do the other checks, then take `result()`."""

    def __init__(
        self, store: EventStore, sizes: Iterable[int], jobs: int, level: int | None = None
    ):
        self.plan = plan(store, sizes, jobs, level)
        self.sizes = sizes
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self._pool: Pool = multiprocessing.get_context(method).Pool(jobs)
        args = [(store.url, part) for part in self.plan.parts]
        self._pending = self._pool.starmap_async(fold_part, args, chunksize=1)

    def result(self) -> TreeScan:
        out = TreeScan(self.sizes)
        try:
            for part, (blocks, nodes, cuts) in zip(
                self.plan.parts, self._pending.get(), strict=True
            ):
                for size, at in cuts.items():
                    joined = Frontier.restore(out.frontier.nodes())
                    joined.join(at)
                    out.cuts[part.first_leaf + size] = joined.nodes()
                out.blocks += blocks
                out.frontier.join(nodes)
        finally:
            self.close()
        return out

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()
