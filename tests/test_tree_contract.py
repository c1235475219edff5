"""The Merkle tree's part of the event store's contract, run against both stores (the `store`
fixture of tests/test_store_contract.py: a fresh SQLite file, a fresh PostgreSQL database).

Every appended event is a leaf at once (leaf i is position i + 1, its bytes `leaf_bytes`):
the tree's root at every size is domain.merkle's root over the leaves recomputed from the
events, whether its nodes are integrated yet or not; its proofs verify with domain.merkle's
verifiers and stop verifying when a byte changes; integration stores exactly the RFC
subtrees, and two integrators store them once; the writer's backstop bounds the lag; two
store objects on one database keep one tree; the database refuses UPDATE and DELETE on
`log_nodes`; a log whose tree is missing (written before the tree existed) gets the same
tree when a store opens it for writing; arguments outside the tree are refused."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from domain import merkle
from domain.errors import TreeRangeError
from domain.events import NewEvent
from domain.merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion
from persistence import store as store_module
from persistence.chain import chain_rows, leaf_bytes
from persistence.pgcopy import append_rows
from persistence.schema import events_table, log_nodes_table
from persistence.store import EVENT_COLUMNS, EventStore, StaleWriteError
from persistence.tree import BLOCK, STORED_LEVEL, leaf_hashes_of
from tests import test_store_contract as contract
from tests.test_store_contract import T0, append, ev, plain_engine

# The contract suite's fixture: a fresh SQLite file, a fresh PostgreSQL database.
store = contract.store


def leaf_hashes(s: EventStore) -> list[bytes]:
    """The leaf hashes recomputed from the stored events, sharing no code with the tree."""
    return [leaf_hash(leaf_bytes(e)) for e in s.read(0, 10**6)]


def batch(first: int, n: int) -> list[NewEvent]:
    """`n` events of fresh streams, with payloads and times that differ from each other."""
    return [
        ev(f"s{first + i}", 1, at=T0 + (first + i) / 7, k=first + i, path=f"/p/{first + i}")
        for i in range(n)
    ]


def flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


def node_rows(s: EventStore, integrate: bool = True) -> list[tuple[int, int, bytes]]:
    """The stored nodes, after integrating the log's tree (unless told not to)."""
    if integrate:
        s.integrate_tree()
    with s.tree.nodes.connect() as conn:
        rows = conn.execute(text("SELECT level, idx, hash FROM log_nodes ORDER BY level, idx"))
        return [(int(r[0]), int(r[1]), bytes(r[2])) for r in rows]


def assert_tree_matches(s: EventStore, sizes: Sequence[int] | None = None) -> list[bytes]:
    """The stored tree's root at each of `sizes` (default: every size) is the root over the
    recomputed leaves; returns those leaf hashes."""
    hashes = leaf_hashes(s)
    assert s.tree.size() == len(hashes)
    for n in range(len(hashes) + 1) if sizes is None else sizes:
        assert s.tree.root(n) == merkle.root(hashes[:n]), f"the root of {n} leaves"
    assert s.tree.latest() == (len(hashes), merkle.root(hashes))
    return hashes


def check_proofs(s: EventStore, hashes: list[bytes], index: int, first: int, second: int) -> None:
    """An inclusion proof of `index` in `second` and a consistency proof from `first` to
    `second` verify, and each stops verifying with any one hash's byte flipped."""
    root = merkle.root(hashes[:second])
    proof = s.tree.inclusion_proof(index, second)
    verify_inclusion(index, second, hashes[index], proof, root)
    for i in range(len(proof)):
        with pytest.raises(ProofError):
            verify_inclusion(index, second, hashes[index], [*proof[:i], flip(proof[i])], root)
    with pytest.raises(ProofError):
        verify_inclusion(index, second, flip(hashes[index]), proof, root)
    if first == second:
        assert s.tree.consistency_proof(first, second) == []
        return
    old = merkle.root(hashes[:first])
    proof = s.tree.consistency_proof(first, second)
    verify_consistency(first, second, old, root, proof)
    for i in range(len(proof)):
        with pytest.raises(ProofError):
            verify_consistency(first, second, old, root, [*proof[:i], flip(proof[i])])


# -- leaves ---------------------------------------------------------------------------------


