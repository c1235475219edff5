"""The store and the views on a real PostgreSQL server (the scale-out store): append-only in
the database, a gap-free hash chain, idempotent retries, no lost writes between two writers,
and the same query answers as SQLite for any command history."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import text

from api.bootstrap import bootstrap
from domain import commands as c
from domain.errors import IdempotencyKeyReusedError, LedgerError
from persistence.ledger import Ledger
from persistence.settings import Settings
from persistence.store import GENESIS_HASH, EventStore, NewEvent, chain_hash
from projections import queries as qs
from projections.runner import ProjectionRunner
from replay.rebuild import rebuild
from tests.conftest import PG_BINDIR, FakeClock
from tests.pg import PgCluster
from tests.test_views_property import StepClock, dump, history, run_history

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
pytestmark = pytest.mark.skipif(
    PG_BINDIR is None, reason="no PostgreSQL server binaries in /usr/lib/postgresql/*/bin"
)


@pytest.fixture
def store(pg: PgCluster) -> Iterator[EventStore]:
    s = EventStore(pg.create_database())
    s.create_schema()
    yield s
    s.dispose()


@pytest.fixture
def ledger(store: EventStore) -> Ledger:
    return Ledger(store, FakeClock())


def raw(store: EventStore) -> Any:
    """A plain driver connection, as any other client of the database would have."""
    url = store.write_engine.url
    return psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database, autocommit=True
    )


def test_the_database_refuses_update_delete_and_truncate_on_events(store, ledger) -> None:
    ledger.execute(c.StartSession(session_id="s1"))
    with raw(store) as con:
        for sql in (
            "UPDATE events SET payload = '\\x00'::bytea WHERE position = 1",
            "DELETE FROM events",
            "TRUNCATE events",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                con.execute(sql)
        assert con.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1


def test_positions_are_gap_free_and_each_hash_chains_the_previous(store, ledger) -> None:
    ledger.execute(c.StartSession(session_id="a"))
    ledger.execute_many([c.KeepAlive(session_id="a"), c.KeepAlive(session_id="ghost")])
    ledger.execute(c.StartSession(session_id="b"))
    events = store.read(0, 100)
    assert [e.position for e in events] == [1, 2, 3]
    assert all(type(e.payload) is bytes and type(e.hash) is bytes for e in events)
    prev = GENESIS_HASH
    for e in events:
        assert e.hash == chain_hash(
            prev,
            e.position,
            e.stream_id,
            e.version,
            e.type,
            e.schema_version,
            e.recorded_at,
            e.payload,
        )
        prev = e.hash
    assert store.head_digest() == (3, prev)
    assert [e.position for e in store.iter_all(chunk=2)] == [1, 2, 3]
    assert [e.version for e in store.load_stream("a")] == [1, 2]
    assert store.position_at(events[1].recorded_at) == 2


def test_a_retried_command_with_the_same_idempotency_key_appends_once(store, ledger) -> None:
    ledger.execute(c.StartSession(session_id="s1"))
    first = ledger.execute(c.KeepAlive(session_id="s1", path="/a", idempotency_key="k1"))
    # A second process (fresh ledger, empty cache) sees the stored result, not a new append.
    other = Ledger(EventStore(store.url), FakeClock())
    assert other.execute(c.KeepAlive(session_id="s1", path="/a", idempotency_key="k1")) == first
    same_batch = ledger.execute_many([c.StopSession(session_id="s1", idempotency_key="k2")] * 3)
    assert len({o.position for o in same_batch}) == 1
    assert store.head_digest()[0] == 3
    with pytest.raises(IdempotencyKeyReusedError):
        ledger.execute(c.KeepAlive(session_id="s1", path="/other", idempotency_key="k1"))
    other.store.dispose()


def test_two_writers_on_one_database_lose_nothing(store, ledger) -> None:
    """Two ledgers (as two processes would) append to the same stream concurrently."""
    other = Ledger(EventStore(store.url), FakeClock())
    ledger.execute(c.StartSession(session_id="s1"))
    ledger.start()
    other.start()
    n = 150

    def hammer(lg: Ledger) -> None:
        for i in range(n):
            lg.execute(c.KeepAlive(session_id="s1", path=f"/{i % 3}"))

    threads = [threading.Thread(target=hammer, args=(lg,)) for lg in (ledger, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    ledger.close()
    other.store.dispose()
    state = ledger.load("s1")
    assert state["keepalives"] == 2 * n
    assert state["version"] == 2 * n + 1
    assert [e.position for e in store.read(0, 10_000)] == list(range(1, 2 * n + 2))


def test_positions_past_32_bits_are_stored_and_projected(pg: PgCluster, tmp_path) -> None:
    """A busy log outgrows int4: positions and session numbers are 64-bit on PostgreSQL."""
    seed = EventStore(f"sqlite:///{tmp_path}/seed.db")
    seed.create_schema()
    Ledger(seed, FakeClock()).execute(c.StartSession(session_id="x"))
    e = seed.read()[0]
    seed.dispose()
    box = bootstrap(Settings(database_url=pg.create_database()), clock=FakeClock())
    big = 2**31 + 10
    with box.store.write_transaction() as conn:  # as if 2**31 events came before
        new = NewEvent(e.stream_id, e.version, e.type, e.schema_version, e.recorded_at, e.data())
        box.store.insert(conn, (big, GENESIS_HASH), [new])
    res = box.ledger.execute(c.StartSession(session_id="s1", idempotency_key="k"))
    assert (res.position, res.number) == (big + 2, big + 2)
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
    ledger = Ledger(store, clock)
    live = ProjectionRunner.for_url(store, url, batch_size=3)
    live.create_schema()
    for cmd, dt, catch_up in hist:
        clock.now += dt
        before = store.head_digest()
        out = ledger.execute_many([cmd])[0]
        if isinstance(out, LedgerError):
            assert store.head_digest() == before, "a rejected command appended something"
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
    # The same log, byte for byte: positions, times, payloads and the hash chain.
    assert [e.as_dict() for e in store.iter_all()] == [e.as_dict() for e in sqlite_store.iter_all()]
    pg_view = dump(live)
    assert pg_view == dump(sqlite_live)
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
