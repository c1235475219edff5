"""OpenTera's device and participant session APIs (teraserver/python/modules/FlaskModule/
API/device/DeviceQuerySessions.py, participant/ParticipantQuerySessions.py): a device may
not read or delete sessions, a participant reads its own; both create sessions they are the
creator of, may update only those, and get the session back as one object, not a list."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api.bootstrap import Container
from api.deps import FreshDep
from api.dialects.opentera.read import by_number, find_own, missing
from api.dialects.opentera.save import Way, save
from api.dialects.opentera.sessions import Minimal, Window
from api.dialects.opentera.shape import SessionBody, SessionIn, session_json
from api.dialects.opentera.who import Caller, CallerDep
from domain.errors import ForbiddenError

router = APIRouter()
MEMBER_FIELDS = frozenset(("session_participants", "session_users", "session_devices"))
# Both APIs ignore the participants of an update ("TODO handle participant list"):
# DeviceQuerySessions.py lines 147-155, ParticipantQuerySessions.py lines 174-181.
KEPT = frozenset(("participants",))
SECURITY = "Forbidden for security reasons"  # DeviceQuerySessions.py lines 74 and 201


def _required(s: SessionIn) -> None:
    """The fields a device or participant POST must carry, checked in OpenTera's order
    (DeviceQuerySessions.py lines 98-126, ParticipantQuerySessions.py lines 126-153)."""
    given = s.model_fields_set
    if "id_session_type" not in given:
        raise missing("Missing id_session_type value")
    if s.id_session == 0:
        if not given & MEMBER_FIELDS:
            raise missing("Missing session participants and/or users and/or devices")
        if "session_name" not in given:
            raise missing("Missing argument 'session name'")
        if "session_start_datetime" not in given:
            raise missing("Missing argument 'session_start_datetime'")


async def _save_own(container: Container, s: SessionIn, who: Caller) -> dict[str, Any]:
    """Create, or update a session the bound caller created (else 403 "Unauthorized")."""
    _required(s)
    doc = None
    if s.id_session != 0:
        doc = await asyncio.to_thread(by_number, container, s.id_session)
        # Not a session the caller may update, or none at all: the same 403.
        if doc is None or (who.kind is not None and not who.created(doc)):
            raise ForbiddenError("Unauthorized")
    return await save(container, s, Way(who.actor, forced=who.kind is not None, kept=KEPT), doc)


@router.get("/device/sessions", responses={403: {"description": SECURITY}})
def device_sessions(
    id_session: int | None = None,
    list_all: Annotated[bool, Query(alias="list")] = False,
) -> list[dict[str, Any]]:
    """Query device sessions: refused, as OpenTera refuses it to every device."""
    raise ForbiddenError(SECURITY)


@router.post("/device/sessions")
async def device_save(body: SessionBody, container: FreshDep, who: CallerDep) -> dict[str, Any]:
    """Update / create a session; the session itself is the answer."""
    return await _save_own(container, body.session, who)


@router.delete("/device/sessions", responses={403: {"description": SECURITY}})
def device_delete(id: int | None = None) -> Response:
    """Delete a session: refused, as OpenTera refuses it to every device."""
    raise ForbiddenError(SECURITY)


@router.get("/participant/sessions")
def participant_sessions(
    container: FreshDep,
    window: Window,
    who: CallerDep,
    id_session: int | None = None,
    session_uuid: str | None = None,
    minimal: Minimal = False,
) -> list[dict[str, Any]]:
    """Get participant sessions: the bound participant's own (a member or their creator);
    every session the key may read for a key bound to no one."""
    sel = replace(window, id_session=id_session, session_uuid=session_uuid)
    return [session_json(doc, minimal) for doc in find_own(container, sel, who)]


@router.post("/participant/sessions")
async def participant_save(
    body: SessionBody, container: FreshDep, who: CallerDep
) -> dict[str, Any]:
    """Create / update a session; the session itself is the answer."""
    return await _save_own(container, body.session, who)