def test_leaf_bytes_are_the_chains_bytes_as_one_json_array(store: EventStore) -> None:
    new = [
        ev("a", 1, at=T0 + 0.123456789012345, path="/é", n=None, z=1.5),
        NewEvent("b", 1, "Started", 3, T0 + 1e-9, {"z": [1, {"y": 2}], "a": "x"}),
    ]
    with store.write_transaction() as conn:
        head = store.head(conn)
        inlined = leaf_hashes_of(chain_rows(head, new))
        stored = store.insert(conn, head, new)
    assert inlined == [leaf_hash(leaf_bytes(e)) for e in stored]
    for e in stored:
        leaf = leaf_bytes(e)
        fields = [1, e.position, e.stream_id, e.version, e.type, e.schema_version]
        assert orjson.loads(leaf) == json.loads(leaf) == [*fields, e.recorded_at, e.data()]
        assert leaf.endswith(b"," + e.payload + b"]")  # the stored payload, byte for byte
    assert json.loads(leaf_bytes(stored[0]))[6] == T0 + 0.123456789012345  # full precision
    assert store.tree.leaves(0, 2) == [leaf_bytes(e) for e in stored]
    assert store.tree.leaves(1, 2) == [leaf_bytes(stored[1])]
    assert store.tree.leaves(2, 2) == []


# -- the tree follows the log ---------------------------------------------------------------


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    batches=st.lists(st.integers(0, 3 * BLOCK), min_size=1, max_size=4),
    picks=st.lists(st.integers(0, 2**20), min_size=14, max_size=14),
)
def test_the_tree_is_the_rfc_tree_of_the_leaves_after_any_appends(
    store: EventStore, batches: list[int], picks: list[int]
) -> None:
    """Appends accumulate across examples (one store per test), so later examples meet
    sizes of several blocks and stored levels above the first. `picks` choose the sizes and
    proofs checked (taken modulo the log's size: what hypothesis draws cannot depend on it)."""
    sizes = [store.tree.size()]
    for n in batches:
        append(store, batch(sizes[-1], n))
        sizes.append(sizes[-1] + n)
    after = sizes[-1]
    hashes = assert_tree_matches(store, [*sizes, *(p % (after + 1) for p in picks[:5])])
    for start, end in merkle.perfect_ranges(0, after):
        assert store.tree.subtree_hash(start, end) == merkle.root(hashes[start:end])
    for a, b, c in zip(picks[5::3], picks[6::3], picks[7::3], strict=True):
        if after:
            second = 1 + a % after
            check_proofs(store, hashes, b % second, 1 + c % second, second)


def test_every_proof_of_a_tree_of_several_stored_levels_verifies(store: EventStore) -> None:
    size = 4 * BLOCK + 2
    for n in (1, BLOCK - 1, 2 * BLOCK + 1, BLOCK + 1):
        append(store, batch(store.tree.size(), n))
    hashes = assert_tree_matches(store)
    assert len(hashes) == size
    assert {level for level, _, _ in node_rows(store)} == {STORED_LEVEL, STORED_LEVEL + 1,
                                                           STORED_LEVEL + 2}  # fmt: skip
    for second in (1, 2, BLOCK, BLOCK + 1, 2 * BLOCK, size):
        for index in range(second):
            check_proofs(store, hashes, index, max(1, index), second)


def test_stored_nodes_are_the_rfc_subtrees_of_the_leaves(store: EventStore) -> None:
    append(store, batch(0, 5 * BLOCK + 7))
    hashes = leaf_hashes(store)
    want = [
        (level, i, merkle.root(hashes[i << level : (i + 1) << level]))
        for level in range(STORED_LEVEL, len(hashes).bit_length())
        for i in range(len(hashes) >> level)
    ]
    assert node_rows(store) == sorted(want)
    for level in range(len(hashes).bit_length()):
        for i in range(len(hashes) >> level):
            start, end = i << level, (i + 1) << level
            assert store.tree.subtree_hash(start, end) == merkle.root(hashes[start:end])


def rfc_nodes(hashes: list[bytes], size: int) -> list[tuple[int, int, bytes]]:
    """The perfect subtrees of STORED_LEVEL and up over the first `size` leaves, computed by
    domain.merkle alone: what `log_nodes` should hold once those leaves are integrated."""
    return [
        (level, i, merkle.root(hashes[i << level : (i + 1) << level]))
        for level in range(STORED_LEVEL, size.bit_length())
        for i in range(size >> level)
    ]


def nodes_of(s: EventStore) -> list[tuple[int, int, bytes]]:
    return node_rows(s, integrate=False)


