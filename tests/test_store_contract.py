"""The event store's contract, run against both stores: every test here takes the `store`
fixture, an `EventStore` on a fresh SQLite file and on a fresh PostgreSQL database (the
latter skipped only when the `pg` fixture skips), as the eventsourcing library runs one
recorder test case per backend.

The contract: gap-free positions and a linear hash chain; unique stream versions (a
collision stores nothing of its transaction); a database that itself refuses UPDATE, DELETE
and (PostgreSQL) TRUNCATE on the events; the reads (`load_stream`, `read`, `iter_all`,
`stream_ids` / `count_streams` by exact prefix, `head_digest`, `position_at`); idempotency
keys stored with their result in the append's transaction; recorded times that never go
backwards; `StoreUnavailableError` from a database that cannot write; and gap-free positions
under concurrent writers from two store objects. The last tests run the command service on
each store for what it relies on the store for (idempotent retries across processes, two
writers on one stream)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from domain import commands as c
from domain.errors import IdempotencyKeyReusedError, StoreUnavailableError
from domain.events import NewEvent
from persistence.ledger import Ledger
from persistence.schema import make_engine, sqlite_path
from persistence.store import (
    GENESIS_HASH,
    EventStore,
    StaleWriteError,
    StoredEvent,
    chain_hash,
)
from tests.conftest import FakeClock

T0 = 1_700_000_000.0


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    """A fresh, empty store with its schema: on a SQLite file, or on a new PostgreSQL
    database of the session's throwaway server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'log.db'}"
    else:
        url = request.getfixturevalue("pg").create_database("contract")
    s = EventStore(url)
    s.create_schema()
    yield s
    s.dispose()


def ev(
    stream_id: str, version: int, type_: str = "Happened", at: float = T0, **payload: Any
) -> NewEvent:
    return NewEvent(stream_id, version, type_, 1, at, payload or {"n": version})


def append(store: EventStore, new: Sequence[NewEvent]) -> tuple[int, bytes]:
    """`new` appended after the stored head in one write transaction; the new head."""
    with store.write_transaction() as conn:
        return store.append(conn, store.head(conn), new)


def verify_chain(events: Sequence[StoredEvent]) -> bytes:
    """Asserts each hash chains the previous one from the genesis; returns the last."""
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
        ), f"the hash at position {e.position} does not chain the previous one"
        prev = e.hash
    return prev


def plain_engine(store: EventStore) -> Any:
    """An engine as any other client of the database would have: none of the store's
    connection setup, so what is refused is refused by the database itself."""
    return create_engine(store.url)


def stored_rows(store: EventStore) -> list[tuple[Any, ...]]:
    with store.read_engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM events ORDER BY position"))
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]


# -- appending ------------------------------------------------------------------------------


def test_append_gives_gap_free_positions_and_a_linear_hash_chain(store: EventStore) -> None:
    assert store.head_digest() == (0, GENESIS_HASH)
    first = append(store, [ev("a", 1), ev("b", 1), ev("a", 2)])
    assert first[0] == 3
    with store.write_transaction() as conn:
        head = store.head(conn)
        assert head == first
        inserted = store.insert(conn, head, [ev("c", 1, at=T0 + 1), ev("a", 3, at=T0 + 2)])
    assert [e.position for e in inserted] == [4, 5]
    assert append(store, []) == (5, inserted[-1].hash)  # nothing to append: the head stays
    events = store.read(0, 100)
    assert [e.position for e in events] == [1, 2, 3, 4, 5]
    assert events[3:] == inserted
    assert [(e.stream_id, e.version) for e in events] == [
        ("a", 1), ("b", 1), ("a", 2), ("c", 1), ("a", 3)
    ]  # fmt: skip
    assert all(type(e.payload) is bytes and type(e.hash) is bytes for e in events)
    assert events[0].data() == {"n": 1}
    last = verify_chain(events)
    assert events[2].hash == first[1]
    assert store.head_digest() == (5, last)
    assert len({e.hash for e in events}) == 5


