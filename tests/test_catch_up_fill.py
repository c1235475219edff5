"""A leading `ledger project` worker that finds its views empty under a long backlog builds
them in bulk, as `ledger replay rebuild` does, then goes on live: while commands keep being
appended, two workers (one leads, one follows) end with views that read exactly as a
rebuild from zero, on SQLite and PostgreSQL, the bulk build made once and no event applied
twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from persistence.store import EventStore
from projections import bulk, leadership
from projections.leadership import Leadership
from projections.runner import ProjectionRunner
from replay import rebuild
from tests.conftest import PG_BINDIR
from tests.pg import PgCluster
from tests.test_projection_exactly_once import (
    append_while_running,
    assert_views_match_rebuild,
    rebuilt_from_zero,
)


def _workers_on_a_backlog(
    store: EventStore, views_url: str, monkeypatch: Any
) -> tuple[int, list[ProjectionRunner], list[int]]:
    """Append a backlog, start two leader-electing workers on empty views, append more
    while they run; returns the head, the workers and the position of each bulk build."""
    monkeypatch.setattr(bulk, "FILL_FROM", 100)
    append_while_running(store, 900)  # the backlog: over FILL_FROM events
    workers = [ProjectionRunner.for_url(store, views_url, batch_size=50) for _ in range(2)]
    for w in workers:
        w.create_schema()
    leadership.create_schema(workers[0].engine)
    fills: list[int] = []
    stop = threading.Event()

    def run(w: ProjectionRunner, name: str) -> None:
        build = rebuild.for_worker(store, w.engine)  # what `ledger project` passes

        def fill(before_swap: Callable[[], None]) -> object:
            done = build(before_swap)
            fills.append(done.position)
            return done

        lead = Leadership(w.engine, name, heartbeat_s=0.05, lease_s=2)
        w.run_forever(0.01, stop.is_set, lead, fill)

    threads = [
        threading.Thread(target=run, args=(w, n), daemon=True)
        for w, n in zip(workers, "ab", strict=True)
    ]
    for t in threads:
        t.start()
    try:
        head = append_while_running(store, 300)  # the log grows under the bulk build
        deadline = time.monotonic() + 60
        while min(w.read_position() for w in workers) < head and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    return head, workers, fills


def _check(store: EventStore, head: int, workers: list[ProjectionRunner], fills: list[int],
           rebuilt_url: str) -> None:  # fmt: skip
    assert len(fills) == 1, fills  # the leader built them in bulk; the follower did not
    assert 0 < fills[0] <= head
    rebuilt = rebuilt_from_zero(store, rebuilt_url)
    assert rebuilt.read_position() == head
    for w in workers:
        assert w.read_position() == head
    # Counts and stats sums equal a rebuild's: nothing applied twice, nothing skipped.
    assert_views_match_rebuild(workers[0], rebuilt)
    for r in (*workers, rebuilt):
        r.engine.dispose()


def test_a_worker_on_a_backlog_of_sqlite_builds_in_bulk_then_goes_on_live(
    tmp_path: Path, monkeypatch: Any
) -> None:
    store = EventStore(f"sqlite:///{tmp_path}/log.db")
    store.create_schema()
    head, workers, fills = _workers_on_a_backlog(
        store, f"sqlite:///{tmp_path}/views.db", monkeypatch
    )
    _check(store, head, workers, fills, f"sqlite:///{tmp_path}/rebuilt.db")
    store.dispose()


@pytest.mark.skipif(PG_BINDIR is None, reason="no PostgreSQL server binaries")
def test_a_worker_on_a_backlog_of_postgresql_builds_in_bulk_then_goes_on_live(
    pg: PgCluster, tmp_path: Path, monkeypatch: Any
) -> None:
    url = pg.create_database("fill")
    store = EventStore(url)
    store.create_schema()
    head, workers, fills = _workers_on_a_backlog(store, url, monkeypatch)
    _check(store, head, workers, fills, f"sqlite:///{tmp_path}/rebuilt.db")
    store.dispose()
