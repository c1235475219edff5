"""The append-only event store on SQLAlchemy Core (SQLite by default, PostgreSQL portable).

Owns the `events` table (gap-free global position, stream id and version, type, schema
version, recorded time (never decreasing along the log: the writer keeps it so), orjson
payload, and `hash = sha256(prev_hash + canonical record)`, persistence/chain.py), the
`idempotency_keys` table, and the triggers that make the database itself refuse UPDATE
and DELETE on events. Writes happen only inside `write_transaction()`, which serialises
writers (SQLite `BEGIN IMMEDIATE`, PostgreSQL table lock) so positions stay gap-free and the
chain stays linear. Each event is a leaf of the Merkle tree from its append on
(`EventStore.tree`, persistence/tree.py, which also serves the tree's reads); the tree's
stored nodes are integrated after the appends (`integrate_tree`), with the writer as backstop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, InternalError, OperationalError

from domain.errors import StoreUnavailableError
from domain.events import NewEvent
from domain.personal import DEFAULT_PERSONAL_KEYS
from persistence.chain import GENESIS_HASH as GENESIS_HASH
from persistence.chain import StoredEvent as StoredEvent
from persistence.chain import chain_hash as chain_hash
from persistence.chain import chain_rows
from persistence.chain import encode_payload as encode_payload
from persistence.checkpoint import BACKSTOP_PAGES, Checkpointer
from persistence.migrations import migrate
from persistence.pgcopy import append_rows
from persistence.schema import events_table, idempotency_table, make_engine, sqlite_path, tree_path
from persistence.sealing import MARK, opened_payloads, openings_of, seal, store_openings
from persistence.tree import LogTree

# An event row's columns, in the order persistence/chain.py `chain_rows` builds them.
EVENT_COLUMNS = (
    "position", "stream_id", "version", "type", "schema_version", "recorded_at", "payload", "hash"
)  # fmt: skip


# The most leaves the tree's stored nodes may lag the log before the writer integrates them
# itself, after its commit (`LogTree.backstop`): about 0.1 s of hashing, paid only when no
# integrator keeps up, and the most a read recomputes beyond the stored nodes.
TREE_BACKSTOP = 1 << 15


class StaleWriteError(Exception):
    """An append collided with rows another process wrote (a stream version or position
    taken meanwhile): nothing was stored, and deciding again on fresh state may succeed."""


# A prefix as a range on stream_id, with version = 1 so each stream counts once: the unique
# (stream_id, version) index serves it on SQLite and PostgreSQL alike (LIKE would not). The
# SUBSTR check keeps it exact under a PostgreSQL locale collation, where the range alone
# could admit ids that sort inside it without starting with the prefix.
_PREFIX_RANGE = (
    "stream_id >= :lo AND stream_id < :hi AND version = 1 AND SUBSTR(stream_id, 1, :len) = :lo"
)


def _prefix_bounds(prefix: str) -> dict[str, Any]:
    if not prefix:
        raise ValueError("a stream prefix must not be empty")
    return {"lo": prefix, "hi": prefix[:-1] + chr(ord(prefix[-1]) + 1), "len": len(prefix)}


class EventStore:
    """Reads and appends events; knows nothing of sessions beyond stream ids."""

    def __init__(self, url: str, personal_keys: Sequence[str] = DEFAULT_PERSONAL_KEYS) -> None:
        self.url = url
        # Tag and attribute keys whose values are sealed (domain/personal.py).
        self.personal_keys = tuple(personal_keys)
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        path = sqlite_path(url)
        # A file's checkpoints run beside the writer, not inside its commits (checkpoint.py).
        self.checkpointer = Checkpointer(path) if path is not None else None
        self.write_engine = make_engine(
            url, immediate=True, autocheckpoint=BACKSTOP_PAGES if path is not None else None
        )
        self.read_engine = make_engine(url) if self.is_sqlite else self.write_engine
        self._mark = "?" if self.is_sqlite else "%s"
        # SQLite: the tree's nodes in a file of their own, so that integrators never wait on
        # this writer's lock (persistence/tree.py).
        nodes = None if path is None else make_engine(f"sqlite:///{tree_path(path)}")
        self.tree = LogTree(self.read_engine, self._mark, nodes)
        self._tree_check_at = 0  # the head from which the writer checks the tree's lag
        self._tree_due = 0  # the head to check it at, after this transaction commits

    def create_schema(self) -> None:
        """Bring the schema up to this code's (persistence/migrations.py), then the tree."""
        migrate(self.write_engine)  # the tree file's schema with it (SQLite)
        self.catch_up_tree()

    def catch_up_tree(self) -> None:
        """Bring the Merkle tree's stored nodes up to the log (written before the tree, or
        while no integrator ran), CATCH_UP_CHUNK events a transaction."""
        self.tree.catch_up()

    def integrate_tree(self) -> int:
        """Store the tree's nodes of the events appended since the last integration (up to
        CATCH_UP_CHUNK of them; persistence/tree.py `LogTree.integrate`). Returns how many
        leaves the stored nodes cover now. Several integrators may run at once."""
        return self.tree.integrate()

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.write_engine.dispose()
        self.read_engine.dispose()
        self.tree.nodes.dispose()

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """One serialised write transaction. A database that cannot write now (disk full,
        read-only, gone) raises StoreUnavailableError; a collision with another process's
        rows raises StaleWriteError. Either way the transaction rolled back whole."""
        try:
            with self.write_engine.begin() as conn:
                if not self.is_sqlite:
                    conn.exec_driver_sql("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
                yield conn
        except IntegrityError as err:
            raise StaleWriteError(str(err.orig)) from err
        except (OperationalError, InternalError) as err:
            # The driver's message names the condition ("database or disk is full", "attempt
            # to write a readonly database"), never a password: the URL is not in it.
            raise StoreUnavailableError(f"the event store cannot write: {err.orig}") from err
        if self.checkpointer is not None:
            self.checkpointer.poke()
        if self._tree_due:  # past `_tree_check_at`: should no integrator keep up, integrate
            head, self._tree_due = self._tree_due, 0
            self._tree_check_at = self.tree.backstop(head, TREE_BACKSTOP)

    # -- writing (inside write_transaction) ---------------------------------------------------

    @staticmethod
    def head(conn: Connection) -> tuple[int, bytes]:
        position, hash_, _ = EventStore.tail(conn)
        return position, hash_

    @staticmethod
    def tail(conn: Connection) -> tuple[int, bytes, float]:
        """The last event's position, hash and recorded time (0, genesis, 0.0 when empty)."""
        row = conn.execute(
            text("SELECT position, hash, recorded_at FROM events ORDER BY position DESC LIMIT 1")
        ).first()
        return (0, GENESIS_HASH, 0.0) if row is None else (int(row[0]), bytes(row[1]), row[2])

    def insert(
        self, conn: Connection, head: tuple[int, bytes], new: Sequence[NewEvent]
    ) -> list[StoredEvent]:
        """Append `new` after `head`, chaining hashes; returns the stored events."""
        return [StoredEvent(*r) for r in self._write(conn, head, new)]

    def append(
        self, conn: Connection, head: tuple[int, bytes], new: Sequence[NewEvent]
    ) -> tuple[int, bytes]:
        """Append `new` after `head`, chaining hashes; returns the new head. Event i is at
        position head + 1 + i (positions are gap-free)."""
        rows = self._write(conn, head, new)
        return (rows[-1][0], rows[-1][7]) if rows else head

    def _write(
        self, conn: Connection, head: tuple[int, bytes], new: Sequence[NewEvent]
    ) -> list[tuple[Any, ...]]:
        new, openings = seal(new, self.personal_keys)
        rows = chain_rows(head, new)
        if openings:
            store_openings(conn, head[0], openings)
        if rows:
            # The hot path: one COPY or executemany (persistence/pgcopy.py), not SQLAlchemy's
            # per-row parameter processing, which cost more than the insert when measured.
            append_rows(conn, events_table, EVENT_COLUMNS, rows)
            if rows[-1][0] >= self._tree_check_at:
                self._tree_due = rows[-1][0]  # the tree's lag is checked after the commit
        return rows

    @staticmethod
    def find_idempotent(conn: Connection, keys: Iterable[str]) -> dict[str, tuple[str, bytes]]:
        out: dict[str, tuple[str, bytes]] = {}
        ks = list(keys)
        if ks:
            t = idempotency_table
            rows = conn.execute(
                t.select()
                .with_only_columns(t.c.key, t.c.fingerprint, t.c.result)
                .where(t.c.key.in_(ks))
            )
            out = {r[0]: (r[1], bytes(r[2])) for r in rows}
        return out

    @staticmethod
    def remember_idempotent(conn: Connection, rows: list[dict[str, Any]]) -> None:
        cols = ("key", "fingerprint", "result", "position")
        append_rows(conn, idempotency_table, cols, [tuple(r[c] for c in cols) for r in rows])

    # -- reading ------------------------------------------------------------------------------

    def load_stream(
        self, stream_id: str, conn: Connection | None = None, until_version: int | None = None
    ) -> list[StoredEvent]:
        sql = "SELECT * FROM events WHERE stream_id = :s"
        if until_version is not None:
            sql += " AND version <= :v"
        sql += " ORDER BY version"
        params = {"s": stream_id, "v": until_version}
        if conn is not None:
            return self._opened(conn, [StoredEvent(*r) for r in conn.execute(text(sql), params)])
        with self.read_engine.connect() as c:
            return self._opened(c, [StoredEvent(*r) for r in c.execute(text(sql), params)])

    def streams_appended(self, conn: Connection, after: int, upto: int) -> set[str]:
        """The ids of the streams appended to at positions after `after` up to `upto`."""
        m = self._mark
        sql = f"SELECT DISTINCT stream_id FROM events WHERE position > {m} AND position <= {m}"
        return {r[0] for r in conn.exec_driver_sql(sql, (after, upto))}

    def stream_tails(self, conn: Connection, since: dict[str, int]) -> dict[str, list[StoredEvent]]:
        """Each stream's events from version `since[id]` on, in version order, in one read
        per 200 streams (0: the whole stream; a stream not stored is absent). The event at
        `since[id]` itself comes unopened: it shows the stream still reaches that version."""
        ids, m = list(since), self._mark
        found: dict[str, list[StoredEvent]] = {}
        for i in range(0, len(ids), 200):
            chunk = ids[i : i + 200]
            where = " OR ".join([f"(stream_id = {m} AND version >= {m})"] * len(chunk))
            params = tuple(x for sid in chunk for x in (sid, since[sid]))
            sql = f"SELECT * FROM events WHERE {where} ORDER BY stream_id, version"
            for r in conn.exec_driver_sql(sql, params):
                found.setdefault(r[1], []).append(StoredEvent(*r))
        for sid, events in found.items():
            skip = 1 if since[sid] else 0  # the known event: its values are not needed
            found[sid] = events[:skip] + self._opened(conn, events[skip:])
        return found

    def _opened(self, conn: Connection, events: list[StoredEvent]) -> list[StoredEvent]:
        """`events` with their sealed values opened (persistence/sealing.py)."""
        sealed = [(e.position, e.payload) for e in events if MARK in e.payload]
        opened = opened_payloads(conn, self._mark, sealed)
        if not opened:
            return events
        return [e if e.position not in opened else e.opening(opened[e.position]) for e in events]

    def sealed_values(self, positions: Sequence[int]) -> dict[int, dict[str, tuple[bytes, bytes]]]:
        """The (salt, value) still held for the sealed values of the events at `positions`,
        by position and slot (persistence/sealing.py); an erased value is not there."""
        with self.read_engine.connect() as c:
            return openings_of(c, self._mark, positions)

    def read(
        self, after: int = 0, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[StoredEvent]:
        """Events with position > `after`, in order (the global log)."""
        sql = "SELECT * FROM events WHERE position > :a"
        params: dict[str, Any] = {"a": after, "n": limit}
        if types:
            sql += " AND type IN (" + ",".join(f":t{i}" for i in range(len(types))) + ")"
            params.update({f"t{i}": t for i, t in enumerate(types)})
        sql += " ORDER BY position LIMIT :n"
        with self.read_engine.connect() as c:
            if not self.is_sqlite:
                return self._opened(c, [StoredEvent(*r) for r in c.execute(text(sql), params)])
            # The replay hot path: the driver's fetchall, not a Result row at a time.
            cur = c.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cur.execute(sql, params)
                events = [StoredEvent(*r) for r in cur.fetchall()]
            finally:
                cur.close()
            return self._opened(c, events)

    def iter_all(
        self, after: int = 0, until: int | None = None, chunk: int = 20000
    ) -> Iterator[StoredEvent]:
        """Stream the log in position order with flat memory (chunked by position)."""
        pos = after
        while True:
            batch = self.read(pos, chunk)
            for e in batch:
                if until is not None and e.position > until:
                    return
                yield e
            if len(batch) < chunk:
                return
            pos = batch[-1].position

    def iter_stream_rows(
        self,
        until: int,
        types: Iterable[str],
        streams: tuple[str | None, str | None] = (None, None),
        chunk: int = 20000,
    ) -> Iterator[list[tuple[str, str, int, float, bytes, int]]]:
        """Events up to position `until` of the given types, stream by stream (stream id,
        then version order), as chunks of (stream_id, type, schema_version, recorded_at,
        payload, position) tuples. `streams` = (lo, hi) keeps only stream ids with
        lo <= id < hi (None: unbounded), so readers can share the streams out between them
        (`stream_bounds`). One walk along the unique (stream_id, version) index: each stream
        comes whole and in order, so a reader holds one stream open at a time, and only the
        range is read, not the whole table filtered. One read transaction per call: callers
        keep the ranges small (a long pass is many ranges)."""
        kinds = sorted(set(types))
        m = self._mark
        lo, hi = streams
        bounds = (f" AND stream_id >= {m}" if lo is not None else "") + (
            f" AND stream_id < {m}" if hi is not None else ""
        )
        # Driver-level: SQLAlchemy's per-row processing would cost more than the read.
        sql = (
            "SELECT stream_id, type, schema_version, recorded_at, payload, position "
            f"FROM events WHERE position <= {m}{bounds} "
            f"AND type IN ({', '.join([m] * len(kinds))}) ORDER BY stream_id, version"
        )
        params = (until, *(b for b in (lo, hi) if b is not None), *kinds)
        with self.read_engine.connect() as c:
            cur = c.connection.cursor()
            try:
                cur.execute(sql, params)
                while rows := cast("list[Any]", cur.fetchmany(chunk)):
                    sealed = [(r[5], r[4]) for r in rows if MARK in r[4]]
                    opened = opened_payloads(c, self._mark, sealed)
                    if opened:
                        rows = [r if r[5] not in opened else (*r[:4], opened[r[5]], r[5])
                                for r in rows]  # fmt: skip
                    yield rows
            finally:
                cur.close()

    def stream_bounds(self, until: int, parts: int) -> list[str]:
        """Up to `parts - 1` stream ids, in order, that cut the streams into ranges holding
        about equal shares of the events up to `until` (for `iter_stream_rows`). Taken from
        the stream ids at evenly spaced positions, a sample weighted by events read by
        primary key alone: the ranges come out roughly equal, which is all that readers
        taking ranges as they go need. Ordered by the database, not here: under a PostgreSQL
        locale collation the ranges' bounds must follow the order its comparisons use."""
        if parts <= 1 or until <= 0:
            return []
        samples = min(until, 8 * parts)
        at = sorted({1 + (2 * i + 1) * (until - 1) // (2 * samples) for i in range(samples)})
        marks = ", ".join([self._mark] * len(at))
        sql = f"SELECT stream_id FROM events WHERE position IN ({marks}) ORDER BY stream_id"
        with self.read_engine.connect() as c:
            ids = [str(r[0]) for r in c.exec_driver_sql(sql, tuple(at))]
        # Every k-th sampled id, each once, in the database's order.
        return list(dict.fromkeys(ids[len(ids) * k // parts] for k in range(1, parts) if ids))

    def stream_ids(self, prefix: str, limit: int = 1000, offset: int = 0) -> list[str]:
        """Ids of the streams whose id starts with `prefix`, in id order (one per stream)."""
        sql = (
            f"SELECT stream_id FROM events WHERE {_PREFIX_RANGE} "
            "ORDER BY stream_id LIMIT :n OFFSET :o"
        )
        with self.read_engine.connect() as c:
            rows = c.execute(text(sql), {**_prefix_bounds(prefix), "n": limit, "o": offset})
            return [r[0] for r in rows]

    def count_streams(self, prefix: str) -> int:
        """How many streams have an id starting with `prefix`."""
        sql = f"SELECT COUNT(*) FROM events WHERE {_PREFIX_RANGE}"
        with self.read_engine.connect() as c:
            return int(c.execute(text(sql), _prefix_bounds(prefix)).scalar_one())

    def head_digest(self) -> tuple[int, bytes]:
        with self.read_engine.connect() as c:
            return self.head(c)

    def position_at(self, t: float) -> int:
        """The last position recorded at or before time `t`. The writer never lets recorded
        times go backwards along the log, so this is a binary search on the primary key (an
        index on the time cost ~15% of every append when measured)."""
        sql = text("SELECT recorded_at FROM events WHERE position = :p")
        with self.read_engine.connect() as c:
            lo, hi = 0, self.head(c)[0]
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if c.execute(sql, {"p": mid}).scalar_one() <= t:
                    lo = mid
                else:
                    hi = mid - 1
        return lo
