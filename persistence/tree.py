"""The RFC 6962 Merkle tree over the event log, its stored nodes kept beside the events (in their
PostgreSQL database; on SQLite in a file of their own, persistence/schema.py `tree_path`):
integration (the completed subtrees of the events appended so far into `log_nodes`), the
catch-up of a log whose tree is short, and the reads (size, subtree hashes, roots, inclusion and
consistency proofs, leaves). The maths is domain/merkle.py's, the leaf encoding
persistence/chain.py's; leaf i is the event at position i + 1.

The tree has every event as a leaf from its append on: its size is the log's, and a root or a
proof is always of the events as stored. `log_nodes` only keeps the tree's perfect subtrees of
2**STORED_LEVEL leaves and more so that reads are O(log n); like Certificate Transparency logs
and Tessera, they are integrated after the append, in batches, off the writer's path
(persistence/integrator.py, a thread of the projection worker's process; a backstop in the
writer, persistence/store.py `TREE_BACKSTOP`). A node not stored yet, and every smaller one, is
recomputed from the events when a read needs it: a proof reads O(log n) stored nodes, at most a
few blocks of 2**STORED_LEVEL events (the leaf's own block and the tree's unfinished last one)
and the events not yet integrated (a bounded lag).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from domain import merkle
from domain.errors import TreeRangeError
from domain.merkle import Frontier, NodeRow, fold_right, node_hash, perfect_ranges
from persistence.chain import leaf_bytes as leaf_bytes  # the leaf encoding lives with the chain
from persistence.pgcopy import append_rows
from persistence.schema import log_nodes_table

log = logging.getLogger(__name__)

# 16 leaves a block: a stored row per 8 leaves (~1/8 of an event row's insert), and a proof
# or a writer restoring its frontier reads at most 15 events per block (see the module's
# docstring; measured in docs/performance.md).
STORED_LEVEL = 4
BLOCK = 1 << STORED_LEVEL
# Events integrated per transaction when a log's tree is caught up (an upgraded database),
# and per read inside it: bounded memory and short lock holds.
CATCH_UP_CHUNK = 1 << 16
_READ_CHUNK = 1 << 14

Key = tuple[int, int]


class TreeGapError(RuntimeError):
    """The events the tree needs are not all there: positions are not dense from 1, or the
    stored nodes below the tree's covered size are missing (a tampered database)."""


def leaf_hashes_of(rows: Sequence[Sequence[Any]]) -> list[bytes]:
    """SHA-256(0x00 || leaf) of stored rows (position, stream_id, version, type,
    schema_version, recorded_at, payload), or of verify's rows, which add the chain hash:
    chain.row_leaf inlined for catch-ups and verify passes. The common case (every payload
    bytes-like) joins the payloads as they are; another type falls back to `_as_bytes`."""
    dumps, sha256, join = orjson.dumps, hashlib.sha256, b"".join
    try:
        if rows and len(rows[0]) == 8:  # verify's rows: no copy of each row's first seven
            return [
                sha256(
                    join((b"\x00[1,", dumps([p, s, v, t, sv, at])[1:-1], b",", pl, b"]"))
                ).digest()
                for p, s, v, t, sv, at, pl, _hash in rows
            ]
        return [
            sha256(join((b"\x00[1,", dumps([p, s, v, t, sv, at])[1:-1], b",", pl, b"]"))).digest()
            for p, s, v, t, sv, at, pl in rows
        ]
    except TypeError:  # a payload stored as text (by hand): hashed as its UTF-8 bytes
        return [
            sha256(
                join((b"\x00[1,", dumps([p, s, v, t, sv, at])[1:-1], b",", _as_bytes(pl), b"]"))
            ).digest()
            for p, s, v, t, sv, at, pl, *_hash in rows
        ]


def _as_bytes(payload: Any) -> bytes:
    # PostgreSQL may hand bytea as a memoryview; a row inserted by hand as text is hashed as
    # its UTF-8 bytes, as the chain's verifier hashes it.
    if type(payload) is bytes:
        return payload
    return payload.encode() if isinstance(payload, str) else bytes(payload)


