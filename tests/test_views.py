"""Targeted view behaviour the property test reaches only rarely."""

from __future__ import annotations

from domain import commands as c


def test_stats_max_is_exact_after_the_longest_session_changes_status(container, clock) -> None:
    ledger = container.ledger
    for sid in ("short", "long"):
        ledger.execute(c.StartSession(session_id=sid, project="p"))
    clock.advance(5)
    ledger.execute(c.StopSession(session_id="short"))
    clock.advance(5)
    ledger.execute(c.StopSession(session_id="long"))
    ledger.execute(c.ChangeStatus(session_id="long", status="passed"))
    container.runner.catch_up()
    from projections import queries as qs

    with container.runner.engine.connect() as conn:
        out = qs.stats(conn, container.runner.tables, qs.StatsQuery(group_by=("status",)))
    by = {g["key"]["status"]: g["duration"] for g in out["groups"]}
    assert by["completed"]["max"] < 5.1 and by["completed"]["count"] == 1
    assert by["passed"]["max"] > 9.9


def test_a_killed_worker_resumes_where_it_stopped(container) -> None:
    """Positions are committed with the rows: a new runner continues without re-applying."""
    from projections.runner import ProjectionRunner

    ledger = container.ledger
    for i in range(10):
        ledger.execute(c.StartSession(session_id=f"s{i}"))
    container.runner.catch_up(until=4)
    fresh = ProjectionRunner(container.store, container.runner.engine)
    fresh.create_schema()
    assert fresh.position == 4
    fresh.catch_up()
    from projections import queries as qs

    with fresh.engine.connect() as conn:
        assert qs.count_sessions(conn, fresh.tables, qs.SessionFilter())["total"] == 10


def test_a_zero_duration_is_a_max_too(container, clock) -> None:
    """Found by hypothesis: a cell's max of 0.0 was taken for "no max" when it arrived in a
    later batch than the cell itself."""
    from projections import queries as qs

    ledger = container.ledger
    ledger.execute(c.StartSession(session_id="instant", project="p"))
    ledger.execute(c.ChangeStatus(session_id="instant", status="passed"))
    container.runner.catch_up()
    clock.advance(-0.002)  # the stop reads the same instant as the start
    ledger.execute(c.StopSession(session_id="instant"))
    container.runner.catch_up()
    with container.runner.engine.connect() as conn:
        out = qs.stats(conn, container.runner.tables, qs.StatsQuery())
    assert out["groups"][0]["duration"]["max"] == 0.0
