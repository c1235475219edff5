"""Two command services on one database (as two API processes run), on SQLite and on
PostgreSQL: each caches the sessions it decided, and when the other appended meanwhile it
reads only the events stored after its cached version and folds them on
(persistence/aggregates.py `caught_up`). Whatever the interleaving, every answer equals what
one service alone, deciding the same commands in the same order on its own database, gives,
and the state each service decides on equals a fresh fold of the stored stream. Erasure by
a third party (`ledger replay erase`) is among the steps: a cached session's personal values
must not outlive it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from domain import commands as c
from domain.errors import LedgerError
from domain.session import Session
from persistence.aggregates import fold
from persistence.blobs import BlobStore
from persistence.erasure import erase
from persistence.ledger import Ledger
from persistence.store import EventStore
from tests.conftest import FakeClock

STATUSES = ("queued", "running", "passed", "failed", "cancelled")
KINDS = ("start", "keepalive", "hide", "status", "details", "result", "stop", "erase")
# (which process acts: 0 or 1, which session, what, a small parameter)
Step = tuple[int, int, str, int]
steps = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 2), st.sampled_from(KINDS), st.integers(0, 4)),
    min_size=3,
    max_size=30,
)


def command(sid: str, kind: str, n: int) -> c.Command:
    if kind == "start":
        status = "queued" if n == 0 else "running"
        return c.StartSession(session_id=sid, user=f"user{n}", tags={"email": f"{n}@x"},
                              status=status)  # fmt: skip
    if kind == "keepalive":
        return c.KeepAlive(session_id=sid, visible=n % 2 == 0, path=f"/p{n % 3}")
    if kind == "hide":
        return c.Hide(session_id=sid, path=f"/p{n % 3}")
    if kind == "status":
        return c.ChangeStatus(session_id=sid, status=STATUSES[n])
    if kind == "details":
        return c.UpdateDetails(session_id=sid, changes={"name": f"n{n}", "user": f"who{n}"})
    if kind == "result":
        return c.RecordResult(session_id=sid, status="passed" if n % 2 else "failed")
    return c.StopSession(session_id=sid, reason=f"done {n}")


def outcome(ledger: Ledger, cmd: c.Command) -> Any:
    try:
        return ledger.execute(cmd)
    except LedgerError as err:
        return (type(err).__name__, str(err))


def erased(store: EventStore, blobs: BlobStore, sid: str, clock: FakeClock) -> Any:
    try:
        return erase(store, blobs, sid, clock).position
    except LedgerError as err:
        return (type(err).__name__, str(err))


class World:
    """Two ledgers on one database, one reference ledger alone on another, one clock."""

    def __init__(self, shared: str, alone: str, blobs: BlobStore) -> None:
        self.clock = FakeClock()
        self.stores = [EventStore(shared), EventStore(shared), EventStore(alone)]
        for s in self.stores:
            s.create_schema()
        self.ledgers = [Ledger(s, self.clock) for s in self.stores]
        self.blobs = blobs
        self.examples = itertools.count()

    def close(self) -> None:
        for s in self.stores:
            s.dispose()

    def run(self, history: list[Step]) -> None:
        prefix = f"x{next(self.examples)}-"  # each example's own sessions
        for who, which, kind, n in history:
            sid = f"{prefix}{which}"
            self.clock.advance(1.5)
            if kind == "erase":  # by a third party: neither ledger's cache hears of it
                got = erased(self.stores[1 - who], self.blobs, sid, self.clock)
                want = erased(self.stores[2], self.blobs, sid, self.clock)
                assert got == want
                continue
            cmd = command(sid, kind, n)
            assert outcome(self.ledgers[who], cmd) == outcome(self.ledgers[2], cmd), (kind, sid)
            self.assert_cache_is_the_fold(self.ledgers[who], sid)

    @staticmethod
    def assert_cache_is_the_fold(ledger: Ledger, sid: str) -> None:
        agg = ledger.cache.get(sid)
        if agg is None:
            return
        assert isinstance(agg, Session)
        assert agg.state == fold(ledger.store.load_stream(sid), sid)
        assert agg.version == agg.state["version"]


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "sqlite":
        shared, alone = f"sqlite:///{tmp_path / 'shared.db'}", f"sqlite:///{tmp_path / 'alone.db'}"
    else:
        pg = request.getfixturevalue("pg")
        shared, alone = pg.create_database("shared"), pg.create_database("alone")
    w = World(shared, alone, BlobStore(tmp_path / "blobs"))
    yield w
    w.close()


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=steps)
# Process 0 caches session 0; process 1 appends to it; process 0 commits on another session
# and then, with nobody else appending since that commit, must still not trust session 0.
@example(history=[(0, 0, "start", 0), (1, 0, "keepalive", 0), (0, 1, "start", 0),
                  (0, 0, "status", 1)])  # fmt: skip
def test_interleaved_ledgers_decide_as_one_ledger_alone(world: World, history: list[Step]) -> None:
    world.run(history)


def test_a_cached_session_catches_up_on_many_events_the_other_process_appended(
    world: World,
) -> None:
    """The plain case, spelled out: one process caches a session at version 2, the other
    appends 40 events and erases it, and the first decides on the caught-up state."""
    history: list[Step] = [(0, 0, "start", 1), (0, 0, "keepalive", 0)]
    history += [(1, 0, "keepalive", i) for i in range(20)] + [(1, 0, "hide", 1)] * 2
    history += [(1, 0, "details", 3), (1, 0, "erase", 0), (1, 0, "result", 1)] * 6
    history += [(0, 0, "keepalive", 2), (0, 0, "stop", 1), (1, 0, "keepalive", 2)]
    world.run(history)
    state = world.ledgers[0].cache["x0-0"].state  # type: ignore[attr-defined]
    assert state["ended_at"] is not None and state["user"] is None
