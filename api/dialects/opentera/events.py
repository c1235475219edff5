"""OpenTera session events (ledger annotations) and session manager actions (start/stop).

id_session_event is the global log position of the Annotated event that created the
annotation; an update or a delete appends another Annotated event with the same annotation
id (a correction or a retraction), so the whole history stays in the session's stream.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Response

from api.bootstrap import Container
from api.deps import FreshDep, execute
from api.dialects.common import fresh_detail
from api.dialects.opentera.read import by_number, detail, missing, require_number
from api.dialects.opentera.shape import (
    EMPTY_200,
    Body,
    creator,
    ot_time,
    params_in,
    session_json,
    time_in,
)
from api.dialects.opentera.who import CallerDep
from domain import commands as c
from domain.errors import ForbiddenError

router = APIRouter()


class SessionEventIn(Body):
    id_session_event: int
    id_session: int | None = None
    id_session_event_type: int | None = None
    session_event_datetime: str | None = None
    session_event_text: str | None = None
    session_event_context: str | None = None


class SessionEventBody(Body):
    session_event: SessionEventIn


def creating_positions(container: Container, session_id: str) -> dict[str, int]:
    """annotation id -> position of the Annotated event that created it."""
    out: dict[str, int] = {}
    for e in container.store.load_stream(session_id):
        if e.type == "Annotated":
            out.setdefault(e.data()["annotation_id"], e.position)
    return out


def event_json(ann: dict[str, Any], position: int, number: int) -> dict[str, Any]:
    kind = ann["kind"]
    return {
        "id_session_event": position,
        "id_session": number,
        "id_session_event_type": int(kind) if kind is not None and kind.isdigit() else None,
        "session_event_datetime": ot_time(ann["occurred_at"]),
        "session_event_text": ann["text"],
        "session_event_context": ann["context"],
    }


def events_json(container: Container, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The session's current events, oldest first (by session_event_datetime)."""
    positions = creating_positions(container, doc["id"])
    events = [event_json(a, positions[a["id"]], doc["number"]) for a in doc["annotations"]]
    return sorted(events, key=lambda e: (e["session_event_datetime"] or "", e["id_session_event"]))


