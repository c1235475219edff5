"""`ledger replay bundle ID --out f.jsonl` and `ledger replay prove ID`: one session's evidence
that anyone holding the log's verifier key can check without the ledger
(examples/verify_bundle.py: the standard library and the `cryptography` package).

Format `session-ledger-bundle/2`, UTF-8 JSON lines:

line 1, the header:
    {"format": "session-ledger-bundle/2", "session_id": ID, "events": N,
     "checkpoint": the signed checkpoint (a C2SP signed note, as GET /v1/log/checkpoint),
     "verifier_key": the key that signed it (for reference: a verifier must use its own copy)}

lines 2..N+1, one per event of the session in log order:
    {"leaf_index": I, "leaf": base64 of the leaf's exact bytes (docs/log-format.md),
     "proof": [base64 hashes of RFC 6962's inclusion proof of leaf I in the checkpoint's tree],
     "position", "stream_id", "version", "type", "recorded_at", "payload": the event as its
     leaf holds it (personal values sealed: `{"$sealed": hex}`, docs/log-format.md),
     "disclosed": [{"slot": [keys to the sealed value in the payload], "salt": base64,
     "value": the value}] for each sealed value not erased}

Checking: the checkpoint's signature under the auditor's verifier key; each leaf's inclusion
proof against the checkpoint's root; the readable fields equal to what the leaf holds; the
leaves in increasing order, of this one stream, versions 1..N without a gap; each disclosed
value's SHA-256(salt || canonical JSON) equal to the commitment at its slot. What it proves:
each event is exactly the leaf the log holds at its index, in a tree the log signed. It cannot
prove that no event came after the last one in the bundle (a Merkle tree has no proof of
absence): compare the session's latest version with the ledger's own answer.
"""

from __future__ import annotations

import base64
from typing import Any, BinaryIO

import orjson

from persistence.signing import LogKeys
from persistence.store import EventStore
from replay.source import ReplayError

FORMAT = "session-ledger-bundle/2"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def bundle_lines(store: EventStore, keys: LogKeys, session_id: str) -> list[dict[str, Any]]:
    size, root = store.tree.latest()
    events = [e for e in store.load_stream(session_id) if e.position <= size]
    if not events:
        raise ReplayError(f"no session {session_id}")
    lines: list[dict[str, Any]] = [
        {
            "format": FORMAT,
            "session_id": session_id,
            "events": len(events),
            "checkpoint": keys.sign_checkpoint(size, root),
            "verifier_key": keys.verifier_key,
        }
    ]
    held = store.sealed_values([e.position for e in events])
    for e in events:
        index = e.position - 1
        lines.append(
            {
                "leaf_index": index,
                "leaf": _b64(store.tree.leaves(index, index + 1)[0]),
                "proof": [_b64(h) for h in store.tree.inclusion_proof(index, size)],
                **{k: v for k, v in e.record().items() if k != "schema_version"},
                "payload": orjson.loads(e.payload),
                "disclosed": [
                    {"slot": orjson.loads(slot), "salt": _b64(salt), "value": orjson.loads(value)}
                    for slot, (salt, value) in sorted(held.get(e.position, {}).items())
                ],
            }
        )
    return lines


def write_bundle(store: EventStore, keys: LogKeys, session_id: str, out: BinaryIO) -> int:
    lines = bundle_lines(store, keys, session_id)
    for line in lines:
        out.write(orjson.dumps(line) + b"\n")
    return len(lines) - 1