def test_a_duplicate_stream_version_is_refused_and_nothing_of_its_transaction_is_stored(
    store: EventStore,
) -> None:
    append(store, [ev("a", 1), ev("a", 2)])
    before = stored_rows(store)
    with pytest.raises(StaleWriteError), store.write_transaction() as conn:
        head = store.head(conn)
        store.remember_idempotent(
            conn, [{"key": "k", "fingerprint": "f", "result": b"{}", "position": 3}]
        )
        store.append(conn, head, [ev("b", 1), ev("a", 2, other=True)])
    assert stored_rows(store) == before
    with store.write_transaction() as conn:
        assert store.find_idempotent(conn, ["k"]) == {}
    # The same collision across two transactions (another process took the version).
    with pytest.raises(StaleWriteError):
        append(store, [ev("a", 1)])
    assert stored_rows(store) == before
    assert append(store, [ev("a", 3)])[0] == 3  # the stream goes on at the next version


def test_an_append_after_a_stale_head_is_refused_whole(store: EventStore) -> None:
    """Positions are unique: a writer that read the head before another appended cannot
    place its events over the other's."""
    append(store, [ev("a", 1)])
    stale = store.head_digest()
    append(store, [ev("b", 1)])
    before = stored_rows(store)
    with pytest.raises(StaleWriteError), store.write_transaction() as conn:
        store.append(conn, stale, [ev("c", 1), ev("d", 1)])
    assert stored_rows(store) == before


def test_the_database_refuses_update_delete_and_truncate_on_events(store: EventStore) -> None:
    append(store, [ev("a", 1), ev("a", 2)])
    before = stored_rows(store)
    refused = [
        "UPDATE events SET payload = payload || payload WHERE position = 1",
        "UPDATE events SET stream_id = 'x'",
        "DELETE FROM events WHERE position = 2",
        "DELETE FROM events",
    ]
    if not store.is_sqlite:
        refused.append("TRUNCATE events")  # SQLite has no TRUNCATE (DELETE covers it)
    engine = plain_engine(store)
    try:
        for sql in refused:
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.exec_driver_sql(sql)
    finally:
        engine.dispose()
    assert stored_rows(store) == before
    verify_chain(store.read(0, 10))


# -- reading --------------------------------------------------------------------------------


def test_load_stream_gives_one_stream_in_version_order(store: EventStore) -> None:
    append(store, [ev("a", 1), ev("b", 1), ev("a", 2), ev("ab", 1), ev("a", 3)])
    a = store.load_stream("a")
    assert [(e.stream_id, e.version, e.position) for e in a] == [
        ("a", 1, 1), ("a", 2, 3), ("a", 3, 5)
    ]  # fmt: skip
    assert a == [e for e in store.read(0, 100) if e.stream_id == "a"]
    assert [e.version for e in store.load_stream("a", until_version=2)] == [1, 2]
    assert store.load_stream("a", until_version=0) == []
    assert store.load_stream("nobody") == []
    with store.write_transaction() as conn:  # the writer sees its own transaction's rows
        store.append(conn, store.head(conn), [ev("a", 4)])
        assert [e.version for e in store.load_stream("a", conn)] == [1, 2, 3, 4]
        tails = store.stream_tails(conn, {"a": 3, "b": 0, "nobody": 0})
        assert {s: [e.version for e in es] for s, es in tails.items()} == {"a": [3, 4], "b": [1]}


def test_read_pages_the_log_after_a_position_and_filters_by_type(store: EventStore) -> None:
    kinds = ["Started", "Kept", "Kept", "Stopped", "Started", "Kept"]
    append(store, [ev(f"s{i}", 1, kind) for i, kind in enumerate(kinds)])
    assert [e.position for e in store.read()] == [1, 2, 3, 4, 5, 6]
    assert [e.position for e in store.read(after=2)] == [3, 4, 5, 6]
    assert [e.position for e in store.read(after=2, limit=2)] == [3, 4]
    assert store.read(after=6) == []
    assert [e.position for e in store.read(types=["Started"])] == [1, 5]
    assert [e.position for e in store.read(types=["Kept", "Stopped"])] == [2, 3, 4, 6]
    assert [e.position for e in store.read(after=2, limit=2, types=["Kept", "Started"])] == [3, 5]
    assert store.read(types=["Exploded"]) == []


