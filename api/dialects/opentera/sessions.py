"""OpenTera's user and service session APIs: read sessions, create or update one (id_session
0 creates), delete one; teraserver/python/modules/FlaskModule/API/user/UserQuerySessions.py
and service/ServiceQuerySessions.py, followed line by line where cited."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from api.bootstrap import Container
from api.deps import PAGE_BOUND, FreshDep, execute
from api.dialects.opentera.events import events_json
from api.dialects.opentera.read import Selection, by_number, find, missing, require_number
from api.dialects.opentera.save import Way, save
from api.dialects.opentera.shape import EMPTY_200, SessionBody, session_json
from api.dialects.opentera.who import CallerDep
from domain import commands as c
from domain.errors import ForbiddenError

router = APIRouter()

# OpenTera's `list` flag: minimal objects (no comments, parameters or members).
Minimal = Annotated[bool, Query(alias="list")]
Flag = Annotated[bool, Query()]


def answer(
    container: Container,
    sel: Selection,
    minimal: bool,
    with_type: str | None = None,
    with_events: bool = False,
) -> list[dict[str, Any]]:
    """The sessions `sel` finds as OpenTera objects (with their events when asked)."""
    out = []
    for doc in find(container, sel):
        item = session_json(doc, minimal, with_type)
        if with_events:
            item["session_events"] = events_json(container, doc)
        out.append(item)
    return out


def window(
    status: int | None = None,
    limit: int | None = Query(None, ge=0, le=PAGE_BOUND),
    offset: int = Query(0, ge=0, le=PAGE_BOUND),
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


Window = Annotated[Selection, Depends(window)]
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
    return answer(container, sel, minimal, "flat" if with_session_type else None)


@router.post("/user/sessions")
async def user_save(body: SessionBody, container: FreshDep, who: CallerDep) -> list[dict[str, Any]]:
    """Create / update session. id_session must be set to 0 to create a new session."""
    s = body.session
    # UserQuerySessions.py lines 136-139: a new session names its participants or users.
    if s.id_session == 0 and s.session_participants_ids is None and s.session_users_ids is None:
        raise missing("Missing session participants and users")
    doc = None
    if s.id_session != 0:
        doc = await asyncio.to_thread(by_number, container, s.id_session)
        if doc is None:  # UserQuerySessions.py lines 141-145: none, or not the key's to see
            raise ForbiddenError("No access to session.")
    return [await save(container, s, Way(who.actor), doc)]


@router.delete("/user/sessions", response_class=Response, responses=EMPTY_200)
async def user_delete(id: int, container: FreshDep, who: CallerDep) -> Response:
    """Delete a specific session (the view hides it; its events stay for audit)."""
    doc = await asyncio.to_thread(require_number, container, id)
    if doc["status"] == "running":
        # UserQuerySessions.py lines 265-267.
        raise ForbiddenError("Session is in progress: can't delete that session.")
    await execute(container, c.DeleteSession(session_id=doc["id"], by=who.actor))
    return Response(status_code=200)


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
    """Return sessions information (one id is required)."""
    if id_session is None and member is None and uuid_session is None:
        # ServiceQuerySessions.py lines 104-105.
        raise missing("Missing arguments: at least one id is required")
    sel = replace(window, id_session=id_session, session_uuid=uuid_session, member=member)
    return answer(container, sel, minimal, "nested" if with_session_type else None, with_events)


# ServiceQuerySessions.py lines 235-262: the posted participants replace the session's,
# posted users and devices are added to its own.
SERVICE_EXTENDS = frozenset(("users", "devices"))


@router.post("/service/sessions")
async def service_save(
    body: SessionBody, container: FreshDep, who: CallerDep
) -> list[dict[str, Any]]:
    """Create / update session. id_session must be set to 0 to create a new session."""
    s = body.session
    if s.id_session == 0 and s.id_session_type is None:
        raise missing("Missing id_session_type")  # ServiceQuerySessions.py lines 201-202
    return [await save(container, s, Way(who.actor, extend=SERVICE_EXTENDS))]
