"""OpenTera sessions: read them (user, device, participant and service namespaces), create
or update one (id_session 0 creates), delete one; status moves follow the ledger's rules."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from api.bootstrap import Container
from api.deps import FreshDep, execute
from api.dialects.common import fresh_detail
from api.dialects.opentera.events import events_json
from api.dialects.opentera.read import Selection, find, missing, require_number
from api.dialects.opentera.shape import (
    EMPTY_200,
    FINAL,
    STATUS_OUT,
    Principal,
    SessionBody,
    SessionIn,
    creator,
    members,
    params_in,
    session_json,
    status_in,
    time_in,
)
from domain import commands as c
from domain.commands import CommandResult

router = APIRouter()

# OpenTera's `list` flag: minimal objects (no comments, parameters or members).
Minimal = Annotated[bool, Query(alias="list")]
Flag = Annotated[bool, Query()]


async def _finish(
    container: Container,
    sid: str,
    target: str,
    changes: dict[str, Any],
    ended_at: float | None,
    by: str | None,
) -> CommandResult:
    """Apply changes and a status move as one decision; a final status also stops it."""
    res = await execute(
        container, c.UpdateDetails(session_id=sid, changes=changes, status=target, by=by)
    )
    if target in FINAL:
        res = await execute(container, c.StopSession(session_id=sid, ended_at=ended_at, by=by))
    return res


async def _create(container: Container, s: SessionIn, by: str | None) -> CommandResult:
    target = status_in(s.session_status if s.session_status is not None else 0)
    started = time_in(s.session_start_datetime, "session_start_datetime")
    if started is None and s.session_duration is not None:
        started = container.ledger.clock()
    cmd = c.StartSession(
        session_id=s.session_uuid or str(uuid.uuid4()),
        source="opentera",
        name=s.session_name,
        type=None if s.id_session_type is None else str(s.id_session_type),
        # The ledger starts sessions queued or running; a session reported as already over
        # starts running and is moved on at once.
        status="running" if target in FINAL else target,
        started_at=started,
        remarks=s.session_comments,
        parameters=params_in(s.session_parameters),
        participants=members(s, "participants") or [],
        users=members(s, "users") or [],
        devices=members(s, "devices") or [],
        by=creator(s) or by,
    )
    res = await execute(container, cmd)
    if target in FINAL:
        ended = (
            None if started is None or s.session_duration is None else started + s.session_duration
        )
        res = await _finish(container, res.session_id, target, {}, ended, by)
    return res


def _changes(s: SessionIn, doc: dict[str, Any]) -> dict[str, Any]:
    given = s.model_fields_set
    new: dict[str, Any] = {}
    for field, name in (("session_name", "name"), ("session_comments", "remarks")):
        if field in given:
            new[name] = getattr(s, field)
    if "id_session_type" in given:
        new["type"] = None if s.id_session_type is None else str(s.id_session_type)
    if "session_parameters" in given:
        params = params_in(s.session_parameters)
        # Parameters merge in the ledger: clear the old keys so the new value replaces them.
        new["parameters"] = {**{k: None for k in doc["parameters"] if k not in params}, **params}
        if params == doc["parameters"]:
            del new["parameters"]
    for plural in ("participants", "users", "devices"):
        listed = members(s, plural)
        if listed is not None:
            new[plural] = listed
    return {k: v for k, v in new.items() if doc.get(k) != v}


async def _update(container: Container, s: SessionIn, by: str | None) -> CommandResult:
    doc = await asyncio.to_thread(require_number, container, s.id_session)
    target = None
    if s.session_status is not None:
        wanted = status_in(s.session_status)
        if s.session_status != STATUS_OUT[doc["status"]]:
            target = wanted
    changes = _changes(s, doc)
    if target is None:
        return await execute(
            container, c.UpdateDetails(session_id=doc["id"], changes=changes, by=by)
        )
    ended = None
    if s.session_duration is not None and doc["started_at"] is not None:
        ended = doc["started_at"] + s.session_duration
    return await _finish(container, doc["id"], target, changes, ended, by)


async def save(container: Container, s: SessionIn, by: str | None) -> list[dict[str, Any]]:
    """Create (id_session 0) or update a session; answer [session] like OpenTera."""
    res = await (_create if s.id_session == 0 else _update)(container, s, by)
    doc = await fresh_detail(container, res.session_id, res.position)
    return [session_json(doc, container.ledger.clock())]


def _answer(
    container: Container,
    sel: Selection,
    minimal: bool,
    with_type: bool = False,
    with_events: bool = False,
) -> list[dict[str, Any]]:
    """The sessions `sel` finds as OpenTera objects (with their events when asked)."""
    now = container.ledger.clock()
    out = []
    for doc in find(container, sel):
        item = session_json(doc, now, minimal, with_type)
        if with_events:
            item["session_events"] = events_json(container, doc)
        out.append(item)
    return out


def _window(
    status: int | None = None,
    limit: int | None = Query(None, ge=0),
    offset: int = Query(0, ge=0),
    start_date: str | None = None,
    end_date: str | None = None,
) -> Selection:
    """The status and date filters and the page of every session read by filters."""
    return Selection(
        status=status, start_date=start_date, end_date=end_date, limit=limit, offset=offset
    )


def _member(
    id_participant: int | None = None, id_user: int | None = None, id_device: int | None = None
) -> tuple[str, str] | None:
    """The member whose sessions are asked for: the first given id, in OpenTera's order."""
    given = (("participants", id_participant), ("users", id_user), ("devices", id_device))
    for plural, value in given:
        if value is not None:
            return (plural, str(value))
    return None


