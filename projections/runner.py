"""Applies the event log to the views, exactly once, resumable, in batches.

Each batch reads events after the views' tracking position, folds the session events into
the touched sessions' states (read from the detail table, the runner's fold store), hands
every view the (before, after) changes, and writes the views' rows and their tracking
positions in one transaction. A killed process resumes at the last committed position; the
live worker and the rebuild are this same class.

Exactly once whoever runs: several workers may share one views database (every `ledger
serve` starts its own, `ledger project` is another, a rebuild catches up inside its swap).
A batch's first statement moves the views' tracking rows from the position the worker read
its events after to the batch's last position, only if they still say that position
(`_claim`). On PostgreSQL that UPDATE waits on the row lock of a worker applying the same
events and then matches nothing; on SQLite the write lock is taken first. A worker whose
claim matches nothing rolls back, drops its cached position and reads on from the one
committed (`_resync`): it never applies an event another worker applied.

A poison event (one the fold, or a view, raises on) is skipped and recorded, and every
view goes on. The views hang off one fold (the detail table is its store, the others are
built from its before and after states), so stopping just the view that raised would
leave the others waiting on the fold, or the fold ahead of them: a stopped view could
only be restarted by a rebuild. Skipping keeps every view current for every other
session; the skipped event's session is folded as if its stream lacked that event (the
event stays in the log, and `ledger replay verify` names a forged one). A failed batch is
split in halves until the single event that fails alone is found (`_isolate`), so the
events around it are applied as before; the skip moves the tracking position past it in
one transaction with its record in `view_failures` (projections/failures.py: each view's
name, the position, the error naming the fold or the view that raised). A failure that is
the database's (locked, read-only, gone: `is_infrastructure`) is never a skip: the live
worker retries it, backing off, and `health()` reports the views as stopped until a batch
goes through. A rebuild's bulk `load` folds whole streams and cannot skip one event: when
it meets a poison event it starts again batch by batch (`_reload_skipping`), slower, to
the same views as the live worker's.

A bulk load into empty tables (`load`: rebuilds and as-of replays) reads the log stream by
stream instead, in ranges of stream ids, folds one session at a time and writes each once,
complete; on a large log a second process takes ranges too (`python -m projections.runner`
is that process's entry point), each loader claiming the next free range as it goes.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite

from domain.session import ALL_EVENT_CLASSES, upcast
from domain.state import EVOLVERS, State, evolve, fold_kept_alive, new_state
from persistence.runtime import paused_gc
from persistence.store import EventStore, StoredEvent, make_engine
from projections import failures
from projections.failures import ApplyFailed, ViewHealth, describe
from projections.sql import upsert
from projections.tables import ViewTables
from projections.views import (
    CellDelta,
    Change,
    CountView,
    DetailView,
    ListView,
    Projection,
    StatsView,
    all_views,
    snapshot,
)

log = logging.getLogger(__name__)


# From this many events a load shares the streams with a second process: below it, starting
# a second interpreter costs more than it saves.
PARALLEL_FROM = 200_000
# About this many events per range of streams a loader claims: small enough that the two
# loaders end within a fraction of a second of each other whichever runs slower (a shared
# machine's cores do not keep one speed), large enough that a range's query start is noise.
RANGE_EVENTS = 20_000
MAX_RANGES = 256
# The live worker's pacing (`pause_after`): from this many events a batch means a busy log,
# and the worker then lets the next batch gather for this long.
BUSY_BATCH = 64
GATHER_S = 0.05
# The views a second loader can rebuild on its own (it is handed their classes).
_STANDARD_VIEWS = (DetailView, ListView, CountView, StatsView)
# Each event type's current schema version: the payloads already there skip `upcast`.
_CURRENT = {kind: cls.class_version for kind, cls in ALL_EVENT_CLASSES.items()}
# Where `python -m projections.runner` finds this package (put on the second loader's path).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

Range = tuple[str | None, str | None]
# A loader's count and stats sums, by view name (`_load_part`).
Sums = dict[str, Any]


def stream_ranges(store: EventStore, until: int, per_range: int = RANGE_EVENTS) -> list[Range]:
    """The log's streams up to `until` cut into ranges of about `per_range` events each
    (in id order, together covering every id)."""
    cuts: list[str | None] = list(
        store.stream_bounds(until, min(MAX_RANGES, max(1, until // per_range)))
    )
    return list(zip([None, *cuts], [*cuts, None], strict=True))


class Claims:
    """Which loader reads which range: a range belongs to the process that first creates
    its marker file in a directory the loaders share (O_EXCL: exactly one succeeds). Each
    loader walks the ranges in order and takes the next unclaimed one, so neither waits
    while ranges are left. Without a directory every range is this process's."""

    def __init__(self, ranges: Sequence[Range], directory: str | None = None) -> None:
        self.ranges = list(ranges)
        self.directory = directory

    def taken(self) -> Iterator[tuple[int, Range]]:
        for i, rng in enumerate(self.ranges):
            if self.directory is not None:
                try:
                    os.close(os.open(os.path.join(self.directory, str(i)), os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    continue
            yield i, rng


def _prepared(
    view: Projection, t: ViewTables, changes: list[Change]
) -> Callable[[Connection], None]:
    """`view.apply(conn, t, changes)` with the standard views' rows built (documents
    serialised) now, before the write lock is taken: two loaders share that lock, and the
    building was over half of the time a batch held it."""
    if isinstance(view, DetailView):
        docs = view.prepare(changes)
        return lambda conn: view.write(conn, t, docs)
    if isinstance(view, ListView):
        rows = view.prepare(changes)
        return lambda conn: view.write(conn, t, rows)
    return lambda conn: view.apply(conn, t, changes)


def _load_part(
    store: EventStore,
    engine: Engine,
    t: ViewTables,
    views: Sequence[Projection],
    until: int,
    claims: Claims,
    sessions_per_batch: int,
    progress: Callable[[int], None] | None,
) -> Sums:
    """Load the sessions of the ranges this process claims into `t`, each range read stream
    by stream: a session is folded from its first event to its last up to `until`, then
    waits in `done` for the next batch write, so each session's rows are written once, from
    its final state. The count and stats views, whose rows are sums over sessions, add up in
    memory (their cells are few) and are returned for `load` to write once, with the
    tracking positions. Memory is bounded by the batch and the cells, not by the log."""
    summed = [v for v in views if isinstance(v, CountView | StatsView)]
    direct = [v for v in views if not isinstance(v, CountView | StatsView)]
    sums: Sums = {
        v.name: defaultdict(CellDelta if isinstance(v, StatsView) else int) for v in summed
    }
    done: list[Change] = []  # complete, not yet written (in id order: rows land in key order)

    def flush() -> None:
        changes = done[:]
        done.clear()
        for v in summed:
            v.deltas(changes, sums[v.name])
        writes = [_prepared(v, t, changes) for v in direct]
        with engine.begin() as conn:
            for write in writes:
                write(conn)

    loads, current, kept_alive = orjson.loads, _CURRENT, fold_kept_alive
    n = len(claims.ranges)
    with paused_gc():
        for i, streams in claims.taken():
            base, top = until * i // n, until * (i + 1) // n
            sid: str | None = None
            state: State = {}
            in_range = 0
            for rows in store.iter_stream_rows(until, EVOLVERS, streams):
                for row_sid, kind, version, at, payload, position in rows:
                    if row_sid != sid:
                        if sid is not None:
                            done.append((sid, None, state))
                        sid, state = row_sid, new_state(row_sid)
                    data = loads(payload)
                    if version < current[kind]:
                        data = upcast(kind, version, data)
                    if kind == "KeptAlive":
                        kept_alive(state, data, at)
                    else:
                        evolve(state, kind, data, at, position)
                in_range += len(rows)
                if len(done) >= sessions_per_batch:
                    flush()
                if progress is not None:
                    progress(min(top, base + in_range))
            if sid is not None:  # a range's last stream is complete at its end
                done.append((sid, None, state))
            if len(done) >= sessions_per_batch:
                flush()
        flush()
    return sums


def _read_answer(pipe: Any) -> bytes:
    """The second loader's length-prefixed answer, read to its end (a read can come back
    short, e.g. when a profiler stops the child mid-write)."""
    out = b""
    need = 8
    while len(out) < need:
        chunk = pipe.read(need - len(out))
        if not chunk:
            break
        out += chunk
        if need == 8 and len(out) >= 8:
            need = 8 + int.from_bytes(out[:8], "big")
    return out


def _load_child(job: bytes) -> bytes:
    """The second loader (`python -m projections.runner`, a fresh interpreter): the ranges
    it claims, into the same tables of the same views database (each batch its own short
    write transaction, like the parent's); returns its sums, pickled, for the parent to add
    to its own and write once."""
    store_url, views_url, suffix, kinds, until, ranges, directory, sessions_per_batch = (
        pickle.loads(job)
    )
    store = EventStore(store_url)
    # The same page cache as the first loader's in the benchmark and the live worker's
    # (`for_url`): both loaders insert at random places of the detail, list and tag keys.
    engine = make_engine(views_url, immediate=True, durable=False, cache_mb=64)
    try:
        sums = _load_part(
            store, engine, ViewTables(suffix, bulk=True), [k() for k in kinds], until,
            Claims(ranges, directory), sessions_per_batch, None,
        )  # fmt: skip
        return pickle.dumps(sums, pickle.HIGHEST_PROTOCOL)
    finally:
        engine.dispose()
        store.dispose()


class _Overtaken(Exception):
    """A batch's claim found the views already moved on: its transaction rolls back."""


def _error_text(exc: BaseException) -> str:
    """A failed batch's error for `health()` and the health routes: one line, no statement,
    parameters or credentials (a database error's text can carry them)."""
    return str(exc) if isinstance(exc, ApplyFailed) else describe(exc)


class ProjectionRunner:
    def __init__(
        self,
        store: EventStore,
        views_engine: Engine,
        tables: ViewTables | None = None,
        views: Sequence[Projection] | None = None,
        batch_size: int = 5000,
    ) -> None:
        self.store = store
        self.engine = views_engine
        self.tables = tables or ViewTables()
        self.views = list(views or all_views())
        self.batch_size = batch_size
        self._cond = threading.Condition()
        self._position = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    @classmethod
    def for_url(cls, store: EventStore, views_url: str, **kw: Any) -> ProjectionRunner:
        return cls(store, make_engine(views_url, immediate=True, durable=False, cache_mb=64), **kw)

    def create_schema(self) -> None:
        """Create the views' tables; views written by an older schema (a table of this one is
        missing, or has other columns, while positions are tracked) are dropped and refilled
        from position 0, since views are only ever derived from the log. An index of another
        shape than this schema's is built again from its table."""
        with self.engine.begin() as conn:
            insp = inspect(conn)
            have = set(insp.get_table_names())
            tables = self.tables.metadata.sorted_tables
            if self.tables.tracking.name in have and any(
                x.name not in have
                or {col["name"] for col in insp.get_columns(x.name)} != set(x.c.keys())
                for x in tables
            ):
                log.warning("views were written by an older schema: refilling them from the log")
                self.tables.metadata.drop_all(conn)
                have = set()
            for x in tables:
                if x.name not in have or not x.indexes:
                    continue
                shapes = {ix["name"]: ix["column_names"] for ix in insp.get_indexes(x.name)}
                for index in x.indexes:
                    shape = shapes.get(index.name)
                    if shape is not None and shape != [col.name for col in index.columns]:
                        log.warning("index %s has an older shape: building it again", index.name)
                        index.drop(conn)
                        index.create(conn)  # create_all passes over a table that exists
            self.tables.metadata.create_all(conn)
            failures.metadata.create_all(conn)
        self._position = self.read_position()

    def read_position(self) -> int:
        with self.engine.connect() as conn:
            return self._tracked(conn)

    def _tracked(self, conn: Connection) -> int:
        t = self.tables.tracking
        have = dict(conn.execute(select(t.c.view, t.c.position)).all())
        return min(int(have.get(v.name, 0)) for v in self.views)

    @property
    def position(self) -> int:
        return self._position

    # -- one batch --------------------------------------------------------------------------

    def apply(self, events: Sequence[StoredEvent]) -> int:
        """Fold `events` (in order, after our position) into every view in one transaction;
        a batch that raises on an event is split until that event is found and skipped
        (see the module docstring). Returns the position the views now stand at."""
        try:
            return self._apply_batch(events)
        except ApplyFailed as failed:
            if failed.infrastructure:
                raise
            log.warning("a batch failed (%s): finding the event it cannot apply", failed)
            self._isolate(events, failed)
            return self._position

    def _apply_batch(self, events: Sequence[StoredEvent]) -> int:
        """One transaction: claim the tracking position, fold, write every view."""
        old = self._position
        events = [e for e in events if e.position > old]
        if not events:
            return old
        last = events[-1].position
        t = self.tables
        # Events the session fold does not know (an execution context's, say) change no view,
        # but the tracking position still moves past them, so a batch of them is applied too.
        folded = [e for e in events if e.type in EVOLVERS]
        sids = list(dict.fromkeys(e.stream_id for e in folded))
        try:
            with self.engine.begin() as conn:
                if not self._claim(conn, old, last):
                    raise _Overtaken  # rolls back whatever the claim wrote
                self._fold_and_write(conn, t, folded, sids)
        except _Overtaken:
            return self._resync(old)
        self._moved_to(last)
        return last

    def _fold_and_write(
        self, conn: Connection, t: ViewTables, folded: list[StoredEvent], sids: list[str]
    ) -> None:
        part = "fold"
        try:
            before: dict[str, State] = {}
            after: dict[str, State] = {}
            for i in range(0, len(sids), 500):
                chunk = sids[i : i + 500]
                for sid, doc in conn.execute(
                    select(t.detail.c.session_id, t.detail.c.doc).where(
                        t.detail.c.session_id.in_(chunk)
                    )
                ):
                    state = after[sid] = orjson.loads(doc)
                    before[sid] = snapshot(state)
            for e in folded:
                st = after.get(e.stream_id)
                if st is None:
                    st = after[e.stream_id] = new_state(e.stream_id)
                evolve(
                    st,
                    e.type,
                    upcast(e.type, e.schema_version, orjson.loads(e.payload)),
                    e.recorded_at,
                    e.position,
                )
            changes: list[Change] = [(sid, before.get(sid), after[sid]) for sid in sids]
            for view in self.views if changes else ():
                part = view.name
                view.apply(conn, t, changes)
        except Exception as exc:
            raise ApplyFailed(part, exc) from exc

    def _claim(self, conn: Connection, old: int, new: int) -> bool:
        """Move every view's tracking position from `old` to `new`, or none: False when the
        rows no longer say `old` (another worker applied these events, or a rebuild was
        swapped in). The first statement of a batch, so on PostgreSQL a second worker's
        claim waits for the first one's commit and then matches no row."""
        tr = self.tables.tracking
        names = [v.name for v in self.views]
        moved = conn.execute(
            update(tr).where(tr.c.view.in_(names), tr.c.position == old).values(position=new)
        ).rowcount
        if moved == len(names):
            return True
        if moved == 0 and old == 0:
            # Fresh tables have no rows yet: the first batch inserts them. A concurrent first
            # batch's insert collides on the key (PostgreSQL waits for its commit) and adds none.
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            rows = [{"view": n, "position": new} for n in names]
            ins = dialect.insert(tr).values(rows).on_conflict_do_nothing(index_elements=["view"])
            # Rows returned, not rowcount: a multi-row insert's count is -1 on psycopg.
            return len(conn.execute(ins.returning(tr.c.view)).all()) == len(names)
        return False

    def _resync(self, old: int) -> int:
        """Another worker (or a rebuild) moved the views on: forget our position and take the
        committed one. Rows that disagree among the views (a tracking row at another position
        than the rest) cannot be claimed: that is an error, not a reason to wait."""
        stored = self.read_position()
        if stored == old:
            raise RuntimeError(
                f"the views' tracking positions disagree around {old}: rebuild the views"
            )
        log.info("views moved from %s to %s under this worker: resuming there", old, stored)
        self._moved_to(stored)
        return stored

    def _moved_to(self, position: int) -> None:
        with self._cond:
            self._position = position
            self._cond.notify_all()

    def _isolate(self, events: Sequence[StoredEvent], failed: ApplyFailed) -> None:
        """Apply `events`, one of which (at least) fails: halves that go through are
        committed as they are, a half that fails is split again, and an event that fails
        alone is skipped (`_skip`). Only after a failure: a batch costs the same as ever."""
        if len(events) == 1:
            self._skip(events[0], failed)
            return
        mid = len(events) // 2
        for half in (events[:mid], events[mid:]):
            try:
                self._apply_batch(half)
            except ApplyFailed as again:
                if again.infrastructure:
                    raise
                self._isolate(half, again)

    def _skip(self, event: StoredEvent, failed: ApplyFailed) -> None:
        """Move every view past `event` without applying it, and record why."""
        old = self._position
        if event.position <= old:
            return
        names = [v.name for v in self.views]
        error = f"{failed.part}: {describe(failed.cause)}"
        try:
            with self.engine.begin() as conn:
                if not self._claim(conn, old, event.position):
                    raise _Overtaken
                failures.record(conn, names, event.position, error)
        except _Overtaken:
            self._resync(old)
            return
        log.error(
            "skipped the event at position %s (%s of %s): %s",
            event.position, event.type, event.stream_id, error,
        )  # fmt: skip
        self._moved_to(event.position)

    def health(self) -> dict[str, ViewHealth]:
        """Per view: its position, its lag behind the log's head, its state (stopped while
        the live worker's batches fail on the database itself) and its last error (that
        failure, else the last event it skipped). Read from the views database, so a server
        sees what a worker process did; a stop is known only to the worker's own process."""
        head = self.store.head_digest()[0]
        tr = self.tables.tracking
        with self.engine.connect() as conn:
            have = dict(conn.execute(select(tr.c.view, tr.c.position)).all())
            skipped = failures.latest(conn)
        stop = self.last_error
        out: dict[str, ViewHealth] = {}
        for v in self.views:
            position = int(have.get(v.name, 0))
            last = skipped.get(v.name)
            out[v.name] = {
                "position": position,
                "lag": max(0, head - position),
                "state": "stopped" if stop else "ok",
                "last_error": stop or (last[1] if last else None),
                "last_error_position": None if stop or last is None else last[0],
                "skipped": last[2] if last else 0,
            }
        return out

    def load(
        self,
        until: int | None = None,
        progress: Callable[[int], None] | None = None,
        sessions_per_batch: int = 2000,
        parallel_from: int | None = None,
        range_events: int = RANGE_EVENTS,
    ) -> int:
        """Fill empty tables from the log up to `until` (default: the head), stream by
        stream (see `_load_part`): each session is folded from its first event to its last
        and its rows are written once, and the count and stats views, whose rows are sums
        over sessions, add up in memory (their cells are few) and are written at the end.
        The same views and fold as `apply`, so the tables end up exactly as applying the
        log in order would leave them; each batch commits on its own, so a live worker
        sharing the database waits for one batch at most.

        From `parallel_from` events on (default PARALLEL_FROM), on a SQLite file with the
        four standard views, a second process loads ranges of streams beside this one (see
        `_load_parallel`); `range_events` sizes the ranges of streams the loaders take.
        Returns the position the tables now stand at."""
        if self._position != 0:
            raise RuntimeError("load fills empty views; use catch_up to continue")
        target = self.store.head_digest()[0] if until is None else until
        t = self.tables
        ranges = stream_ranges(self.store, target, range_events)
        split_at = PARALLEL_FROM if parallel_from is None else parallel_from
        try:
            if target >= split_at and len(ranges) > 1 and self._can_split():
                sums = self._load_parallel(target, ranges, progress, sessions_per_batch)
            else:
                sums = _load_part(
                    self.store, self.engine, t, self.views, target, Claims(ranges),
                    sessions_per_batch, progress,
                )  # fmt: skip
        except Exception as exc:
            if failures.is_infrastructure(exc):
                raise
            return self._reload_skipping(target, exc)
        with self.engine.begin() as conn:
            for v in self.views:
                if isinstance(v, CountView | StatsView):
                    v.write(conn, t, sums[v.name])
            upsert(
                conn,
                t.tracking,
                [{"view": v.name, "position": target} for v in self.views],
                ["view"],
            )
        with self._cond:
            self._position = target
            self._cond.notify_all()
        return target

    def _reload_skipping(self, target: int, exc: Exception) -> int:
        """The bulk load met an event it cannot apply (it folds whole streams, so it cannot
        leave one event out): empty the tables and apply the log batch by batch instead,
        which skips such events as the live worker does, so the views end up the same."""
        log.warning(
            "the bulk load cannot apply an event (%s): applying the log batch by batch, "
            "skipping what cannot be applied", describe(exc),
        )  # fmt: skip
        with self.engine.begin() as conn:
            for table in reversed(self.tables.metadata.sorted_tables):
                conn.execute(table.delete())
        self._moved_to(0)
        return self.catch_up(until=target)

    def _can_split(self) -> bool:
        """A second loader needs a SQLite file it can open too (PostgreSQL, the in-memory
        test databases and a caller's own transaction are loaded by one process) and views
        it can build itself."""
        dialect = getattr(self.engine, "dialect", None)
        url = getattr(self.engine, "url", None)
        return (
            dialect is not None
            and dialect.name == "sqlite"
            and url is not None
            and url.database not in (None, "", ":memory:")
            and all(type(v) in _STANDARD_VIEWS for v in self.views)
        )

    def _load_parallel(
        self,
        target: int,
        ranges: list[Range],
        progress: Callable[[int], None] | None,
        sessions_per_batch: int,
    ) -> Sums:
        """Load the ranges of streams with a child process, each loader claiming the next
        free range as it goes (`Claims`) and writing its batches into our tables (SQLite
        serialises the short transactions); returns both loaders' sums, added up. Taking
        ranges as they go, not halves fixed in advance, the two end together whichever is
        slower (the child starts half a second late, and a shared machine's cores do not
        keep one speed). They share no stream, so their rows never collide."""
        t = self.tables
        views_url = self.engine.url.render_as_string(hide_password=False)
        kinds = [type(v) for v in self.views]
        directory = tempfile.mkdtemp(prefix="ledger-load-")
        job = (
            self.store.url, views_url, t.suffix, kinds, target, ranges, directory,
            sessions_per_batch,
        )  # fmt: skip
        # A fresh interpreter, not a fork: no inherited threads, locks or connections, and no
        # re-import of whatever script started us (multiprocessing's spawn would do that).
        # Same working directory (relative SQLite paths name the same files), our package
        # first on its path.
        path = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "projections.runner"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": path},
            )
            try:
                assert child.stdin is not None and child.stdout is not None
                child.stdin.write(pickle.dumps(job, pickle.HIGHEST_PROTOCOL))
                child.stdin.close()
                sums = _load_part(
                    self.store, self.engine, t, self.views, target,
                    Claims(ranges, directory), sessions_per_batch, progress,
                )  # fmt: skip
                out = _read_answer(child.stdout)
                child.wait()
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        if child.returncode != 0:
            raise RuntimeError(f"the second loader failed (exit {child.returncode})")
        if len(out) < 8 or len(out) - 8 != int.from_bytes(out[:8], "big"):
            raise RuntimeError(f"the second loader's answer was cut short ({len(out)} bytes)")
        # A whole answer: the child's rows are committed, and its sums are here.
        child_sums = pickle.loads(out[8:])
        for name, part in child_sums.items():
            mine = sums[name]
            for key, value in part.items():
                if isinstance(value, CellDelta):
                    mine[key].merge(value)
                else:
                    mine[key] += value
        return sums

    def run_once(self) -> int:
        """Apply the next batch; returns how many events were read."""
        events = self.store.read(self._position, self.batch_size)
        self.apply(events)
        return len(events)

    def catch_up(
        self, until: int | None = None, progress: Callable[[int], None] | None = None
    ) -> int:
        """Apply everything (or up to position `until`); returns the new position."""
        while until is None or self._position < until:
            limit = self.batch_size
            if until is not None:
                limit = min(limit, until - self._position)
            events = self.store.read(self._position, limit)
            if not events:
                break
            self.apply(events)
            if progress is not None:
                progress(self._position)
        return self._position

    # -- the live worker --------------------------------------------------------------------

    def start(self, poll_interval: float = 0.25) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, args=(poll_interval,), name="projection-worker", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join()
            self._thread = None

    def wake(self, _position: int = 0) -> None:
        self._wake.set()

    def pause_after(self, applied: int, poll_interval: float) -> float:
        """How long the live worker waits before its next batch, after one of `applied`
        events: none when the batch was full (more is waiting), `poll_interval` when the log
        is quiet, and `GATHER_S` when it is busy (`BUSY_BATCH` or more), so the next batch
        is bigger. A batch costs ~2 ms besides its events, and a keepalive's rows are spread
        over the tables' pages, so each commit rewrites pages for a few events: measured on
        keepalives, batches of 200 cost 110 us per event where batches of 40 cost 150, and
        under the HTTP keepalive load gathering 50 ms instead of 20 took ~10 % off the
        worker's CPU per event. Read-your-writes under such a load waits up to that much
        longer (bounded as ever)."""
        if applied >= self.batch_size:
            return 0.0
        if applied >= BUSY_BATCH:
            return max(poll_interval, GATHER_S)
        return poll_interval

    def run_forever(self, poll_interval: float, should_stop: Callable[[], bool]) -> None:
        """The worker loop in the foreground (the `ledger project` process)."""
        self._position = self.read_position()
        while not should_stop():
            try:
                applied = self.run_once()
            except Exception as exc:
                log.exception("projection batch failed at position %s", self._position)
                self.last_error = _error_text(exc)
                self._position = self.read_position()
                time.sleep(1.0)
                continue
            self.last_error = None
            pause = self.pause_after(applied, poll_interval)
            if pause:
                time.sleep(pause)

    def _run(self, poll_interval: float) -> None:
        backoff = poll_interval
        while not self._stop.is_set():
            try:
                applied = self.run_once()
                self.last_error = None
                backoff = poll_interval
            except Exception as exc:
                # Loud, and retried from the last committed position: nothing is skipped.
                log.exception("projection batch failed at position %s", self._position)
                self.last_error = _error_text(exc)
                self._position = self.read_position()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            pause = self.pause_after(applied, poll_interval)
            if pause > poll_interval:
                self._stop.wait(pause)  # gathering: commits' wake-ups would cut it short
            elif pause:
                self._wake.wait(pause)
                self._wake.clear()

    def wait_for(self, position: int, timeout: float = 2.0) -> bool:
        """Block until the views include `position` (read-your-writes), up to `timeout`."""
        deadline = time.monotonic() + timeout
        if self._thread is None:
            # The worker is another process: watch its committed tracking position.
            while (seen := self.read_position()) < position:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.003)
            self._position = max(self._position, seen)  # a cache: lets the next read skip this
            return True
        with self._cond:
            while self._position < position:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


if __name__ == "__main__":
    answer = _load_child(sys.stdin.buffer.read())
    # Length first: the parent can tell a whole answer from one cut short.
    sys.stdout.buffer.write(len(answer).to_bytes(8, "big") + answer)
    sys.stdout.buffer.flush()
