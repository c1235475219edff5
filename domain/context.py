"""The ExecutionContext aggregate (eventsourcing library): a machine description recorded once.

A context is not a session: it lives on its own stream `context:<h>` with a single `Recorded`
event, so it is covered by the hash chain and rebuilt by replay like everything else. Recording
the same h again with the same attributes appends nothing; with other attributes it is refused.
The clock is passed in: nothing here reads the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.domain import BaseAggregate, CanInitAggregate
from eventsourcing.utils import get_topic

from domain.errors import ContextConflictError, InvalidCommandError
from domain.events import AggregateEvent

CONTEXT_PREFIX = "context:"


def context_stream(h: str) -> str:
    """The stream id of context `h` (a namespace no session id may use)."""
    return CONTEXT_PREFIX + h


def is_context_stream(stream_id: str) -> bool:
    return stream_id.startswith(CONTEXT_PREFIX)


class ExecutionContext(BaseAggregate[str]):
    """One execution context: its hash `h` and the attributes it was recorded with."""

    class Event(AggregateEvent):
        """Base of the context's events; `payload()` is what the store records."""

    @dataclass(frozen=True)
    class Recorded(Event, CanInitAggregate[str]):
        originator_topic: str
        h: str
        attributes: dict[str, Any]

    def __init__(self, h: str, attributes: dict[str, Any]) -> None:
        # Called by the library's CanInitAggregate.mutate with the Recorded event's fields.
        self.h = h
        self.attributes = dict(attributes)

    @classmethod
    def record(cls, h: str, attributes: dict[str, Any], at: float) -> ExecutionContext:
        if not isinstance(h, str) or not h:
            raise InvalidCommandError("a context needs a non-empty h", field="h")
        return cls._create(
            cls.Recorded,
            id=context_stream(h),
            timestamp=datetime.fromtimestamp(at, UTC),
            h=h,
            attributes=dict(attributes),
        )

    def record_again(self, attributes: dict[str, Any]) -> None:
        """Idempotent: the same attributes append nothing; other attributes are a conflict."""
        if attributes != self.attributes:
            raise ContextConflictError(f"context {self.h} exists with other attributes", field="h")

    @classmethod
    def rebuild(
        cls, stream_id: str, events: Iterable[tuple[int, float, dict[str, Any]]]
    ) -> ExecutionContext | None:
        """Replay stored (version, recorded_at, payload) rows through the library's mutate."""
        agg: ExecutionContext | None = None
        for version, recorded_at, payload in events:
            event = cls.Recorded(
                originator_id=stream_id,  # type: ignore[arg-type]
                originator_version=version,
                timestamp=datetime.fromtimestamp(recorded_at, UTC),
                originator_topic=get_topic(cls),
                h=payload["h"],
                attributes=payload["attributes"],
            )
            agg = event.mutate(agg)
        return agg


EVENT_CLASSES: dict[str, type[ExecutionContext.Event]] = {"Recorded": ExecutionContext.Recorded}
