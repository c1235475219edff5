"""What a decision produces: `NewEvent`, one event ready to append (stream, version, type,
schema version, time, payload), which the aggregates record and the store appends; and
`AggregateEvent`, the base of both aggregates' event classes."""

from __future__ import annotations

from typing import Any, NamedTuple

from eventsourcing.domain import CanMutateAggregate, DomainEvent

# The library's envelope of an event (stream, version, time, the aggregate's class): the
# store keeps the first three in columns of their own and the event's type names the class,
# so none of them is part of the payload.
ENVELOPE_FIELDS = ("originator_id", "originator_version", "timestamp", "originator_topic")


class NewEvent(NamedTuple):
    """An event to append (a tuple: the writer builds one per event)."""

    stream_id: str
    version: int
    type: str
    schema_version: int
    recorded_at: float
    payload: dict[str, Any]


class AggregateEvent(DomainEvent, CanMutateAggregate[str]):  # type: ignore[misc]
    """Base of the Session's and the ExecutionContext's events: string stream ids, and
    `payload()`, what the store records."""

    class_version = 1

    def __post_init__(self) -> None:
        # Stream ids are strings (clients' own ids, `context:<h>`), not UUIDs: skip the
        # library's UUID check.
        pass

    def payload(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k in ENVELOPE_FIELDS:
            d.pop(k, None)
        if "at" in d and d["at"] is None:
            # The event time is stored only when it is not the recorded time
            # (domain/eventtime.py): events without one keep the bytes they always had.
            del d["at"]
        return d
