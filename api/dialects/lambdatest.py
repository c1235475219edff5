"""The LambdaTest session API (seed document in shared/seeds), translated onto the ledger."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from api.bootstrap import Container
from api.deps import ContainerDep, FreshDep, execute, require_detail
from api.dialects.common import actor, fresh_detail, read_views, scoped
from api.problems import register_renderer
from api.render import UPLOAD_HEADERS, uploaded_content
from api.uploads import store_upload
from domain import commands as c
from domain.errors import InvalidCommandError, SessionNotFoundError
from domain.state import STATUSES
from projections import queries as qs
from projections.present import iso

PREFIX = "/compat/lambdatest/automation/api/v1"
router = APIRouter(prefix=PREFIX, tags=["compat: LambdaTest"])

STATUS_KEY = re.compile(r"status(\[\d*\])?")
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]
# The seed's sort keys (and the real client's variants) onto the ledger's sort columns.
SORT_KEYS = {
    "start_time": "started_at", "start_timestamp": "started_at", "create_timestamp": "started_at",
    "end_time": "ended_at", "end_timestamp": "ended_at", "duration": "duration", "name": "name",
}  # fmt: skip
LOGS = {"command": "command", "selenium": "selenium", "network": "network", "console": "console",
        "network.har": "har", "full-har": "har"}  # fmt: skip
LOG_URL_FIELDS = ("console", "network", "command", "selenium")
HAR_MESSAGE = "Downloaded network.har file successfully"
# The tag a LambdaTest session's start records: the name of the key that started it, its
# account (LambdaTest's Basic user name is the key's name). The list shows an account's own.
ACCOUNT_TAG = "lambdatest.account"


def _render_error(status: int, code: str, detail: str, field: str | None) -> Response:
    # The seed documents 400 for bad input and 404 for a missing session: a deleted
    # session is not found, and invalid input is a bad request.
    status = {422: 400, 410: 404}.get(status, status)
    return JSONResponse({"status": "fail", "message": detail, "code": code}, status_code=status)


register_renderer(PREFIX, _render_error)


# Who writes: `actor()`, the name of the key the gate accepted (Basic `name:key`, the name
# being the key's own, as the clients send their user name and access key).


def _missing(session_id: str) -> str:
    return f"Session {session_id} not found"


def _detail(container: Container, session_id: str) -> dict[str, Any]:
    return require_detail(container, session_id, _missing(session_id))


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """A ledger session as the seed's list item."""
    attrs = doc.get("attributes") or {}
    duration = doc.get("duration")
    return {
        "session_id": doc["id"],
        "build_id": doc.get("build"),
        "name": doc.get("name"),
        "status": doc["status"],
        "status_ind": doc["status"],
        "username": doc.get("user"),
        **{
            k: attrs.get(k)
            for k in ("browser", "browser_version", "os", "os_version", "resolution")
        },
        "start_timestamp": iso(doc.get("started_at")),
        "end_timestamp": iso(doc.get("ended_at")),
        "duration": None if duration is None else int(duration),
        "remarks": doc.get("remarks"),
    }


def with_account(cmd: c.Command) -> c.Command:
    """`cmd`, and when it starts a LambdaTest session, with its account: the calling key's
    name as the tag ACCOUNT_TAG (a client's own value for it is replaced, so no key can file
    a session under another's account). Native starts and batch start lines come through
    here; anything else is returned as it is."""
    if type(cmd) is not c.StartSession or cmd.source != "lambdatest":
        return cmd
    if not isinstance(cmd.tags, dict):
        return cmd  # the input rules refuse it, naming `tags`
    tags = {k: v for k, v in cmd.tags.items() if k != ACCOUNT_TAG}
    who = actor()
    if who is not None:
        tags[ACCOUNT_TAG] = who
    return dataclasses.replace(cmd, tags=tags)


def _day(value: str | None, field: str, end: bool) -> float | None:
    if not value:
        return None
    try:
        d = date.fromisoformat(value)
    except ValueError:
        raise InvalidCommandError(
            f"{field} must be YYYY-MM-DD, not {value!r}", field=field
        ) from None
    # The list filters are strict; the seed's day bounds are inclusive.
    if end:
        return datetime.combine(d + timedelta(days=1), time(), tzinfo=UTC).timestamp()
    return datetime.combine(d, time(), tzinfo=UTC).timestamp() - 1e-6


