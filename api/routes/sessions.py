"""Native session commands and queries under /v1/sessions and /v1/stats.

The hottest commands (keepalive, hide, status, stop) also have a lean twin (`lean`): the
same body model, headers, command and answer, served as a plain ASGI app instead of through
FastAPI's per-request dependency solving and response building, which cost more loop time
than the command itself. The app's lane (api/app.py `LedgerAPI`) serves the twins ahead of
the middleware stack; `CommandRoute` serves them when a request reaches the router. Their
FastAPI signatures still describe them in the OpenAPI schema, and their errors are the same
problem+json answers.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from api import schemas as s
from api.deps import ContainerDep, FreshDep, connect, execute
from api.render import uploaded_content
from api.uploads import store_upload
from domain import commands as c
from domain.commands import CommandResult
from domain.errors import InvalidCommandError, SessionNotFoundError
from projections import queries as qs
from projections.present import parse_time, session_view, with_iso_times


class CommandRoute(APIRoute):
    """An APIRoute that serves requests with its endpoint's lean ASGI twin when it has one
    (`@lean`); FastAPI still reads the endpoint's signature for the OpenAPI schema."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        twin = getattr(endpoint, "__lean__", None)
        if twin is not None:
            self.app = twin


router = APIRouter(prefix="/v1", tags=["sessions"], route_class=CommandRoute)

IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]
IfMatch = Annotated[str | None, Header(alias="If-Match")]
LOG_KINDS = ("command", "selenium", "network", "console", "har", "terminal", "exceptions", "text")


def _meta(idem: str | None, if_match: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"idempotency_key": idem}
    if if_match:
        try:
            meta["expected_version"] = int(if_match.strip('"W/'))
        except ValueError:
            raise InvalidCommandError(
                "If-Match must be a stream version", field="If-Match"
            ) from None
    return meta


def answer(result: CommandResult, status: int = 200) -> JSONResponse:
    """A command's answer (the lean twins send the same body and headers)."""
    return JSONResponse(
        {
            "id": result.session_id,
            "number": result.number,
            "version": result.version,
            "position": result.position,
            "appended": result.appended,
        },
        status_code=status,
        headers={"ETag": f'"{result.version}"', "X-Ledger-Position": str(result.position)},
    )


# -- lean twins -------------------------------------------------------------------------------

Make = Callable[[str, Any, dict[str, Any]], c.Command]  # (session_id, body | None, meta)
_JSON_TYPES: dict[bytes, bool] = {}


def _is_json(content_type: bytes) -> bool:
    """application/json or application/*+json, as FastAPI decides whether to parse a body."""
    known = _JSON_TYPES.get(content_type)
    if known is None:
        media = content_type.split(b";", 1)[0].strip().lower()
        known = media == b"application/json" or (
            media.startswith(b"application/") and media.endswith(b"+json")
        )
        if len(_JSON_TYPES) < 256:  # a few distinct values in practice; never unbounded
            _JSON_TYPES[content_type] = known
    return known


def _invalid(errors: Sequence[Mapping[str, Any]], body: Any) -> RequestValidationError:
    # The app's RequestValidationError handler renders it: the same problem+json as FastAPI's.
    return RequestValidationError(
        [{**e, "loc": ("body", *e.get("loc", ()))} for e in errors], body=body
    )


def parse_body(
    model: type[BaseModel], raw: bytes, content_type: bytes | None, optional: bool
) -> Any:
    """What FastAPI makes of a JSON body for `model`: None (optional and absent), a model,
    or RequestValidationError naming the field (an unparsable or non-JSON body included)."""
    data: Any = None
    if raw:
        if content_type is not None and _is_json(content_type):
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as err:
                raise RequestValidationError(
                    [
                        {
                            "type": "json_invalid",
                            "loc": ("body", err.pos),
                            "msg": "JSON decode error",
                            "input": {},
                            "ctx": {"error": err.msg},
                        }
                    ],
                    body=err.doc,
                ) from None
        else:
            data = raw  # not declared JSON: validated as is, so refused as not an object
    if data is None:
        if optional:
            return None
        raise _invalid([{"type": "missing", "loc": (), "msg": "Field required"}], None)
    try:
        # from_attributes as FastAPI validates bodies (a non-object's error reads the same);
        # `data` is parsed JSON or bytes here, never an object with attributes.
        return model.model_validate(data, from_attributes=True)
    except ValidationError as err:
        raise _invalid(err.errors(include_url=False), data) from None


