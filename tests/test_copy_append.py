"""PostgreSQL's append path writes a commit group's rows with COPY (persistence/pgcopy.py):
what the store's callers rely on still holds when that COPY fails. A COPY colliding with
rows another writer stored (a position, a stream version, a sealed value's slot) raises
`StaleWriteError` and leaves nothing of its transaction: no event, tree node, sealed value
or idempotency key; a connection lost under it raises `StoreUnavailableError`, and the next
append works. The contract both stores share is tests/test_store_contract.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from domain.errors import StoreUnavailableError
from domain.events import NewEvent
from persistence.store import EventStore, StaleWriteError
from tests.conftest import PG_BINDIR
from tests.pg import PgCluster

pytestmark = pytest.mark.skipif(
    PG_BINDIR is None, reason="no PostgreSQL server binaries in /usr/lib/postgresql/*/bin"
)
T0 = 1_700_000_000.0


@pytest.fixture
def stores(pg: PgCluster) -> Iterator[tuple[EventStore, EventStore]]:
    """Two store objects on one fresh database, as two API processes have."""
    url = pg.create_database("copy")
    mine, other = EventStore(url), EventStore(url)
    mine.create_schema()
    yield mine, other
    other.dispose()
    mine.dispose()


def started(sid: str, user: str) -> NewEvent:
    """A Started event whose user is a personal value: the append seals it (a
    sealed_values row at the event's position)."""
    return NewEvent(sid, 1, "Started", 1, T0, {"user": user, "status": "running"})


def kept(sid: str, version: int) -> NewEvent:
    return NewEvent(sid, version, "KeptAlive", 1, T0, {"visible": True, "path": "/"})


TABLES = (
    ("events", "position"),
    ("log_nodes", "level, idx"),
    ("sealed_values", "position, slot"),
    ("idempotency_keys", "key"),
)


def everything(store: EventStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables an append writes, as plain tuples."""
    out = {}
    for table, key in TABLES:
        engine = store.tree.nodes if table == "log_nodes" else store.read_engine
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY {key}"))
            out[table] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                          for r in rows]  # fmt: skip
    return out


def key_row(key: str) -> dict[str, Any]:
    return {"key": key, "fingerprint": "f", "result": b"{}", "position": 1}


def append(store: EventStore, new: list[NewEvent], head: tuple[int, bytes] | None = None) -> None:
    """`new` after `head` (the stored head when None), with an idempotency key, in one
    write transaction."""
    with store.write_transaction() as conn:
        store.remember_idempotent(conn, [key_row(f"k-{new[0].stream_id}-{new[0].version}")])
        store.append(conn, store.head(conn) if head is None else head, new)


def test_a_copy_over_positions_another_writer_took_is_stale_and_stores_nothing(
    stores: tuple[EventStore, EventStore],
) -> None:
    mine, other = stores
    append(mine, [started("a", "ann"), *(kept("a", v) for v in range(2, 15))])
    stale = mine.head_digest()
    # The other process appends 20 events, one sealed, completing a tree block (16 leaves).
    append(other, [started("b", "bob"), *(kept("b", v) for v in range(2, 21))])
    other.integrate_tree()
    before = everything(mine)
    assert len(before["events"]) == 34 and before["sealed_values"] and before["log_nodes"]
    # This writer still thinks the head is 14: its sealed value, events and tree nodes
    # collide with the other's rows at positions 15 and on.
    with pytest.raises(StaleWriteError):
        append(mine, [started("c", "cat"), *(kept("c", v) for v in range(2, 20))], head=stale)
    assert everything(mine) == before


def test_a_copy_of_a_stream_version_another_writer_took_is_stale_and_stores_nothing(
    stores: tuple[EventStore, EventStore],
) -> None:
    mine, other = stores
    append(mine, [started("a", "ann"), kept("a", 2)])
    append(other, [kept("a", 3)])  # the other process took version 3
    before = everything(mine)
    with pytest.raises(StaleWriteError):
        # At the right head, but version 3 of `a` is taken (the 6th of the rows copied).
        append(mine, [started("d", "dan"), *(kept(s, 2) for s in "de"), kept("a", 4),
                      started("e", "eve"), kept("a", 3), kept("d", 3)])  # fmt: skip
    assert everything(mine) == before
    # An idempotency key another process stored.
    with pytest.raises(StaleWriteError), mine.write_transaction() as conn:
        mine.append(conn, mine.head(conn), [kept("a", 4)])
        mine.remember_idempotent(conn, [key_row("k-a-3")])
    assert everything(mine) == before
    append(mine, [kept("a", 4)])  # decided again on fresh state, the append goes through
    assert len(everything(mine)["events"]) == len(before["events"]) + 1


def test_a_copy_on_a_lost_connection_is_store_unavailable_and_the_next_append_works(
    stores: tuple[EventStore, EventStore],
) -> None:
    mine, other = stores
    append(mine, [started("a", "ann")])
    before = everything(mine)
    with pytest.raises(StoreUnavailableError), mine.write_transaction() as conn:
        head = mine.head(conn)
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with other.write_engine.connect() as killer:  # the server drops this connection
            killer.exec_driver_sql("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        mine.append(conn, head, [kept("a", 2), kept("a", 3)])
    assert everything(mine) == before
    append(mine, [kept("a", 2), kept("a", 3)])
    assert [r[2] for r in everything(mine)["events"]] == [1, 2, 3]