def _sort(value: str | None) -> tuple[str, bool]:
    """`asc.start_time`, `desc.duration` (several keys: the first decides; number breaks ties)."""
    if not value:
        return "started_at", True
    first = value.split(",")[0].strip()
    direction, _, key = first.partition(".")
    if direction not in ("asc", "desc") or key not in SORT_KEYS:
        raise InvalidCommandError(
            f"sort must be asc.<key> or desc.<key> with key in {', '.join(SORT_KEYS)}", field="sort"
        )
    return SORT_KEYS[key], direction == "desc"


@router.get("/sessions")
def list_sessions(
    request: Request,
    container: FreshDep,
    build_id: str | None = None,
    username: str | None = None,
    status: str | None = Query(None, description="comma-separated statuses"),
    fromdate: str | None = None,
    todate: str | None = None,
    sort: str | None = Query(None, description="asc.start_time, desc.duration, ..."),
    offset: int = Query(0, ge=0),
    limit: int = Query(10, ge=1, le=1000),
) -> dict[str, Any]:
    """Fetch list of all sessions: the calling account's LambdaTest sessions."""
    # Comma lists (documented); arrays arrive as status[0]=.. (v1) or status[]=.. (v2).
    values = [v for k, v in request.query_params.multi_items() if STATUS_KEY.fullmatch(k)]
    statuses = tuple(dict.fromkeys(s.strip() for v in values for s in v.split(",") if s.strip()))
    f = qs.SessionFilter(
        source="lambdatest",
        tags=((ACCOUNT_TAG, actor() or ""),),
        build=build_id,
        user=(username,) if username else (),
        status=statuses,
        started_after=_day(fromdate, "fromdate", end=False),
        started_before=_day(todate, "todate", end=True),
    )
    key, descending = _sort(sort)
    page = read_views(container, qs.list_sessions, scoped(f), key, descending, limit, offset)
    meta = {"limit": limit, "offset": offset, "total": page.total}
    return {
        "meta": meta,
        "Meta": {"result_set": {"count": len(page.items), **meta}},  # as the live API adds
        "data": [summary(i) for i in page.items],
        "message": "Retrieve session list was successful",
        "status": "success",
    }


@router.get("/sessions/{session_id}", name="lt_session")
def get_session(session_id: str, request: Request, container: FreshDep) -> dict[str, Any]:
    """Session specific information, with log and video URLs on this server."""
    data = summary(_detail(container, session_id))
    data["video_url"] = str(request.url_for("lt_video", session_id=session_id))
    for kind in LOG_URL_FIELDS:
        data[f"{kind}_logs_url"] = str(request.url_for("lt_log", session_id=session_id, kind=kind))
    data["screenshot_url"] = str(request.url_for("lt_screenshots", session_id=session_id))
    return {"data": data, "message": "Retrieve session was successful", "status": "success"}


# What a command route builds from its request: (request, container, session id, key).
MakeCommand = Callable[[Request, Container, str, str | None], Awaitable[c.Command]]


def _command_route(
    method: str, path: str, name: str, doc: str, make: MakeCommand, message: str
) -> None:
    """Declare the route `name` (`doc` its OpenAPI text): it executes the command `make`
    builds for one session and answers the seed's `message`, nothing more."""

    async def endpoint(
        session_id: str, request: Request, container: ContainerDep, idem: IdemKey = None
    ) -> dict[str, Any]:
        await execute(container, await make(request, container, session_id, idem))
        return {"success": True, "message": message, "status": "success"}

    router.add_api_route(path, endpoint, methods=[method], name=name, description=doc)


def _plain(kind: type[c.DeleteSession | c.StopSession]) -> MakeCommand:
    """A command that names nothing but its session (and who asks, once)."""

    async def make(request: Request, container: Container, sid: str, idem: str | None) -> c.Command:
        return kind(session_id=sid, by=actor(), idempotency_key=idem)

    return make


