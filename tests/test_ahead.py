"""The writer's overlap (persistence/ahead.py): a group decided while the one before it
commits is written only on the head it was chained after, answered only after its own
commit, and decided again when another process appended or the group before it failed."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from domain import commands as c
from domain.errors import StoreUnavailableError
from domain.session import Session
from persistence.aggregates import fold
from persistence.answers import Outcome
from persistence.ledger import Ledger
from persistence.store import EventStore
from replay import verify


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    s = EventStore(f"sqlite:///{tmp_path / 'log.db'}")
    s.create_schema()
    yield s
    s.dispose()


def started(store: EventStore, **kw: Any) -> Ledger:
    ledger = Ledger(store, lambda: 1_700_000_000.0, **kw)
    ledger.start()
    return ledger


def test_a_bulk_load_goes_ahead_and_every_acknowledged_event_is_stored_once(
    store: EventStore,
) -> None:
    ledger = started(store, max_batch=100)
    sids = [f"s{i}" for i in range(50)]
    try:
        ledger.execute_many([c.StartSession(session_id=sid) for sid in sids])

        def load(worker: int) -> list[Outcome]:
            out: list[Outcome] = []
            for round_ in range(40):
                batch: list[c.Command] = [
                    c.KeepAlive(session_id=sid, path=f"/{worker}/{round_}") for sid in sids
                ]
                out += ledger.submit(batch).result()
            return out

        with ThreadPoolExecutor(4) as pool:
            results = [r for rs in pool.map(load, range(4)) for r in rs]
    finally:
        ledger.close()
    assert ledger.ahead_groups > 0
    assert all(isinstance(r, c.CommandResult) for r in results)
    positions = [r.position for r in results if isinstance(r, c.CommandResult)]
    assert len(set(positions)) == len(positions) == 4 * 40 * 50
    assert store.head_digest()[0] == len(sids) + len(positions)
    for sid in sids:
        state = fold(store.load_stream(sid), sid)
        assert state is not None and state["keepalives"] == 4 * 40
        cached = ledger.cache[sid]
        assert isinstance(cached, Session) and cached.state == state  # the fold of the stored
    assert verify.verify(store, None).ok


def test_another_process_append_voids_a_group_decided_ahead(store: EventStore) -> None:
    one, other = started(store), Ledger(EventStore(store.url), lambda: 1_700_000_000.0)
    try:
        one.execute(c.StartSession(session_id="s"))
        one.execute(c.KeepAlive(session_id="s"))  # cached, and the head it left is known
        other.execute(c.KeepAlive(session_id="s"))  # another process moves the log on
        r = one.execute(c.KeepAlive(session_id="s"))
    finally:
        one.close()
        other.store.dispose()
    assert one.voided_groups == 1
    assert r.version == 4 and r.position == 4  # decided again on what is stored
    assert fold(store.load_stream("s"), "s")["keepalives"] == 3  # type: ignore[index]
    assert verify.verify(store, None).ok


class FailingCommit:
    """The write engine's commits, held and then failed on cue (a disk that fills up)."""

    def __init__(self, store: EventStore) -> None:
        self.dialect = store.write_engine.dialect
        self.real: Callable[[Any], None] = self.dialect.do_commit
        self.script: list[tuple[threading.Event, threading.Event, bool]] = []

    def then(self, fail: bool) -> tuple[threading.Event, threading.Event]:
        entered, go = threading.Event(), threading.Event()
        self.script.append((entered, go, fail))
        return entered, go

    def __call__(self, dbapi_conn: Any) -> None:
        if self.script:
            entered, go, fail = self.script.pop(0)
            entered.set()
            assert go.wait(30)
            if fail:
                raise sqlite3.OperationalError("database or disk is full")
        self.real(dbapi_conn)


def test_a_group_decided_on_one_whose_commit_failed_is_decided_again(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = started(store, max_batch=1)  # each submission its own group
    try:
        ledger.execute(c.StartSession(session_id="s"))
        ledger.execute(c.KeepAlive(session_id="s"))
        commits = FailingCommit(store)
        monkeypatch.setattr(commits.dialect, "do_commit", commits)
        first_in, first_go = commits.then(fail=False)
        failing_in, failing_go = commits.then(fail=True)
        first = ledger.submit([c.KeepAlive(session_id="s", path="/a")])
        assert first_in.wait(30)
        # Queued while `first` commits: `failing` goes ahead and commits (and fails) while
        # `after` is decided on top of it.
        failing = ledger.submit([c.KeepAlive(session_id="s", path="/b")])
        after = ledger.submit([c.KeepAlive(session_id="s", path="/c")])
        first_go.set()
        assert failing_in.wait(30)
        failing_go.set()
        first_out, after_out = first.result(30), after.result(30)
        with pytest.raises(StoreUnavailableError):
            failing.result(30)
    finally:
        ledger.close()
    assert ledger.ahead_groups >= 3
    assert isinstance(first_out[0], c.CommandResult) and first_out[0].version == 3
    assert isinstance(after_out[0], c.CommandResult)
    assert (after_out[0].version, after_out[0].position) == (4, 4)  # no gap where /b failed
    state = fold(store.load_stream("s"), "s")
    assert state is not None and state["last_visible_path"] == "/c"
    assert "/b" not in state["visible_time"]
    assert verify.verify(store, None).ok


def test_an_idle_writer_answers_a_failed_commit_at_once(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing queued after it: the failure is answered without waiting for more work."""
    ledger = started(store)
    try:
        ledger.execute(c.StartSession(session_id="s"))
        commits = FailingCommit(store)
        monkeypatch.setattr(commits.dialect, "do_commit", commits)
        _, go = commits.then(fail=True)
        go.set()
        fut: Future[list[Outcome]] = ledger.submit([c.KeepAlive(session_id="s")])
        with pytest.raises(StoreUnavailableError):
            fut.result(30)
        assert ledger.execute(c.KeepAlive(session_id="s")).version == 2
    finally:
        ledger.close()
    assert store.head_digest()[0] == 2
