"""`ledger replay rebuild`: fresh tables swapped in atomically, twice in a row, whole or one
view, with events appended during the rebuild applied exactly once."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from api.cli import main
from domain import commands as c
from persistence.schema import make_engine, sqlite_path
from projections import queries
from replay.rebuild import rebuild
from replay.source import open_store
from tests.replay import make_history, point_cli_at


@pytest.fixture
def marks(container: Any, clock: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    out = make_history(container, clock)
    container.runner.catch_up()
    point_cli_at(container, monkeypatch)
    return out


def snapshot(container: Any) -> dict[str, Any]:
    """Everything a reader of the live views sees."""
    t = container.runner.tables
    with container.runner.engine.connect() as conn:
        page = queries.list_sessions(conn, t, queries.SessionFilter(), limit=100)
        return {
            "list": page.items,
            "total": page.total,
            "detail": {i["id"]: queries.get_detail(conn, t, i["id"]) for i in page.items},
            "count": queries.count_sessions(conn, t, queries.SessionFilter()),
            "stats": queries.stats(conn, t, queries.StatsQuery(group_by=("day", "status"))),
            "tagged": queries.count_sessions(
                conn, t, queries.SessionFilter(tags=(("team", "qa"),))
            ),
        }


def schema(container: Any) -> list[tuple[str, str]]:
    with sqlite3.connect(sqlite_path(container.settings.views_url)) as conn:
        rows = conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        return sorted(rows.fetchall())


def test_two_rebuilds_in_a_row_give_the_live_views_back(container, marks, capsys):
    before, tables_before = snapshot(container), schema(container)
    assert main(["replay", "rebuild"]) == 0
    assert main(["replay", "rebuild"]) == 0
    out = capsys.readouterr()
    assert "rebuilt detail, list, count, stats at log position 23" in out.out
    assert out.err == ""  # no progress bar when stderr is not a terminal
    assert schema(container) == tables_before  # canonical index names, no _next leftovers
    assert snapshot(container) == before


def test_events_during_the_rebuild_are_applied_once_and_the_live_worker_goes_on(container, marks):
    store = open_store(container.settings)
    engine = make_engine(container.settings.views_url, immediate=True)
    run = container.ledger.execute

    def meanwhile() -> None:
        # A server keeps writing while the fresh tables are built; its worker applies some.
        run(c.StartSession(session_id="late1", project="web"))
        container.runner.catch_up()
        run(c.StartSession(session_id="late2", project="web"))
        run(c.StopSession(session_id="late1"))

    try:
        done = rebuild(store, engine, before_swap=meanwhile)
    finally:
        engine.dispose()
        store.dispose()
    assert done.position == 26  # the last catch-up, inside the swap, reached the head
    run(c.StartSession(session_id="late3", project="api"))
    container.runner.catch_up()  # the live worker resumes from the swapped-in tables
    after = snapshot(container)
    assert after["count"] == {
        "total": 8,
        "by_status": {"completed": 1, "failed": 1, "passed": 1, "running": 4, "timeout": 1},
    }
    assert [i["id"] for i in after["list"] if i["id"].startswith("late")] == [
        "late3",
        "late2",
        "late1",
    ]
    assert container.runner.position == 27


def test_rebuilding_one_view_repairs_it_and_keeps_the_others(container, marks):
    db = sqlite_path(container.settings.views_url)
    good = snapshot(container)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE session_counts SET n = 999")
    assert snapshot(container)["count"] != good["count"]
    store = open_store(container.settings)
    engine = make_engine(container.settings.views_url, immediate=True)

    def meanwhile() -> None:
        container.ledger.execute(c.StartSession(session_id="late", project="web"))

    try:
        done = rebuild(store, engine, view="count", before_swap=meanwhile)
        assert done.tables == ["session_counts"]
        rebuild(store, engine, view="stats")
        rebuild(store, engine, view="list")
    finally:
        engine.dispose()
        store.dispose()
    container.runner.catch_up()  # nothing applied twice: the kept views were caught up too
    after = snapshot(container)
    assert after["count"]["by_status"] == {**good["count"]["by_status"], "running": 3}
    assert after["total"] == good["total"] + 1
    with sqlite3.connect(db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert not any(n.endswith("_next") for n in names)