Window = Annotated[Selection, Depends(_window)]
Member = Annotated[tuple[str, str] | None, Depends(_member)]


@router.get("/user/sessions")
def user_sessions(
    container: FreshDep,
    window: Window,
    member: Member,
    id_session: int | None = None,
    session_uuid: str | None = None,
    minimal: Minimal = False,
    with_session_type: Flag = False,
) -> list[dict[str, Any]]:
    """Get sessions information. Only one of the ID parameter is supported and required."""
    if id_session is None and member is None and session_uuid is None:
        raise missing("Missing arguments")
    sel = replace(window, id_session=id_session, session_uuid=session_uuid, member=member)
    return _answer(container, sel, minimal, with_session_type)


@router.post("/user/sessions")
async def user_save(body: SessionBody, container: FreshDep, by: Principal) -> list[dict[str, Any]]:
    """Create / update session. id_session must be set to 0 to create a new session."""
    return await save(container, body.session, by)


@router.delete("/user/sessions", response_class=Response, responses=EMPTY_200)
async def user_delete(id: int, container: FreshDep, by: Principal) -> Response:
    """Delete a specific session (the view hides it; its events stay for audit)."""
    doc = await asyncio.to_thread(require_number, container, id)
    await execute(container, c.DeleteSession(session_id=doc["id"], by=by))
    return Response(status_code=200)


@router.get("/device/sessions")
def device_sessions(
    container: FreshDep,
    id_session: int | None = None,
    # Here `list` means "list all sessions", not minimal objects.
    list_all: Annotated[bool, Query(alias="list")] = False,
) -> list[dict[str, Any]]:
    """Get session (all sessions when no id_session: the ledger does not know the device)."""
    return _answer(container, Selection(id_session=id_session), minimal=False)


@router.post("/device/sessions")
async def device_save(
    body: SessionBody, container: FreshDep, by: Principal
) -> list[dict[str, Any]]:
    """Update/Create session."""
    return await save(container, body.session, by)


@router.delete("/device/sessions", response_class=Response, responses=EMPTY_200)
async def device_delete(id: int, container: FreshDep, by: Principal) -> Response:
    """Delete a session (undocumented in OpenTera; same as the user namespace)."""
    return await user_delete(id, container, by)


@router.get("/participant/sessions")
def participant_sessions(
    container: FreshDep,
    window: Window,
    id_session: int | None = None,
    session_uuid: str | None = None,
    minimal: Minimal = False,
) -> list[dict[str, Any]]:
    """Get sessions (every session: a token does not name a participant in the ledger)."""
    sel = replace(window, id_session=id_session, session_uuid=session_uuid)
    return _answer(container, sel, minimal)


@router.post("/participant/sessions")
async def participant_save(
    body: SessionBody, container: FreshDep, by: Principal
) -> list[dict[str, Any]]:
    """Create / update session (OpenTera: "to be documented")."""
    return await save(container, body.session, by)


@router.get("/service/sessions")
def service_sessions(
    container: FreshDep,
    window: Window,
    member: Member,
    id_session: int | None = None,
    uuid_session: str | None = None,
    minimal: Minimal = False,
    with_events: Flag = False,
    with_session_type: Flag = False,
) -> list[dict[str, Any]]:
    """Return sessions information (all sessions when no id is given)."""
    sel = replace(window, id_session=id_session, session_uuid=uuid_session, member=member)
    return _answer(container, sel, minimal, with_session_type, with_events)


@router.post("/service/sessions")
async def service_save(
    body: SessionBody, container: FreshDep, by: Principal
) -> list[dict[str, Any]]:
    """Create / update session. id_session must be set to 0 to create a new session."""
    return await save(container, body.session, by)