def test_iter_all_streams_the_whole_log_in_order_across_chunks(store: EventStore) -> None:
    append(store, [ev(f"s{i}", 1) for i in range(7)])
    everything = store.read(0, 100)
    assert list(store.iter_all(chunk=2)) == everything
    assert list(store.iter_all(chunk=7)) == everything  # a last chunk that is exactly full
    assert [e.position for e in store.iter_all(after=3, chunk=2)] == [4, 5, 6, 7]
    assert [e.position for e in store.iter_all(after=1, until=5, chunk=2)] == [2, 3, 4, 5]
    assert list(store.iter_all(after=7)) == []


def test_stream_ids_and_count_streams_match_an_exact_prefix(store: EventStore) -> None:
    ids = ["a", "ab", "ab:1", "ab:2", "abc", "aB", "b", "ab%", "a_b", "x:ab"]
    append(store, [ev(s, 1) for s in ids] + [ev("ab:1", 2), ev("ab:1", 3), ev("abc", 2)])
    assert store.stream_ids("ab") == ["ab", "ab%", "ab:1", "ab:2", "abc"]  # each stream once
    assert store.count_streams("ab") == 5
    assert store.stream_ids("ab:") == ["ab:1", "ab:2"]
    assert store.count_streams("ab:") == 2
    assert store.stream_ids("ab", limit=2, offset=1) == ["ab%", "ab:1"]
    assert store.stream_ids("ab", limit=10, offset=5) == []
    assert store.stream_ids("a_") == ["a_b"]  # no LIKE wildcards: `_` is a character
    assert store.stream_ids("ab%") == ["ab%"]
    assert store.count_streams("a") == 8
    assert (store.stream_ids("zz"), store.count_streams("zz")) == ([], 0)
    with pytest.raises(ValueError):
        store.stream_ids("")
    with pytest.raises(ValueError):
        store.count_streams("")


def test_head_digest_is_the_last_position_and_hash(store: EventStore) -> None:
    assert store.head_digest() == (0, GENESIS_HASH)
    head = append(store, [ev("a", 1), ev("a", 2)])
    assert store.head_digest() == head == (2, store.read(1, 1)[0].hash)
    with store.write_transaction() as conn:
        assert store.tail(conn) == (2, head[1], T0)
    with pytest.raises(RuntimeError), store.write_transaction() as conn:
        store.append(conn, head, [ev("a", 3)])
        raise RuntimeError("the writer fails before its commit")
    assert store.head_digest() == head  # a rolled-back append moves nothing


def test_position_at_finds_the_last_position_recorded_at_or_before_a_time(
    store: EventStore,
) -> None:
    assert store.position_at(T0) == 0
    times = [T0, T0 + 1, T0 + 1, T0 + 1, T0 + 5, T0 + 9]
    append(store, [ev(f"s{i}", 1, at=t) for i, t in enumerate(times)])
    assert store.position_at(T0 - 1) == 0
    assert store.position_at(T0) == 1
    assert store.position_at(T0 + 0.5) == 1
    assert store.position_at(T0 + 1) == 4  # the last of the events at that instant
    assert store.position_at(T0 + 4.999) == 4
    assert store.position_at(T0 + 5) == 5
    assert store.position_at(T0 + 9) == 6
    assert store.position_at(T0 + 100) == 6


# -- idempotency keys -----------------------------------------------------------------------


def test_idempotency_keys_are_stored_with_their_result_in_the_appends_transaction(
    store: EventStore,
) -> None:
    def key(k: str, position: int) -> dict[str, Any]:
        return {"key": k, "fingerprint": f"fp-{k}", "result": b'{"r":"' + k.encode() + b'"}',
                "position": position}  # fmt: skip

    with store.write_transaction() as conn:
        assert store.find_idempotent(conn, []) == {}
        head = store.append(conn, store.head(conn), [ev("a", 1)])
        store.remember_idempotent(conn, [key("k1", head[0]), key("k2", head[0])])
        store.remember_idempotent(conn, [])
        # Seen inside the transaction that stores them, by the writer deciding the batch.
        assert set(store.find_idempotent(conn, ["k1"])) == {"k1"}
    with store.write_transaction() as conn:
        found = store.find_idempotent(conn, ["k1", "k2", "k3"])
    assert found == {"k1": ("fp-k1", b'{"r":"k1"}'), "k2": ("fp-k2", b'{"r":"k2"}')}
    assert all(type(result) is bytes for _, result in found.values())
    # A transaction that fails after remembering its key keeps neither key nor events.
    with pytest.raises(RuntimeError), store.write_transaction() as conn:
        store.append(conn, store.head(conn), [ev("a", 2)])
        store.remember_idempotent(conn, [key("k3", 2)])
        raise RuntimeError("the writer fails before its commit")
    # A key already stored is refused with the events of its transaction (a retry that
    # raced another process): StaleWriteError, and the decision is taken again.
    with pytest.raises(StaleWriteError), store.write_transaction() as conn:
        store.append(conn, store.head(conn), [ev("a", 2)])
        store.remember_idempotent(conn, [key("k1", 2)])
    assert store.head_digest()[0] == 1
    with store.write_transaction() as conn:
        assert store.find_idempotent(conn, ["k1", "k3"]) == {"k1": found["k1"]}


