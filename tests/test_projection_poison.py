"""An event the views cannot apply (written behind the ledger's back) is skipped and
recorded, and every view goes on; the database failing is not a skip: the views stop and
say so, and resume when it is back."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, select
from sqlalchemy.exc import OperationalError

from domain import commands as c
from domain.session import ALL_EVENT_CLASSES
from persistence.ledger import Ledger
from persistence.store import EventStore, NewEvent
from projections import queries as qs
from projections.failures import failures
from projections.projection import Change
from projections.runner import ProjectionRunner
from projections.tables import ViewTables
from projections.views import all_views
from tests.test_views_property import StepClock, dump


def append_raw(store: EventStore, stream: str, version: int, kind: str, payload: Any) -> int:
    """Append one event as an insider could: through the store, no rule checked."""
    with store.write_transaction() as conn:
        position, prev, last_at = store.tail(conn)
        new = NewEvent(
            stream, version, kind, ALL_EVENT_CLASSES[kind].class_version, last_at, payload
        )
        store.append(conn, (position, prev), [new])
    return position + 1


@pytest.fixture
def log(tmp_path: Path) -> Any:
    store = EventStore(f"sqlite:///{tmp_path}/log.db")
    store.create_schema()
    clock = StepClock()
    ledger = Ledger(store, clock)

    def run(*cmds: c.Command) -> None:
        for cmd in cmds:
            clock.now += 1.0
            ledger.execute_many([cmd])

    yield store, run
    store.dispose()


def runner_on(store: EventStore, path: Path, **kw: Any) -> ProjectionRunner:
    r = ProjectionRunner.for_url(store, f"sqlite:///{path}", **kw)
    r.create_schema()
    return r


SESSIONS = ("bad", "good1", "good2", "good3")


def poisoned_history(store: EventStore, run: Any) -> tuple[int, int]:
    """Good sessions around two poison events: a Started whose tags are 5 (the list and
    count views cannot read it) and a StatusChanged without its status (the fold cannot
    apply it). Returns their positions."""
    run(c.StartSession(session_id="good1", project="web"), c.KeepAlive(session_id="good1"))
    bad_tags = append_raw(store, "bad", 1, "Started", {"tags": 5, "project": "web"})
    run(c.StartSession(session_id="good2", project="web"), c.StartSession(session_id="good3"))
    bad_fold = append_raw(store, "good3", 2, "StatusChanged", {"from_status": "running"})
    run(c.ChangeStatus(session_id="good2", status="passed"), c.StopSession(session_id="good1"))
    return bad_tags, bad_fold


def test_poison_events_are_skipped_recorded_and_the_views_go_on(log: Any, tmp_path: Path) -> None:
    store, run = log
    bad_tags, bad_fold = poisoned_history(store, run)
    head = store.head_digest()[0]
    runner = runner_on(store, tmp_path / "views.db", batch_size=50)
    assert runner.catch_up() == head
    with runner.engine.connect() as conn:
        t = runner.tables
        status = {s: (qs.get_detail(conn, t, s) or {}).get("status") for s in SESSIONS}
        # The session of the event the fold could not apply stays as it was before it.
        assert status == {"bad": None, "good1": "completed", "good2": "passed", "good3": "running"}
        count = qs.count_sessions(conn, t, qs.SessionFilter(project="web"))
        assert count == {"total": 2, "by_status": {"completed": 1, "passed": 1}}
    health = runner.health()
    assert set(health) == {"detail", "list", "count", "stats"}
    for view in health.values():
        assert view["position"] == head and view["lag"] == 0 and view["state"] == "ok"
        assert view["skipped"] == 2 and view["last_error_position"] == bad_fold
        assert str(view["last_error"]).startswith("fold: KeyError")
    with runner.engine.connect() as conn:
        recorded = conn.execute(
            select(failures.c.view, failures.c.error).where(failures.c.position == bad_tags)
        ).all()
    assert {v for v, _ in recorded} == set(health)
    assert all(e.startswith("list: AttributeError") for _, e in recorded)
    # The skip is the same whatever the batches: one batch per event gives the same views.
    again = runner_on(store, tmp_path / "again.db", batch_size=1)
    again.catch_up()
    assert dump(again) == dump(runner)
    assert again.health()["list"]["skipped"] == 2
    # A rebuild's bulk load cannot leave one event out of a stream: it starts again batch
    # by batch and ends with the same views, not an error.
    loaded = runner_on(store, tmp_path / "loaded.db")
    assert loaded.load() == head
    assert dump(loaded) == dump(runner)


def test_the_live_worker_passes_a_poison_event_and_health_names_it(
    log: Any, tmp_path: Path
) -> None:
    store, run = log
    runner = runner_on(store, tmp_path / "views.db")
    runner.start(poll_interval=0.01)
    try:
        run(c.StartSession(session_id="a"))
        bad = append_raw(store, "bad", 1, "Started", {"tags": 5})
        run(c.StartSession(session_id="b"), c.KeepAlive(session_id="b", path="/x"))
        head = store.head_digest()[0]
        assert runner.wait_for(head, timeout=10)
    finally:
        runner.close()
    with runner.engine.connect() as conn:
        assert qs.count_sessions(conn, runner.tables, qs.SessionFilter())["total"] == 2
    health = runner.health()
    assert health["count"]["last_error_position"] == bad
    assert str(health["count"]["last_error"]).startswith("list: AttributeError")
    assert health["stats"]["lag"] == 0 and health["stats"]["state"] == "ok"


class FlakyDisk:
    """A view standing in for the database failing under it (what a full disk or a lost
    connection raise): every batch fails while `down`."""

    name = "flaky"

    def __init__(self) -> None:
        self.down = True

    def apply(self, conn: Connection, t: ViewTables, changes: list[Change]) -> None:
        if self.down:
            raise OperationalError("INSERT", {}, sqlite3.OperationalError("disk I/O error"))


def test_a_database_failure_stops_the_views_and_is_never_skipped(log: Any, tmp_path: Path) -> None:
    store, run = log
    flaky = FlakyDisk()
    runner = runner_on(store, tmp_path / "views.db", views=[*all_views(), flaky])
    run(c.StartSession(session_id="a"))
    runner.start(poll_interval=0.01)
    try:
        deadline_ok = runner.wait_for(store.head_digest()[0], timeout=1.0)
        assert not deadline_ok  # nothing is skipped past
        health = runner.health()
        assert {h["state"] for h in health.values()} == {"stopped"}
        assert health["detail"]["position"] == 0 and health["detail"]["lag"] == 1
        assert health["detail"]["last_error"] == "flaky: OperationalError: disk I/O error"
        assert health["detail"]["skipped"] == 0
        flaky.down = False
        assert runner.wait_for(store.head_digest()[0], timeout=15)
        for _ in range(100):  # the worker clears its error after the batch's commit
            if runner.last_error is None:
                break
            runner.wait_for(0, timeout=0.05)
        assert {h["state"] for h in runner.health().values()} == {"ok"}
    finally:
        runner.close()