def locate(container: Container, position: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(session detail, current annotation) for an id_session_event; 404 when gone."""
    found = container.store.read(after=position - 1, limit=1) if position > 0 else []
    if found and found[0].position == position and found[0].type == "Annotated":
        e = found[0]
        ann_id = e.data()["annotation_id"]
        # Only the creating event's position names the event, not a later correction's.
        if creating_positions(container, e.stream_id).get(ann_id) == position:
            doc = detail(container, e.stream_id)
            for ann in doc["annotations"] if doc else []:
                if ann["id"] == ann_id:
                    return doc, ann  # type: ignore[return-value]
    raise HTTPException(404, f"no session event {position}")


SECURITY = "Forbidden for security reasons"  # DeviceQuerySessionEvents.py lines 33, 105


@router.get("/user/sessions/events")
@router.get("/service/sessions/events")
def session_events(id_session: int, container: FreshDep) -> list[dict[str, Any]]:
    """Get events for a specific session (none for a session there is not: OpenTera's
    query finds no event, UserQuerySessionEvents.py lines 44-57)."""
    doc = by_number(container, id_session)
    return [] if doc is None else events_json(container, doc)


@router.get("/device/sessions/events", responses={403: {"description": SECURITY}})
def device_session_events(id_session: int | None = None) -> list[dict[str, Any]]:
    """Get session events: refused, as OpenTera refuses it to every device."""
    raise ForbiddenError(SECURITY)


@router.post("/user/sessions/events")
@router.post("/device/sessions/events")
@router.post("/service/sessions/events")
async def save_event(
    body: SessionEventBody, container: FreshDep, who: CallerDep
) -> list[dict[str, Any]]:
    """Create / update session events. id_session_event must be set to 0 to create one."""
    by = who.actor
    ev = body.session_event
    given = ev.model_fields_set
    fields: dict[str, Any] = {
        "kind": None if ev.id_session_event_type is None else str(ev.id_session_event_type),
        "text": ev.session_event_text,
        "context": ev.session_event_context,
        "occurred_at": time_in(ev.session_event_datetime, "session_event_datetime"),
    }
    if ev.id_session_event == 0:
        if ev.id_session is None:
            raise missing("Missing id_session")
        found = await asyncio.to_thread(by_number, container, ev.id_session)
        if found is None:  # UserQuerySessionEvents.py lines 91-94: no such session to access
            raise ForbiddenError("Forbidden")
        doc, ann_id = found, uuid.uuid4().hex
    else:
        doc, current = await asyncio.to_thread(locate, container, ev.id_session_event)
        ann_id = current["id"]
    if not who.takes_part(doc):
        # A device writes events of the sessions it takes part in only
        # (DeviceQuerySessionEvents.py lines 63-66).
        raise ForbiddenError("Unauthorized")
    if ev.id_session_event != 0:
        names = {
            "kind": "id_session_event_type",
            "text": "session_event_text",
            "context": "session_event_context",
            "occurred_at": "session_event_datetime",
        }
        # An update changes only what it names; the correction repeats the rest.
        fields = {k: v if names[k] in given else current[k] for k, v in fields.items()}
    res = await execute(
        container, c.Annotate(session_id=doc["id"], annotation_id=ann_id, by=by, **fields)
    )
    position = ev.id_session_event or res.position
    fresh = await fresh_detail(container, doc["id"], res.position)
    ann = next(a for a in fresh["annotations"] if a["id"] == ann_id)
    return [event_json(ann, position, fresh["number"])]


@router.delete("/user/sessions/events", response_class=Response, responses=EMPTY_200)
async def delete_event(id: int, container: FreshDep, who: CallerDep) -> Response:
    """Delete a session event: a retraction is appended, the history stays."""
    doc, current = await asyncio.to_thread(locate, container, id)
    await execute(
        container,
        c.Annotate(session_id=doc["id"], annotation_id=current["id"], retracted=True, by=who.actor),
    )
    return Response(status_code=200)


@router.delete("/device/sessions/events", responses={403: {"description": SECURITY}})
def device_delete_event(id: int | None = None) -> Response:
    """Delete session events: refused, as OpenTera refuses it to every device."""
    raise ForbiddenError(SECURITY)


class ManageIn(Body):
    action: str
    id_session: int | None = None
    session_uuid: str | None = None
    id_service: int | None = None
    id_session_type: int | None = None
    id_creator_user: int | None = None
    id_creator_device: int | None = None
    id_creator_participant: int | None = None
    id_creator_service: int | None = None
    parameters: dict[str, Any] | None = None
    session_participants: list[str] | None = None
    session_users: list[str] | None = None
    session_devices: list[str] | None = None


class ManageBody(Body):
    session_manage: ManageIn


def _existing(container: Container, m: ManageIn) -> dict[str, Any] | None:
    if m.id_session:
        return require_number(container, m.id_session)
    return detail(container, m.session_uuid) if m.session_uuid else None


@router.post("/user/sessions/manager")
@router.post("/service/sessions/manager")
async def manage(body: ManageBody, container: FreshDep, who: CallerDep) -> dict[str, Any]:
    """Manage a session: `start` (a new one without id) and `stop`; answer the session."""
    by = who.actor
    m = body.session_manage
    if m.action in ("invite", "remove", "invite_reply"):
        # OpenTera relays these to a session service; the ledger has none.
        raise HTTPException(501, f"Not implemented yet: action {m.action!r}")
    if m.action not in ("start", "stop"):
        raise HTTPException(400, "Invalid action")
    doc = await asyncio.to_thread(_existing, container, m)
    cmd: c.Command
    if m.action == "stop":
        if doc is None:
            raise missing("Missing id_session or session_uuid")
        cmd = c.StopSession(session_id=doc["id"], by=by)
    elif doc is not None:
        cmd = c.ChangeStatus(session_id=doc["id"], status="running", by=by)
    else:
        cmd = c.StartSession(
            session_id=m.session_uuid or str(uuid.uuid4()),
            source="opentera",
            type=None if m.id_session_type is None else str(m.id_session_type),
            status="running",
            parameters=params_in(m.parameters),
            participants=m.session_participants or [],
            users=m.session_users or [],
            devices=m.session_devices or [],
            by=creator(m) or by,
        )
    res = await execute(container, cmd)
    fresh = await fresh_detail(container, res.session_id, res.position)
    return session_json(fresh)