_command_route(
    "DELETE", "/sessions/{session_id}", "delete_session",
    "Delete test session (a tombstone: the stream stays for audit).",
    _plain(c.DeleteSession), "Session deleted successfully",
)  # fmt: skip


async def _patch_body(request: Request) -> dict[str, Any]:
    """The JSON body; the v2 client posts its JSON string as x-www-form-urlencoded."""
    raw = await request.body()
    if not raw.strip():
        raise InvalidCommandError("the body is empty: send name, status or remarks", field="body")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if "form-urlencoded" not in request.headers.get("content-type", ""):
            raise InvalidCommandError("the body is not JSON", field="body") from None
        obj = dict(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))
    if not isinstance(obj, dict):
        raise InvalidCommandError("the body must be a JSON object", field="body")
    unknown = set(obj) - {"name", "status", "status_ind", "remarks"}
    if unknown:
        raise InvalidCommandError(f"unknown field(s) {', '.join(sorted(unknown))}", field="body")
    for k, v in obj.items():
        if v is not None and not isinstance(v, str):
            raise InvalidCommandError(f"{k} must be a string", field=k)
    return obj


@router.patch("/sessions/{session_id}")
async def update_session(
    session_id: str, request: Request, container: ContainerDep, idem: IdemKey = None
) -> dict[str, Any]:
    """Update test session details: name, status (or status_ind), remarks."""
    body = await _patch_body(request)
    status = body.get("status") or body.get("status_ind")
    if status is not None and status not in STATUSES:
        raise InvalidCommandError(f"status must be one of {', '.join(STATUSES)}", field="status")
    changes = {k: body[k] for k in ("name", "remarks") if body.get(k) is not None}
    if not changes and status is None:
        raise InvalidCommandError("send name, status (or status_ind) or remarks", field="body")
    cmd = c.UpdateDetails(
        session_id=session_id, changes=changes, status=status, by=actor(), idempotency_key=idem,
    )  # fmt: skip
    result = await execute(container, cmd)
    doc = await fresh_detail(container, session_id, result.position, _missing(session_id))
    data = {k: doc.get(k) for k in ("name", "status", "remarks")}
    return {"success": True, "message": "Session updated successfully", "status": "success",
            "data": {"session_id": session_id, **data}}  # fmt: skip


_command_route(
    "PUT", "/sessions/{session_id}/stop", "stop_session",
    "Stop session by sessionID (a second stop appends nothing).",
    _plain(c.StopSession), "Session stopped successfully",
)  # fmt: skip


def _artifact_url(request: Request, session_id: str, index: int, art: dict[str, Any]) -> str:
    if art.get("url"):
        return str(art["url"])
    return str(request.url_for("lt_artifact", session_id=session_id, index=str(index)))


@router.get("/sessions/{session_id}/screenshots", name="lt_screenshots")
def screenshots(session_id: str, request: Request, container: FreshDep) -> dict[str, Any]:
    """All step by step screenshots (the session's screenshot artifacts, in order)."""
    arts = _detail(container, session_id)["artifacts"]
    shots = [(i, a) for i, a in enumerate(arts) if a["kind"] == "screenshot"]
    return {
        "data": [
            {"id": f"screenshot_{n}", "timestamp": iso(a["at"]), "title": a.get("title"),
             "url": _artifact_url(request, session_id, i, a)}
            for n, (i, a) in enumerate(shots, 1)
        ]
    }  # fmt: skip


@router.get("/sessions/{session_id}/video", name="lt_video")
def video(session_id: str, request: Request, container: FreshDep) -> dict[str, Any]:
    """The recorded video (the latest video artifact)."""
    arts = list(enumerate(_detail(container, session_id)["artifacts"]))
    vids = [(i, a) for i, a in arts if a["kind"] == "video"]
    if not vids:
        raise SessionNotFoundError(f"Session {session_id} has no video")
    i, art = vids[-1]
    return {"status": "success", "data": {"video_url": _artifact_url(request, session_id, i, art)}}


