"""The bulk load into empty tables (rebuilds and as-of replays, `ProjectionRunner.load`): the
log read stream by stream in ranges (`projections/loader.py`), shared with a second process
on a large log, SQLite file or PostgreSQL (`projections/second_loader.py`), then the views'
in-memory sums and the tracking positions written once. An event the load cannot apply sends
it back to the batch-by-batch path, which skips it (`projections/poison.py`). A leading
`ledger project` worker that finds its views empty under a long backlog has them built this
way (`fill_if_empty`) rather than apply the backlog batch by batch."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from projections import failures
from projections.leadership import Leadership
from projections.loader import RANGE_EVENTS, Claims, load_part, stream_ranges
from projections.poison import reload_skipping
from projections.projection import bulk_share
from projections.second_loader import load_parallel
from projections.sql import FRESH, fresh, upsert
from projections.views import STANDARD_VIEWS

if TYPE_CHECKING:
    from projections.runner import ProjectionRunner

log = logging.getLogger("projections.runner")

# From this many events behind, a leader whose views are empty has them built in bulk
# (`fill_if_empty`): below it the live batches catch up within seconds anyway.
FILL_FROM = 50_000
# Builds the views in bulk and swaps them in, as `ledger replay rebuild` does (the caller
# passes it; the rebuild lives in replay/, above this package), calling its argument just
# before the swap: that raises `LeadLost` if the lease went to another worker meanwhile.
Fill = Callable[[Callable[[], None]], object]


class LeadLost(Exception):
    """The lease went to another worker while this one built the views in bulk."""


# From this many events a load shares the streams with a second process: below it, starting
# a second interpreter costs more than it saves.
PARALLEL_FROM = 200_000


def load(
    runner: ProjectionRunner,
    until: int | None = None,
    progress: Callable[[int], None] | None = None,
    sessions_per_batch: int = 2000,
    parallel_from: int | None = None,
    range_events: int = RANGE_EVENTS,
) -> int:
    """Fill empty tables from the log up to `until` (default: the head), stream by
    stream (see `load_part`): each session is folded from its first event to its last
    and its rows are written once, and the count and stats views, whose rows are sums
    over sessions, add up in memory (their cells are few) and are written at the end.
    The same views and fold as `apply`, so the tables end up exactly as applying the
    log in order would leave them; each batch commits on its own, so a live worker
    sharing the database waits for one batch at most.

    From `parallel_from` events on (default PARALLEL_FROM), on a SQLite file or on
    PostgreSQL, with the standard views, a second process loads ranges of streams beside
    this one (see `load_parallel`); `range_events` sizes the ranges of streams the loaders take.
    Returns the position the tables now stand at."""
    if runner.position != 0:
        raise RuntimeError("load fills empty views; use catch_up to continue")
    store, engine, t = runner.store, runner.engine, runner.tables
    target = store.head_digest()[0] if until is None else until
    ranges = stream_ranges(store, target, range_events)
    split_at = PARALLEL_FROM if parallel_from is None else parallel_from
    shares = [bulk_share(v, t) for v in runner.views]
    try:
        if target >= split_at and len(ranges) > 1 and can_split(runner):
            load_parallel(runner, shares, target, ranges, progress, sessions_per_batch)
        else:
            load_part(store, engine, shares, target, Claims(ranges), sessions_per_batch, progress)
    except Exception as exc:
        if failures.is_infrastructure(exc):
            raise
        return reload_skipping(runner, target, exc)
    with engine.begin() as conn:
        fresh(conn)  # the sums' tables are still empty
        for share in shares:
            share.finish(conn)
        conn.execution_options(**{FRESH: False})  # a tracking row may exist (at 0)
        upsert(
            conn,
            t.tracking,
            [{"view": v.name, "position": target} for v in runner.views],
            ["view"],
        )
    runner.moved_to(target)
    return target


def can_split(runner: ProjectionRunner) -> bool:
    """A second loader needs a database it can open too, a SQLite file or PostgreSQL (the
    in-memory test databases and a caller's own transaction are loaded by one process),
    and views it can build itself (the standard ones: it is handed their classes)."""
    dialect = getattr(runner.engine, "dialect", None)
    url = getattr(runner.engine, "url", None)
    if dialect is None or url is None:
        return False
    if dialect.name == "sqlite" and url.database in (None, "", ":memory:"):
        return False
    return all(type(v) in STANDARD_VIEWS for v in runner.views)


def fill_if_empty(runner: ProjectionRunner, lead: Leadership, fill: Fill) -> None:
    """On taking the lead with empty views (position 0) and a backlog of FILL_FROM events or
    more, build them with `fill` (fresh tables, loaded stream by stream, swapped in inside
    one transaction that catches them up to the head it reads there), then go on live from
    the position the swap committed. Exactly once as a rebuild beside a live worker is: a
    worker that applied batches meanwhile finds the tracking rows moved and resyncs. A
    thread keeps the lease beating through the load; if the lease is lost anyway, the fill
    stops before its swap and this worker follows."""
    if runner.position != 0 or runner.store.head_digest()[0] < FILL_FROM:
        return
    stop, lost = threading.Event(), threading.Event()

    def beat() -> None:
        while not stop.wait(lead.heartbeat_s / 2):
            if not lead.poll():
                lost.set()
                return

    def still_leading() -> None:
        if lost.is_set():
            raise LeadLost

    log.info("views empty and the log far ahead: building them in bulk, as a rebuild")
    beating = threading.Thread(target=beat, name="lease-beat", daemon=True)
    beating.start()
    try:
        fill(still_leading)
    except LeadLost:
        log.warning("lost the lead while building the views in bulk: following")
    finally:
        stop.set()
        beating.join()
    runner.moved_to(runner.read_position())
    log.info("views built in bulk up to position %s: going on live", runner.position)
