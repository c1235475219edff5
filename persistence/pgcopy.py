"""Rows appended inside the caller's write transaction, the one way every table of ours takes
a batch of new rows: PostgreSQL's binary `COPY ... FROM STDIN`, SQLite's driver-level
`executemany`. The store's events, tree nodes, sealed values and idempotency keys
(persistence/store.py, tree.py, sealing.py) and the views' bulk loads (projections/sql.py)
all come here.

psycopg runs an `executemany` INSERT as one statement per row; a COPY sends the rows as one
stream, which PostgreSQL takes at a fraction of the per-row cost (measured on issue #19's
bulk ingest). The COPY runs on the transaction's own driver connection, so it commits or
rolls back with everything else the transaction did. A failure comes out as the SQLAlchemy
exception the same INSERT would have raised (a unique violation as `IntegrityError`, a
database that cannot write as `OperationalError`), so the store's mapping to
`StaleWriteError` and `StoreUnavailableError` holds on both stores. Column types come from
the SQLAlchemy `Table`: binary COPY sends each value in its column's own wire format.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import psycopg
from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


@lru_cache(maxsize=128)
def pg_types(table: Table, cols: tuple[str, ...]) -> tuple[str, ...]:
    """The columns' PostgreSQL types (SQLAlchemy's FLOAT is PostgreSQL's float8)."""
    names = (table.c[c].type.compile(dialect=_PG).lower() for c in cols)
    return tuple("float8" if n == "float" else n for n in names)


@lru_cache(maxsize=64)
def _insert_sql(table: Table, cols: tuple[str, ...]) -> str:
    quoted = ", ".join(f'"{c}"' for c in cols)
    return f"INSERT INTO {table.name} ({quoted}) VALUES ({', '.join(['?'] * len(cols))})"


def append_rows(
    conn: Connection, table: Table, cols: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> None:
    """Append `rows` (tuples in the order of `cols`) to `table` in `conn`'s transaction. The
    table and columns are the code's own, never input."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_insert_sql(table, cols), rows)
    else:
        copy_rows(conn, table, cols, rows)


def copy_rows(
    conn: Connection, table: Table, cols: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> None:
    """`append_rows` on PostgreSQL: one binary COPY."""
    quoted = ", ".join(f'"{c}"' for c in cols)
    sql = f"COPY {table.name} ({quoted}) FROM STDIN (FORMAT BINARY)"
    driver: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
    try:
        with driver.cursor() as cur, cur.copy(sql) as copy:
            copy.set_types(list(pg_types(table, cols)))
            write = copy.write_row
            for row in rows:
                write(row)
    except psycopg.Error as err:
        raise DBAPIError.instance(sql, None, err, psycopg.Error) from err
