"""The raw sqlite3 baselines: rows/s the stdlib driver appends with executemany (the store's
append ceiling), and rows/s of a plain SELECT scan in position order that fetches, decodes
payloads with orjson, or recomputes the hash chain (the ceilings of replay and verify)."""

from __future__ import annotations

import hashlib
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.event_rows import INSERT_SQL, EventRows, connect_ro, connect_rw
from persistence.store import GENESIS_HASH

SELECT_SQL = (
    "SELECT position, stream_id, version, type, schema_version, recorded_at, payload, hash "
    "FROM events ORDER BY position"
)


def measure_raw_sqlite_executemany(
    n_rows: int = 300_000,
    batch: int = 1000,
    *,
    max_duration_s: float = 30.0,
    synchronous: str = "NORMAL",
    n_streams: int = 1000,
    db_dir: str | None = None,
) -> dict[str, Any]:
    """Append `n_rows` rows to an empty table in `batch`-row transactions.

    The rate falls as the table grows (each batch dirties ~one UNIQUE(stream_id, version)
    index page per stream it touches, and each commit writes them all to the WAL), so the
    rate is for a fixed row count, not a fixed time; `max_duration_s` is only a safety cap
    (`capped` says if it cut the run short). Compare with the service at the same row and
    stream counts.
    """
    with tempfile.TemporaryDirectory(dir=db_dir, prefix="bench-sqlite-") as d:
        conn = connect_rw(Path(d) / "events.db", synchronous)
        try:
            gen = EventRows(n_streams)
            timed = 0.0
            rows_done = 0
            wall0 = time.perf_counter()
            deadline = wall0 + max_duration_s
            while rows_done < n_rows and time.perf_counter() < deadline:
                rows = gen.take(min(batch, n_rows - rows_done))
                t = time.perf_counter()
                conn.execute("BEGIN")
                conn.executemany(INSERT_SQL, rows)
                conn.execute("COMMIT")
                timed += time.perf_counter() - t
                rows_done += len(rows)
            wall = time.perf_counter() - wall0
        finally:
            conn.close()
        db_bytes = sum(f.stat().st_size for f in Path(d).iterdir())
    return {
        "rate": rows_done / timed if timed > 0 else 0.0,
        "rows": rows_done,
        "seconds": timed,
        "wall_rate_incl_rowgen": rows_done / wall if wall > 0 else 0.0,
        "batch": batch,
        "synchronous": synchronous,
        "n_streams": n_streams,
        "capped": rows_done < n_rows,
        "db_bytes": db_bytes,
    }


def raw_sqlite_executemany_rate(n_rows: int = 300_000, batch: int = 1000) -> float:
    """Rows/s of stdlib sqlite3 executemany into the events table, commit per batch."""
    return float(measure_raw_sqlite_executemany(n_rows, batch)["rate"])


Fetch = Callable[[int], list[Any]]


def _fetch_only(fetch: Fetch, chunk: int, deadline: float) -> tuple[int, int]:
    rows = 0
    while batch := fetch(chunk):
        rows += len(batch)
        if time.perf_counter() > deadline:
            break
    return rows, 0


def _decode_payloads(fetch: Fetch, chunk: int, deadline: float) -> tuple[int, int]:
    rows = 0
    loads = orjson.loads
    while batch := fetch(chunk):
        for r in batch:
            loads(r[6])
        rows += len(batch)
        if time.perf_counter() > deadline:
            break
    return rows, 0


def _recompute_chain(fetch: Fetch, chunk: int, deadline: float) -> tuple[int, int]:
    """The store's `chain_hash` inlined, as `verify` inlines it: a call per row would measure
    the call, not the hashing."""
    rows = mismatches = 0
    sha, dumps = hashlib.sha256, orjson.dumps
    prev = GENESIS_HASH
    while batch := fetch(chunk):
        for pos, sid, ver, typ, sv, rec, payload, h in batch:
            prev = sha(prev + dumps([pos, sid, ver, typ, sv, rec]) + payload).digest()
            if prev != h:
                mismatches += 1
                prev = h  # resync so one bad row counts once
        rows += len(batch)
        if time.perf_counter() > deadline:
            break
    return rows, mismatches


SCANS = {"fetch": _fetch_only, "orjson": _decode_payloads, "sha256": _recompute_chain}


def _scan_once(db_path: str | Path, mode: str, chunk: int, deadline: float) -> dict[str, Any]:
    if mode not in SCANS:
        raise ValueError(f"unknown scan mode {mode!r}")
    conn: sqlite3.Connection = connect_ro(db_path)
    try:
        t0 = time.perf_counter()
        cur = conn.execute(SELECT_SQL)
        rows, mismatches = SCANS[mode](cur.fetchmany, chunk, deadline)
        secs = time.perf_counter() - t0
    finally:
        conn.close()
    return {"rows": rows, "seconds": secs, "mismatches": mismatches}


def measure_raw_select(
    db_path: str | Path,
    mode: str = "orjson",
    *,
    duration_s: float = 10.0,
    chunk: int = 10_000,
) -> dict[str, Any]:
    """Scan the whole table in position order, repeating passes while within `duration_s`
    (a pass is cut at the budget's end). `mode`: fetch | orjson | sha256. Returns the median
    pass rate as `rate`, plus best, passes, rows per pass and hash mismatches (sha256)."""
    t_end = time.perf_counter() + duration_s
    passes: list[dict[str, Any]] = []
    while True:
        passes.append(_scan_once(db_path, mode, chunk, t_end))
        if time.perf_counter() >= t_end:
            break
    return summarize_passes(passes, mode)


def summarize_passes(passes: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    """A timed scan's passes (rows, seconds, mismatches each) as `measure_raw_select`
    returns them."""
    rates = [p["rows"] / p["seconds"] for p in passes if p["seconds"] > 0]
    return {
        "rate": statistics.median(rates) if rates else 0.0,
        "best": max(rates, default=0.0),
        "passes": len(passes),
        "rows": passes[0]["rows"],
        "mismatches": passes[0]["mismatches"],
        "mode": mode,
    }


def raw_select_orjson_rate(db_path: str | Path, duration_s: float = 10.0) -> float:
    """Rows/s: SELECT all rows in position order (fetchmany 10k) + orjson.loads(payload)."""
    return float(measure_raw_select(db_path, "orjson", duration_s=duration_s)["rate"])


def raw_select_sha256_rate(db_path: str | Path, duration_s: float = 10.0) -> float:
    """Rows/s: SELECT all rows in position order (fetchmany 10k) + recompute the hash chain."""
    return float(measure_raw_select(db_path, "sha256", duration_s=duration_s)["rate"])
