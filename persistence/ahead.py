"""The writer's overlap: a commit group is decided, sealed and chained while the group
before it commits, and its own commit then runs on a thread of its own (`Committer`).

A commit waits for its fsync with the GIL released; the writer spent that wait idle, about
a sixth of its time on a bulk load when measured. Deciding the next group then is safe only
when nothing it reads can change under it, so a group goes ahead only when (`may_go_ahead`):
the head the last group left is known (this writer left it, committed or in flight); every
stream it touches is cached and current; and no command carries an idempotency key (their
stored answers are read under the lock). Under the lock it is written only if the log's
head is still the one it was chained after: any other process's append voids it, and it is
decided again, as any group, under the lock (persistence/ledger.py). Answers still go out
only after their group's commit: an acknowledged event is durable.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import cast

from domain import commands as c
from domain.decide import Aggregate
from domain.eventtime import EventTimeWindow
from persistence.answers import Outcome
from persistence.group import Item, any_limit, decide_group
from persistence.store import EventStore, StaleWriteError

# The head (position, chain hash) a group left and the recorded time of its last event: what
# the next group is chained after and the floor of its recorded times.
Expect = tuple[tuple[int, bytes], float]


def may_go_ahead(
    cmds: list[c.Command], cache: dict[str, Aggregate], stale: set[str]
) -> dict[str, Aggregate] | None:
    """The cached aggregates of the streams `cmds` touch, when the group may be decided
    before the lock; None when it must wait for the lock."""
    touched: dict[str, Aggregate] = {}
    for cmd in cmds:
        sid = cmd.session_id
        if cmd.idempotency_key is not None or sid in stale:
            return None
        agg = cache.get(sid)
        if agg is None:
            return None
        touched[sid] = agg
    return touched


class Committer:
    """The commit of the writer's last group, in flight on a thread of its own. `settle`
    waits for it; the writer settles before it takes the lock again, so groups commit in
    order and one at a time."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None  # started with the first launch
        self._flight: tuple[Future[None], list[Item]] | None = None

    def launch(self, items: Iterable[Item], commit: Callable[[], None]) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="ledger-commit")
        self._flight = (self._pool.submit(commit), list(items))

    def settle(self) -> tuple[list[Item], BaseException] | None:
        """Wait for the commit in flight; its group's items and the error if it failed."""
        if self._flight is None:
            return None
        fut, items = self._flight
        self._flight = None
        exc = fut.exception()
        return None if exc is None else (items, exc)

    def close(self) -> None:
        """Stop the thread (after the commit in flight); a later launch starts another."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class Overlap:
    """The writer's side of the overlap, mixed into persistence/ledger.py's `Ledger`, which
    provides the attributes and the steps declared here."""

    store: EventStore
    cache: OrderedDict[str, Aggregate]
    stale: set[str]
    seen: int
    last_position: int
    committer: Committer
    ahead_groups: int
    voided_groups: int
    _expect: Expect | None
    _thread: threading.Thread | None

    def _rules(self) -> tuple[Callable[[], float], EventTimeWindow, float | None]:
        raise NotImplementedError

    def _keep(self, touched: dict[str, Aggregate]) -> None:
        raise NotImplementedError

    def _answer(self, items: list[Item], outcomes: list[Outcome], head: int) -> None:
        raise NotImplementedError

    def _failed(self, items: list[Item], exc: Exception, retried: bool) -> None:
        raise NotImplementedError

    def _forget_all(self) -> None:
        raise NotImplementedError

    def _ahead(self, items: list[Item]) -> bool:
        """Decide and chain the group before the lock, while the last group commits, then
        write it and launch its commit; False (nothing written, nothing cached) when it must
        be decided under the lock instead."""
        expect = self._expect
        if expect is None or self._thread is None:
            return False
        cmds = [cmd for batch, _, _ in items for cmd in batch]
        touched = may_go_ahead(cmds, self.cache, self.stale)
        if touched is None:
            return False
        limits = [p for batch, _, p in items for _ in batch] if any_limit(items) else None
        head, floor = expect
        try:
            try:
                group = decide_group(cmds, limits, {}, touched, head[0], floor, *self._rules())
            finally:
                for agg in touched.values():
                    vars(agg).pop("sink", None)
            outcomes, new, idle, _, _ = group
            prepared = self.store.prepare(head, new)
        except Exception:
            self._forget_all()  # decided in place: the lock's path decides again
            return False
        if not self._settle():
            return False  # it was decided on a group that did not commit
        try:
            ctx = self.store.write_transaction()
            conn = ctx.__enter__()
        except Exception:
            self._forget_all()
            return False
        try:
            if self.store.head(conn) != head:
                self.voided_groups += 1
                raise StaleWriteError("another process appended")  # void: decided again
            rows = self.store.write_prepared(conn, head, prepared)
        except Exception as exc:
            with suppress(Exception):
                ctx.__exit__(type(exc), exc, exc.__traceback__)
            self._forget_all()
            return False
        new_head = (rows[-1][0], rows[-1][7]) if rows else head
        for i, sid, version, number in idle:
            outcomes[i] = c.CommandResult(sid, version, new_head[0], 0, number)
        self._keep(touched)
        self.seen = new_head[0]
        self._expect = (new_head, rows[-1][5] if rows else floor)
        done = cast(list[Outcome], outcomes)

        def commit() -> None:
            ctx.__exit__(None, None, None)
            self.last_position = new_head[0]
            self._answer(items, done, new_head[0])

        self.committer.launch(items, commit)
        self.ahead_groups += 1
        return True

    def _settle(self) -> bool:
        """Wait for the commit in flight; False when it failed (its submissions then have
        their answers, as any failed group's, and nothing cached is trusted)."""
        failed = self.committer.settle()
        if failed is None:
            return True
        items, exc = failed
        self._forget_all()
        self.seen = self.last_position
        self._failed(items, exc if isinstance(exc, Exception) else RuntimeError(exc), False)
        return False
