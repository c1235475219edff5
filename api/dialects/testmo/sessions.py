"""Testmo sessions: a project's sessions one page at a time, and one session by its id."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.deps import PAGE_BOUND, FreshDep
from api.dialects.common import detail_by_number, found, read_views, scoped
from api.dialects.testmo.shape import (
    ABSENT_FILTERS,
    SORTS,
    expand,
    parse_closed,
    parse_expands,
    parse_ids,
    row,
    time_filter,
)
from domain.errors import InvalidCommandError
from projections import queries as qs

router = APIRouter()


@router.get("/projects/{project_id}/sessions")
def list_sessions(
    project_id: str,
    request: Request,
    container: FreshDep,
    page: int = Query(1, ge=1, le=PAGE_BOUND // 100),
    per_page: int = Query(100, ge=1, le=100),
    is_closed: str | None = None,
    sort: str | None = Query(None, description=", ".join(SORTS)),
    order: str = Query("desc", pattern="^(asc|desc)$"),
    created_after: str | None = None,
    created_before: str | None = None,
    closed_after: str | None = None,
    closed_before: str | None = None,
    created_by: str | None = None,
    tags: Annotated[str | None, Query(description="comma-separated; all must match")] = None,
) -> dict[str, Any]:
    """Returns all sessions for a project, one page at a time."""
    names = parse_expands(request)
    if sort is not None and sort not in SORTS:
        raise InvalidCommandError(f"sort must be one of {', '.join(SORTS)}", field="sort")
    closed = parse_closed(is_closed)
    absent = [f for f in ABSENT_FILTERS if parse_ids(request.query_params.get(f), f)]
    tag_pairs = tuple(
        (k, v) for k, _, v in (t.strip().partition(":") for t in (tags or "").split(",")) if k
    )
    f = qs.SessionFilter(
        project=project_id,
        active=None if closed is None else not closed,
        started_after=time_filter(created_after, "created_after"),
        started_before=time_filter(created_before, "created_before"),
        stopped_after=time_filter(closed_after, "closed_after"),
        stopped_before=time_filter(closed_before, "closed_before"),
        user=parse_ids(created_by, "created_by"),
        tags=tag_pairs,
    )
    rows: list[dict[str, Any]] = []
    total = 0
    if not absent:
        key, offset = SORTS.get(sort or "", "number"), (page - 1) * per_page
        docs = read_views(
            container, qs.list_details, scoped(f), key, order == "desc", per_page, offset
        )
        total = docs.total
        rows = [row(d) for d in docs.items]
    # Testmo: page and last_page are null for an empty result without any pages.
    last = math.ceil(total / per_page) if total else None
    return {
        "page": page if last else None,
        "prev_page": page - 1 if last and page > 1 else None,
        "next_page": page + 1 if last and page < last else None,
        "last_page": last,
        "per_page": per_page,
        "total": total,
        "result": rows,
        "expands": expand(names, rows),
    }


@router.get("/sessions/{session_id}")
def get_session(session_id: int, request: Request, container: FreshDep) -> dict[str, Any]:
    """Returns a single session (its id is the ledger session's number)."""
    names = parse_expands(request)
    doc = read_views(container, detail_by_number, session_id)
    result = row(found(doc, f"Session {session_id} not found"))
    return {"result": result, "expands": expand(names, [result])}
