"""Portable bulk upsert and update for SQLite and PostgreSQL.

`INSERT ... ON CONFLICT (...) DO UPDATE SET col = excluded.col` is the same SQL on both;
only the driver's parameter mark differs. On SQLite it runs as one driver-level executemany
(SQLAlchemy's per-row parameter processing cost more than the writes). On PostgreSQL an
executemany is still one statement per row, each a round of the server's executor: there a
batch is one statement, its rows sent as one array per column and spread back into rows by
`unnest` (a statement of a few parameters, which psycopg parses once and caches, where a
multi-row VALUES of thousands of marks was parsed again each time), its rows sharing a key
merged first (`merged`) exactly as applying them one after another would leave the row,
since one statement may not update a row twice. Into fresh tables (a bulk load's, not yet
swapped in: every row is new) PostgreSQL takes the rows by `COPY` instead (`fresh`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table

from persistence.pgcopy import copy_rows, pg_types

# The execution option a bulk load sets on its connection: its tables are fresh, so its
# upserts meet no row and PostgreSQL may take them by COPY.
FRESH = "ledger_fresh_tables"


def merged(
    rows: Sequence[tuple[Any, ...]],
    key_at: tuple[int, ...],
    add_at: tuple[int, ...],
    keep_at: tuple[int, ...],
) -> Sequence[tuple[Any, ...]]:
    """`rows` with those sharing a key (the columns at `key_at`) folded into one, as an
    upsert of each in turn leaves the row: the columns at `add_at` summed (NULL if any is
    NULL, as SQL's `+`), those at `keep_at` the first row's (an upsert leaves them as they
    are), every other column the last row's. Rows stay in the order of their key's first."""
    out: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for r in rows:
        k = tuple(r[i] for i in key_at)
        have = out.get(k)
        if have is None:
            out[k] = r
            continue
        m = list(r)
        for i in keep_at:
            m[i] = have[i]
        for i in add_at:
            m[i] = None if have[i] is None or r[i] is None else have[i] + r[i]
        out[k] = tuple(m)
    return rows if len(out) == len(rows) else list(out.values())


@lru_cache(maxsize=256)
def _upsert_sql(
    dialect: str,
    table: str,
    cols: tuple[str, ...],
    keys: tuple[str, ...],
    add: frozenset[str],
    keep: frozenset[str],
    source: str = "",
) -> str:
    """The upsert of one row (SQLite's executemany), or of the rows `source` selects."""
    mark = "?" if dialect == "sqlite" else "%s"
    quoted = ", ".join(f'"{c}"' for c in cols)
    sets = [
        f'"{c}" = {table}."{c}" + excluded."{c}"' if c in add else f'"{c}" = excluded."{c}"'
        for c in cols
        if c not in keys and c not in keep
    ]
    conflict = ", ".join(f'"{k}"' for k in keys)
    action = f"DO UPDATE SET {', '.join(sets)}" if sets else "DO NOTHING"
    rows = source or f"VALUES ({', '.join([mark] * len(cols))})"
    return f"INSERT INTO {table} ({quoted}) {rows} ON CONFLICT ({conflict}) {action}"


@lru_cache(maxsize=256)
def _unnest(types: tuple[str, ...]) -> str:
    """Rows from one array per column, each sent in binary (%b) and cast to its type."""
    return "SELECT * FROM unnest(" + ", ".join(f"%b::{ty}[]" for ty in types) + ")"


def _arrays(types: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """`rows` as one list per column (psycopg sends a list as an array). A float column's
    whole numbers (JSON gives ints) become floats: an array holds one type."""
    out: list[list[Any]] = []
    for ty, values in zip(types, zip(*rows, strict=True), strict=True):
        if ty == "float8":
            out.append([None if v is None else float(v) for v in values])
        else:
            out.append(list(values))
    return out


def upsert_rows(
    conn: Connection,
    table: Table,
    cols: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
    keys: tuple[str, ...],
    add: frozenset[str] = frozenset(),
    keep: frozenset[str] = frozenset(),
) -> None:
    """`upsert` for rows already built as tuples in the order of `cols`: the projections'
    hot tables (every session of a rebuild passes through them) build them so, without a
    dict per row to convert back."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "sqlite":
        conn.exec_driver_sql(_upsert_sql(dialect, table.name, cols, keys, add, keep), rows)
        return
    if conn.get_execution_options().get(FRESH):
        copy_rows(conn, table, cols, rows)  # fresh tables: nothing to merge or conflict with
        return
    at = cols.index
    rows = merged(
        rows,
        tuple(at(k) for k in keys),
        tuple(at(c) for c in cols if c in add and c not in keys and c not in keep),
        tuple(at(c) for c in cols if c in keep and c not in keys),
    )
    types = pg_types(table, cols)
    sql = _upsert_sql(dialect, table.name, cols, keys, add, keep, _unnest(types))
    conn.exec_driver_sql(sql, tuple(_arrays(types, rows)))


def fresh(conn: Connection) -> Connection:
    """`conn` marked as writing into fresh tables only (a bulk load's): see FRESH."""
    return conn.execution_options(**{FRESH: True})


@lru_cache(maxsize=64)
def _update_sql(dialect: str, table: str, cols: tuple[str, ...], keys: tuple[str, ...]) -> str:
    mark = "?" if dialect == "sqlite" else "%s"
    sets = ", ".join(f'"{c}" = {mark}' for c in cols)
    where = " AND ".join(f'"{k}" = {mark}' for k in keys)
    return f"UPDATE {table} SET {sets} WHERE {where}"


@lru_cache(maxsize=64)
def _pg_update_sql(table: Table, cols: tuple[str, ...], n_set: int, only_if: str = "") -> str:
    """`UPDATE ... FROM (unnest(...))`: the first `n_set` columns set by the others."""
    names = ", ".join(f'"{c}"' for c in cols)
    sets = ", ".join(f'"{c}" = v."{c}"' for c in cols[:n_set])
    where = " AND ".join(f'{table.name}."{c}" = v."{c}"' for c in cols[n_set:])
    source = _unnest(pg_types(table, cols))
    return f"UPDATE {table.name} SET {sets} FROM ({source}) AS v ({names}) WHERE {where}{only_if}"


def update_rows(
    conn: Connection,
    table: Table,
    cols: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
    keys: tuple[str, ...],
) -> None:
    """Set only `cols` on existing rows; each row is the new values of `cols`, then its key.
    (An index none of whose columns is set is left alone, where an upsert rewrites all.)
    Of rows sharing a key, the last one's values are set, as in order."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "sqlite":
        conn.exec_driver_sql(_update_sql(dialect, table.name, cols, keys), rows)
        return
    n = len(cols)
    # Every column "set" and none kept: the last row of a key wins.
    rows = merged(rows, tuple(range(n, n + len(keys))), (), ())
    every = (*cols, *keys)
    arrays = _arrays(pg_types(table, every), rows)
    conn.exec_driver_sql(_pg_update_sql(table, every, n), tuple(arrays))


def raise_rows(
    conn: Connection, table: Table, col: str, rows: Sequence[tuple[Any, Any]], key: str
) -> None:
    """Raise `col` to each row's value (rows: value, key) where it is NULL or smaller: a
    running maximum. Of rows sharing a key, the greatest value counts, as in order."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "sqlite":
        conn.exec_driver_sql(
            f'UPDATE {table.name} SET "{col}" = ? WHERE ("{col}" IS NULL OR "{col}" < ?) '
            f'AND "{key}" = ?',
            [(v, v, k) for v, k in rows],
        )
        return
    top: dict[Any, Any] = {}
    for v, k in rows:
        if k not in top or v > top[k]:
            top[k] = v
    only_if = f' AND ({table.name}."{col}" IS NULL OR {table.name}."{col}" < v."{col}")'
    arrays = _arrays(pg_types(table, (col, key)), [(v, k) for k, v in top.items()])
    conn.exec_driver_sql(_pg_update_sql(table, (col, key), 1, only_if), tuple(arrays))


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: list[str],
    add: frozenset[str] = frozenset(),
    keep: frozenset[str] = frozenset(),
) -> None:
    """Insert `rows`; on a key conflict overwrite each column, increment those in `add`,
    and leave those in `keep` as they are."""
    if not rows:
        return
    cols = tuple(rows[0])
    upsert_rows(
        conn, table, cols, [tuple(r[c] for c in cols) for r in rows], tuple(keys), add, keep
    )