def lean(
    model: type[BaseModel], make: Make, *, optional: bool = False, status: int = 200
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give an endpoint a lean ASGI twin (served by `CommandRoute`): read the raw body, parse
    it with orjson and validate it with the endpoint's own body model, read Idempotency-Key
    and If-Match straight from the headers, build the command with `make` (which the endpoint
    uses too), and send the answer's bytes. Errors raise as in the endpoint, so the app's
    handlers give the same problem+json."""

    async def twin(scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        idem = if_match = content_type = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"idempotency-key":
                idem = value.decode("latin-1")
            elif name == b"if-match":
                if_match = value.decode("latin-1")
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        body = parse_body(model, raw, content_type, optional)
        cmd = make(scope["path_params"]["session_id"], body, _meta(idem, if_match))
        result = await execute(scope["app"].state.container, cmd)
        payload = orjson.dumps(
            {
                "id": result.session_id,
                "number": result.number,
                "version": result.version,
                "position": result.position,
                "appended": result.appended,
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-length", b"%d" % len(payload)),
                    (b"content-type", b"application/json"),
                    (b"etag", b'"%d"' % result.version),
                    (b"x-ledger-position", b"%d" % result.position),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def mark(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        endpoint.__lean__ = twin  # type: ignore[attr-defined]
        return endpoint

    return mark


def _time(value: float | str | None, field: str) -> float | None:
    try:
        return parse_time(value)
    except ValueError:
        raise InvalidCommandError(f"{field} is not a time: {value!r}", field=field) from None


def _new_id(idem: str | None) -> str:
    # A retry with the same Idempotency-Key must name the same session, so derive it.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"idempotency:{idem}") if idem else uuid.uuid4())


@router.post("/sessions", status_code=201)
async def start_session(
    body: s.StartBody, container: ContainerDep, idem: IdemKey = None
) -> JSONResponse:
    """Start a session (its id is yours when you bring one, else generated)."""
    fields = body.model_dump(exclude={"id", "started_at"})
    cmd = c.StartSession(
        session_id=body.id or _new_id(idem),
        started_at=_time(body.started_at, "started_at"),
        idempotency_key=idem,
        by=body.user,
        **fields,
    )
    result = await execute(container, cmd)
    resp = answer(result, 201)
    # The domain's id rule keeps ids to URL path characters: safe in a header as they are.
    resp.headers["Location"] = f"/v1/sessions/{result.session_id}"
    return resp


def _keep_alive(sid: str, body: s.KeepAliveBody | None, meta: dict[str, Any]) -> c.Command:
    b = body or s.KeepAliveBody()
    return c.KeepAlive(session_id=sid, visible=b.visible, path=b.path, **meta)


@router.post("/sessions/{session_id}/keepalive")
@lean(s.KeepAliveBody, _keep_alive, optional=True)
async def keep_alive(
    session_id: str,
    container: ContainerDep,
    body: s.KeepAliveBody | None = None,
    idem: IdemKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Record that the session is alive (visible on `path`, or not visible)."""
    return answer(await execute(container, _keep_alive(session_id, body, _meta(idem, if_match))))


def _hide(sid: str, body: s.HideBody | None, meta: dict[str, Any]) -> c.Command:
    return c.Hide(session_id=sid, path=(body or s.HideBody()).path, **meta)


@router.post("/sessions/{session_id}/hide")
@lean(s.HideBody, _hide, optional=True)
async def hide(
    session_id: str,
    container: ContainerDep,
    body: s.HideBody | None = None,
    idem: IdemKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Record that the session's view was hidden (stops counting visible time)."""
    return answer(await execute(container, _hide(session_id, body, _meta(idem, if_match))))


def _change_status(sid: str, body: s.StatusBody, meta: dict[str, Any]) -> c.Command:
    return c.ChangeStatus(session_id=sid, status=body.status, reason=body.reason, **meta)


@router.post("/sessions/{session_id}/status")
@lean(s.StatusBody, _change_status)
async def change_status(
    session_id: str,
    body: s.StatusBody,
    container: ContainerDep,
    idem: IdemKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Move the session to another status (legal moves only)."""
    cmd = _change_status(session_id, body, _meta(idem, if_match))
    return answer(await execute(container, cmd))


def _stop(sid: str, body: s.StopBody | None, meta: dict[str, Any]) -> c.Command:
    return c.StopSession(session_id=sid, reason=(body or s.StopBody()).reason, **meta)


@router.post("/sessions/{session_id}/stop")
@lean(s.StopBody, _stop, optional=True)
async def stop(
    session_id: str,
    container: ContainerDep,
    body: s.StopBody | None = None,
    idem: IdemKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Stop the session (idempotent: a second stop appends nothing)."""
    return answer(await execute(container, _stop(session_id, body, _meta(idem, if_match))))


@router.patch("/sessions/{session_id}")
async def update(
    session_id: str,
    body: s.UpdateBody,
    container: ContainerDep,
    idem: IdemKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Change descriptive fields (and optionally the status) in one decision."""
    cmd = c.UpdateDetails(
        session_id=session_id, changes=body.changes(), status=body.status, **_meta(idem, if_match)
    )
    return answer(await execute(container, cmd))


@router.delete("/sessions/{session_id}")
async def delete(
    session_id: str, container: ContainerDep, idem: IdemKey = None, if_match: IfMatch = None
) -> JSONResponse:
    """Delete the session: views hide it, its stream stays for audit."""
    cmd = c.DeleteSession(session_id=session_id, **_meta(idem, if_match))
    return answer(await execute(container, cmd))


@router.post("/sessions/{session_id}/logs/{kind}")
async def upload_log(
    session_id: str, kind: str, request: Request, container: ContainerDep, idem: IdemKey = None
) -> JSONResponse:
    """Upload a log (raw body, streamed); stored by sha256, the event carries hash and size."""
    if kind not in LOG_KINDS:
        raise InvalidCommandError(f"log kind must be one of {', '.join(LOG_KINDS)}", field="kind")
    cap = container.settings.body_limits.max_upload_bytes
    sha, size, ctype = await store_upload(request, container.blobs, cap)
    cmd = c.UploadLog(
        session_id=session_id,
        kind=kind,
        content_type=ctype,
        size=size,
        sha256=sha,
        idempotency_key=idem,
    )
    return answer(await execute(container, cmd), 201)


@router.get("/sessions/{session_id}/logs/{kind}")
def get_log(session_id: str, kind: str, container: FreshDep) -> Response:
    """The latest log of that kind, as uploaded (served as an attachment, never rendered)."""
    doc = _detail(container, session_id)
    logs = [lg for lg in doc["logs"] if lg["kind"] == kind]
    if not logs:
        raise SessionNotFoundError(f"session {session_id} has no {kind} log")
    last = logs[-1]
    return uploaded_content(container.blobs.get(last["sha256"]), last["content_type"], kind)


@router.post("/sessions/{session_id}/artifacts", status_code=201)
async def attach_artifact(
    session_id: str, body: s.ArtifactBody, container: ContainerDep, idem: IdemKey = None
) -> JSONResponse:
    """Attach a screenshot or video: a URL, or content (base64) stored by sha256."""
    sha = size = None
    if body.content_base64 is not None:
        try:
            data = base64.b64decode(body.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidCommandError(
                "content_base64 is not base64", field="content_base64"
            ) from None
        sha, size = container.blobs.put(data)
    if sha is None and not body.url:
        raise InvalidCommandError("give url or content_base64", field="url")
    cmd = c.AttachArtifact(
        session_id=session_id,
        kind=body.kind,
        title=body.title,
        url=body.url,
        content_type=body.content_type,
        size=size,
        sha256=sha,
        idempotency_key=idem,
    )
    return answer(await execute(container, cmd), 201)


@router.post("/sessions/{session_id}/metrics", status_code=201)
async def record_metric(
    session_id: str, body: s.MetricBody, container: ContainerDep, idem: IdemKey = None
) -> JSONResponse:
    """Record one metric sample (e.g. a test's timings and memory)."""
    cmd = c.RecordMetric(
        session_id=session_id,
        item=body.item,
        context=body.context,
        values=body.values,
        idempotency_key=idem,
    )
    return answer(await execute(container, cmd), 201)


@router.post("/sessions/{session_id}/results", status_code=201)
async def record_result(
    session_id: str, body: s.ResultBody, container: ContainerDep, idem: IdemKey = None
) -> JSONResponse:
    """Record one test result (counted per status)."""
    cmd = c.RecordResult(
        session_id=session_id, status=body.status, test=body.test, idempotency_key=idem
    )
    return answer(await execute(container, cmd), 201)


@router.post("/sessions/{session_id}/annotations", status_code=201)
async def annotate(
    session_id: str, body: s.AnnotationBody, container: ContainerDep, idem: IdemKey = None
) -> JSONResponse:
    """Add an annotation; the same id again corrects it, `retracted` withdraws it."""
    cmd = c.Annotate(
        session_id=session_id,
        annotation_id=body.id or str(uuid.uuid4()),
        kind=body.kind,
        text=body.text,
        context=body.context,
        occurred_at=_time(body.occurred_at, "occurred_at"),
        retracted=body.retracted,
        idempotency_key=idem,
    )
    return answer(await execute(container, cmd), 201)


# -- queries ---------------------------------------------------------------------------------


def session_filter(
    status: Annotated[list[str] | None, Query()] = None,
    project: str | None = None,
    build: str | None = None,
    user: Annotated[list[str] | None, Query()] = None,
    source: str | None = None,
    type: str | None = None,
    tag: Annotated[list[str] | None, Query(description="key:value, repeatable")] = None,
    active: bool | None = None,
    started_after: str | None = None,
    started_before: str | None = None,
    stopped_after: str | None = None,
    stopped_before: str | None = None,
    q: str | None = Query(None, description="free text in the name"),
) -> qs.SessionFilter:
    tags = []
    for t in tag or []:
        key, sep, value = t.partition(":")
        if not sep:
            raise InvalidCommandError("tag must be key:value", field="tag")
        tags.append((key, value))
    return qs.SessionFilter(
        status=tuple(status or ()),
        project=project,
        build=build,
        user=tuple(user or ()),
        source=source,
        type=type,
        tags=tuple(tags),
        active=active,
        started_after=_time(started_after, "started_after"),
        started_before=_time(started_before, "started_before"),
        stopped_after=_time(stopped_after, "stopped_after"),
        stopped_before=_time(stopped_before, "stopped_before"),
        text=q,
    )


def _detail(container: Any, session_id: str) -> dict[str, Any]:
    with connect(container) as conn:
        doc = qs.get_detail(conn, container.runner.tables, session_id)
    if doc is None:
        raise SessionNotFoundError(f"no session {session_id}")
    return doc


FilterParams = Annotated[qs.SessionFilter, Depends(session_filter)]


@router.get("/sessions")
def list_sessions(
    container: FreshDep,
    f: FilterParams,
    sort: str = Query("started_at", description=f"one of {', '.join(qs.SORT_FIELDS)}"),
    order: str = Query("desc", pattern="^(asc|desc)$"),
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    """Sessions matching the filters, sorted, one page at a time, with the total."""
    if sort not in qs.SORT_FIELDS:
        raise InvalidCommandError(f"sort must be one of {', '.join(qs.SORT_FIELDS)}", field="sort")
    with connect(container) as conn:
        page = qs.list_sessions(
            conn, container.runner.tables, f, sort, order == "desc", limit, offset
        )
    return {
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "items": [with_iso_times(i) for i in page.items],
    }


@router.get("/sessions/count")
def count_sessions(container: FreshDep, f: FilterParams) -> dict[str, Any]:
    """How many sessions match, in all and per status."""
    with connect(container) as conn:
        return qs.count_sessions(conn, container.runner.tables, f)


@router.get("/sessions/{session_id}")
def get_session(session_id: str, container: FreshDep) -> dict[str, Any]:
    """Everything known about one session."""
    return session_view(_detail(container, session_id))


@router.get("/stats")
def get_stats(
    container: FreshDep,
    by: Annotated[
        list[str] | None, Query(description="day|status|project|build|user|type|browser|os")
    ] = None,
    from_: Annotated[
        str | None, Query(alias="from", description="first start day, YYYY-MM-DD")
    ] = None,
    to: Annotated[str | None, Query(description="last start day, YYYY-MM-DD")] = None,
    status: Annotated[list[str] | None, Query()] = None,
    project: Annotated[list[str] | None, Query()] = None,
    build: Annotated[list[str] | None, Query()] = None,
    user: Annotated[list[str] | None, Query()] = None,
    type: Annotated[list[str] | None, Query()] = None,
    browser: Annotated[list[str] | None, Query()] = None,
    os: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    """Counts, durations (mean/p50/p95/max), visible time per path and results, grouped."""
    group_by = tuple(g for part in (by or []) for g in part.split(",") if g)
    for g in group_by:
        if g not in qs.GROUP_FIELDS:
            raise InvalidCommandError(f"by must be among {', '.join(qs.GROUP_FIELDS)}", field="by")
    for name, day in (("from", from_), ("to", to)):
        if day is not None:
            _time(day, name)
    filters = tuple(
        (dim, tuple(vals))
        for dim, vals in (
            ("status", status),
            ("project", project),
            ("build", build),
            ("user", user),
            ("type", type),
            ("browser", browser),
            ("os", os),
        )
        if vals
    )
    query = qs.StatsQuery(group_by=group_by, from_day=from_, to_day=to, filters=filters)
    with connect(container) as conn:
        return qs.stats(conn, container.runner.tables, query)
