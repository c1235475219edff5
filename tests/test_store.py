"""The event store: append-only in the database itself, a gap-free hash chain, idempotent
retries, and no lost writes when two writers share one database."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from domain import commands as c
from domain.errors import IdempotencyKeyReusedError
from persistence.ledger import Ledger
from persistence.store import GENESIS_HASH, EventStore, chain_hash


def db_file(container) -> Path:
    return Path(container.settings.database_url.removeprefix("sqlite:///"))


def test_the_database_refuses_update_and_delete_on_events(container) -> None:
    container.ledger.execute(c.StartSession(session_id="s1"))
    con = sqlite3.connect(db_file(container))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("UPDATE events SET payload = x'00' WHERE position = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("DELETE FROM events")
    assert con.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1


def test_positions_are_gap_free_and_each_hash_chains_the_previous(container) -> None:
    ledger = container.ledger
    ledger.execute(c.StartSession(session_id="a"))
    ledger.execute_many([c.KeepAlive(session_id="a"), c.KeepAlive(session_id="ghost")])
    ledger.execute(c.StartSession(session_id="b"))
    events = container.store.read(0, 100)
    assert [e.position for e in events] == [1, 2, 3]
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


def test_a_retried_command_with_the_same_idempotency_key_appends_once(container) -> None:
    ledger = container.ledger
    ledger.execute(c.StartSession(session_id="s1"))
    first = ledger.execute(c.KeepAlive(session_id="s1", path="/a", idempotency_key="k1"))
    again = ledger.execute(c.KeepAlive(session_id="s1", path="/a", idempotency_key="k1"))
    assert again == first
    same_batch = ledger.execute_many([c.StopSession(session_id="s1", idempotency_key="k2")] * 3)
    assert len({o.position for o in same_batch}) == 1
    assert container.store.head_digest()[0] == 3
    with pytest.raises(IdempotencyKeyReusedError):
        ledger.execute(c.KeepAlive(session_id="s1", path="/other", idempotency_key="k1"))


def test_two_writers_on_one_database_lose_nothing(container, clock) -> None:
    """Two ledgers (as two processes would) append to the same streams concurrently."""
    other = Ledger(EventStore(container.settings.database_url), clock)
    container.ledger.execute(c.StartSession(session_id="s1"))
    container.ledger.start()
    other.start()
    n = 200

    def hammer(ledger: Ledger) -> None:
        for i in range(n):
            ledger.execute(c.KeepAlive(session_id="s1", path=f"/{i % 3}"))

    threads = [threading.Thread(target=hammer, args=(lg,)) for lg in (container.ledger, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    state = container.ledger.load("s1")
    assert state["keepalives"] == 2 * n
    assert state["version"] == 2 * n + 1
    assert container.store.head_digest()[0] == 2 * n + 1


def test_recorded_times_never_go_backwards_and_position_at_finds_the_last_one(
    container, clock
) -> None:
    """A clock stepped back (NTP, a VM resumed) must not make the log's times go backwards:
    an as-of cut is a prefix of the log, found by time."""
    ledger = container.ledger
    ledger.execute(c.StartSession(session_id="s1"))
    clock.advance(10)
    ledger.execute(c.KeepAlive(session_id="s1"))
    clock.advance(-60)  # the clock steps back a minute
    ledger.execute(c.KeepAlive(session_id="s1"))
    clock.advance(100)
    ledger.execute(c.StopSession(session_id="s1"))
    times = [e.recorded_at for e in container.store.read(0, 100)]
    assert times == sorted(times)
    assert times[2] == times[1]  # held at the last recorded time, not earlier
    store = container.store
    assert store.position_at(times[0] - 1) == 0
    assert store.position_at(times[0]) == 1
    assert store.position_at(times[1]) == 3  # both events at that instant
    assert store.position_at((times[1] + times[3]) / 2) == 3
    assert store.position_at(times[3] + 1) == 4


def test_checkpoints_run_beside_the_writer_and_lose_nothing(tmp_path: Path) -> None:
    """The writer's commits do not checkpoint (a background thread does); everything
    acknowledged is in the database file after the WAL is copied, and dispose stops it."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    store = EventStore(url)
    store.create_schema()
    ledger = Ledger(store, lambda: 1.0)
    ledger.start()
    try:
        ledger.execute_many([c.StartSession(session_id=f"s{i}") for i in range(200)])
        for _ in range(20):
            ledger.execute_many([c.KeepAlive(session_id=f"s{i}", path="/p") for i in range(200)])
    finally:
        ledger.close()
    checkpointer = store.checkpointer
    assert checkpointer is not None
    deadline = threading.Event()
    for _ in range(50):
        if checkpointer.runs:
            break
        deadline.wait(0.1)
    assert checkpointer.runs >= 1
    with store.write_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 16000
    store.dispose()
    assert checkpointer._thread is None
    con = sqlite3.connect(tmp_path / "log.db")
    assert con.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 200 * 21
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
