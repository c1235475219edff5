"""What a decision produces: `NewEvent`, one event ready to append (stream, version, type,
schema version, time, payload). The aggregate records these; the store appends them."""

from __future__ import annotations

from typing import Any, NamedTuple


class NewEvent(NamedTuple):
    """An event to append (a tuple: the writer builds one per event)."""

    stream_id: str
    version: int
    type: str
    schema_version: int
    recorded_at: float
    payload: dict[str, Any]
