"""The Session aggregate (eventsourcing library) and its past-tense event classes.

Each command method checks the rules against the current state and only then triggers an
event; a rejected command raises a named error and leaves no pending event. Every event's
`apply` is the shared pure fold in `domain.state`, so the aggregate and the projections
evolve the same way. Clock and ids are passed in: nothing here reads the wall clock.
With a `sink` (the ledger's writer), a triggered event is folded and recorded as a store row
instead of a library event object: same rules, same fold, same stored payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.domain import BaseAggregate, CanInitAggregate

from domain import context, personal
from domain.errors import (
    IllegalStatusChangeError,
    SessionDeletedError,
    SessionStoppedError,
)
from domain.events import ENVELOPE_FIELDS, AggregateEvent, NewEvent
from domain.state import LEGAL_MOVES, STATUSES, State, evolve, fold_kept_alive, new_state

_tuple_new = tuple.__new__


def to_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Session(BaseAggregate[str]):
    """One session: a stream of events whose fold is `self.state`."""

    class Event(AggregateEvent):
        """Base of the session's events; `payload()` is what the store records."""

        by: str | None
        # When it happened, if not when recorded (domain/eventtime.py); None is not stored.
        at: float | None

        def apply(self, aggregate: Any) -> None:
            # The fold reads only the fields it names, so the event's own attributes serve
            # as the payload here without the copy `payload()` makes for the store.
            evolve(aggregate.state, type(self).__name__, vars(self), self.timestamp.timestamp())

    @dataclass(frozen=True)
    class Started(Event, CanInitAggregate[str]):
        originator_topic: str
        source: str
        status: str
        started_at: float | None
        name: str | None
        project: str | None
        build: str | None
        user: str | None
        type: str | None
        remarks: str | None
        scm_ref: str | None
        tags: dict[str, str]
        attributes: dict[str, str]
        parameters: dict[str, Any]
        participants: list[str]
        users: list[str]
        devices: list[str]

        def mutate(self, aggregate: Any) -> Any:
            agg = Session.__new__(Session)
            agg.__base_init__(self.originator_id, self.originator_version, self.timestamp)
            agg.state = new_state(str(self.originator_id))
            agg.state["version"] = 0
            self.apply(agg)
            return agg

    @dataclass(frozen=True)
    class KeptAlive(Event):
        visible: bool
        path: str | None

    @dataclass(frozen=True)
    class Hidden(Event):
        path: str | None

    @dataclass(frozen=True)
    class StatusChanged(Event):
        from_status: str
        to_status: str
        reason: str | None

    @dataclass(frozen=True)
    class DetailsUpdated(Event):
        changes: dict[str, Any]

    @dataclass(frozen=True)
    class LogUploaded(Event):
        kind: str
        content_type: str
        size: int
        sha256: str

    @dataclass(frozen=True)
    class ArtifactAttached(Event):
        kind: str
        title: str | None
        url: str | None
        content_type: str | None
        size: int | None
        sha256: str | None

    @dataclass(frozen=True)
    class MetricRecorded(Event):
        item: str
        context: str | None
        values: dict[str, Any]

    @dataclass(frozen=True)
    class ResultRecorded(Event):
        status: str
        test: str | None

    @dataclass(frozen=True)
    class Annotated(Event):
        annotation_id: str
        kind: str | None
        text: str | None
        context: str | None
        occurred_at: float | None
        retracted: bool

    @dataclass(frozen=True)
    class Stopped(Event):
        reason: str | None
        ended_at: float | None

    @dataclass(frozen=True)
    class Expired(Event):
        last_seen_at: float

    @dataclass(frozen=True)
    class Deleted(Event):
        reason: str | None

    @dataclass(frozen=True)
    class Erased(Event):
        """The session's personal values were destroyed (domain/personal.py): `state` holds
        the fields they touched as they now read, `blobs` the contents deleted."""

        personal_keys: list[str]
        state: dict[str, Any]
        blobs: list[str]

    state: State
    # Where decided events go, as the store's rows, when the ledger's writer decides a batch:
    # the same rules and the same fold, without a library event object per event (building
    # those cost more than inserting the rows). None: the library's `trigger_event` path.
    sink: list[NewEvent] | None = None
    # The event time of the command being decided when not its recorded time (set by decide).
    event_at: float | None = None

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def start(
        cls, session_id: str, recorded_at: float, sink: list[NewEvent] | None = None, **fields: Any
    ) -> Session:
        """A new session (its Started event); with a `sink`, recorded there as a row.
        `fields["at"]` is its event time when that is not `recorded_at`."""
        event_at = fields.pop("at", None)
        status = fields.get("status") or "running"
        if status not in ("queued", "running"):
            raise IllegalStatusChangeError(
                f"a session starts queued or running, not {status!r}", field="status"
            )
        fields["status"] = status
        for f in ("tags", "attributes", "parameters"):
            fields[f] = fields.get(f) or {}
        for f in ("participants", "users", "devices"):
            fields[f] = fields.get(f) or []
        for f in _STARTED_FIELDS:
            fields.setdefault(f, None)
        fields["source"] = fields["source"] or "native"
        if sink is None:
            fields["at"] = event_at
            return cls._create(
                cls.Started, id=session_id, timestamp=to_datetime(recorded_at), **fields
            )
        del fields["at"]
        unknown = fields.keys() - set(_STARTED_FIELDS)
        if unknown:  # what the library's event constructor would refuse
            raise TypeError(f"Started has no field(s) {', '.join(sorted(unknown))}")
        agg = cls.__new__(cls)
        agg.__base_init__(session_id, 0, to_datetime(recorded_at))
        agg.state = new_state(session_id)
        agg.sink = sink
        agg.event_at = event_at
        agg._trigger(cls.Started, recorded_at, **fields)
        return agg

    @classmethod
    def from_state(cls, state: State) -> Session:
        """Rehydrate from a folded state (cache, or a fold of stored rows)."""
        agg = cls.__new__(cls)
        ts = to_datetime(state["updated_at"] or state["started_at"] or 0.0)
        agg.__base_init__(state["id"], state["version"], ts)
        agg.state = state
        return agg

    # -- rules ------------------------------------------------------------------------------

    def _require_live(self, action: str) -> None:
        if self.state["deleted"]:
            raise SessionDeletedError(f"session {self.id} was deleted; cannot {action}")

    def _require_open(self, action: str) -> None:
        state = self.state
        if state["deleted"] or state["ended_at"] is not None:
            self._require_live(action)  # a deleted session says so first
            raise SessionStoppedError(f"session {self.id} has ended; cannot {action}")

    def _trigger(self, event_class: type[Event], at: float, **kw: Any) -> None:
        kw.setdefault("by", None)
        sink = self.sink
        if sink is None:
            kw["at"] = self.event_at
            self.trigger_event(event_class, timestamp=to_datetime(at), **kw)
            return
        if self.event_at is not None:
            kw["at"] = self.event_at
        # What `trigger_event` + `mutate` + `payload()` amount to: fold the payload (the
        # event's fields) into the state, count the version, keep the row the store appends.
        # The fold gets `at` itself and the payload, as a rebuild from the stored row will.
        name = event_class.__name__
        evolve(self.state, name, kw, at)
        self._version = version = self._version + 1
        # NewEvent(...) without its Python-level __new__ (which does exactly this).
        row = (self._id, version, name, event_class.class_version, at, kw)
        sink.append(_tuple_new(NewEvent, row))

    # -- commands ---------------------------------------------------------------------------

    def keep_alive(self, at: float, visible: bool = True, path: str | None = None) -> None:
        state = self.state
        if state["deleted"] or state["ended_at"] is not None:
            self._require_open("keep it alive")
        sink = self.sink
        if sink is None:
            self._trigger(self.KeptAlive, at, visible=visible, path=path)
            return
        # `_trigger` for the commonest event, step by step: keepalives are most of a log and
        # its generic steps cost more than the fold. For an open session evolve() does for a
        # keepalive exactly what `fold_kept_alive` does.
        payload: dict[str, Any] = {"visible": visible, "path": path, "by": None}
        if self.event_at is not None:
            payload["at"] = self.event_at
        fold_kept_alive(state, payload, at)
        self._version = version = self._version + 1
        row = (self._id, version, "KeptAlive", _KEPT_ALIVE_VERSION, at, payload)
        sink.append(_tuple_new(NewEvent, row))

    def hide(self, at: float, path: str | None = None) -> None:
        self._require_open("hide it")
        self._trigger(self.Hidden, at, path=path)

    def check_status_change(self, to_status: str) -> bool:
        """Raise unless `to_status` is a legal move; False when it is already the status."""
        self._require_live("change its status")
        current = self.state["status"]
        if to_status not in STATUSES:
            raise IllegalStatusChangeError(
                f"unknown status {to_status!r}; one of {', '.join(STATUSES)}", field="status"
            )
        if to_status == current:
            return False
        if to_status not in LEGAL_MOVES[current]:
            raise IllegalStatusChangeError(
                f"status cannot move from {current!r} to {to_status!r}", field="status"
            )
        return True

    def change_status(
        self, at: float, to_status: str, reason: str | None = None, by: str | None = None
    ) -> None:
        current = self.state["status"]
        if not self.check_status_change(to_status):
            return
        self._trigger(
            self.StatusChanged, at, from_status=current, to_status=to_status, reason=reason, by=by
        )

    def update_details(self, at: float, changes: dict[str, Any], by: str | None = None) -> None:
        self._require_live("update it")
        effective = {k: v for k, v in changes.items() if self.state.get(k) != v}
        if effective:
            self._trigger(self.DetailsUpdated, at, changes=effective, by=by)

    def upload_log(self, at: float, kind: str, content_type: str, size: int, sha256: str) -> None:
        self._require_open("upload a log")
        self._trigger(
            self.LogUploaded, at, kind=kind, content_type=content_type, size=size, sha256=sha256
        )

    def attach_artifact(self, at: float, **fields: Any) -> None:
        self._require_live("attach an artifact")
        self._trigger(self.ArtifactAttached, at, **fields)

    def record_metric(
        self, at: float, item: str, values: dict[str, Any], context: str | None = None
    ) -> None:
        self._require_live("record a metric")
        self._trigger(self.MetricRecorded, at, item=item, context=context, values=values)

    def record_result(self, at: float, status: str, test: str | None = None) -> None:
        self._require_live("record a result")
        self._trigger(self.ResultRecorded, at, status=status, test=test)

    def annotate(self, at: float, annotation_id: str, **fields: Any) -> None:
        self._require_live("annotate it")
        fields.setdefault("retracted", False)
        for f in ("kind", "text", "context", "occurred_at"):
            fields.setdefault(f, None)
        self._trigger(self.Annotated, at, annotation_id=annotation_id, **fields)

    def stop(
        self,
        at: float,
        reason: str | None = None,
        by: str | None = None,
        ended_at: float | None = None,
    ) -> None:
        self._require_live("stop it")
        if self.state["ended_at"] is not None:
            return  # stop is idempotent: a second stop appends nothing
        self._trigger(self.Stopped, at, reason=reason, by=by, ended_at=ended_at)

    def expire(self, at: float, timeout: float) -> bool:
        """Expire when no sign of life came within `timeout` seconds before `at` on both clocks
        (event time, and recorded time: an import still arriving is not silent)."""
        s = self.state
        if s["deleted"] or s["ended_at"] is not None or s["last_seen_at"] + timeout > at:
            return False
        recorded = s.get("last_seen_recorded_at")
        if recorded is not None and recorded + timeout > at:
            return False
        self._trigger(self.Expired, at, last_seen_at=s["last_seen_at"])
        return True

    def lapse(self, at: float, expired_at: float) -> None:
        """An Expired at event time `expired_at` (domain/eventtime.py `lapsed_expiry`)."""
        self.event_at = expired_at
        self._trigger(self.Expired, at, last_seen_at=self.state["last_seen_at"])

    def delete(self, at: float, reason: str | None = None, by: str | None = None) -> None:
        if self.state["deleted"]:
            return  # the tombstone is already there
        self._trigger(self.Deleted, at, reason=reason, by=by)

    def erase(self, at: float, personal_keys: tuple[str, ...], by: str | None = None) -> None:
        """Record an erasure: deleted sessions too, and again after an earlier one (each
        erasure is evidence of its own)."""
        keys = sorted(personal_keys)
        state = personal.scrubbed(self.state, keys)
        blobs = personal.blob_names(self.state)
        self._trigger(self.Erased, at, personal_keys=keys, state=state, blobs=blobs, by=by)


_KEPT_ALIVE_VERSION = Session.KeptAlive.class_version
_STARTED_FIELDS = tuple(f for f in Session.Started.__dataclass_fields__ if f not in ENVELOPE_FIELDS)

EVENT_CLASSES: dict[str, type[Session.Event]] = {
    c.__name__: c  # every event class Session declares, in the order it declares them
    for c in vars(Session).values()
    if isinstance(c, type) and issubclass(c, Session.Event) and c is not Session.Event
}


# Every event type in the log, sessions' and execution contexts', by stored type name.
ALL_EVENT_CLASSES: dict[str, type[Any]] = {**EVENT_CLASSES, **context.EVENT_CLASSES}


def upcast(event_type: str, schema_version: int, payload: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored payload up to its class's current `class_version`
    via the class's `upcast_vN_vM` static methods (the eventsourcing convention)."""
    cls = ALL_EVENT_CLASSES[event_type]
    while schema_version < cls.class_version:
        step = getattr(cls, f"upcast_v{schema_version}_v{schema_version + 1}")
        step(payload)
        schema_version += 1
    return payload
