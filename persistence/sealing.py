"""Sealed values: how the store keeps personal values out of the append-only log.

Before an event is chained, each personal value of its payload (domain/personal.py) is
replaced by `{"$sealed": hex(SHA-256(salt || value))}`, with a fresh 16-byte salt and the
value as canonical JSON (orjson, sorted keys). The event row, its chain hash and its Merkle
leaf hold only that commitment; the salt and the value go to the `sealed_values` table (by
position and slot), the one table of the log where rows may be deleted. Erasing deletes
them: the commitment stays, proves nothing about the value without the salt, and every
checkpoint and proof stays valid.

Reading opens a payload: each commitment becomes its value again, or, once erased, what an
erased value reads as (`erased_value`; a tag or attribute entry is dropped).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import Column, Connection, LargeBinary, String, Table

from domain.events import NewEvent
from domain.personal import SEALED_TYPES, Slot, erased_value, is_mapping_entry, personal_slots
from persistence.pgcopy import append_rows
from persistence.schema import Position, metadata

SEAL = "$sealed"
MARK = b'"$sealed"'  # in a stored payload's bytes: it holds at least one commitment
SALT_BYTES = 16

sealed_values_table = Table(
    "sealed_values",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=False),
    Column("slot", String, primary_key=True),  # the slot as a JSON array of keys
    Column("salt", LargeBinary, nullable=False),
    Column("value", LargeBinary, nullable=False),  # canonical JSON
)
# (index of the event in its batch, slot, salt, value bytes)
Opening = tuple[int, str, bytes, bytes]


def commitment(salt: bytes, value_json: bytes) -> str:
    return hashlib.sha256(salt + value_json).hexdigest()


def seal(
    new: Sequence[NewEvent], personal_keys: tuple[str, ...]
) -> tuple[Sequence[NewEvent], list[Opening]]:
    """`new` with each personal value replaced by its commitment, and the openings to
    store; `new` itself when no event holds one (keepalives never do)."""
    out: list[NewEvent] | None = None
    openings: list[Opening] = []
    for i, e in enumerate(new):
        if e.type not in SEALED_TYPES:
            continue
        slots = list(personal_slots(e.type, e.payload, personal_keys))
        if not slots:
            continue
        if out is None:
            out = list(new)
        payload = _copied(e.payload, slots)
        for slot in slots:
            holder = _holder(payload, slot)
            value_json = orjson.dumps(holder[slot[-1]], option=orjson.OPT_SORT_KEYS)
            salt = os.urandom(SALT_BYTES)
            holder[slot[-1]] = {SEAL: commitment(salt, value_json)}
            openings.append((i, slot_name(slot), salt, value_json))
        out[i] = e._replace(payload=payload)
    return (new if out is None else out), openings


def slot_name(slot: Slot) -> str:
    return orjson.dumps(list(slot)).decode()


def _holder(payload: dict[str, Any], slot: Slot) -> dict[str, Any]:
    holder = payload
    for key in slot[:-1]:
        holder = holder[key]
    return holder


def _copied(payload: dict[str, Any], slots: Iterable[Slot]) -> dict[str, Any]:
    """A copy of `payload` whose dicts along `slots` are copies too (the decided payload is
    the aggregate's own: its state may share those dicts)."""
    top = dict(payload)
    for slot in slots:
        holder = top
        for key in slot[:-1]:
            holder[key] = dict(holder[key])
            holder = holder[key]
    return top


def open_payload(payload: bytes, opened: dict[str, bytes]) -> bytes:
    """The payload with each commitment replaced by its value from `opened` (slot name ->
    value JSON), or, when the value is gone, by what an erased value reads as."""
    data = orjson.loads(payload)
    _open_in(data, (), opened)
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def _open_in(holder: dict[str, Any], base: Slot, opened: dict[str, bytes]) -> None:
    for key, value in list(holder.items()):
        if not isinstance(value, dict):
            continue
        slot = (*base, key)
        if SEAL not in value:
            if len(slot) < 3:  # payload -> changes -> tags: the deepest a slot goes
                _open_in(value, slot, opened)
            continue
        found = opened.get(slot_name(slot))
        if found is not None:
            holder[key] = orjson.loads(found)
        elif is_mapping_entry(slot):
            del holder[key]
        else:
            holder[key] = erased_value(slot)


def is_sealed(value: Any) -> bool:
    """A commitment where a value was (for checks that judge the stored payload)."""
    return type(value) is dict and len(value) == 1 and type(value.get(SEAL)) is str


def openings_of(
    conn: Connection, mark: str, positions: Sequence[int]
) -> dict[int, dict[str, tuple[bytes, bytes]]]:
    """The stored (salt, value) of the events at `positions`, by position and slot name."""
    out: dict[int, dict[str, tuple[bytes, bytes]]] = {}
    for i in range(0, len(positions), 500):
        chunk = tuple(positions[i : i + 500])
        rows = conn.exec_driver_sql(
            "SELECT position, slot, salt, value FROM sealed_values "
            f"WHERE position IN ({','.join([mark] * len(chunk))})",
            chunk,
        )
        for position, slot, salt, value in rows:
            out.setdefault(int(position), {})[slot] = (bytes(salt), bytes(value))
    return out


def opened_payloads(
    conn: Connection, mark: str, rows: Sequence[tuple[int, bytes]]
) -> dict[int, bytes]:
    """The opened payloads of the (position, payload) `rows`, each of which holds a
    commitment (callers keep only those whose payload has `MARK`: a read's hot loop)."""
    if not rows:
        return {}
    sealed = rows
    found = openings_of(conn, mark, [p for p, _ in sealed])
    return {
        p: open_payload(payload, {slot: v for slot, (_, v) in found.get(p, {}).items()})
        for p, payload in sealed
    }


def store_openings(conn: Connection, base: int, openings: list[Opening]) -> None:
    """Insert the openings of a batch whose first event is at position `base + 1`."""
    rows = [(base + 1 + i, slot, salt, value) for i, slot, salt, value in openings]
    append_rows(conn, sealed_values_table, ("position", "slot", "salt", "value"), rows)