def test_integration_stores_the_rfc_nodes_once_and_changes_no_root(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appends store no nodes (below the writer's backstop), yet every read covers every
    event, recomputing what is not stored; integration then stores exactly the RFC nodes of
    the whole blocks; an integrator that hashed the same leaves meanwhile writes nothing."""
    append(store, batch(0, 3 * BLOCK + 5))
    assert node_rows(store, integrate=False) == []
    before = [store.tree.root(n) for n in range(3 * BLOCK + 6)]
    hashes = assert_tree_matches(store)
    check_proofs(store, hashes, 2 * BLOCK + 1, BLOCK + 3, 3 * BLOCK + 5)
    other = EventStore(store.url)
    try:
        assert other.tree.pending()[:2] == (0, 3 * BLOCK)
        assert store.integrate_tree() == 3 * BLOCK
        # `other` hashed the same leaves before `store` stored their nodes: it stores none.
        monkeypatch.setattr(other.tree, "pending", lambda *_: (0, 3 * BLOCK, nodes_of(store)))
        assert other.integrate_tree() == 3 * BLOCK
    finally:
        other.dispose()
    assert node_rows(store, integrate=False) == sorted(rfc_nodes(hashes, 3 * BLOCK))
    assert [store.tree.root(n) for n in range(3 * BLOCK + 6)] == before
    append(store, batch(100, BLOCK))
    assert store.integrate_tree() == 4 * BLOCK
    assert_tree_matches(store)


def test_integrating_never_waits_for_the_events_writer(store: EventStore) -> None:
    """The integrator hashes from a snapshot and writes only `log_nodes` (SQLite: the tree's
    own file), so it goes through while the events' writer holds its lock: on one SQLite file
    it would wait for that lock, which a busy writer hardly ever lets go."""
    append(store, batch(0, 2 * BLOCK + 1))
    with store.write_transaction() as conn:
        store.append(conn, store.head(conn), batch(50, BLOCK))
        started = time.monotonic()
        assert store.integrate_tree() == 2 * BLOCK  # what was committed before
        assert time.monotonic() - started < 5
    assert store.integrate_tree() == 3 * BLOCK


def test_the_writer_integrates_a_lag_past_its_backstop(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no integrator running, the writer stores the nodes itself whenever the lag
    would pass TREE_BACKSTOP, so a read never recomputes more leaves than that."""
    monkeypatch.setattr(store_module, "TREE_BACKSTOP", 2 * BLOCK)
    for i, n in enumerate([BLOCK, 5, BLOCK, 2 * BLOCK + 3, 1, 3 * BLOCK, BLOCK - 1, 7]):
        append(store, batch(100 * i, n))
        covered = store.tree.integrated()
        assert store.tree.size() - covered <= 2 * BLOCK
    hashes = assert_tree_matches(store)
    assert covered > 0
    assert node_rows(store, integrate=False) == sorted(rfc_nodes(hashes, covered))


def test_a_rolled_back_append_leaves_no_trace_in_the_tree(store: EventStore) -> None:
    append(store, batch(0, BLOCK - 1))
    with pytest.raises(RuntimeError), store.write_transaction() as conn:
        store.append(conn, store.head(conn), batch(100, 3))  # completes a stored block
        raise RuntimeError("the writer fails before its commit")
    assert node_rows(store) == []
    other = EventStore(store.url)
    try:  # another writer takes the log to the rolled-back append's size, with other leaves
        append(other, batch(200, 3))
    finally:
        other.dispose()
    append(store, batch(250, BLOCK))  # completes stored nodes over both appends
    assert_tree_matches(store)
    # A stale head's append is refused whole, the tree's nodes with it.
    stale = store.head_digest()
    append(store, batch(300, 1))
    rows = node_rows(store)
    with pytest.raises(StaleWriteError), store.write_transaction() as conn:
        store.append(conn, stale, batch(400, BLOCK))
    assert node_rows(store) == rows
    assert_tree_matches(store)


def test_two_store_objects_appending_alternately_keep_one_tree(store: EventStore) -> None:
    other = EventStore(store.url)
    try:
        for i, n in enumerate([3, 1, BLOCK, 5, 2 * BLOCK - 1, 1, 0, 7, BLOCK + 2]):
            append(store if i % 2 else other, batch(store.tree.size(), n))
            assert other.tree.latest() == store.tree.latest()
        hashes = assert_tree_matches(store)
        assert_tree_matches(other)
        check_proofs(other, hashes, 5, 3, len(hashes))
    finally:
        other.dispose()


def test_rows_written_without_the_tree_join_it_at_the_next_append(store: EventStore) -> None:
    """An older writer (or an insider) appends rows the tree did not see: the next append
    through a store puts them in the tree before its own leaves."""
    append(store, batch(0, BLOCK + 3))
    ours = EventStore(store.url)
    try:
        rows = chain_rows(ours.head_digest(), batch(50, 2 * BLOCK))
        with ours.write_transaction() as conn:
            append_rows(conn, events_table, EVENT_COLUMNS, rows)  # events only, no tree
        append(store, batch(100, 2))
        assert_tree_matches(store)
    finally:
        ours.dispose()


# -- upgrade: a log without its tree --------------------------------------------------------


def test_opening_a_log_without_its_tree_builds_the_same_tree(store: EventStore) -> None:
    append(store, batch(0, 7 * BLOCK + 5))
    nodes, latest = node_rows(store), store.tree.latest()
    with store.tree.nodes.begin() as conn:  # as a database from before the tree
        conn.exec_driver_sql("DROP TABLE log_nodes")
    upgraded = EventStore(store.url)
    try:
        upgraded.create_schema()
        assert node_rows(upgraded) == nodes
        assert upgraded.tree.latest() == latest
        append(upgraded, batch(500, BLOCK))
        assert_tree_matches(upgraded)
    finally:
        upgraded.dispose()


def test_a_tree_caught_up_in_chunks_is_the_same_tree(store: EventStore) -> None:
    append(store, batch(0, 9 * BLOCK + 1))
    nodes, latest = node_rows(store), store.tree.latest()
    with store.tree.nodes.begin() as conn:
        conn.exec_driver_sql("DROP TABLE log_nodes")
        log_nodes_table.create(conn)
    fresh = EventStore(store.url)
    try:
        # Reads before the catch-up recompute what is not stored yet.
        assert fresh.tree.latest() == latest
        check_proofs(fresh, leaf_hashes(fresh), 17, 3, latest[0])
        covered = [fresh.tree.integrate(limit=2 * BLOCK + 3) for _ in range(5)]
        assert covered == [2 * BLOCK, 4 * BLOCK, 6 * BLOCK, 8 * BLOCK, 9 * BLOCK]
        assert node_rows(fresh) == nodes
        assert_tree_matches(fresh)
    finally:
        fresh.dispose()


# -- the database's own guard, and the reads' terms -----------------------------------------


def test_the_database_refuses_update_and_delete_on_the_tree(store: EventStore) -> None:
    append(store, batch(0, 2 * BLOCK))
    before = node_rows(store)
    refused = [
        "UPDATE log_nodes SET hash = hash || hash",
        f"UPDATE log_nodes SET idx = idx + 1 WHERE level = {STORED_LEVEL}",
        "DELETE FROM log_nodes WHERE idx = 1",
        "DELETE FROM log_nodes",
    ]
    if not store.is_sqlite:
        refused.append("TRUNCATE log_nodes")
    # A client of the database with none of the store's connection setup: what is refused is
    # refused by the database itself (SQLite: the tree's own file).
    engine = plain_engine(store) if not store.is_sqlite else create_engine(store.tree.nodes.url)
    try:
        for sql in refused:
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.exec_driver_sql(sql)
    finally:
        engine.dispose()
    assert node_rows(store) == before


def test_arguments_outside_the_tree_are_refused_by_name(store: EventStore) -> None:
    append(store, batch(0, 5))
    tree = store.tree
    refusals: list[tuple[Any, str]] = [
        (lambda: tree.root(6), "size"),
        (lambda: tree.root(-1), "size"),
        (lambda: tree.inclusion_proof(5, 5), "index"),
        (lambda: tree.inclusion_proof(0, 6), "size"),
        (lambda: tree.inclusion_proof(-1, 3), "index"),
        (lambda: tree.inclusion_proof(0, 0), "size"),
        (lambda: tree.consistency_proof(0, 3), "first"),
        (lambda: tree.consistency_proof(4, 3), "first"),
        (lambda: tree.consistency_proof(2, 6), "second"),
        (lambda: tree.subtree_hash(0, 3), "start"),
        (lambda: tree.subtree_hash(2, 6), "start"),
        (lambda: tree.subtree_hash(4, 8), "end"),
        (lambda: tree.leaves(3, 2), "start"),
        (lambda: tree.leaves(-1, 2), "start"),
        (lambda: tree.leaves(0, 6), "end"),
    ]
    for call, field in refusals:
        with pytest.raises(TreeRangeError) as err:
            call()
        assert err.value.field == field, (err.value, field)
    assert tree.root(0) == merkle.EMPTY_ROOT
    assert tree.subtree_hash(4, 5) == leaf_hash(tree.leaves(4, 5)[0])
