"""Rows shaped like the ledger's events, for the raw sqlite3 baselines: the `events` table in
plain SQL, realistic hash-chained rows (`EventRows`, `make_event_db`), and the raw sqlite3
connections the baselines and the benchmark's reads of a log open.

The table and its writes are deliberately raw sqlite3, not persistence.schema's engine: they
are the ceiling the store is measured against. The rows' hashes and payloads are the store's
own (`chain_hash`, `encode_payload`), so a scan can check them like `verify` does.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from persistence.store import GENESIS_HASH, chain_hash, encode_payload

EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    type TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    recorded_at REAL NOT NULL,
    payload BLOB NOT NULL,
    hash BLOB NOT NULL,
    UNIQUE(stream_id, version)
)
"""
INSERT_SQL = (
    "INSERT INTO events (position, stream_id, version, type, schema_version, recorded_at, "
    "payload, hash) VALUES (?,?,?,?,?,?,?,?)"
)

_TYPES = ("KeptAlive", "KeptAlive", "KeptAlive", "VisibilityChanged", "PathChanged")


def _payload(position: int, stream: int, version: int) -> bytes:
    """~120 bytes, encoded as the store encodes payloads."""
    return encode_payload(
        {
            "path": f"/app/section-{position % 97}/item-{position % 10007}",
            "visible": position % 7 != 0,
            "client_ts": 1_732_000_000.0 + position * 0.25,
            "tab": f"t-{(position * 2654435761) % 16**8:08x}",
            "seq": version,
            "session": f"s-{stream}",
        }
    )


class EventRows:
    """Generates realistic event rows in position order, chaining hashes as it goes."""

    def __init__(self, n_streams: int = 1000, t0: float = 1_732_000_000.0) -> None:
        self.n_streams = n_streams
        self.t0 = t0
        self.position = 0
        self.prev = GENESIS_HASH

    def take(self, count: int) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        prev = self.prev
        pos = self.position
        n_streams = self.n_streams
        for _ in range(count):
            pos += 1
            stream = (pos - 1) % n_streams
            version = (pos - 1) // n_streams + 1
            sid = f"s-{stream}"
            typ = "SessionStarted" if version == 1 else _TYPES[pos % len(_TYPES)]
            rec = self.t0 + pos * 0.001
            payload = _payload(pos, stream, version)
            prev = chain_hash(prev, pos, sid, version, typ, 1, rec, payload)
            out.append((pos, sid, version, typ, 1, rec, payload, prev))
        self.position = pos
        self.prev = prev
        return out


def connect_rw(path: str | Path, synchronous: str) -> sqlite3.Connection:
    """Autocommit (the caller writes BEGIN/COMMIT), WAL, the given `synchronous`, the table."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(EVENTS_DDL)
    return conn


def connect_ro(path: str | Path) -> sqlite3.Connection:
    """Read-only: the bench reads, never writes, a log it measures."""
    return sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)


def scalar(db: Path, sql: str) -> Any:
    """One value from the database file, read-only."""
    conn = connect_ro(db)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def make_event_db(
    path: str | Path, n_rows: int, *, n_streams: int = 1000, chunk: int = 100_000
) -> Path:
    """Create (or extend) an events DB at `path` with `n_rows` realistic, hash-chained rows.

    Fast: synchronous=OFF, a 256 MB page cache, one transaction per `chunk` rows. The result
    is in WAL mode and checkpointed, so readers see a plain DB file. Appends after existing
    rows.
    """
    path = Path(path)
    conn = connect_rw(path, "OFF")
    conn.execute("PRAGMA cache_size=-262144")
    try:
        gen = EventRows(n_streams)
        last = conn.execute("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
        row = last.fetchone()
        if row is not None:
            # Resume the chain; versions stay unique if the DB came from make_event_db
            # with the same n_streams.
            gen.position, gen.prev = int(row[0]), bytes(row[1])
        left = n_rows
        while left > 0:
            k = min(chunk, left)
            rows = gen.take(k)
            conn.execute("BEGIN")
            conn.executemany(INSERT_SQL, rows)
            conn.execute("COMMIT")
            left -= k
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path
