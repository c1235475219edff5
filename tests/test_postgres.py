"""The app and the views on a real PostgreSQL server (the scale-out store): 64-bit positions,
a restart on an existing schema, and the same query answers as SQLite for any command
history. The store's own contract runs on PostgreSQL in tests/test_store_contract.py."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import text

from api.bootstrap import bootstrap
from domain import commands as c
from domain.errors import LedgerError
from persistence.blobs import BlobStore
from persistence.erasure import erase
from persistence.ledger import Ledger
from persistence.settings import Settings
from persistence.store import GENESIS_HASH, EventStore, NewEvent
from projections import queries as qs
from projections.runner import ProjectionRunner
from replay.rebuild import rebuild
from tests.conftest import PG_BINDIR, FakeClock
from tests.pg import PgCluster
from tests.test_views_property import (
    TIMEOUT,
    WINDOW,
    StepClock,
    dump,
    history,
    keyset_pages,
    run_history,
    timed_at,
)

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
pytestmark = pytest.mark.skipif(
    PG_BINDIR is None, reason="no PostgreSQL server binaries in /usr/lib/postgresql/*/bin"
)


def test_positions_past_32_bits_are_stored_and_projected(pg: PgCluster, tmp_path) -> None:
    """A busy log outgrows int4: positions and session numbers are 64-bit on PostgreSQL."""
    seed = EventStore(f"sqlite:///{tmp_path}/seed.db")
    seed.create_schema()
    Ledger(seed, FakeClock()).execute(c.StartSession(session_id="x"))
    e = seed.read()[0]
    seed.dispose()
    box = bootstrap(Settings(database_url=pg.create_database()), clock=FakeClock())
    big = 2**31
    with box.store.write_transaction() as conn:  # as if 2**31 events came before
        # ... with their Merkle tree: its one stored node, the subtree of leaves [0, 2**31).
        conn.exec_driver_sql(
            "INSERT INTO log_nodes (level, idx, hash) VALUES (31, 0, %s)", (b"\x07" * 32,)
        )
        new = NewEvent(e.stream_id, e.version, e.type, e.schema_version, e.recorded_at, e.data())
        box.store.insert(conn, (big, GENESIS_HASH), [new])
    res = box.ledger.execute(c.StartSession(session_id="s1", idempotency_key="k"))
    assert (res.position, res.number) == (big + 2, big + 2)
    assert box.store.tree.size() == big + 2
    assert box.store.tree.inclusion_proof(big + 1, big + 2)[-1] == b"\x07" * 32
    assert box.ledger.execute(c.StartSession(session_id="s1", idempotency_key="k")) == res
    box.runner.catch_up()
    with box.runner.engine.connect() as conn:
        assert qs.id_for_number(conn, box.runner.tables, big + 2) == "s1"
        assert qs.get_detail(conn, box.runner.tables, "s1")["number"] == big + 2
    assert box.runner.read_position() == big + 2
    box.close()


def test_a_restarted_app_on_postgres_reuses_its_schema_and_serves_views(pg: PgCluster) -> None:
    url = pg.create_database()
    for _ in range(2):  # the second bootstrap meets existing tables, function and triggers
        box = bootstrap(Settings(database_url=url), clock=FakeClock())
        box.ledger.execute(c.StartSession(session_id=f"s{box.store.head_digest()[0]}", user="ann"))
        box.runner.catch_up()
        box.close()
    box = bootstrap(Settings(database_url=url), clock=FakeClock())
    assert box.runner.engine.url == box.store.write_engine.url  # views share the database
    box.runner.catch_up()
    with box.runner.engine.connect() as conn:
        users = conn.execute(text('SELECT "user" FROM session_list ORDER BY number')).all()
    assert [u for (u,) in users] == ["ann", "ann"]
    box.close()


def run_on_postgres(url: str, hist: list[Any]) -> tuple[EventStore, ProjectionRunner]:
    """The history of run_history, with the store and the live views on PostgreSQL."""
    store = EventStore(url)
    store.create_schema()
    clock = StepClock()
    ledger = Ledger(store, clock, window=WINDOW, session_timeout=TIMEOUT)
    live = ProjectionRunner.for_url(store, url, batch_size=3)
    live.create_schema()
    for cmd, dt, catch_up in hist:
        clock.now += dt
        before = store.head_digest()
        if isinstance(cmd, c.EraseSession):  # as run_history erases
            with contextlib.suppress(LedgerError):
                erase(store, BlobStore(Path(tempfile.mkdtemp())), cmd.session_id, clock)
            continue
        out = ledger.execute_many([timed_at(cmd, clock.now)])[0]
        if isinstance(out, LedgerError):  # nothing but a lapse's Expired
            assert all(e.type == "Expired" for e in store.read(before[0]))
        if catch_up:
            live.catch_up()
    live.catch_up()
    return store, live


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(hist=history)
def test_postgres_views_answer_like_sqlite_views(
    pg: PgCluster, tmp_path_factory: Any, hist: Any
) -> None:
    tmp = tmp_path_factory.mktemp("pg")
    store, live = run_on_postgres(pg.create_database("h"), hist)
    sqlite_store, _, sqlite_live, _, _ = run_history(tmp, hist)

    # The same log: positions, times and (opened) payloads. Not the same hashes: each
    # sealed value has a salt of its own, and the chain carries that on (the chain's own
    # encoding on PostgreSQL: test_store_contract.py and replay/test_verify_postgres.py).
    def log(s: EventStore) -> list[dict[str, Any]]:
        return [{**e.as_dict(), "hash": None} for e in s.iter_all()]

    assert log(store) == log(sqlite_store)
    pg_view = dump(live)
    assert pg_view == dump(sqlite_live)
    # Keyset pages (list cursors: row-value comparisons) page alike on both.
    with live.engine.connect() as a, sqlite_live.engine.connect() as b:
        for sort in ("started_at", "name", "duration"):
            f = qs.SessionFilter()
            pages = keyset_pages(a, live.tables, f, sort, True, 2)
            assert pages == keyset_pages(b, sqlite_live.tables, f, sort, True, 2), sort
    # SQLite views fed from the PostgreSQL log agree too.
    mirror = ProjectionRunner.for_url(store, f"sqlite:///{tmp}/mirror.db", batch_size=7)
    mirror.create_schema()
    mirror.catch_up()
    assert dump(mirror) == pg_view
    # Loaded from the PostgreSQL log in ranges of a stream or two (bounds in its own order).
    ranged = ProjectionRunner.for_url(store, f"sqlite:///{tmp}/ranged.db")
    ranged.create_schema()
    ranged.load(range_events=1)
    assert dump(ranged) == pg_view
    # A rebuild on PostgreSQL (the stream-by-stream load, then the swap) gives the live views.
    rebuild(store, live.engine, progress=False)
    assert dump(live) == pg_view
    for s in (store, sqlite_store):
        s.dispose()
    for r in (live, sqlite_live, mirror):
        r.engine.dispose()
