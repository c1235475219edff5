"""The tree folded in parts by worker processes (replay/tree_jobs.py) is the tree one
sequential pass folds: the same frontier, blocks and checkpoint roots, for any part width and
any checkpoint sizes, on an intact log, on a log with a gap and on a tampered one; and
`verify --jobs` reports what one process reports."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import commands as c
from persistence.schema import sqlite_path, tree_path
from persistence.store import EventStore
from replay import tree_jobs
from replay.log_rows import read_chunks
from replay.verify import verify
from replay.witness import TreeScan
from tests.replay import make_history

EVENTS = 23 + 120


@pytest.fixture
def store(container: Any, clock: Any) -> EventStore:
    make_history(container, clock)
    run = container.ledger.execute
    run(c.StartSession(session_id="long", project="web"))
    for i in range(EVENTS - 24):
        run(c.KeepAlive(session_id="long", visible=i % 3 != 0, path=f"/p{i % 7}"))
    s: EventStore = container.store
    s.integrate_tree()  # as the projection worker's integrator does (persistence/integrator.py)
    return s


def sequential(store: EventStore, sizes: list[int]) -> TreeScan:
    scan = TreeScan(sizes)
    for rows in read_chunks(store, 7):
        scan.feed(rows)
    return scan


def same(a: TreeScan, b: TreeScan) -> None:
    assert a.size == b.size
    assert a.frontier.nodes() == b.frontier.nodes()
    assert a.blocks == b.blocks
    assert a.roots == b.roots


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    level=st.integers(4, 8),
    sizes=st.lists(st.integers(0, EVENTS + 5), max_size=6),
)
def test_parts_join_into_the_sequential_tree(
    store: EventStore, level: int, sizes: list[int]
) -> None:
    parts = tree_jobs.TreeJobs(store, sizes, jobs=2, level=level)
    assert len(parts.plan.parts) == -(-EVENTS // (1 << level))
    same(parts.result(), sequential(store, sizes))


def test_a_gap_or_a_changed_row_folds_as_in_one_pass(store: EventStore) -> None:
    db = sqlite_path(store.url)
    assert db is not None
    conn = sqlite3.connect(db)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f'DROP TRIGGER "{name}"')
    conn.execute("DELETE FROM events WHERE position = 40")  # a gap: leaf indexes shift
    conn.execute("UPDATE events SET payload = CAST('{}' AS BLOB) WHERE position = 77")
    conn.commit()
    conn.close()
    for level in (4, 5, 6):
        same(tree_jobs.TreeJobs(store, [30, 100], 2, level).result(), sequential(store, [30, 100]))


def test_verify_with_jobs_says_what_one_process_says(
    store: EventStore, container: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tree_jobs, "MIN_LEAVES", 10)
    blobs = container.blobs
    calls: list[int] = []

    class Counted(tree_jobs.TreeJobs):
        def result(self) -> TreeScan:
            calls.append(len(self.plan.parts))
            return super().result()

    monkeypatch.setattr(tree_jobs, "TreeJobs", Counted)
    one, many = verify(store, blobs, jobs=1), verify(store, blobs, jobs=3)
    assert calls, "the parallel path ran"
    assert one.ok and many.ok and one.as_dict() == many.as_dict()
    db = sqlite_path(store.url)
    assert db is not None
    conn = sqlite3.connect(tree_path(db))  # the tree's stored nodes, in their own file
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f'DROP TRIGGER "{name}"')
    conn.execute("UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 4 AND idx = 5")
    conn.commit()
    conn.close()
    one, many = verify(store, blobs, jobs=1), verify(store, blobs, jobs=3)
    assert not many.ok and one.as_dict() == many.as_dict()
    assert many.findings["tree"].first_position == 5 * 16 + 1
