"""Erasing one session's personal values while every checkpoint and proof stays valid.

In one write transaction: the session's sealed values are deleted (persistence/sealing.py;
SQLite overwrites deleted rows, `secure_delete`), and an `Erased` event is decided by the
session itself (domain/personal.py: the state its personal fields are left in, and the blobs
it named) and appended. Then the blobs no other session names are overwritten and removed,
and SQLite's write-ahead log is truncated so no earlier page copy keeps a value. The events,
their hashes and the Merkle tree are untouched: an erasure only appends.

Personal values logged in clear (by a ledger from before sealing, or tag keys named personal
only later) cannot be erased without rewriting the log; they are reported, not hidden.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Connection, Engine

from domain import commands as c
from domain.context import is_context_stream
from domain.decide import decide
from domain.errors import SessionNotFoundError
from domain.events import NewEvent
from domain.personal import personal_slots
from domain.rules import validate
from domain.session import Session
from persistence.aggregates import fold
from persistence.blobs import BlobStore
from persistence.sealing import is_sealed, slot_name
from persistence.store import EventStore, StoredEvent

BLOB_EVENT_TYPES = ("LogUploaded", "ArtifactAttached")


@dataclass
class Erasure:
    """What one erasure did."""

    session_id: str
    position: int = 0  # the Erased event's
    values: int = 0  # sealed values destroyed
    blobs_destroyed: list[str] = field(default_factory=list)
    blobs_kept: list[str] = field(default_factory=list)  # another session names them too
    in_clear: list[tuple[int, str]] = field(default_factory=list)  # (position, slot)
    compacted: bool = True  # no copy left in SQLite's write-ahead log

    @property
    def complete(self) -> bool:
        return not self.in_clear and not self.blobs_kept and self.compacted


def erase(
    store: EventStore,
    blobs: BlobStore,
    session_id: str,
    clock: Callable[[], float],
    by: str | None = None,
) -> Erasure:
    """Erase `session_id`'s personal values (SessionNotFoundError when there is none)."""
    cmd = c.EraseSession(session_id=session_id, by=by, personal_keys=store.personal_keys)
    validate(cmd)
    if is_context_stream(session_id):  # a machine description, not a session
        raise SessionNotFoundError(f"no session {session_id}")
    done = Erasure(session_id)
    with store.write_transaction() as conn:
        position, prev, floor = store.tail(conn)
        events = store.load_stream(session_id, conn)
        state = fold(events, session_id)
        if state is None:
            raise SessionNotFoundError(f"no session {session_id}")
        done.in_clear = _in_clear(events, store.personal_keys)
        done.values = _delete_values(conn, store, [e.position for e in events])
        new: list[NewEvent] = []
        decide(cmd, Session.from_state(state), max(clock(), floor), new)
        done.position = store.append(conn, (position, prev), new)[0]
        names = list(new[0].payload["blobs"])
    for sha in names:
        if _named_elsewhere(store, sha, session_id):
            done.blobs_kept.append(sha)
        elif blobs.destroy(sha):
            done.blobs_destroyed.append(sha)
    done.compacted = compact(store.write_engine)
    return done


def _in_clear(events: list[StoredEvent], keys: tuple[str, ...]) -> list[tuple[int, str]]:
    """Personal values the stored payloads hold as they are, not sealed."""
    out = []
    for e in events:
        raw = orjson.loads(e.payload)
        for slot in personal_slots(e.type, raw, keys):
            holder = raw
            for key in slot:
                holder = holder[key]
            if not is_sealed(holder):
                out.append((e.position, slot_name(slot)))
    return out


def _delete_values(conn: Connection, store: EventStore, positions: list[int]) -> int:
    deleted = 0
    m = store._mark
    for i in range(0, len(positions), 500):
        chunk = tuple(positions[i : i + 500])
        marks = ",".join([m] * len(chunk))
        result = conn.exec_driver_sql(
            f"DELETE FROM sealed_values WHERE position IN ({marks})", chunk
        )
        deleted += result.rowcount
    return deleted


def _named_elsewhere(store: EventStore, sha: str, session_id: str) -> bool:
    """Whether an event of another stream names the blob `sha` (a full scan of the blob
    events: erasure is rare). `sha` is a checked blob name, 64 hex digits."""
    m = store._mark
    # A byte search in the payload (SQLite's LIKE does not match inside a BLOB).
    found = f"instr(payload, {m}) > 0" if store.is_sqlite else f"position({m} in payload) > 0"
    sql = f"SELECT 1 FROM events WHERE stream_id <> {m} AND type IN ({m}, {m}) AND {found} LIMIT 1"
    with store.read_engine.connect() as conn:
        row = conn.exec_driver_sql(sql, (session_id, *BLOB_EVENT_TYPES, sha.encode())).first()
    return row is not None


def compact(engine: Engine) -> bool:
    """Truncate SQLite's write-ahead log (earlier copies of changed pages live there until
    then); False when a reader kept it from finishing. Nothing to do on PostgreSQL, whose
    dead rows VACUUM reclaims (docs/log-format.md)."""
    if engine.dialect.name != "sqlite":
        return True
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()  # outside any transaction: a checkpoint cannot run inside one
        busy = cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        cur.close()
    finally:
        raw.close()
    return busy is not None and busy[0] == 0
