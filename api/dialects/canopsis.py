"""The Canopsis API v2 session stats (seed 002), translated onto the ledger.

Who calls: the caller is the user, named by an API key (api/keys.py): the request gate
(api/auth.py) takes it from an `x-canopsis-authkey` header or `authkey` query parameter
(Canopsis's two spellings), or from HTTP Basic `user:key`, where the user must be the key's
name (a user name alone proves nothing). The caller is that key's name. None: 401.

One active Canopsis session per user: `sessionstart` reuses the caller's active session when
there is one (a second tab or a reload must not split the visible time), else starts a new one
(source "canopsis", user = caller). keepalive and session-hide act on the caller's active
session, found in the list view. Silence longer than `settings.session_timeout` makes the
expiry sweeper append Expired; visible time per path follows domain/state.py.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from api import problems
from api.bootstrap import Container
from api.deps import FreshDep, execute
from api.dialects.common import gate_principal, read_views, scoped, time_param
from domain import commands as c
from domain.errors import SessionNotFoundError
from projections import queries as qs

PREFIX = "/compat/canopsis/api/v2"
router = APIRouter(prefix=PREFIX, tags=["compat: Canopsis"])


def _render_error(status: int, code: str, detail: str, field: str | None) -> Response:
    # Canopsis webcore answers errors as {"description": ...}, bad input as 400.
    return JSONResponse({"description": detail}, status_code=400 if status == 422 else status)


problems.register_renderer(PREFIX, _render_error)


def caller() -> str:
    """The authenticated user: the name of the key the gate accepted."""
    return gate_principal("authentication required (Basic auth or x-canopsis-authkey)").name


Caller = Annotated[str, Depends(caller)]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class KeepAliveBody(Body):
    visible: bool = True
    path: str | list[str] | None = None


class HideBody(Body):
    path: str | list[str] | None = None


def _path(path: str | list[str] | None) -> str | None:
    # The seed shows the view path as one string "[/view/<id>,view-tab_<id>]"; a list of
    # its parts is accepted and written the same way.
    if isinstance(path, list):
        return "[" + ",".join(path) + "]"
    return path


def _active_session(container: Container, user: str) -> str | None:
    f = qs.SessionFilter(user=(user,), source="canopsis", active=True)
    page = read_views(container, qs.list_sessions, f, "started_at", True, 1, 0)
    return page.items[0]["id"] if page.items else None


def _require_active(container: Container, user: str) -> str:
    sid = _active_session(container, user)
    if sid is None:
        raise SessionNotFoundError(f"no active session for {user}; call sessionstart first")
    return sid


@router.post("/sessionstart")
async def session_start(user: Caller, container: FreshDep) -> dict[str, str]:
    """Start the caller's session (or keep using the one already active)."""
    if _active_session(container, user) is None:
        sid = f"canopsis-{uuid.uuid4()}"
        await execute(
            container, c.StartSession(session_id=sid, source="canopsis", user=user, by=user)
        )
    return {"description": "Session Start"}


@router.post("/keepalive")
async def keepalive(body: KeepAliveBody, user: Caller, container: FreshDep) -> dict[str, Any]:
    """The caller is still there, looking (visible) at `path` or not."""
    sid = _require_active(container, user)
    path = _path(body.path)
    await execute(container, c.KeepAlive(session_id=sid, visible=body.visible, path=path, by=user))
    return {
        "description": "Session keepalive",
        "time": int(container.ledger.clock()),
        "visible": body.visible,
        "paths": path,
    }


@router.post("/session-hide")
async def session_hide(user: Caller, container: FreshDep, body: HideBody | None = None) -> Any:
    """The caller left `path` (the time spent on it is counted up to now)."""
    sid = _require_active(container, user)
    path = _path(body.path if body else None)
    await execute(container, c.Hide(session_id=sid, path=path, by=user))
    return {"description": "Session hide"}


def _time(value: str | None, field: str) -> float | None:
    return time_param(value, field, "is not a timestamp: {value!r}")


def _session_item(doc: dict[str, Any]) -> dict[str, Any]:
    visible = doc["visible_time"]
    end = doc["ended_at"] if doc["ended_at"] is not None else doc["last_seen_at"]
    return {
        "id": doc["id"],
        "username": doc["user"],
        "active": doc["ended_at"] is None,
        "start": doc["started_at"],
        "last_ping": doc["last_seen_at"],
        "stop": doc["ended_at"],
        "expired": doc["end_reason"] == "expired",
        "duration": round(max(0.0, end - doc["started_at"]), 6),
        "visible_duration": round(sum(visible.values()), 6),
        "paths": visible,
    }


@router.get("/sessions")
def list_sessions(
    user: Caller,
    container: FreshDep,
    usernames_brackets: Annotated[list[str] | None, Query(alias="usernames[]")] = None,
    usernames: Annotated[list[str] | None, Query()] = None,
    active: bool | None = None,
    started_after: str | None = None,
    stopped_before: str | None = None,
    limit: int = Query(1000, ge=1, le=10000),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    """Canopsis sessions, newest first, with the time spent visible on each path."""
    f = qs.SessionFilter(
        user=tuple((usernames_brackets or []) + (usernames or [])),
        source="canopsis",
        active=active,
        started_after=_time(started_after, "started_after"),
        stopped_before=_time(stopped_before, "stopped_before"),
    )
    page = read_views(container, qs.list_details, scoped(f), "started_at", True, limit, offset)
    data = [_session_item(d) for d in page.items]
    return {"total": page.total, "data": data, "success": True}