# -- recorded times -------------------------------------------------------------------------


def test_recorded_times_never_go_backwards_along_the_log(store: EventStore) -> None:
    """The writer takes the last recorded time from the store (`tail`) as its floor: a clock
    stepped back (NTP, a VM resumed) leaves the log's times level, never earlier, so an
    as-of cut by time is a prefix of the log."""
    clock = FakeClock()
    ledger = Ledger(store, clock)
    ledger.execute(c.StartSession(session_id="s1"))
    clock.advance(10)
    ledger.execute(c.KeepAlive(session_id="s1"))
    # Another process whose clock is a minute behind appends next.
    late = FakeClock(clock.now - 60)
    other = Ledger(EventStore(store.url), late)
    other.execute(c.KeepAlive(session_id="s1"))
    clock.advance(-60)  # and this process's clock steps back a minute too
    ledger.execute_many([c.KeepAlive(session_id="s1"), c.StopSession(session_id="s1")])
    other.store.dispose()
    times = [e.recorded_at for e in store.read(0, 100)]
    assert len(times) == 5
    assert times == sorted(times)
    assert times[2] == times[3] == times[4] == times[1]  # held at the last recorded time
    assert store.position_at(times[1]) == 5
    assert store.position_at(times[0]) == 1


# -- a database that cannot write -------------------------------------------------------------


def make_read_only(store: EventStore) -> None:
    """The store's database as one that refuses writes: SQLite opened `?mode=ro` (as a
    read-only mount would leave it: chmod does not stop root), PostgreSQL with
    `default_transaction_read_only` on the database (as a hot standby refuses writes)."""
    if store.is_sqlite:
        path = sqlite_path(store.url)
        store.write_engine.dispose()
        store.write_engine = make_engine(f"sqlite:///file:{path}?mode=ro&uri=true", immediate=True)
        return
    name = make_url(store.url).database
    with store.write_engine.connect() as conn:
        conn.commit()
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'
        )
    store.write_engine.dispose()  # the setting applies to new sessions


def test_a_write_to_a_database_that_cannot_write_raises_store_unavailable(
    store: EventStore,
) -> None:
    head = append(store, [ev("a", 1)])
    make_read_only(store)
    with pytest.raises(StoreUnavailableError):
        append(store, [ev("a", 2)])
    with pytest.raises(StoreUnavailableError), store.write_transaction() as conn:
        store.remember_idempotent(
            conn, [{"key": "k", "fingerprint": "f", "result": b"{}", "position": 1}]
        )
    # Still readable; nothing was stored.
    assert store.head_digest() == head
    assert [e.version for e in store.load_stream("a")] == [1]
    # The command service answers with the named error, not a crash.
    ledger = Ledger(store, FakeClock())
    with pytest.raises(StoreUnavailableError):
        ledger.execute(c.StartSession(session_id="s1"))
    assert store.head_digest() == head


# -- concurrent writers ---------------------------------------------------------------------


