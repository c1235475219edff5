"""Applies the event log to the views, exactly once, resumable, in batches.

Each batch reads events after the views' tracking position, folds the session events into
the touched sessions' states (read from the detail table, the runner's fold store), hands
every view the (before, after) changes, and writes the views' rows and their tracking
positions in one transaction. A killed process resumes at the last committed position; the
live worker and the rebuild are this same class.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, inspect, select

from domain.session import upcast
from domain.state import EVOLVERS, State, evolve, new_state
from domain.store import EventStore, StoredEvent, make_engine
from projections.sql import upsert
from projections.tables import ViewTables
from projections.views import (
    CellDelta,
    Change,
    CountView,
    Projection,
    StatsView,
    all_views,
    snapshot,
)

log = logging.getLogger(__name__)


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
        missing while positions are tracked) are dropped and refilled from position 0, since
        views are only ever derived from the log."""
        with self.engine.begin() as conn:
            have = set(inspect(conn).get_table_names())
            tables = self.tables.metadata.sorted_tables
            if self.tables.tracking.name in have and any(x.name not in have for x in tables):
                log.warning("views were written by an older schema: refilling them from the log")
                self.tables.metadata.drop_all(conn)
            self.tables.metadata.create_all(conn)
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
        """Fold `events` (consecutive, after our position) into every view in one transaction."""
        if not events:
            return self._position
        t = self.tables
        # Events the session fold does not know (an execution context's, say) change no view,
        # but the tracking position still moves past them, so a batch of them is applied too.
        folded = [e for e in events if e.type in EVOLVERS]
        sids = list(dict.fromkeys(e.stream_id for e in folded))
        with self.engine.begin() as conn:
            stored = self._tracked(conn)
            if stored != self._position or events[0].position <= stored:
                # The tables moved under us (a rebuild was swapped in, or another worker
                # applied these events): resume from what the tables say, apply nothing.
                self._position = stored
                return stored
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
                view.apply(conn, t, changes)
            last = events[-1].position
            upsert(
                conn,
                t.tracking,
                [{"view": v.name, "position": last} for v in self.views],
                ["view"],
            )
        with self._cond:
            self._position = last
            self._cond.notify_all()
        return last

    def load(
        self,
        until: int | None = None,
        progress: Callable[[int], None] | None = None,
        sessions_per_batch: int = 2000,
    ) -> int:
        """Fill empty tables from the log up to `until` (default: the head) in one pass,
        stream after stream: each session is folded whole and its rows written once, and
        the count and stats views, whose rows are sums over sessions, add up in memory
        (their cells are few) and are written at the end. The same views and fold as
        `apply`, so the tables end up exactly as applying the log in order would leave
        them; each batch commits on its own, so a live worker sharing the database waits
        for one batch at most. Returns the position the tables now stand at."""
        if self._position != 0:
            raise RuntimeError("load fills empty views; use catch_up to continue")
        target = self.store.head_digest()[0] if until is None else until
        t = self.tables
        summed = [v for v in self.views if isinstance(v, CountView | StatsView)]
        direct = [v for v in self.views if not isinstance(v, CountView | StatsView)]
        sums: dict[str, Any] = {
            v.name: defaultdict(CellDelta if isinstance(v, StatsView) else int) for v in summed
        }
        changes: list[Change] = []
        seen = 0

        def flush() -> None:
            for v in summed:
                v.deltas(changes, sums[v.name])
            with self.engine.begin() as conn:
                for view in direct:
                    view.apply(conn, t, changes)
            changes.clear()
            if progress is not None:
                progress(seen)

        loads = orjson.loads
        for sid, events in groupby(self.store.iter_by_stream(target, EVOLVERS), itemgetter(0)):
            state = new_state(sid)
            for _, kind, version, at, payload, position in events:
                evolve(state, kind, upcast(kind, version, loads(payload)), at, position)
                seen += 1
            changes.append((sid, None, state))
            if len(changes) >= sessions_per_batch:
                flush()
        flush()
        with self.engine.begin() as conn:
            for v in summed:
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

    def run_forever(self, poll_interval: float, should_stop: Callable[[], bool]) -> None:
        """The worker loop in the foreground (the `ledger project` process)."""
        self._position = self.read_position()
        while not should_stop():
            try:
                applied = self.run_once()
            except Exception:
                log.exception("projection batch failed at position %s", self._position)
                self._position = self.read_position()
                time.sleep(1.0)
                continue
            if applied < self.batch_size:
                time.sleep(poll_interval)

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
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._position = self.read_position()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if applied < self.batch_size:
                self._wake.wait(poll_interval)
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
