"""The Canopsis session statistics (`/api/v2`), answered as the real Canopsis answers them.

Followed from the real code, where it differs from the seed text (002): the webcore routes
(capensis/canopsis, sources/canopsis/canopsis/webcore/services/session.py and
session/manager.py) and the UI that calls them (canopsis-next: `GET sessionstart` at login,
`POST keepalive` every two minutes with `{"visible", "path": [view] or [view, tab]}`,
`POST session_tracepath`, earlier `session_hide`, on each route change). The seed's
spellings (`POST sessionstart`, `POST session-hide`) are served too.

Who calls: the user named by an API key (api/keys.py); the request gate (api/auth.py) takes
it from `x-canopsis-authkey`, `?authkey=` or Basic `user:key`, the user being the key's name.

One active Canopsis session per user, as Canopsis keeps one per login: `sessionstart` reuses
the caller's active session, else starts one (source "canopsis", user = caller). A keepalive
or a trace-path with no active session starts one first, as Canopsis does. A trace-path is
a visible keepalive on the new path (Canopsis's own implementation); visible time per path
follows domain/state.py. Silence longer than `settings.session_timeout` makes the expiry
sweeper append Expired. The list's shape is api/dialects/canopsis_shape.py's.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from api import problems
from api.bootstrap import Container
from api.deps import FreshDep, execute
from api.dialects.canopsis_shape import session_item
from api.dialects.common import gate_principal, read_views, scoped, time_param
from domain import commands as c
from domain.errors import InvalidCommandError
from domain.rules import validate
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

_PATH_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
         "maxItems": 2, "description": "[view] or [view, tab], as the Canopsis UI sends it"},
        {"type": "string", "minLength": 1, "description": "the seed's `[view,tab]` string"},
    ]
}  # fmt: skip


def _body_doc(*required: str) -> dict[str, Any]:
    """The OpenAPI text of a JSON body (parsed by hand: Canopsis reads any content type)."""
    props: dict[str, Any] = {"visible": {"type": "boolean"}, "path": _PATH_SCHEMA}
    schema = {"type": "object", "required": list(required),
              "properties": {k: props[k] for k in required}}  # fmt: skip
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}}}  # fmt: skip


_EMPTY_200: dict[int | str, dict[str, Any]] = {
    200: {"description": "Recorded: an empty body, as Canopsis answers", "content": {}}
}


async def _json_object(request: Request) -> dict[str, Any]:
    # Canopsis reads the body as JSON whatever its content type (`json.loads(request.body)`).
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise InvalidCommandError("the body is not JSON", field="body") from None
    if not isinstance(data, dict):
        raise InvalidCommandError("the body must be a JSON object", field="body")
    return data


def _path(data: dict[str, Any]) -> tuple[Any, str]:
    """(the path as sent, the path as the ledger records it). The UI sends [view] or
    [view, tab] (Canopsis refuses more than two); the seed, one string "[view,tab]". A list is
    recorded in the seed's form, so that both spell a view the same way."""
    sent = data.get("path")
    if isinstance(sent, str) and sent:
        return sent, sent
    if (
        isinstance(sent, list)
        and 1 <= len(sent) <= 2
        and all(isinstance(p, str) and p for p in sent)
    ):
        return sent, "[" + ",".join(sent) + "]"
    raise InvalidCommandError(
        'path is required: ["<view>"] or ["<view>", "<tab>"] (non-empty strings)', field="path"
    )


def _visible(data: dict[str, Any]) -> bool:
    visible = data.get("visible")
    if type(visible) is not bool:
        raise InvalidCommandError("visible is required: true or false", field="visible")
    return visible


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


@router.post("/keepalive", openapi_extra=_body_doc("visible", "path"))
async def keepalive(request: Request, user: Caller, container: FreshDep) -> dict[str, Any]:
    """The caller is still there, looking (visible) at `path` or not; starts the caller's
    session when none is active."""
    data = await _json_object(request)
    visible, (sent, path) = _visible(data), _path(data)
    await _ping(container, user, visible, path)
    return {
        "description": "Session keepalive",
        "time": int(container.ledger.clock()),
        "visible": visible,
        "paths": sent,
    }


async def _trace_path(request: Request, user: str, container: Container) -> Response:
    _sent, path = _path(await _json_object(request))
    await _ping(container, user, True, path)
    return Response(status_code=200)


@router.post(
    "/session_tracepath", response_class=Response, responses=_EMPTY_200,
    openapi_extra=_body_doc("path"),
)  # fmt: skip
async def session_tracepath(request: Request, user: Caller, container: FreshDep) -> Response:
    """The caller moved to `path` (the UI calls it on each route change): a visible keepalive
    there; starts the caller's session when none is active."""
    return await _trace_path(request, user, container)


@router.post(
    "/session_hide", response_class=Response, responses=_EMPTY_200,
    openapi_extra=_body_doc("path"),
)  # fmt: skip
async def session_hide(request: Request, user: Caller, container: FreshDep) -> Response:
    """`session_tracepath` under its name before Canopsis renamed it (January 2020)."""
    return await _trace_path(request, user, container)


@router.post(
    "/session-hide", response_class=Response, responses=_EMPTY_200,
    openapi_extra=_body_doc("path"),
)  # fmt: skip
async def session_hide_seed(request: Request, user: Caller, container: FreshDep) -> Response:
    """`session_hide` as the seed spells it."""
    return await _trace_path(request, user, container)


def _time(value: str | None, field: str) -> float | None:
    return time_param(value, field, "is not a timestamp: {value!r}")


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
    """Canopsis sessions, oldest first (Canopsis's stored order), with the time spent visible
    on each view and tab."""
    f = qs.SessionFilter(
        user=tuple((usernames_brackets or []) + (usernames or [])),
        source="canopsis",
        active=active,
        started_after=_time(started_after, "started_after"),
        stopped_before=_time(stopped_before, "stopped_before"),
    )
    page = read_views(container, qs.list_details, scoped(f), "started_at", False, limit, offset)
    return {"description": "Sessions", "sessions": [session_item(d) for d in page.items]}
