"""The views' batched writes (projections/sql.py) leave a table exactly as writing their rows
one statement at a time would, on real PostgreSQL (where a batch is one multi-row statement
with rows sharing a key merged first) and on SQLite: random rows with many duplicate keys,
onto a table that already holds some of those keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    select,
)

from persistence.schema import make_engine
from projections import sql
from projections.sql import raise_rows, update_rows, upsert_rows
from tests.conftest import PG_BINDIR
from tests.pg import PgCluster

metadata = MetaData()
cells = Table(
    "batch_cells",
    metadata,
    Column("k", String, primary_key=True),
    Column("b", BigInteger, primary_key=True, autoincrement=False),
    Column("n", Integer, nullable=False),  # added
    Column("total", Float),  # added, may be NULL
    Column("label", String),  # kept: the first writer's
    Column("seen", Float),  # set: the last writer's
)
COLS = ("k", "b", "n", "total", "label", "seen")
KEYS = ("k", "b")
ADD = frozenset({"n", "total"})
KEEP = frozenset({"label"})

# Few keys, so a batch of a dozen rows repeats some several times.
keys = st.tuples(st.sampled_from(["a", "b", "o'q", ""]), st.integers(0, 2**40).map(lambda x: x % 3))
rows = st.lists(
    st.tuples(
        keys,
        st.integers(-5, 5),
        st.one_of(st.none(), st.integers(-8, 8).map(lambda x: x / 4)),
        # PostgreSQL text cannot hold a NUL character.
        st.one_of(st.none(), st.text(st.characters(exclude_characters="\x00"), max_size=3)),
        st.one_of(st.none(), st.floats(-1e6, 1e6)),
    ).map(lambda r: (*r[0], *r[1:])),
    max_size=30,
)


@pytest.fixture(scope="module")
def pg_engine(pg: PgCluster) -> Iterator[Engine]:
    engine = make_engine(pg.create_database("batches"))
    yield engine
    engine.dispose()


def _contents(engine: Engine, table: Table) -> list[Any]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key))]


def _both_ways(engine: Engine, before: list[Any], batch: list[Any], write: Any) -> None:
    """Fill the table with `before`, then write `batch` once as a batch and once a row at
    a time (from the same start): the two tables must be equal."""
    seen = []
    for one_at_a_time in (False, True):
        with engine.begin() as conn:
            metadata.drop_all(conn)
            metadata.create_all(conn)
            upsert_rows(conn, cells, COLS, before, KEYS, ADD, KEEP)
        with engine.begin() as conn:
            for part in [[r] for r in batch] if one_at_a_time else [batch]:
                write(conn, part)
        seen.append(_contents(engine, cells))
    assert seen[0] == seen[1]


def _upsert(conn: Any, part: list[Any]) -> None:
    upsert_rows(conn, cells, COLS, part, KEYS, ADD, KEEP)


def _update(conn: Any, part: list[Any]) -> None:
    # Set two columns (one of them nullable, so a VALUES column may be all NULL) by key.
    update_rows(conn, cells, ("seen", "label"), [(r[5], r[4], r[0], r[1]) for r in part], KEYS)


def _raise(conn: Any, part: list[Any]) -> None:
    # A running maximum by a key that several rows share.
    raise_rows(conn, cells, "seen", [(r[5], r[0]) for r in part if r[5] is not None], "k")


SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# Every batched write the views use: an upsert, an update by key, a running maximum.
WRITES = (_upsert, _update, _raise)


@pytest.mark.skipif(PG_BINDIR is None, reason="no PostgreSQL server binaries")
@SETTINGS
@given(before=rows, batch=rows)
def test_batched_writes_on_postgresql_equal_one_row_at_a_time(
    pg_engine: Engine, before: list[Any], batch: list[Any]
) -> None:
    for write in WRITES:
        _both_ways(pg_engine, _dedup(before), batch, write)


@SETTINGS
@given(before=rows, batch=rows)
def test_batched_writes_on_sqlite_equal_one_row_at_a_time(
    tmp_path_factory: Any, before: list[Any], batch: list[Any]
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('b')}/t.db")
    for write in WRITES:
        _both_ways(engine, _dedup(before), batch, write)
    engine.dispose()


def test_merged_rows_are_what_applying_them_in_order_gives() -> None:
    got = sql.merged(
        [("x", 1, 1.0, "first", 10.0), ("y", 2, 2.0, "y", 5.0), ("x", 3, None, "second", 7.0)],
        key_at=(0,),
        add_at=(1, 2),
        keep_at=(3,),
    )
    assert got == [("x", 4, None, "first", 7.0), ("y", 2, 2.0, "y", 5.0)]


def _dedup(rows: list[Any]) -> list[Any]:
    """A starting table: one row per key (the first), with a count for the NOT NULL."""
    return list({r[:2]: r for r in reversed(rows)}.values())
