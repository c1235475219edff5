"""The command service: decide commands on Session (and ExecutionContext) aggregates and
append their events with group commit.

One writer thread per process takes whatever commands are queued, decides them in order
against cached aggregates (reloaded when another process moved a stream on), and appends all
resulting events in one transaction: concurrent requests share one fsync. A rejected command
gets its named error and appends nothing; the others in the batch are unaffected. The
answers go out after the commit: to threads through their futures, and to coroutines
(`submit_async`) with one callback per event loop per group.

Sessions decide on the writer's fast path: the aggregate's own methods check the rules and
fold each event, but record it straight into the batch's list of store rows (`Session.sink`)
rather than as a library event object, which cost more per event than the insert did.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, cast

from domain import commands as c
from domain.context import is_context_stream
from domain.decide import Aggregate, decide, lapse_if_due
from domain.errors import (
    ConcurrencyError,
    InvalidCommandError,
    LedgerError,
    SessionNotFoundError,
    StoreUnavailableError,
)
from domain.events import NewEvent
from domain.eventtime import DEFAULT_WINDOW, EventTimeWindow
from domain.rules import DEFAULT_LIMITS, Limits, validate
from domain.session import Session
from persistence.aggregates import STALE_SCAN, caught_up, fold, rebuild
from persistence.answers import Outcome, Waiter, answer
from persistence.group import (
    Group,
    Item,
    Projects,
    any_limit,
    check_project_limit,
    context_events,
    merge,
    remembered,
    replayed,
)
from persistence.runtime import paused_gc
from persistence.store import EventStore, StaleWriteError

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class Ledger:
    """Accepts commands from any thread; one writer thread appends them."""

    def __init__(
        self,
        store: EventStore,
        clock: Clock,
        cache_size: int = 20000,
        max_batch: int = 2000,
        limits: Limits = DEFAULT_LIMITS,
        window: EventTimeWindow = DEFAULT_WINDOW,
        session_timeout: float | None = None,
    ) -> None:
        self.store = store
        self.limits = limits
        # Event-time rules (domain/eventtime.py): `at`'s window, the timeout a gap implies.
        self.window = window
        self.session_timeout = session_timeout
        self.clock = clock
        self.cache: OrderedDict[str, Aggregate] = OrderedDict()
        self.cache_size = cache_size
        self.max_batch = max_batch
        # SimpleQueue: its put (on the event loop, once per request) is C, not Python locking.
        self.queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self.last_position = store.head_digest()[0]
        # Every cached aggregate is current as of the log's head `seen`, except those in
        # `stale` (another process appended to their streams since they were cached): the
        # writer reads the ids of the streams other processes appended to since `seen`,
        # one range of positions, before each group (`_current`).
        self.seen = self.last_position
        self.stale: set[str] = set()
        self.listeners: list[Callable[[int], None]] = []
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
            self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self.queue.put(None)
            self._thread.join()
            self._thread = None

    # -- submitting -----------------------------------------------------------------------------

    def submit(self, cmds: list[c.Command], projects: Projects = None) -> Future[list[Outcome]]:
        fut: Future[list[Outcome]] = Future()
        refused = self._refused(cmds)
        if refused is not None:
            valid = [cmd for cmd, err in zip(cmds, refused, strict=True) if err is None]
            inner = self.submit(valid, projects) if valid else None
            fut.set_result(merge(refused, inner.result() if inner else []))
        elif self._thread is None:
            self._process([(cmds, fut, projects)])
        else:
            self.queue.put((cmds, fut, projects))
        return fut

    def submit_async(
        self, cmds: list[c.Command], projects: Projects = None
    ) -> asyncio.Future[list[Outcome]]:
        """`submit` for a coroutine on a running event loop: the writer answers a whole commit
        group's waiters on one loop with one thread-safe callback (a loop wake-up per group,
        not one per request as `asyncio.wrap_future` would cost)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Outcome]] = loop.create_future()
        refused = self._refused(cmds)
        if refused is not None:
            valid = [cmd for cmd, err in zip(cmds, refused, strict=True) if err is None]
            if not valid:
                fut.set_result(merge(refused, []))
                return fut
            inner = self.submit_async(valid, projects)
            inner.add_done_callback(
                lambda done: (
                    fut.set_exception(done.exception())  # type: ignore[arg-type]
                    if done.exception()
                    else fut.set_result(merge(refused, done.result()))
                )
            )
        elif self._thread is None:
            self._process([(cmds, fut, projects)])
        else:
            self.queue.put((cmds, fut, projects))
        return fut

    def _refused(self, cmds: list[c.Command]) -> list[LedgerError | None] | None:
        """Each command's rule violation (None where valid); None when all are valid. This
        runs on the caller's thread: the writer only ever sees commands that passed."""
        refused: list[LedgerError | None] | None = None
        for i, cmd in enumerate(cmds):
            try:
                validate(cmd, self.limits)
                if type(cmd) is c.EraseSession:
                    # Its event says the values were destroyed: only the erasure, which
                    # destroys them in the same transaction, may decide it.
                    raise InvalidCommandError("erasure is `ledger replay erase`, not a command")
            except LedgerError as err:
                if refused is None:
                    refused = [None] * len(cmds)
                refused[i] = err
        return refused

    def execute(self, cmd: c.Command) -> c.CommandResult:
        out = self.submit([cmd]).result()[0]
        if isinstance(out, LedgerError):
            raise out
        return out

    def execute_many(self, cmds: list[c.Command]) -> list[Outcome]:
        return self.submit(cmds).result()

    def load(self, session_id: str, until_version: int | None = None) -> dict[str, Any]:
        """A session's folded state, read from the log (never from a view)."""
        if is_context_stream(session_id):
            raise SessionNotFoundError(f"no session {session_id}")
        state = fold(self.store.load_stream(session_id, until_version=until_version), session_id)
        if state is None:
            raise SessionNotFoundError(f"no session {session_id}")
        return state

    # -- the writer -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            items = [first]
            n = len(first[0])
            stop = False
            while n < self.max_batch:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                items.append(nxt)
                n += len(nxt[0])
            with paused_gc():
                self._process(items)
            if stop:
                return

    def _process(self, items: list[Item], retried: bool = False) -> None:
        """Decide and append one commit group, then answer its waiters. A failure fails only
        its own submission: the group is tried again one submission at a time."""
        touched: dict[str, Aggregate] = {}
        try:
            outcomes, _, head = self._append(items, touched)
        except Exception as exc:
            for sid in touched:  # decided in place, then rolled back: stale
                self._forget(sid)
            self._failed(items, exc, retried)
            return
        for sid, agg in touched.items():
            self.cache[sid] = agg
            self.cache.move_to_end(sid)
        while len(self.cache) > self.cache_size:
            self.stale.discard(self.cache.popitem(last=False)[0])
        self.last_position = self.seen = head  # the group's own appends are in the cache
        answers: list[tuple[Waiter, list[Outcome] | BaseException]] = []
        i = 0
        for cmds, fut, _ in items:
            answers.append((fut, outcomes[i : i + len(cmds)]))
            i += len(cmds)
        answer(answers)
        for listener in self.listeners:
            listener(head)

    def _failed(self, items: list[Item], exc: Exception, retried: bool) -> None:
        if isinstance(exc, StaleWriteError) and not retried:
            # Another process wrote the same streams: decide again on what is stored now.
            self._forget_all()
            self._process(items, retried=True)
            return
        if len(items) > 1 and not isinstance(exc, StoreUnavailableError):
            for item in items:  # isolate the submission that fails
                self._process([item], retried)
            return
        if isinstance(exc, StaleWriteError):
            exc = ConcurrencyError("another process appended to the same stream; retry")
        elif not isinstance(exc, LedgerError):
            log.error("append failed; nothing of this submission was stored", exc_info=exc)
        answer([(fut, exc) for _, fut, _ in items])

    def _append(
        self,
        items: list[Item],
        touched: dict[str, Aggregate],
    ) -> tuple[list[Outcome], int, int]:
        """One commit group in one transaction: load the streams' aggregates, decide every
        command in order, append the events, remember the idempotency keys. Returns the
        outcomes, the head the group found and the head it left."""
        cmds = [cmd for batch, _, _ in items for cmd in batch]
        limits = [p for batch, _, p in items for _ in batch] if any_limit(items) else None
        with self.store.write_transaction() as conn:
            position, prev, floor = self.store.tail(conn)
            head = (position, prev)
            known = self.store.find_idempotent(
                conn, {cmd.idempotency_key for cmd in cmds if cmd.idempotency_key}
            )
            self._current(conn, {cmd.session_id for cmd in cmds}, position, touched)
            try:
                group = self._decide_all(cmds, limits, known, touched, position, floor)
            finally:
                for agg in touched.values():
                    # A cached aggregate must not keep the batch alive (back to the class's None).
                    vars(agg).pop("sink", None)
            outcomes, new, idle, fresh_keys, repeats = group
            new_head = self.store.append(conn, head, new)[0]
            for i, sid, version, number in idle:
                outcomes[i] = c.CommandResult(sid, version, new_head, 0, number)
            for i, j in repeats:
                outcomes[i] = outcomes[j]
            self.store.remember_idempotent(conn, remembered(fresh_keys, outcomes))
        return cast(list[Outcome], outcomes), position, new_head

    def _current(
        self, conn: Any, sids: set[str], position: int, touched: dict[str, Aggregate]
    ) -> None:
        """Put each stream's current aggregate in `touched` (none for a stream not yet
        there). A cached aggregate is current unless another process appended to its stream
        since it was cached; then only the events stored after its version are read and
        folded onto it (a whole stream is read only for one not cached): the lock is held
        that long."""
        self._mark_stale(conn, position)
        cached = {sid: self.cache[sid] for sid in sids if sid in self.cache}
        since: dict[str, int] = {}
        for sid in sids:
            agg = cached.get(sid)
            if agg is not None and sid not in self.stale:
                touched[sid] = agg
            else:
                since[sid] = 0 if agg is None else agg.version
        tails = self.store.stream_tails(conn, since) if since else {}
        self.stale.difference_update(since)  # read now: current (or dropped if this fails)
        for sid, version in since.items():
            tail = tails.get(sid)
            if not tail:
                self._forget(sid)
            elif version == 0:
                touched[sid] = rebuild(sid, tail)
            elif tail[0].version != version:  # not the stream the cache saw: read it whole
                touched[sid] = rebuild(sid, self.store.load_stream(sid, conn))
            else:
                # In `touched` first: should folding fail, the failed group drops it.
                agg = touched[sid] = cached[sid]
                if len(tail) > 1 and isinstance(agg, Session):
                    touched[sid] = caught_up(agg, tail[1:])  # the events after it, folded on
                elif len(tail) > 1:  # a context (rare; the library's aggregate): read it whole
                    touched[sid] = rebuild(sid, self.store.load_stream(sid, conn))

    def _mark_stale(self, conn: Any, position: int) -> None:
        """Mark stale the cached streams other processes appended to after `seen` (every
        append between `seen` and `position`, the head under this group's lock, is theirs)."""
        if position == self.seen:
            return
        if position - self.seen > max(self.cache_size, STALE_SCAN):
            self._forget_all()  # cheaper to read the streams again than to scan that far
        else:
            others = self.store.streams_appended(conn, self.seen, position)
            self.stale.update(sid for sid in others if sid in self.cache)
        self.seen = position

    def _forget(self, sid: str) -> None:
        self.cache.pop(sid, None)
        self.stale.discard(sid)

    def _forget_all(self) -> None:
        self.cache.clear()
        self.stale.clear()

    def _decide_all(
        self,
        cmds: list[c.Command],
        limits: list[Projects] | None,
        known: dict[str, tuple[str, bytes]],
        touched: dict[str, Aggregate],
        base: int,
        floor: float,
    ) -> Group:
        """Decide the group's commands in order. Event i of the group will be at position
        base + 1 + i, so each answer is known as soon as its command is decided."""
        outcomes: list[Outcome | None] = [None] * len(cmds)
        new: list[NewEvent] = []
        idle: list[tuple[int, str, int, int | None]] = []  # decided, appended nothing
        fresh_keys: dict[str, tuple[str, int]] = {}
        repeats: list[tuple[int, int]] = []  # (outcome index, index of the first answer)
        clock, window, timeout = self.clock, self.window, self.session_timeout
        result = c.CommandResult
        for i, cmd in enumerate(cmds):
            key = cmd.idempotency_key
            if key is not None and (key in known or key in fresh_keys):
                first = replayed(cmd, key, known, fresh_keys)
                if isinstance(first, int):
                    repeats.append((i, first))
                else:
                    outcomes[i] = first
                continue
            sid = cmd.session_id
            floor = at = max(clock(), floor)  # recorded times never go backwards along the log
            mark = len(new)
            try:
                allowed = limits[i] if limits is not None else None
                if allowed is not None:
                    check_project_limit(cmd, touched.get(sid), allowed)
                if lapse_if_due(cmd, touched.get(sid), at, new, timeout, window):
                    mark = len(new)  # the gap's Expired is the ledger's: kept if cmd is refused
                agg = decide(cmd, touched.get(sid), at, new, window)
            except LedgerError as err:
                if len(new) != mark:  # rules are checked before any event is decided
                    raise RuntimeError(f"{cmd!r} refused after deciding events") from err
                outcomes[i] = err
                continue
            touched[sid] = agg
            if isinstance(agg, Session):
                state = agg.state
                if len(new) > mark and new[mark].type == "Started":
                    state["number"] = base + 1 + mark  # a start decides only Started
                number = state["number"]
            else:  # a context: the library's event objects, and no session number
                new.extend(context_events(agg, at))
                number = None
            count = len(new) - mark
            if count:
                outcomes[i] = result(sid, agg.version, base + mark + count, count, number)
            else:
                idle.append((i, sid, agg.version, number))
            if key is not None:
                fresh_keys[key] = (cmd.fingerprint(), i)
        return outcomes, new, idle, fresh_keys, repeats
