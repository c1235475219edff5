"""The auditors' readers: a session's stream, the global log and the head digest, as text
lines for people or JSON lines for machines (every field, full hash)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

import orjson

from domain.session import ALL_EVENT_CLASSES
from persistence.store import EventStore, StoredEvent
from projections.present import iso
from replay.source import ReplayError


def event_record(e: StoredEvent) -> dict[str, Any]:
    """An event as auditors and machines read it (the API's event shape, plus epoch time)."""
    return {
        "position": e.position,
        "stream_id": e.stream_id,
        "version": e.version,
        "type": e.type,
        "schema_version": e.schema_version,
        "recorded_at": iso(e.recorded_at),
        "recorded_at_epoch": e.recorded_at,
        "payload": e.data(),
        "hash": e.hash.hex(),
    }


def event_line(e: StoredEvent) -> str:
    payload = (e.payload if e.opened is None else e.opened).decode()
    return (
        f"{e.position:>8}  {e.stream_id}  v{e.version:<4} {iso(e.recorded_at)}  "
        f"{e.type:<16} {e.hash.hex()}\n{'':>10}{payload}"
    )


def write_events(events: Iterable[StoredEvent], out: TextIO, as_json: bool) -> int:
    n = 0
    for e in events:
        n += 1
        if as_json:
            out.write(orjson.dumps(event_record(e)).decode() + "\n")
        else:
            out.write(event_line(e) + "\n")
    return n


def stream_events(store: EventStore, session_id: str) -> list[StoredEvent]:
    events = store.load_stream(session_id)
    if not events:
        raise ReplayError(f"no session {session_id}")
    return events


def log_events(
    store: EventStore,
    after: int = 0,
    limit: int | None = None,
    types: Sequence[str] | None = None,
) -> Iterator[StoredEvent]:
    """The global log after `after`, streamed; `limit` counts matching events."""
    for t in types or ():
        if t not in ALL_EVENT_CLASSES:
            raise ReplayError(f"--type must be among {', '.join(ALL_EVENT_CLASSES)}, not {t!r}")
    if limit is not None:
        yield from store.read(after, limit, list(types) if types else None)
        return
    wanted = set(types or ())
    for e in store.iter_all(after):
        if not wanted or e.type in wanted:
            yield e


def digest_record(store: EventStore) -> dict[str, Any]:
    position, head = store.head_digest()
    return {"position": position, "hash": head.hex(), "digest": f"{position}:{head.hex()}"}
