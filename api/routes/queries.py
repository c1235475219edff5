"""Native session queries under /v1: the list (filters, sort, pages), count, detail, a
session's uploaded logs and the stats, read from the views after read-your-writes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from api import cursor as cursors
from api import openapi as a
from api.conditional import conditional, link_next, next_page
from api.deps import PAGE_BOUND, FreshDep, connect, require_detail, time_field
from api.render import uploaded_content
from domain.errors import InvalidCommandError, SessionNotFoundError
from projections import queries as qs
from projections.present import session_view, with_iso_times

router = APIRouter(prefix="/v1", tags=["sessions"])


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
        started_after=time_field(started_after, "started_after"),
        started_before=time_field(started_before, "started_before"),
        stopped_after=time_field(stopped_after, "stopped_after"),
        stopped_before=time_field(stopped_before, "stopped_before"),
        text=q,
    )


FilterParams = Annotated[qs.SessionFilter, Depends(session_filter)]


LIST_ORDER = "the page after the one that gave it (`next_cursor`): keyset, drift-free"


@router.get("/sessions", responses=a.cached(a.SessionPage, *a.READ, paged=True))
def list_sessions(
    request: Request,
    container: FreshDep,
    f: FilterParams,
    sort: str = Query("started_at", description=f"one of {', '.join(qs.SORT_FIELDS)}"),
    order: str = Query("desc", pattern="^(asc|desc)$"),
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=PAGE_BOUND),
    cursor: str | None = Query(None, description=LIST_ORDER),
) -> Response:
    """Sessions matching the filters, sorted, one page at a time, with the total. Page on
    with `next` (also the `Link: rel="next"` header): a cursor, which rows written meanwhile
    neither shift nor repeat; `offset` still pages by position."""
    if sort not in qs.SORT_FIELDS:
        raise InvalidCommandError(f"sort must be one of {', '.join(qs.SORT_FIELDS)}", field="sort")
    fingerprint = cursors.bound("sessions", sort, order, f)
    after = None
    if cursor is not None:
        if offset:
            raise InvalidCommandError("give cursor or offset, not both", field="offset")
        kind = str if sort == "name" else float
        after = cursors.decode(cursor, fingerprint, kind, sort in qs.NULLABLE_SORTS)
    with connect(container) as conn:
        page = qs.list_sessions(
            conn, container.runner.tables, f, sort, order == "desc", limit, offset, after
        )
    token = cursors.encode(fingerprint, *page.last) if page.more and page.last else None
    link = next_page(request, ("offset", "cursor"), cursor=token) if token else None
    body = {
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "items": [with_iso_times(i) for i in page.items],
        "next": link,
        "next_cursor": token,
    }
    return conditional(request, body, headers=link_next(link))


@router.get("/sessions/count", responses=a.cached(a.SessionCount, *a.READ))
def count_sessions(request: Request, container: FreshDep, f: FilterParams) -> Response:
    """How many sessions match, in all and per status."""
    with connect(container) as conn:
        return conditional(request, qs.count_sessions(conn, container.runner.tables, f))


@router.get("/sessions/{session_id}", responses=a.cached(a.SessionDetail, *a.READ, 404))
def get_session(session_id: str, request: Request, container: FreshDep) -> Response:
    """Everything known about one session. Its ETag is the session's version, which every
    command on it moves (its If-Match takes the same tag)."""
    view = session_view(require_detail(container, session_id))
    return conditional(request, view, etag=f'"{view["version"]}"')


@router.get("/stats", responses=a.cached(a.Stats, *a.READ))
def get_stats(
    request: Request,
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
) -> Response:
    """Counts, durations (mean/p50/p95/max), visible time per path and results, grouped."""
    group_by = tuple(g for part in (by or []) for g in part.split(",") if g)
    for g in group_by:
        if g not in qs.GROUP_FIELDS:
            raise InvalidCommandError(f"by must be among {', '.join(qs.GROUP_FIELDS)}", field="by")
    for name, day in (("from", from_), ("to", to)):
        if day is not None:
            time_field(day, name)
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
        return conditional(request, qs.stats(conn, container.runner.tables, query))


@router.get(
    "/sessions/{session_id}/logs/{kind}",
    response_class=Response,
    responses={
        200: {
            "description": "The log as uploaded, with its recorded content type.",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        **a.documented(None, *a.READ, 404, 410),
    },
)
def get_log(session_id: str, kind: str, container: FreshDep) -> Response:
    """The latest log of that kind, as uploaded (served as an attachment, never rendered)."""
    doc = require_detail(container, session_id)
    logs = [lg for lg in doc["logs"] if lg["kind"] == kind]
    if not logs:
        raise SessionNotFoundError(f"session {session_id} has no {kind} log")
    last = logs[-1]
    return uploaded_content(container.blobs.get(last["sha256"]), last["content_type"], kind)
