"""Native session commands and queries under /v1/sessions and /v1/stats."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from api import schemas as s
from api.deps import ContainerDep, FreshDep, connect, execute
from api.render import parse_time, session_view, with_iso_times
from domain import commands as c
from domain.commands import CommandResult
from domain.errors import InvalidCommandError, SessionNotFoundError
from projections import queries as qs

router = APIRouter(prefix="/v1", tags=["sessions"])

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
    resp.headers["Location"] = f"/v1/sessions/{result.session_id}"
    return resp


@router.post("/sessions/{session_id}/keepalive")
async def keep_alive(
    session_id: str,
    container: ContainerDep,
    body: s.KeepAliveBody | None = None,
    idem: IdemKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Record that the session is alive (visible on `path`, or not visible)."""
    b = body or s.KeepAliveBody()
    cmd = c.KeepAlive(
        session_id=session_id, visible=b.visible, path=b.path, **_meta(idem, if_match)
    )
    return answer(await execute(container, cmd))


@router.post("/sessions/{session_id}/hide")
async def hide(
    session_id: str,
    container: ContainerDep,
    body: s.HideBody | None = None,
    idem: IdemKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Record that the session's view was hidden (stops counting visible time)."""
    b = body or s.HideBody()
    return answer(
        await execute(
            container, c.Hide(session_id=session_id, path=b.path, **_meta(idem, if_match))
        )
    )


@router.post("/sessions/{session_id}/status")
async def change_status(
    session_id: str,
    body: s.StatusBody,
    container: ContainerDep,
    idem: IdemKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Move the session to another status (legal moves only)."""
    cmd = c.ChangeStatus(
        session_id=session_id, status=body.status, reason=body.reason, **_meta(idem, if_match)
    )
    return answer(await execute(container, cmd))


@router.post("/sessions/{session_id}/stop")
async def stop(
    session_id: str,
    container: ContainerDep,
    body: s.StopBody | None = None,
    idem: IdemKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Stop the session (idempotent: a second stop appends nothing)."""
    b = body or s.StopBody()
    cmd = c.StopSession(session_id=session_id, reason=b.reason, **_meta(idem, if_match))
    return answer(await execute(container, cmd))


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
    """Upload a log (raw body); stored by sha256, the event carries hash and size."""
    if kind not in LOG_KINDS:
        raise InvalidCommandError(f"log kind must be one of {', '.join(LOG_KINDS)}", field="kind")
    data = await request.body()
    sha, size = container.blobs.put(data)
    cmd = c.UploadLog(
        session_id=session_id,
        kind=kind,
        content_type=request.headers.get("content-type", "application/octet-stream"),
        size=size,
        sha256=sha,
        idempotency_key=idem,
    )
    return answer(await execute(container, cmd), 201)


@router.get("/sessions/{session_id}/logs/{kind}")
def get_log(session_id: str, kind: str, container: FreshDep) -> Response:
    """The latest log of that kind, as uploaded."""
    doc = _detail(container, session_id)
    logs = [lg for lg in doc["logs"] if lg["kind"] == kind]
    if not logs:
        raise SessionNotFoundError(f"session {session_id} has no {kind} log")
    last = logs[-1]
    return Response(container.blobs.get(last["sha256"]), media_type=last["content_type"])


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
