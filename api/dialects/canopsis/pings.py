"""Canopsis's UI calls that write: `sessionstart` (the caller's one active session, reused or
started), `keepalive` and `session_tracepath` (a visible keepalive on the new path; also
`session_hide`, and the seed's spellings), each starting a session when none is active."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.bootstrap import Container
from api.deps import FreshDep, execute
from api.dialects.canopsis.shape import (
    EMPTY_200,
    Caller,
    body_doc,
    json_object,
    path_of,
    visible_of,
)
from api.dialects.common import read_views
from domain import commands as c
from domain.rules import validate
from projections import queries as qs

router = APIRouter()


def _active_session(container: Container, user: str) -> str | None:
    f = qs.SessionFilter(user=(user,), source="canopsis", active=True)
    page = read_views(container, qs.list_sessions, f, "started_at", True, 1, 0)
    return page.items[0]["id"] if page.items else None


def _start(user: str) -> c.StartSession:
    return c.StartSession(
        session_id=f"canopsis-{uuid.uuid4()}", source="canopsis", user=user, by=user
    )


async def _ping(container: Container, user: str, visible: bool, path: str) -> None:
    """A keepalive on the caller's active session; with none, one is started first (as
    Canopsis's keep_alive and session_tracepath do). The keepalive is checked against the
    rules before the start, so that a refused one appends nothing at all."""
    sid = _active_session(container, user)
    start = _start(user) if sid is None else None
    ping = c.KeepAlive(
        session_id=start.session_id if start else str(sid), visible=visible, path=path, by=user
    )
    if start is not None:
        validate(ping, container.ledger.limits)
        await execute(container, start)
    await execute(container, ping)


async def _session_start(user: str, container: Container) -> dict[str, str]:
    if _active_session(container, user) is None:
        await execute(container, _start(user))
    return {"description": "Session Start"}


@router.get("/sessionstart")
async def session_start(user: Caller, container: FreshDep) -> dict[str, str]:
    """Start the caller's session (or keep using the one already active), as the UI does at
    login."""
    return await _session_start(user, container)


@router.post("/sessionstart")
async def session_start_post(user: Caller, container: FreshDep) -> dict[str, str]:
    """`sessionstart` as the seed documents it (POST); the same as GET."""
    return await _session_start(user, container)


@router.post("/keepalive", openapi_extra=body_doc("visible", "path"))
async def keepalive(request: Request, user: Caller, container: FreshDep) -> dict[str, Any]:
    """The caller is still there, looking (visible) at `path` or not; starts the caller's
    session when none is active."""
    data = await json_object(request)
    visible, (sent, path) = visible_of(data), path_of(data)
    await _ping(container, user, visible, path)
    return {
        "description": "Session keepalive",
        "time": int(container.ledger.clock()),
        "visible": visible,
        "paths": sent,
    }


async def trace_path(request: Request, user: Caller, container: FreshDep) -> Response:
    """The caller moved to `path` (the UI calls it on each route change): a visible keepalive
    there; starts the caller's session when none is active."""
    _sent, path = path_of(await json_object(request))
    await _ping(container, user, True, path)
    return Response(status_code=200)


# One endpoint under its three names: Canopsis's, its name before Canopsis renamed it
# (January 2020), and the seed's spelling.
for _path, _name, _summary in (
    ("/session_tracepath", "session_tracepath", "Session Tracepath"),
    ("/session_hide", "session_hide", "Session Hide (session_tracepath's earlier name)"),
    ("/session-hide", "session_hide_seed", "Session Hide (the seed's spelling of session_hide)"),
):
    router.add_api_route(
        _path, trace_path, methods=["POST"], response_class=Response, responses=EMPTY_200,
        openapi_extra=body_doc("path"), summary=_summary,
        operation_id=f"canopsis_{_name}",
    )  # fmt: skip
