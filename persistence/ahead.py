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

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from domain import commands as c
from domain.decide import Aggregate
from persistence.group import Item

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
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ledger-commit")
        self._flight: tuple[Future[None], list[Item]] | None = None

    def launch(self, items: Iterable[Item], commit: Callable[[], None]) -> None:
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
        self._pool.shutdown(wait=True)
