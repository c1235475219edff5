"""Many processes opening one new PostgreSQL database at once (`ledger serve --workers N`
with its `ledger project` child) all create its tables: each table is made exactly once and
no opener fails. PostgreSQL's `CREATE TABLE` races with itself (both pass the existence
check, one fails on the catalogue's unique index); persistence/schema.py `serialise_ddl`
holds one advisory lock over every schema change."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import inspect

from persistence.migrations import migrate
from persistence.schema import make_engine
from projections import leadership
from projections.tables import ViewTables, create_schema
from tests.pg import PgCluster

OPENERS = 8


def race(url: str, open_once: Callable[[str], None]) -> list[BaseException]:
    """Run `open_once(url)` in OPENERS threads released together; the errors they raised."""
    gate = threading.Barrier(OPENERS)
    errors: list[BaseException] = []

    def one() -> None:
        gate.wait()
        try:
            open_once(url)
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(OPENERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


def open_everything(url: str) -> None:
    engine = make_engine(url)
    try:
        migrate(engine)
        create_schema(engine, ViewTables())
        leadership.create_schema(engine)
    finally:
        engine.dispose()


@pytest.mark.integration
@pytest.mark.parametrize("attempt", range(3))
def test_processes_opening_a_new_database_together_all_start(pg: PgCluster, attempt: int) -> None:
    url = pg.create_database("race")
    assert race(url, open_everything) == []
    engine = make_engine(url)
    try:
        names = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    wanted = {"events", "schema_migrations", "api_keys", "view_tracking"}
    wanted.add(leadership.leader_table.name)
    assert wanted <= names


@pytest.mark.integration
def test_views_commit_without_waiting_for_the_disk_and_the_log_waits(pg: PgCluster) -> None:
    """The views' engine (`durable=False`, always rebuildable from the log) commits without
    waiting for its WAL flush; the log's engine keeps the server's setting."""
    url = pg.create_database("sync")
    views, log = make_engine(url, durable=False), make_engine(url)
    # The tests' cluster runs with synchronous_commit=off itself: where a session's value
    # comes from tells the two engines apart.
    ask = "SELECT setting, source FROM pg_settings WHERE name = 'synchronous_commit'"
    try:
        with views.connect() as conn:
            assert tuple(conn.exec_driver_sql(ask).one()) == ("off", "client")
        with log.connect() as conn:
            assert conn.exec_driver_sql(ask).one()[1] != "client"
    finally:
        views.dispose()
        log.dispose()
