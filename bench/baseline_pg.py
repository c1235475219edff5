"""The raw PostgreSQL baselines, psycopg 3 with no SQLAlchemy and no ledger code: rows/s that
`COPY ... FROM STDIN` appends to a table shaped like the ledger's `events` (its DDL compiled
from persistence/schema.py), one committed COPY per batch; and rows/s of a server-side
cursor's SELECT in position order with each payload decoded by orjson."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from bench.baseline_sqlite import SCANS, SELECT_SQL, summarize_passes
from bench.event_rows import EventRows
from persistence.schema import events_table

COLUMNS = "position, stream_id, version, type, schema_version, recorded_at, payload, hash"
# Binary: no text escaping of the bytea columns on either side, the fastest COPY there is.
COPY_SQL = f"COPY events ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
COPY_TYPES = ["int8", "varchar", "int4", "varchar", "int4", "float8", "bytea", "bytea"]


def events_ddl() -> str:
    """The ledger's `events` table (its key and UNIQUE(stream_id, version)) for PostgreSQL."""
    return str(CreateTable(events_table).compile(dialect=postgresql.dialect()))


def measure_raw_copy(dsn: str, n_rows: int, batch: int, *, n_streams: int = 1000) -> dict[str, Any]:
    """COPY `n_rows` hash-chained rows (bench.event_rows, generated before the clock starts)
    into an empty `events` table, `batch` rows per COPY and a commit after each; the table is
    dropped after."""
    rows = EventRows(n_streams).take(n_rows)
    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE IF EXISTS events")
        conn.execute(events_ddl())
        conn.commit()
        t0 = time.perf_counter()
        for k in range(0, n_rows, batch):
            with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
                copy.set_types(COPY_TYPES)
                for r in rows[k : k + batch]:
                    copy.write_row(r)
            conn.commit()
        secs = time.perf_counter() - t0
        avg = conn.execute("SELECT avg(octet_length(payload)) FROM events").fetchone()
        conn.execute("DROP TABLE events")
        conn.commit()
    return {
        "rate": n_rows / secs if secs > 0 else 0.0,
        "rows": n_rows,
        "seconds": secs,
        "batch": batch,
        "payload_bytes": float(avg[0]) if avg and avg[0] is not None else 0.0,
    }


def measure_raw_select_pg(
    dsn: str, mode: str = "orjson", *, duration_s: float = 10.0, chunk: int = 10_000
) -> dict[str, Any]:
    """`measure_raw_select` on PostgreSQL: passes over the `events` table in position order
    through a server-side cursor (`chunk` rows a fetch), while within `duration_s`."""
    t_end = time.perf_counter() + duration_s
    passes: list[dict[str, Any]] = []
    while True:
        with psycopg.connect(dsn) as conn:
            t0 = time.perf_counter()
            with conn.cursor(name="bench_scan") as cur:
                cur.itersize = chunk
                cur.execute(SELECT_SQL)
                rows, mismatches = SCANS[mode](cur.fetchmany, chunk, t_end)
            secs = time.perf_counter() - t0
        passes.append({"rows": rows, "seconds": secs, "mismatches": mismatches})
        if time.perf_counter() >= t_end:
            break
    return summarize_passes(passes, mode)