def _frontier_keys(size: int) -> list[Key]:
    """(level, index) of the perfect subtrees making [0, size), largest first."""
    out = []
    for start, end in perfect_ranges(0, size):
        level = (end - start).bit_length() - 1
        out.append((level, start >> level))
    return out


def _check(ok: bool, message: str, field: str) -> None:
    if not ok:
        raise TreeRangeError(message, field=field)


class LogTree:
    """One event store's tree. Writing: `integrate` (after the appends), `catch_up` and
    `backstop`. Reading, each call one read transaction: `size`, `latest`, `root`,
    `subtree_hash`, `inclusion_proof`, `consistency_proof`, `leaves`; arguments outside the
    tree raise TreeRangeError naming the argument. `nodes` is the engine of `log_nodes`: on
    SQLite a file of its own (schema.tree_path), which the events' writer never locks."""

    def __init__(self, engine: Engine, mark: str, nodes: Engine | None = None) -> None:
        self._engine = engine  # for reads of the events
        self.nodes = engine if nodes is None else nodes
        self._mark = mark
        # The frontier the last `pending` left, keyed by the size it covers: the next call
        # goes on from it instead of reading the stored frontier again.
        self._pending: tuple[int, Frontier] | None = None

    # -- integrating: the stored nodes follow the log -----------------------------------------

    def integrate(self, limit: int = CATCH_UP_CHUNK) -> int:
        """Store the nodes of up to `limit` more leaves, in whole blocks: hashed outside any
        write transaction (events never change), written in a short one on `nodes` unless
        another integrator stored them first. Returns how many leaves the nodes cover."""
        covered, upto, nodes = self.pending(limit)
        if upto <= covered:
            return covered
        try:
            with self.nodes.begin() as conn:
                if self.covered(conn) == covered:
                    self._store_nodes(conn, nodes)
                    return upto
        except (IntegrityError, OperationalError):
            # The same nodes, committed by another integrator first (SQLite: its commit
            # after this transaction's read refuses the write); anything else is raised.
            if self.integrated() == covered:
                raise
        self._pending = None
        return self.integrated()

    def catch_up(self) -> None:
        """Integrate up to the log's last whole block (a log written before the tree, a tree
        file lost or rebuilt, an integrator that fell behind), CATCH_UP_CHUNK at a time."""
        while True:
            covered = self.integrated()
            if self.integrate() == covered:
                return

    def backstop(self, head: int, lag: int) -> int:
        """After a commit up to `head`: integrate when the stored nodes lag by more than `lag`
        leaves (no integrator runs, or keeps up), so that reads never recompute more than
        that. Returns the head from which to check again. The events are committed, so a
        failure is logged, not raised: the next commit past that head tries again."""
        try:
            covered = self.integrated()
            if head - covered > lag:
                self.catch_up()
                covered = self.integrated()
        except Exception:
            log.warning("integrating the log's tree after a commit failed", exc_info=True)
            return head
        return covered + lag

    def pending(self, limit: int = CATCH_UP_CHUNK) -> tuple[int, int, list[NodeRow]]:
        """(the size the stored nodes cover, the size they would cover with the nodes of up
        to `limit` more leaves in whole blocks, those nodes), computed in read transactions:
        events never change once written, so the hashing holds no lock."""
        covered = self.integrated()
        with self._engine.connect() as conn:
            row = conn.exec_driver_sql("SELECT MAX(position) FROM events").first()
            head = 0 if row is None or row[0] is None else int(row[0])
            upto = min(head - head % BLOCK, covered + max(BLOCK, limit - limit % BLOCK))
            if upto <= covered:
                return covered, covered, []
            cached, self._pending = self._pending, None
            if cached is not None and cached[0] == covered:
                frontier = cached[1]
            else:
                with self.nodes.connect() as nodes_conn:
                    frontier = self._stored_frontier(nodes_conn, covered)
            nodes: list[NodeRow] = []
            for start in range(covered, upto, _READ_CHUNK):
                leaves = self._leaf_hashes(conn, start, min(upto, start + _READ_CHUNK))
                nodes += frontier.extend(leaves, STORED_LEVEL)
        self._pending = (upto, frontier)
        return covered, upto, nodes

    @staticmethod
    def covered(conn: Connection) -> int:
        """How many leaves the stored nodes cover: whole blocks, 0..max, none missing (every
        integration writes the blocks after the last stored one, in order)."""
        row = conn.exec_driver_sql(
            f"SELECT MAX(idx) FROM log_nodes WHERE level = {STORED_LEVEL}"
        ).first()
        return 0 if row is None or row[0] is None else (int(row[0]) + 1) * BLOCK

    def integrated(self) -> int:
        """`covered`, read on its own: how many leaves the stored nodes cover."""
        with self.nodes.connect() as conn:
            return self.covered(conn)

    def _stored_frontier(self, conn: Connection, size: int) -> Frontier:
        """The frontier of `size` leaves (whole blocks) from stored nodes alone."""
        keys = _frontier_keys(size)
        nodes = self._read_nodes(conn, keys)
        if len(nodes) < len(keys):
            raise TreeGapError(f"log_nodes lacks nodes of the first {size} leaves")
        return Frontier.restore((level, nodes[level, i]) for level, i in keys)

    @staticmethod
    def _store_nodes(conn: Connection, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        append_rows(conn, log_nodes_table, ("level", "idx", "hash"), nodes)

    def _read_nodes(self, conn: Connection, keys: Sequence[Key]) -> dict[Key, bytes]:
        if not keys:
            return {}
        m = self._mark
        where = " OR ".join([f"(level = {m} AND idx = {m})"] * len(keys))
        params = tuple(x for key in keys for x in key)
        rows = conn.exec_driver_sql(f"SELECT level, idx, hash FROM log_nodes WHERE {where}", params)
        return {(int(r[0]), int(r[1])): _as_bytes(r[2]) for r in rows}

    def _rows(self, conn: Connection, start: int, end: int) -> list[Any]:
        """The stored rows of leaves [start, end) (positions start + 1 .. end), all of them."""
        m = self._mark
        sql = (
            "SELECT position, stream_id, version, type, schema_version, recorded_at, payload "
            f"FROM events WHERE position > {m} AND position <= {m} ORDER BY position"
        )
        rows = list(conn.exec_driver_sql(sql, (start, end)))
        if len(rows) != end - start:
            raise TreeGapError(
                f"positions {start + 1}..{end} hold {len(rows)} events, not {end - start}"
            )
        return rows

    def _leaf_hashes(self, conn: Connection, start: int, end: int) -> list[bytes]:
        return leaf_hashes_of(self._rows(conn, start, end)) if end > start else []

    # -- reading ------------------------------------------------------------------------------

    @contextmanager
    def _view(self) -> Iterator[_View]:
        """One read transaction and the tree size it sees (SQLite: one WAL snapshot of the
        events; the stored nodes, which never change, read beside it)."""
        with self._engine.connect() as conn:
            row = conn.exec_driver_sql(
                "SELECT position FROM events ORDER BY position DESC LIMIT 1"
            ).first()
            size = 0 if row is None else int(row[0])
            if self.nodes is self._engine:
                yield _View(self, conn, conn, size)
                return
            with self.nodes.connect() as node_conn:
                yield _View(self, conn, node_conn, size)

    def size(self) -> int:
        """How many leaves the tree has: every event in the log."""
        with self._view() as view:
            return view.size

    def latest(self) -> tuple[int, bytes]:
        """(size, root) of the whole tree, read together (what a checkpoint signs)."""
        with self._view() as view:
            return view.size, view.root(view.size)

    def root(self, size: int) -> bytes:
        """The root of the tree of the first `size` leaves, 0 <= size <= the tree's size."""
        with self._view() as view:
            _check(0 <= size <= view.size, f"no tree of {size} leaves in {view.size}", "size")
            return view.root(size)

    def subtree_hash(self, start: int, end: int) -> bytes:
        """The MTH of the perfect subtree over leaves [start, end): end - start a power of
        two that divides start, end <= the tree's size."""
        n = end - start
        perfect = start >= 0 and n > 0 and n & (n - 1) == 0 and start % n == 0
        _check(perfect, f"[{start}, {end}) is not a perfect subtree", "start")
        with self._view() as view:
            _check(end <= view.size, f"[{start}, {end}) is past the tree's {view.size}", "end")
            return view.perfect(start, end)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 6962 PATH(index, D[size]), 0 <= index < size <= the tree's size."""
        with self._view() as view:
            _check(0 < size <= view.size, f"no tree of {size} leaves in {view.size}", "size")
            _check(0 <= index < size, f"leaf {index} is not in a tree of {size}", "index")
            ranges = merkle.inclusion_ranges(index, size)
            view.prefetch(ranges)
            return [view.range_hash(s, e) for s, e in ranges]

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """RFC 6962 PROOF(first, D[second]), 0 < first <= second <= the tree's size; empty
        when first == second (RFC 9162 §2.1.4.1)."""
        with self._view() as view:
            _check(0 < second <= view.size, f"no tree of {second} in {view.size}", "second")
            _check(0 < first <= second, f"no proof from {first} to {second}", "first")
            if first == second:
                return []
            ranges = merkle.consistency_ranges(first, second)
            view.prefetch(ranges)
            return [view.range_hash(s, e) for s, e in ranges]

    def leaves(self, start: int, end: int) -> list[bytes]:
        """The leaf bytes of leaves [start, end), 0 <= start <= end <= the tree's size
        (callers page: this reads every row asked for)."""
        with self._view() as view:
            _check(0 <= start <= end, f"[{start}, {end}) is not a range of leaves", "start")
            _check(end <= view.size, f"[{start}, {end}) is past the tree's {view.size}", "end")
            rows = self._rows(view.conn, start, end) if end > start else []
        dumps = orjson.dumps
        return [
            b"[1," + dumps([p, s, v, t, sv, at])[1:-1] + b"," + _as_bytes(pl) + b"]"
            for p, s, v, t, sv, at, pl in rows
        ]


class _View:
    """The tree of `size` leaves as one read transaction sees it; each stored node and each
    bottom block's leaf hashes read once."""

    def __init__(self, tree: LogTree, conn: Connection, node_conn: Connection, size: int) -> None:
        self.tree, self.conn, self.node_conn, self.size = tree, conn, node_conn, size
        self.nodes: dict[Key, bytes] = {}
        self.blocks: dict[int, list[bytes]] = {}

    def prefetch(self, ranges: Sequence[tuple[int, int]]) -> None:
        """Read the stored nodes `ranges` will need in one statement."""
        keys: set[Key] = set()
        for start, end in ranges:
            for s, e in perfect_ranges(start, end):
                level = (e - s).bit_length() - 1
                if level >= STORED_LEVEL:
                    keys.add((level, s >> level))
        self.nodes.update(self.tree._read_nodes(self.node_conn, sorted(keys)))

    def root(self, size: int) -> bytes:
        if size == 0:
            return merkle.EMPTY_ROOT
        self.prefetch([(0, size)])
        return self.range_hash(0, size)

    def range_hash(self, start: int, end: int) -> bytes:
        """The MTH of a left-aligned range (all a proof asks for), from its perfect parts."""
        return fold_right([self.perfect(s, e) for s, e in perfect_ranges(start, end)])

    def perfect(self, start: int, end: int) -> bytes:
        level = (end - start).bit_length() - 1
        if level < STORED_LEVEL:
            block = self._block(start >> STORED_LEVEL)
            at = start % BLOCK
            return block[at] if level == 0 else merkle.root(block[at : at + end - start])
        key = (level, start >> level)
        found = self.nodes.get(key) or self.tree._read_nodes(self.node_conn, [key]).get(key)
        if found is None:
            # Not stored yet (a log whose tree is still being caught up): from its halves.
            mid = start + (end - start) // 2
            found = node_hash(self.perfect(start, mid), self.perfect(mid, end))
        self.nodes[key] = found
        return found

    def _block(self, index: int) -> list[bytes]:
        found = self.blocks.get(index)
        if found is None:
            start = index * BLOCK
            found = self.tree._leaf_hashes(self.conn, start, min(start + BLOCK, self.size))
            self.blocks[index] = found
        return found
