"""Portable bulk upsert for SQLite and PostgreSQL.

`INSERT ... ON CONFLICT (...) DO UPDATE SET col = excluded.col` is the same SQL on both;
only the driver's parameter mark differs. It runs as one driver-level executemany, because
SQLAlchemy's per-row parameter processing cost more than the writes on the projection path.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table


@lru_cache(maxsize=256)
def _upsert_sql(
    dialect: str,
    table: str,
    cols: tuple[str, ...],
    keys: tuple[str, ...],
    add: frozenset[str],
    keep: frozenset[str],
) -> str:
    mark = "?" if dialect == "sqlite" else "%s"
    quoted = ", ".join(f'"{c}"' for c in cols)
    sets = [
        f'"{c}" = {table}."{c}" + excluded."{c}"' if c in add else f'"{c}" = excluded."{c}"'
        for c in cols
        if c not in keys and c not in keep
    ]
    conflict = ", ".join(f'"{k}"' for k in keys)
    action = f"DO UPDATE SET {', '.join(sets)}" if sets else "DO NOTHING"
    return (
        f"INSERT INTO {table} ({quoted}) VALUES ({', '.join([mark] * len(cols))}) "
        f"ON CONFLICT ({conflict}) {action}"
    )


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
    if rows:
        sql = _upsert_sql(conn.dialect.name, table.name, cols, keys, add, keep)
        conn.exec_driver_sql(sql, rows)


@lru_cache(maxsize=64)
def _update_sql(dialect: str, table: str, cols: tuple[str, ...], keys: tuple[str, ...]) -> str:
    mark = "?" if dialect == "sqlite" else "%s"
    sets = ", ".join(f'"{c}" = {mark}' for c in cols)
    where = " AND ".join(f'"{k}" = {mark}' for k in keys)
    return f"UPDATE {table} SET {sets} WHERE {where}"


def update_rows(
    conn: Connection,
    table: Table,
    cols: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
    keys: tuple[str, ...],
) -> None:
    """Set only `cols` on existing rows; each row is the new values of `cols`, then its key.
    (An index none of whose columns is set is left alone, where an upsert rewrites all.)"""
    if rows:
        conn.exec_driver_sql(_update_sql(conn.dialect.name, table.name, cols, keys), rows)


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
