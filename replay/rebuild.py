"""`ledger replay rebuild`: build the views from zero into fresh `_next` tables with the live
projection classes, then swap them in atomically, exactly once.

The bulk of the replay runs beside the live server. The swap is one views-database write
transaction: it takes the write lock (the live projection worker waits), catches the fresh
tables up to the log head read under that lock, drops the old tables, renames the new ones
into place and recreates their indexes under the canonical names (SQLite indexes keep their
old names through a rename, so a second rebuild would otherwise collide). A running server
keeps serving the old views until the commit; its worker then sees the tracking position
move under it and resumes from the new tables (ProjectionRunner.apply).

`--view NAME` rebuilds everything into `_next` (the fold store and the list rows that the
stats view reads back are needed anyway) but swaps only that view's tables: inside the swap
both table sets are caught up to the same position first, so the kept views and the swapped
one agree on the tracking position and no event is applied twice or skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from persistence.store import EventStore
from projections.runner import ProjectionRunner
from projections.tables import VIEW_NAMES, ViewTables
from replay.progress import Progress
from replay.source import ReplayError

NEXT = "_next"


class _Bound:
    """Lets a ProjectionRunner work inside a transaction we hold: its `begin()` becomes a
    savepoint on our connection instead of a transaction of its own."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.conn.begin_nested():
            yield self.conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        yield self.conn


@dataclass
class Rebuilt:
    position: int
    views: list[str]
    tables: list[str]


def _swap_table(conn: Connection, live: Any, fresh: Any) -> None:
    q = conn.dialect.identifier_preparer.quote
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {q(live.name)}")
    for idx in fresh.indexes:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {q(idx.name)}")
    conn.exec_driver_sql(f"ALTER TABLE {q(fresh.name)} RENAME TO {q(live.name)}")
    if conn.dialect.name == "postgresql":
        # PostgreSQL names constraints' indexes globally too: give them the canonical names.
        conn.exec_driver_sql(
            f"ALTER INDEX IF EXISTS {q(fresh.name + '_pkey')} RENAME TO {q(live.name + '_pkey')}"
        )
        for uc in fresh.constraints:
            if uc.name and uc.name.endswith(NEXT) and uc.name != fresh.name + "_pkey":
                live_name = uc.name.removesuffix(NEXT)
                conn.exec_driver_sql(
                    f"ALTER TABLE {q(live.name)} RENAME CONSTRAINT {q(uc.name)} TO {q(live_name)}"
                )
    for idx in live.indexes:
        idx.create(conn)


def _runner(store: EventStore, conn: Connection, tables: ViewTables) -> ProjectionRunner:
    runner = ProjectionRunner(store, _Bound(conn), tables)  # type: ignore[arg-type]
    runner.create_schema()
    return runner


def _swap(
    store: EventStore, engine: Engine, live: ViewTables, fresh: ViewTables, view: str | None
) -> tuple[list[str], list[tuple[Any, Any]], int]:
    """Catch the fresh tables up to the head under the views write lock and swap them in;
    returns the views, the (live, fresh) table pairs swapped and the position they stand at."""
    names = list(VIEW_NAMES) if view is None else [view]
    pairs = [
        (lt, ft)
        for name in names
        for lt, ft in zip(live.for_view(name), fresh.for_view(name), strict=True)
    ]
    if view is None:
        pairs.append((live.tracking, fresh.tracking))
    with engine.begin() as conn:
        # Read the head under the views write lock: the live worker cannot move meanwhile.
        target = store.head_digest()[0]
        _runner(store, conn, fresh).catch_up(until=target)
        if view is not None:
            _runner(store, conn, live).catch_up(until=target)
        for lt, ft in pairs:
            _swap_table(conn, lt, ft)
    return names, pairs, target


def rebuild(
    store: EventStore,
    engine: Engine,
    view: str | None = None,
    progress: bool | None = None,
    before_swap: Callable[[], None] | None = None,
) -> Rebuilt:
    """Rebuild all views (or swap in just `view`) on the views database behind `engine`."""
    if view is not None and view not in VIEW_NAMES:
        raise ReplayError(f"--view must be one of {', '.join(VIEW_NAMES)}, not {view!r}")
    live, fresh = ViewTables(), ViewTables(NEXT, bulk=True)
    with engine.begin() as conn:
        fresh.metadata.drop_all(conn)  # leftovers of an interrupted rebuild
        live.metadata.create_all(conn)
    runner = ProjectionRunner(store, engine, fresh)
    runner.create_schema()
    head = store.head_digest()[0]
    bar = Progress(0, head, "rebuild", enabled=progress)
    try:
        runner.load(until=head, progress=bar)
        if before_swap is not None:
            before_swap()
        bar.phase("catch up and swap")
        names, pairs, target = _swap(store, engine, live, fresh, view)
    finally:
        bar.close()
    if view is not None:
        with engine.begin() as conn:
            fresh.metadata.drop_all(conn)
    return Rebuilt(target, names, [lt.name for lt, _ in pairs])


def for_worker(store: EventStore, engine: Engine) -> Callable[[Callable[[], None]], Rebuilt]:
    """`ledger project`'s bulk build of empty views under a long backlog (projections/bulk.py
    `fill_if_empty`): a quiet rebuild that checks it still leads just before its swap."""
    return lambda before_swap: rebuild(store, engine, progress=False, before_swap=before_swap)
