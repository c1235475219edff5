"""What the log's hashes cover, byte for byte: the stored event (`StoredEvent`), its payload
encoding, the hash chain's link (`chain_hash`), the Merkle tree's leaf (`leaf_bytes`, format
1), and `chain_rows`, which builds the rows of a batch of new events.

Leaf format 1 is one JSON array, `[1, position, stream_id, version, type, schema_version,
recorded_at, payload]`: the chain's own head array spliced open, then the stored payload (an
orjson object with sorted keys) as it is, so the leaf is exactly the bytes the chain hashes,
with `recorded_at` in orjson's shortest round-trip form (full precision). The tree's leaf i
is the event at position i + 1 (positions are dense from 1).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from domain.events import NewEvent

GENESIS_HASH = b"\x00" * 32
LEAF_FORMAT = 1


@dataclass(frozen=True, slots=True)
class StoredEvent:
    position: int
    stream_id: str
    version: int
    type: str
    schema_version: int
    recorded_at: float
    payload: bytes
    hash: bytes
    # The payload with its sealed values opened (persistence/sealing.py); None when it has
    # none. `payload` stays the stored bytes: what the chain and the tree hash.
    opened: bytes | None = None

    def data(self) -> dict[str, Any]:
        loaded: dict[str, Any] = orjson.loads(self.payload if self.opened is None else self.opened)
        return loaded

    def opening(self, opened: bytes) -> StoredEvent:
        return dataclasses.replace(self, opened=opened)

    def record(self) -> dict[str, Any]:
        """The fields the chain hashes before the payload, by name, in the chain's order."""
        return {
            "position": self.position,
            "stream_id": self.stream_id,
            "version": self.version,
            "type": self.type,
            "schema_version": self.schema_version,
            "recorded_at": self.recorded_at,
        }

    def as_dict(self) -> dict[str, Any]:
        """The whole event, readable: the record, the payload decoded, the hash in hex."""
        return {**self.record(), "payload": self.data(), "hash": self.hash.hex()}


def encode_payload(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def chain_hash(
    prev: bytes,
    position: int,
    stream_id: str,
    version: int,
    type_: str,
    schema_version: int,
    recorded_at: float,
    payload: bytes,
) -> bytes:
    """sha256(prev_hash + canonical record): the link `verify` recomputes."""
    head = orjson.dumps([position, stream_id, version, type_, schema_version, recorded_at])
    return hashlib.sha256(prev + head + payload).digest()


def leaf_bytes(event: StoredEvent) -> bytes:
    """The event's Merkle leaf, format 1 (see the module's docstring)."""
    return row_leaf(event.position, event.stream_id, event.version, event.type,
                    event.schema_version, event.recorded_at, event.payload)  # fmt: skip


def row_leaf(
    position: int,
    stream_id: str,
    version: int,
    type_: str,
    schema_version: int,
    recorded_at: float,
    payload: bytes,
) -> bytes:
    """`leaf_bytes` of a stored row's fields."""
    head = orjson.dumps([position, stream_id, version, type_, schema_version, recorded_at])
    return b"[%d," % LEAF_FORMAT + head[1:-1] + b"," + payload + b"]"


def chain_rows(head: tuple[int, bytes], new: Iterable[NewEvent]) -> list[tuple[Any, ...]]:
    """The rows of `new` placed after `head`: (position, stream_id, version, type,
    schema_version, recorded_at, payload bytes, hash), each hash exactly `chain_hash`'s,
    inlined: this runs once per appended event. (Their Merkle leaves are hashed later, when
    the tree is integrated: persistence/tree.py.)"""
    position, prev = head
    dumps, sort, sha256, join = orjson.dumps, orjson.OPT_SORT_KEYS, hashlib.sha256, b"".join
    rows: list[tuple[Any, ...]] = []
    add = rows.append
    for stream_id, version, type_, schema_version, recorded_at, payload in new:
        position += 1
        head_bytes = dumps([position, stream_id, version, type_, schema_version, recorded_at])
        record = join((prev, head_bytes, dumps(payload, option=sort)))
        prev = sha256(record).digest()
        # The payload is cut from the record: a right-sized copy. orjson's own result keeps
        # its ~4 KB output buffer, and a batch of those held until the insert cost a fresh
        # page (fault) per row when measured.
        add((position, stream_id, version, type_, schema_version, recorded_at,
             record[32 + len(head_bytes) :], prev))  # fmt: skip
    return rows
