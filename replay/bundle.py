"""`ledger replay bundle ID --out f.jsonl`: an evidence bundle for one session that anyone can
check with the standard library alone (examples/verify_bundle.py).

Format `session-ledger-bundle/1`, UTF-8 JSON lines:

line 1, the header:
    {"format": "session-ledger-bundle/1", "session_id": ID, "events": N,
     "digest": {"position": P, "hash": HEX}, "digest_recorded_at": ISO}
    `digest` is the ledger's head (hash chain head) when the bundle was made.

lines 2..N+1, one per event of the session in position order:
    {"position", "stream_id", "version", "type", "schema_version", "recorded_at" (epoch
     seconds), "payload" (object): the event, readable;
     "record_hex": hex of the exact header bytes the chain hashes, i.e.
         orjson.dumps([position, stream_id, version, type, schema_version, recorded_at]);
     "payload_hex": hex of the exact stored payload bytes;
     "prev_hash": hex of the hash of the event at position - 1 (64 zeros at position 1);
     "hash": hex of this event's chain hash}

Checking a line: sha256(prev_hash + record + payload) == hash, and the readable fields equal
what `record_hex` and `payload_hex` decode to (JSON), so no orjson is needed to check. The
events must be versions 1..N of the one stream, in increasing positions, none past the
digest; consecutive positions must link (prev_hash == the previous line's hash), and an event
at the digest position must carry the digest hash.

What it proves: each event is exactly the record the ledger chained at its position, after
the stated predecessor hash. To anchor it in the whole log, compare `digest` with one you
hold, or run `ledger replay verify --from-digest P:HASH` on the ledger: that recomputes every
link up to P, including these.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import orjson

from persistence.store import GENESIS_HASH, EventStore, StoredEvent
from projections.present import iso
from replay.source import ReplayError

FORMAT = "session-ledger-bundle/1"


def _record_bytes(e: StoredEvent) -> bytes:
    # The exact header persistence.store.chain_hash hashes.
    return orjson.dumps(
        [e.position, e.stream_id, e.version, e.type, e.schema_version, e.recorded_at]
    )


def _prev_hash(store: EventStore, position: int) -> bytes:
    if position <= 1:
        return GENESIS_HASH
    before = store.read(position - 2, 1)
    if not before or before[0].position != position - 1:
        raise ReplayError(f"position {position - 1} is missing from the log: run verify")
    return before[0].hash


def bundle_lines(store: EventStore, session_id: str) -> list[dict[str, Any]]:
    position, head = store.head_digest()
    events = [e for e in store.load_stream(session_id) if e.position <= position]
    if not events:
        raise ReplayError(f"no session {session_id}")
    lines: list[dict[str, Any]] = [
        {
            "format": FORMAT,
            "session_id": session_id,
            "events": len(events),
            "digest": {"position": position, "hash": head.hex()},
            "digest_recorded_at": iso(store.read(position - 1, 1)[0].recorded_at),
        }
    ]
    for e in events:
        lines.append(
            {
                **e.record(),
                "payload": e.data(),
                "record_hex": _record_bytes(e).hex(),
                "payload_hex": e.payload.hex(),
                "prev_hash": _prev_hash(store, e.position).hex(),
                "hash": e.hash.hex(),
            }
        )
    return lines


def write_bundle(store: EventStore, session_id: str, out: BinaryIO) -> int:
    lines = bundle_lines(store, session_id)
    for line in lines:
        out.write(orjson.dumps(line) + b"\n")
    return len(lines) - 1
