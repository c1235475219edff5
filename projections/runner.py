"""The live runner: applies the event log to the views, exactly once, resumable, in batches,
and the worker loop that keeps doing so.

Each batch reads events after the views' tracking position, folds the session events into
the touched sessions' states (read from the detail table, the runner's fold store), hands
every view the (before, after) changes, and writes the views' rows and their tracking
positions in one transaction. A killed process resumes at the last committed position; the
live worker and the rebuild are this same class.

Exactly once whoever runs: several workers may share one views database (every `ledger
serve` starts its own, `ledger project` is another, a rebuild catches up inside its swap).
A batch's first statement moves the views' tracking rows from the position the worker read
its events after to the batch's last position, only if they still say that position
(`claim`). On PostgreSQL that UPDATE waits on the row lock of a worker applying the same
events and then matches nothing; on SQLite the write lock is taken first. A worker whose
claim matches nothing rolls back, drops its cached position and reads on from the one
committed (`resync`): it never applies an event another worker applied. `ledger project`
workers also elect one leader (`projections/leadership.py`): followers apply nothing until
the leader's lease falls silent, which spares the database their lost claims.

The worker's process also keeps the log's Merkle tree integrated, on a thread of its own
while it leads (persistence/integrator.py): off the writer's path, and apart from the views.

A poison event (one the fold, or a view, raises on) is skipped and recorded, and every view
goes on (`projections/poison.py`). A failure that is the database's is never a skip: the
live worker retries it, backing off, and `health()` reports the views as stopped until a
batch goes through. A bulk load into empty tables (`load`: rebuilds and as-of replays) reads
the log stream by stream instead (`projections/bulk.py`).

The runner knows the views only through the projection protocol (`projections/projection.py`)
and the list it is given (by default the standard views, `projections/views.py`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from domain.session import upcast
from domain.state import EVOLVERS, State, evolve, new_state
from persistence.integrator import TreeIntegrator
from persistence.schema import make_engine
from persistence.store import EventStore, StoredEvent
from projections import bulk, failures
from projections.failures import ApplyFailed, Overtaken, ViewHealth, describe
from projections.leadership import Leadership
from projections.poison import isolate
from projections.projection import Change, Projection, snapshot
from projections.tables import ViewTables, create_schema
from projections.views import all_views

log = logging.getLogger(__name__)

# The live worker's pacing (`pause_after`): from this many events a batch means a busy log,
# and the worker then lets the next batch gather for this long.
BUSY_BATCH = 64
GATHER_S = 0.05
# A follower's pause between looks at the lease (it touches the database once a heartbeat).
FOLLOW_S = 0.2


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
        """Create the views' tables (`projections/tables.py` `create_schema`: views an older
        schema wrote are refilled from the log) and read the tracking position."""
        create_schema(self.engine, self.tables)
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
        (`projections/poison.py`). Returns the position the views now stand at."""
        try:
            return self.apply_batch(events)
        except ApplyFailed as failed:
            if failed.infrastructure:
                raise
            log.warning("a batch failed (%s): finding the event it cannot apply", failed)
            isolate(self, events, failed)
            return self._position

    def apply_batch(self, events: Sequence[StoredEvent]) -> int:
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
                if not self.claim(conn, old, last):
                    raise Overtaken  # rolls back whatever the claim wrote
                self._fold_and_write(conn, t, folded, sids)
        except Overtaken:
            return self.resync(old)
        self.moved_to(last)
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
                    upcast(e.type, e.schema_version, e.data()),
                    e.recorded_at,
                    e.position,
                )
            changes: list[Change] = [(sid, before.get(sid), after[sid]) for sid in sids]
            for view in self.views if changes else ():
                part = view.name
                view.apply(conn, t, changes)
        except Exception as exc:
            raise ApplyFailed(part, exc) from exc

    def claim(self, conn: Connection, old: int, new: int) -> bool:
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

    def resync(self, old: int) -> int:
        """Another worker (or a rebuild) moved the views on: forget our position and take the
        committed one. Rows that disagree among the views (a tracking row at another position
        than the rest) cannot be claimed: that is an error, not a reason to wait."""
        stored = self.read_position()
        if stored == old:
            raise RuntimeError(
                f"the views' tracking positions disagree around {old}: rebuild the views"
            )
        log.info("views moved from %s to %s under this worker: resuming there", old, stored)
        self.moved_to(stored)
        return stored

    def moved_to(self, position: int) -> None:
        with self._cond:
            self._position = position
            self._cond.notify_all()

    def health(self) -> dict[str, ViewHealth]:
        """Per view: its position, its lag behind the log's head, its state (stopped while
        the live worker's batches fail on the database itself) and its last error (that
        failure, else the last event it skipped). Read from the views database, so a server
        sees what a worker process did; a stop is known only to the worker's own process."""
        head = self.store.head_digest()[0]
        names = [v.name for v in self.views]
        with self.engine.connect() as conn:
            return failures.report(conn, self.tables.tracking, names, head, self.last_error)

    # Fill empty tables from the log, stream by stream (rebuilds and as-of replays).
    load = bulk.load

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

    def run_forever(
        self,
        poll_interval: float,
        should_stop: Callable[[], bool],
        leadership: Leadership | None = None,
        fill: bulk.Fill | None = None,
    ) -> None:
        """The worker loop in the foreground (the `ledger project` process). With a
        `leadership`, it applies only while it leads (projections/leadership.py); with a
        `fill` too, a leader that finds the views empty under a long backlog has them built
        in bulk first (`bulk.fill_if_empty`)."""
        self._position = self.read_position()
        integrator = TreeIntegrator(self.store, lambda: leadership is None or leadership.leading)
        integrator.start()
        try:
            while not should_stop():
                try:
                    if leadership is not None and not self._leads(leadership, fill):
                        time.sleep(FOLLOW_S)
                        continue
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
        finally:
            integrator.close()

    def _leads(self, leadership: Leadership, fill: bulk.Fill | None = None) -> bool:
        """Whether to apply now; on taking the lead, start from the committed position (the
        previous leader's), on losing it, say so."""
        was = leadership.leading
        leads = leadership.poll()
        if leads and not was:
            self._position = self.read_position()
            log.info("leading the projection workers from position %s", self._position)
            if fill is not None:
                bulk.fill_if_empty(self, leadership, fill)
                leads = leadership.leading
        elif was and not leads:
            log.warning("another projection worker leads now: following")
        return leads

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
