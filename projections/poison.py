"""Poison isolation: an event the fold, or a view, raises on is skipped and recorded, and
every view goes on.

The views hang off one fold (the detail table is its store, the others are built from its
before and after states), so stopping just the view that raised would leave the others
waiting on the fold, or the fold ahead of them: a stopped view could only be restarted by a
rebuild. Skipping keeps every view current for every other session; the skipped event's
session is folded as if its stream lacked that event (the event stays in the log, and
`ledger replay verify` names a forged one). A failed batch is split in halves until the
single event that fails alone is found (`isolate`), so the events around it are applied as
before; the skip moves the tracking position past it in one transaction with its record in
`view_failures` (projections/failures.py: each view's name, the position, the error naming
the fold or the view that raised). A failure that is the database's (locked, read-only,
gone: `is_infrastructure`) is never a skip: the live worker retries it, backing off. A
rebuild's bulk load folds whole streams and cannot skip one event: when it meets a poison
event it starts again batch by batch (`reload_skipping`), slower, to the same views as the
live worker's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from persistence.store import StoredEvent
from projections import failures
from projections.failures import ApplyFailed, Overtaken, describe

if TYPE_CHECKING:
    from projections.runner import ProjectionRunner

# The runner's logger, as before these moved out of projections/runner.py.
log = logging.getLogger("projections.runner")


def isolate(runner: ProjectionRunner, events: Sequence[StoredEvent], failed: ApplyFailed) -> None:
    """Apply `events`, one of which (at least) fails: halves that go through are
    committed as they are, a half that fails is split again, and an event that fails
    alone is skipped (`skip`). Only after a failure: a batch costs the same as ever."""
    if len(events) == 1:
        skip(runner, events[0], failed)
        return
    mid = len(events) // 2
    for half in (events[:mid], events[mid:]):
        try:
            runner.apply_batch(half)
        except ApplyFailed as again:
            if again.infrastructure:
                raise
            isolate(runner, half, again)


def skip(runner: ProjectionRunner, event: StoredEvent, failed: ApplyFailed) -> None:
    """Move every view past `event` without applying it, and record why."""
    old = runner.position
    if event.position <= old:
        return
    names = [v.name for v in runner.views]
    error = f"{failed.part}: {describe(failed.cause)}"
    try:
        with runner.engine.begin() as conn:
            if not runner.claim(conn, old, event.position):
                raise Overtaken
            failures.record(conn, names, event.position, error)
    except Overtaken:
        runner.resync(old)
        return
    log.error(
        "skipped the event at position %s (%s of %s): %s",
        event.position, event.type, event.stream_id, error,
    )  # fmt: skip
    runner.moved_to(event.position)


def reload_skipping(runner: ProjectionRunner, target: int, exc: Exception) -> int:
    """The bulk load met an event it cannot apply (it folds whole streams, so it cannot
    leave one event out): empty the tables and apply the log batch by batch instead,
    which skips such events as the live worker does, so the views end up the same."""
    log.warning(
        "the bulk load cannot apply an event (%s): applying the log batch by batch, "
        "skipping what cannot be applied", describe(exc),
    )  # fmt: skip
    with runner.engine.begin() as conn:
        for table in reversed(runner.tables.metadata.sorted_tables):
            conn.execute(table.delete())
    runner.moved_to(0)
    return runner.catch_up(until=target)
