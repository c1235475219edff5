"""The log's rows as verify reads them: plain driver rows (position, stream, version, type,
schema version, recorded time, payload, chain hash) in position order, one keyset page at a
time, for the chain's checks (replay/verify.py) and the tree's parts (replay/tree_jobs.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from sqlalchemy import Connection

from persistence.store import EventStore

SELECT_AFTER = (
    "SELECT position, stream_id, version, type, schema_version, recorded_at, payload, hash "
    "FROM events WHERE position > {mark} ORDER BY position LIMIT {mark}"
)
CHUNK = 20_000
Row = tuple[int, str, int, str, int, float, bytes, bytes]


def read_chunks(
    store: EventStore, chunk: int = CHUNK, until: int | None = None
) -> Iterator[list[Row]]:
    """The log in position order as plain driver rows, one keyset page at a time (flat
    memory on SQLite and PostgreSQL alike), all read in one transaction; up to position
    `until` when given (a pass planned on the log as it was, beside a live writer)."""
    with store.read_engine.connect() as conn, conn.begin():
        yield from pages(conn, 0, chunk, until=until)


def pages(
    conn: Connection, after: int, chunk: int, until: int | None = None, count: int | None = None
) -> Iterator[list[Row]]:
    """The rows after position `after`: to the end, to position `until`, or `count` rows."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = SELECT_AFTER.format(mark=mark)
    # The driver's cursor, not SQLAlchemy Rows: per-row wrapping cost more than hashing.
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        left = count
        while left is None or left > 0:
            cur.execute(sql, (after, chunk if left is None else min(chunk, left)))
            rows = cast(list[Row], cur.fetchall())
            if rows and not isinstance(rows[0][7], bytes):  # drivers giving memoryview
                rows = [(*r[:6], bytes(r[6]), bytes(r[7])) for r in rows]
            full = len(rows) == chunk
            if until is not None and rows and rows[-1][0] >= until:
                rows, full = [r for r in rows if r[0] <= until], False
            if rows:
                yield rows
            if not full and left is None:
                return
            if left is not None:
                left = left - len(rows) if rows else 0
            after = rows[-1][0] if rows else after
    finally:
        cur.close()
