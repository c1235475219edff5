"""Canopsis's shapes: the error shape (`{"description"}`), who calls, the bodies the UI sends
(`visible`, `path` as [view] or [view, tab]) and their checks, and a ledger session as
Canopsis lists it: the document its session manager stores and `GET /api/v2/sessions`
returns (capensis/canopsis, sources/canopsis/canopsis/session/manager.py): `_id`,
`id_beaker_session`, `username`, times in whole epoch seconds, `visible_duration` and
`tab_duration` in whole seconds."""

from __future__ import annotations

import base64
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response

from api import problems
from api.dialects.common import gate_principal
from domain.errors import InvalidCommandError

PREFIX = "/compat/canopsis/api/v2"


def _render_error(status: int, code: str, detail: str, field: str | None) -> Response:
    # Canopsis webcore answers errors as {"description": ...}, bad input as 400.
    return JSONResponse({"description": detail}, status_code=400 if status == 422 else status)


problems.register_renderer(PREFIX, _render_error, 400, problems.text_fields("description"))


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


def body_doc(*required: str) -> dict[str, Any]:
    """The OpenAPI text of a JSON body (parsed by hand: Canopsis reads any content type)."""
    props: dict[str, Any] = {"visible": {"type": "boolean"}, "path": _PATH_SCHEMA}
    schema = {"type": "object", "required": list(required),
              "properties": {k: props[k] for k in required}}  # fmt: skip
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}}}  # fmt: skip


EMPTY_200: dict[int | str, dict[str, Any]] = {
    200: {"description": "Recorded: an empty body, as Canopsis answers", "content": {}}
}


async def json_object(request: Request) -> dict[str, Any]:
    # Canopsis reads the body as JSON whatever its content type (`json.loads(request.body)`).
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise InvalidCommandError("the body is not JSON", field="body") from None
    if not isinstance(data, dict):
        raise InvalidCommandError("the body must be a JSON object", field="body")
    return data


def path_of(data: dict[str, Any]) -> tuple[Any, str]:
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


def visible_of(data: dict[str, Any]) -> bool:
    visible = data.get("visible")
    if type(visible) is not bool:
        raise InvalidCommandError("visible is required: true or false", field="visible")
    return visible


def path_parts(path: str | None) -> list[str]:
    """A recorded path as Canopsis's list of parts: "[view,tab]" (the seed's form, and how
    the dialect records the UI's [view, tab]) is [view, tab]; a path of another way in is
    one view; no path is none."""
    if not path:
        return []
    if path.startswith("[") and path.endswith("]"):
        return [p for p in path[1:-1].split(",", 1) if p]
    return [path]


def tab_duration(visible_time: dict[str, float]) -> dict[str, Any]:
    """Seconds visible per view, or per tab of a view: {view: seconds} or {view: {tab:
    seconds}}, as Canopsis counts them. A view with time both on its own and on its tabs
    is one number (Canopsis adds a tab's time to a view that already holds a number); time
    with no path counts in `visible_duration` only."""
    per_view: dict[str, dict[str | None, float]] = {}
    for path, seconds in visible_time.items():
        parts = path_parts(path)
        if parts:
            tabs = per_view.setdefault(parts[0], {})
            tab = parts[1] if len(parts) > 1 else None
            tabs[tab] = tabs.get(tab, 0.0) + seconds
    out: dict[str, Any] = {}
    for view, tabs in per_view.items():
        if None in tabs:
            out[view] = round(sum(tabs.values()))
        else:
            out[view] = {tab: round(s) for tab, s in tabs.items() if tab is not None}
    return out


def beaker_id(username: str, start: int) -> str:
    """Canopsis's `id_beaker_session`: base64 of "<username>_<login time>" (its
    get_id_beaker_session); the session's start stands for the login."""
    return base64.b64encode(f"{username}_{start}".encode()).decode()


def _seconds(value: float | None) -> int:
    return int(value or 0)


def _last_visible(doc: dict[str, Any], start: int) -> tuple[int, list[str]]:
    """When and where the session was last visible: its last visible keepalive, kept while
    it is hidden, as Canopsis keeps them; before any, the start and no path."""
    if "last_visible_at" not in doc:  # a document folded before the fold kept it
        since = doc["visible_since"]
        at = since if since is not None else doc["last_seen_at"] if doc["visible_time"] else None
        return (start if at is None else _seconds(at)), path_parts(doc["visible_path"])
    at = doc["last_visible_at"]
    return (start if at is None else _seconds(at)), path_parts(doc["last_visible_path"])


def session_item(doc: dict[str, Any]) -> dict[str, Any]:
    """The Canopsis session document of one ledger session (its detail document)."""
    user = doc["user"] or ""
    start = _seconds(doc["started_at"])
    last_ping = _seconds(doc["last_seen_at"] or doc["started_at"])
    visible = doc["visible_time"]
    last_visible_ping, last_visible_path = _last_visible(doc, start)
    return {
        "_id": doc["id"],
        "id_beaker_session": beaker_id(user, start),
        "username": user,
        "start": start,
        "last_ping": last_ping,
        "last_visible_ping": last_visible_ping,
        "last_visible_path": last_visible_path,
        "visible_duration": round(sum(visible.values())),
        "tab_duration": tab_duration(visible),
    }