@router.get("/sessions/{session_id}/artifacts/{index}", name="lt_artifact")
def artifact(session_id: str, index: int, container: FreshDep) -> Response:
    """The stored content of a screenshot or video uploaded without a URL."""
    arts = _detail(container, session_id)["artifacts"]
    if not 0 <= index < len(arts) or not arts[index].get("sha256"):
        raise SessionNotFoundError(f"Session {session_id} has no stored artifact {index}")
    art = arts[index]
    return uploaded_content(
        container.blobs.get(art["sha256"]),
        art.get("content_type") or "application/octet-stream",
        f"{art['kind']}-{index}",
    )


def _strip(part: Any, keys: tuple[str, ...]) -> Any:
    return {k: v for k, v in part.items() if k not in keys} if isinstance(part, dict) else part


def without_content(har: Any) -> Any:
    """A HAR without its bodies (request postData text and params, response content text):
    what LambdaTest's network.har holds; full-har is the file with them."""
    log = har.get("log") if isinstance(har, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("entries"), list):
        return har
    entries = []
    for e in log["entries"]:
        if isinstance(e, dict):
            req, resp = e.get("request"), e.get("response")
            if isinstance(req, dict) and "postData" in req:
                e = {
                    **e,
                    "request": {**req, "postData": _strip(req["postData"], ("text", "params"))},
                }
            if isinstance(resp, dict) and "content" in resp:
                e = {**e, "response": {**resp, "content": _strip(resp["content"], ("text",))}}
        entries.append(e)
    return {**har, "log": {**log, "entries": entries}}


@router.get("/sessions/{session_id}/log/{kind}", name="lt_log")
def get_log(session_id: str, kind: str, container: FreshDep) -> Response:
    """Command, selenium, network, console logs and HAR: the latest upload of that kind.

    JSON content is answered as stored (wrapped in `data` unless it is already an object);
    text is answered as `{"data": "<text>"}`, since the clients parse every answer as JSON.
    `network.har` is the HAR without request and response bodies, `full-har` the HAR file as
    uploaded (bodies included), as a download, as LambdaTest documents them.
    """
    if kind not in LOGS:
        raise SessionNotFoundError(f"no log {kind!r}; one of {', '.join(LOGS)}")
    logs = [lg for lg in _detail(container, session_id)["logs"] if lg["kind"] == LOGS[kind]]
    if not logs:
        raise SessionNotFoundError(f"Session {session_id} has no {kind} log")
    content = container.blobs.get(logs[-1]["sha256"])
    if kind == "full-har":
        return uploaded_content(content, "application/octet-stream", "full.har")
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError:
        return JSONResponse({"data": content.decode(errors="replace")}, headers=UPLOAD_HEADERS)
    if kind == "network.har":
        body = {"data": without_content(parsed), "message": HAR_MESSAGE, "status": "success"}
        return JSONResponse(body, headers=UPLOAD_HEADERS)
    if isinstance(parsed, dict):
        return Response(content, media_type="application/json", headers=UPLOAD_HEADERS)
    return JSONResponse({"data": parsed}, headers=UPLOAD_HEADERS)


def _upload(kind: str) -> MakeCommand:
    """Store the body (or a multipart form's file) by sha256: an artifact of `kind` that
    records it. An artifact, not a log: LambdaTest takes these reports after the test has
    ended too, and the ledger attaches artifacts to a stopped session (logs it refuses)."""

    async def make(request: Request, container: Container, sid: str, idem: str | None) -> c.Command:
        cap = container.settings.body_limits.max_upload_bytes
        sha, size, ctype = await store_upload(request, container.blobs, cap)
        return c.AttachArtifact(
            session_id=sid, kind=kind, content_type=ctype, size=size, sha256=sha,
            by=actor(), idempotency_key=idem,
        )  # fmt: skip

    return make


_command_route(
    "POST", "/sessions/{session_id}/terminal-logs", "terminal_logs",
    "Upload terminal logs (the session's `terminal` artifact; accepted after stop too).",
    _upload("terminal"), "Terminal logs uploaded successfully",
)  # fmt: skip
_command_route(
    "POST", "/sessions/{session_id}/exceptions", "exceptions",
    "Upload assertion logs (the session's `exceptions` artifact; accepted after stop too).",
    _upload("exceptions"), "Assertion logs uploaded successfully",
)  # fmt: skip