def test_concurrent_writers_from_two_store_objects_keep_positions_gap_free(
    store: EventStore,
) -> None:
    """Two store objects on one database (as two processes would have) append at the head
    each read in their own transaction: the transactions serialise, so none collides."""
    other = EventStore(store.url)
    n = 60
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def write(s: EventStore, name: str) -> None:
        try:
            start.wait()
            for i in range(1, n + 1):
                with s.write_transaction() as conn:
                    head = s.head(conn)
                    s.append(conn, head, [ev(name, 2 * i - 1), ev(name, 2 * i)])
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(s, name)) for s, name in ((store, "w1"), (other, "w2"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.dispose()
    assert errors == []
    events = store.read(0, 10_000)
    assert [e.position for e in events] == list(range(1, 4 * n + 1))
    verify_chain(events)
    for name in ("w1", "w2"):
        assert [e.version for e in store.load_stream(name)] == list(range(1, 2 * n + 1))


# -- the command service on each store ------------------------------------------------------


def test_a_retried_command_appends_once_even_from_another_process(store: EventStore) -> None:
    ledger = Ledger(store, FakeClock())
    ledger.execute(c.StartSession(session_id="s1"))
    first = ledger.execute(c.KeepAlive(session_id="s1", path="/a", idempotency_key="k1"))
    assert ledger.execute(c.KeepAlive(session_id="s1", path="/a", idempotency_key="k1")) == first
    # A second process (fresh ledger, empty cache) sees the stored result, not a new append.
    other = Ledger(EventStore(store.url), FakeClock())
    assert other.execute(c.KeepAlive(session_id="s1", path="/a", idempotency_key="k1")) == first
    same_batch = ledger.execute_many([c.StopSession(session_id="s1", idempotency_key="k2")] * 3)
    assert len({o.position for o in same_batch}) == 1  # type: ignore[union-attr]
    assert store.head_digest()[0] == 3
    with pytest.raises(IdempotencyKeyReusedError):
        other.execute(c.KeepAlive(session_id="s1", path="/other", idempotency_key="k1"))
    other.store.dispose()


def test_two_ledgers_on_one_database_lose_nothing(store: EventStore) -> None:
    """Two command services (as two processes would run) append to the same stream at once:
    collisions are decided again on fresh state, never lost or doubled."""
    ledger = Ledger(store, FakeClock())
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
    events = store.read(0, 10_000)
    assert [e.position for e in events] == list(range(1, 2 * n + 2))
    verify_chain(events)


def test_personal_values_are_sealed_opened_and_erased(store: EventStore, tmp_path: Path) -> None:
    """What erasure relies on the store for: commitments in the stored payload, the values
    opened on every read, and, once erased, the events' bytes (and so the tree) unchanged."""
    from persistence.blobs import BlobStore
    from persistence.erasure import erase

    blobs = BlobStore(tmp_path / "blobs")
    mine, size_ = blobs.put(b"zelda's console")
    shared, _ = blobs.put(b"a page both sessions saved")
    ledger = Ledger(store, FakeClock(T0))
    ledger.execute(c.StartSession(session_id="s", user="zelda", tags={"email": "z@x", "k": "v"}))
    ledger.execute(c.StartSession(session_id="t", user="ann"))
    for sid, sha in (("s", mine), ("s", shared), ("t", shared)):
        ledger.execute(c.AttachArtifact(session_id=sid, kind="file", sha256=sha, size=size_))
    raw = store.read()[0]
    assert b"zelda" not in raw.payload and b"z@x" not in raw.payload
    assert raw.data()["user"] == "zelda" and raw.data()["tags"] == {"email": "z@x", "k": "v"}
    assert store.load_stream("s")[0].data() == raw.data()
    loaded = next(store.iter_stream_rows(2, ["Started"]))
    assert [b"zelda" in r[4] for r in loaded] == [True, False]
    size, root = store.tree.latest()

    done = erase(store, blobs, "s", FakeClock(T0 + 1))
    assert done.values == 2 and done.in_clear == []  # user and tags.email
    assert (done.blobs_destroyed, done.blobs_kept) == ([mine], [shared])
    assert not blobs.exists(mine) and blobs.exists(shared)
    first = store.read()[0]
    assert first.payload == raw.payload and first.hash == raw.hash
    assert first.data()["user"] is None and first.data()["tags"] == {"k": "v"}
    assert store.tree.root(size) == root
    assert store.load_stream("t")[0].data()["user"] == "ann"
    assert [e.type for e in store.load_stream("s")][-1] == "Erased"
