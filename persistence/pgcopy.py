"""Rows appended with PostgreSQL's binary `COPY ... FROM STDIN` inside the caller's SQLAlchemy
write transaction: the event rows, the Merkle tree's nodes, sealed values and idempotency
keys of a commit group (persistence/store.py, tree.py, sealing.py).

psycopg runs an `executemany` INSERT as one statement per row; a COPY sends the group's
rows as one stream, which PostgreSQL takes at a fraction of the per-row cost (measured on
issue #19's bulk ingest). The COPY runs on the transaction's own driver connection, so it
commits or rolls back with everything else the transaction did. A failure comes out as the
SQLAlchemy exception the same INSERT would have raised (a unique violation as
`IntegrityError`, a database that cannot write as `OperationalError`), so the store's
mapping to `StaleWriteError` and `StoreUnavailableError` holds for both paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

# Each table's columns and their exact PostgreSQL types (binary COPY sends each value in its
# column type's own wire format: an int4 column must get int4), as persistence/schema.py
# and sealing.py declare them.
EVENTS = (
    "events",
    ("position", "stream_id", "version", "type", "schema_version", "recorded_at", "payload",
     "hash"),
    ("int8", "varchar", "int4", "varchar", "int4", "float8", "bytea", "bytea"),
)  # fmt: skip
LOG_NODES = ("log_nodes", ("level", "idx", "hash"), ("int4", "int8", "bytea"))
SEALED_VALUES = (
    "sealed_values",
    ("position", "slot", "salt", "value"),
    ("int8", "varchar", "bytea", "bytea"),
)
IDEMPOTENCY_KEYS = (
    "idempotency_keys",
    ("key", "fingerprint", "result", "position"),
    ("varchar", "varchar", "bytea", "int8"),
)
Target = tuple[str, tuple[str, ...], tuple[str, ...]]


def copy_rows(conn: Connection, target: Target, rows: Sequence[Sequence[Any]]) -> None:
    """Append `rows` (tuples in the target's column order) to the target's table in the
    transaction `conn` is in. The table and columns are this module's constants, never input."""
    if not rows:
        return
    table, columns, types = target
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    driver: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
    try:
        with driver.cursor() as cur, cur.copy(sql) as copy:
            copy.set_types(types)
            write = copy.write_row
            for row in rows:
                write(row)
    except psycopg.Error as err:
        raise DBAPIError.instance(sql, None, err, psycopg.Error) from err
