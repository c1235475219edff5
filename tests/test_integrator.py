"""persistence/integrator.py: the thread that keeps the log's Merkle tree integrated off the
writer's path. It integrates only while active (the leading worker), catches up within its
interval once it is, keeps going after a pass that fails, and stops on close."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from persistence.integrator import TreeIntegrator
from persistence.schema import tree_path
from persistence.store import EventStore
from persistence.tree import BLOCK
from tests.test_store_contract import append, ev


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    s = EventStore(f"sqlite:///{tmp_path}/ledger.db")
    s.create_schema()
    yield s
    s.dispose()


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the integrator did not catch up"
        time.sleep(0.01)


def test_the_integrator_follows_the_log_only_while_active(store: EventStore) -> None:
    active = threading.Event()
    integrator = TreeIntegrator(store, active.is_set, interval_s=0.01)
    integrator.start()
    try:
        append(store, [ev(f"s{i}", 1) for i in range(3 * BLOCK + 2)])
        time.sleep(0.2)
        assert store.tree.integrated() == 0  # a follower stores nothing
        active.set()
        eventually(lambda: store.tree.integrated() == 3 * BLOCK)
        append(store, [ev(f"t{i}", 1) for i in range(BLOCK)])
        eventually(lambda: store.tree.integrated() == 4 * BLOCK)
    finally:
        integrator.close()
    assert tree_path(Path(store.url.removeprefix("sqlite:///"))).exists()
    append(store, [ev(f"u{i}", 1) for i in range(BLOCK)])
    time.sleep(0.1)
    assert store.tree.integrated() == 4 * BLOCK  # closed: nothing runs any more


def test_a_failed_pass_is_counted_and_the_next_one_goes_on(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = store.integrate_tree, []

    def flaky() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("the disk is full (for a moment)")
        return real()

    monkeypatch.setattr(store, "integrate_tree", flaky)
    monkeypatch.setattr("persistence.integrator.RETRY_S", 0.01)
    append(store, [ev(f"s{i}", 1) for i in range(2 * BLOCK)])
    integrator = TreeIntegrator(store, interval_s=0.01)
    integrator.start()
    try:
        eventually(lambda: store.tree.integrated() == 2 * BLOCK)
    finally:
        integrator.close()
    assert integrator.failures == 1
