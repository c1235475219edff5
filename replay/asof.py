"""Views and sessions as they stood at a past point of the log, computed by replaying it
through the same projection classes and fold the live system uses.

Two clocks (`--time`, domain/eventtime.py): `recorded` (the default) cuts the log where the
ledger stood at T, so the answer is what the views showed then and never changes; `event`
takes every event that happened by T as known now (an import of last week's history counts
in last week), so its answer may grow when older history arrives. Both fold on event time."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, event

from domain.eventtime import time_of
from domain.state import State
from persistence.aggregates import fold
from persistence.schema import make_engine
from persistence.store import EventStore
from projections import queries
from projections.present import session_view
from projections.projection import Projection
from projections.runner import ProjectionRunner
from projections.tables import ViewTables
from projections.view_count import CountView
from projections.view_stats import StatsView
from replay.progress import progress_bar
from replay.source import Point, ReplayError, tracked_position

STATS_DIMS = queries.GROUP_FIELDS
CLOCKS = ("recorded", "event")
# Events per batch when folding the log cut at an event time.
_EVENT_CUT_BATCH = 5000


def scratch_engine(path: str) -> Engine:
    """A views database nobody else reads: durability would only cost time."""
    engine = make_engine(f"sqlite:///{path}", immediate=True)

    @event.listens_for(engine, "connect")
    def _fast(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.execute("PRAGMA synchronous=OFF")

    return engine


@contextmanager
def replayed_views(
    store: EventStore,
    until: int,
    progress: Callable[[int], None] | None = None,
    views: Sequence[Projection] | None = None,
) -> Iterator[tuple[Engine, ViewTables]]:
    """Fresh views (all, or `views`) in a temporary SQLite file, standing at position
    `until` (inclusive)."""
    with tempfile.TemporaryDirectory(prefix="ledger-replay-") as tmp:
        engine = scratch_engine(f"{tmp}/views.db")
        try:
            # A scratch copy read once: lean tables, one bulk load in position order.
            runner = ProjectionRunner(store, engine, ViewTables(bulk=True), views)
            runner.create_schema()
            if until > 0 and progress is not None:
                runner.load(until=until, progress=progress)
            elif until > 0:
                with progress_bar(until, "replay") as bar:
                    runner.load(until=until, progress=bar)
            yield engine, runner.tables
        finally:
            engine.dispose()


@contextmanager
def views_by_event_time(
    store: EventStore, t: float, views: Sequence[Projection] | None = None
) -> Iterator[tuple[Engine, ViewTables]]:
    """Fresh views holding every event whose event time is at most `t`. A stream's event
    times never decrease (domain/eventtime.py), so each session is a prefix of its stream;
    the events go through the live worker's `apply`, in log order."""
    with tempfile.TemporaryDirectory(prefix="ledger-replay-") as tmp:
        engine = scratch_engine(f"{tmp}/views.db")
        try:
            runner = ProjectionRunner(store, engine, ViewTables(), views)
            runner.create_schema()
            batch = []
            for e in store.iter_all():
                if time_of(e.data(), e.recorded_at) <= t:
                    batch.append(e)
                    if len(batch) >= _EVENT_CUT_BATCH:
                        runner.apply_batch(batch)
                        batch = []
            if batch:
                runner.apply_batch(batch)
            yield engine, runner.tables
        finally:
            engine.dispose()


@contextmanager
def views_at(
    store: EventStore, live: tuple[Engine, ViewTables] | None, point: Point
) -> Iterator[tuple[Connection, ViewTables]]:
    """A connection on views standing exactly at `point`: the live views when their snapshot
    is there (one read transaction, so the worker cannot move them meanwhile), else a replay."""
    if live is not None:
        engine, tables = live
        with engine.connect() as conn:
            conn.begin()
            if tracked_position(conn, tables) == point.position:
                yield conn, tables
                return
    with replayed_views(store, point.position) as (engine, tables), engine.connect() as conn:
        yield conn, tables


@contextmanager
def views_as_of(
    store: EventStore, live: tuple[Engine, ViewTables] | None, point: Point, clock: str
) -> Iterator[tuple[Connection, ViewTables]]:
    """A connection on views as of `point` by either clock (`recorded`: `views_at`)."""
    if clock == "event":
        cut = views_by_event_time(store, _event_cut(point))
        with cut as (engine, tables), engine.connect() as conn:
            yield conn, tables
    else:
        with views_at(store, live, point) as (conn, tables):
            yield conn, tables


def stats_query(
    by: list[str] | None,
    from_day: str | None = None,
    to_day: str | None = None,
    where: list[str] | None = None,
) -> queries.StatsQuery:
    """The stats query from CLI words: `--by a,b`, `--from/--to` days, `--where dim=value`."""
    group_by = tuple(g for part in (by or []) for g in part.split(",") if g)
    for g in group_by:
        if g not in STATS_DIMS:
            raise ReplayError(f"--by must be among {', '.join(STATS_DIMS)}, not {g!r}")
    filters: dict[str, list[str]] = {}
    for item in where or []:
        dim, sep, value = item.partition("=")
        if not sep or dim not in STATS_DIMS:
            raise ReplayError(f"--where takes DIM=VALUE with DIM among {', '.join(STATS_DIMS)}")
        filters.setdefault(dim, []).append(value)
    return queries.StatsQuery(
        group_by=group_by,
        from_day=from_day,
        to_day=to_day,
        filters=tuple((d, tuple(v)) for d, v in filters.items()),
    )


def stats_as_of(
    store: EventStore, point: Point, query: queries.StatsQuery, clock: str = "recorded"
) -> dict[str, Any]:
    """The stats view as it stood at `point` (`recorded`: the live view's numbers at that
    moment), or of everything that happened by its time (`event`). Only the count and
    stats views are replayed when the rollup cells can answer the query."""
    views: list[Projection] | None = None
    if queries.answered_by_cells(query):
        views = [CountView(), StatsView()]
    if clock == "event":
        replay = views_by_event_time(store, _event_cut(point), views)
    else:
        replay = replayed_views(store, point.position, views=views)
    with replay as (engine, tables), engine.connect() as conn:
        return queries.stats(conn, tables, query)


def _event_cut(point: Point) -> float:
    if point.time is None:
        raise ReplayError("--time event needs --as-of a time, not a log position")
    return point.time


def session_state(
    store: EventStore,
    session_id: str,
    point: Point | None = None,
    version: int | None = None,
    clock: str = "recorded",
) -> State | None:
    """One session folded from its own stream, up to a version, a log position (`recorded`)
    or an event time (`event`)."""
    events = store.load_stream(session_id, until_version=version)
    if point is not None and clock == "event":
        cut = _event_cut(point)
        events = [e for e in events if time_of(e.data(), e.recorded_at) <= cut]
    elif point is not None:
        events = [e for e in events if e.position <= point.position]
    return fold(events, session_id)


def session_document(state: State) -> dict[str, Any]:
    """The native API's session document, keeping the tombstone flag (auditors see it)."""
    return {**session_view(state), "deleted": state["deleted"]}
