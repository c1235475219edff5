"""LambdaTest sessions: the account's list, one session's details, and the writes (update
name, status or remarks; stop; delete)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Query, Request

from api.deps import PAGE_BOUND, ContainerDep, FreshDep, execute
from api.dialects.common import actor, fresh_detail, read_views, scoped
from api.dialects.lambdatest.shape import (
    ACCOUNT_TAG,
    ALREADY_STOPPED,
    LOG_URL_FIELDS,
    STATUS_KEY,
    IdemKey,
    command_route,
    day_bound,
    detail_of,
    missing,
    plain,
    sort_of,
    summary,
)
from domain import commands as c
from domain.errors import InvalidCommandError
from domain.state import STATUSES
from projections import queries as qs

router = APIRouter()


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
    offset: int = Query(0, ge=0, le=PAGE_BOUND),
    limit: int = Query(10, ge=1, le=1000),
    test_name: str | None = Query(None, description="sessions whose name contains it"),
    tags: str | None = Query(None, description="comma-separated; all must be set"),
) -> dict[str, Any]:
    """Fetch list of all sessions: the calling account's LambdaTest sessions."""
    # Comma lists (documented); arrays arrive as status[0]=.. (v1) or status[]=.. (v2).
    values = [v for k, v in request.query_params.multi_items() if STATUS_KEY.fullmatch(k)]
    statuses = tuple(dict.fromkeys(s.strip() for v in values for s in v.split(",") if s.strip()))
    wanted = tuple((t.strip(), "") for t in (tags or "").split(",") if t.strip())
    f = qs.SessionFilter(
        source="lambdatest",
        tags=((ACCOUNT_TAG, actor() or ""), *wanted),
        text=test_name or None,
        build=build_id,
        user=(username,) if username else (),
        status=statuses,
        started_after=day_bound(fromdate, "fromdate", end=False),
        started_before=day_bound(todate, "todate", end=True),
    )
    key, descending = sort_of(sort)
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
    doc = detail_of(container, session_id)
    data = summary(doc)
    data["video_url"] = str(request.url_for("lt_video", session_id=session_id))
    for kind in LOG_URL_FIELDS:
        data[f"{kind}_logs_url"] = str(request.url_for("lt_log", session_id=session_id, kind=kind))
    data["screenshot_url"] = str(request.url_for("lt_screenshots", session_id=session_id))
    data["customData"] = doc.get("parameters") or {}
    return {"data": data, "message": "Retrieve session was successful", "status": "success"}


command_route(
    router, "DELETE", "/sessions/{session_id}", "delete_session",
    "Delete test session (a tombstone: the stream stays for audit).",
    plain(c.DeleteSession), "Session deleted successfully",
)  # fmt: skip


TEXT_FIELDS = ("name", "status", "status_ind", "remarks", "reason")


async def _patch_body(request: Request) -> dict[str, Any]:
    """The JSON body (UpdateSessionPayload: name, status_ind, reason, tags, custom_data; and
    the seed's status and remarks); the v2 client posts its JSON string form-encoded."""
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
    unknown = set(obj) - {*TEXT_FIELDS, "tags", "custom_data"}
    if unknown:
        raise InvalidCommandError(f"unknown field(s) {', '.join(sorted(unknown))}", field="body")
    for k in TEXT_FIELDS:
        if obj.get(k) is not None and not isinstance(obj[k], str):
            raise InvalidCommandError(f"{k} must be a string", field=k)
    tags = obj.get("tags")
    if tags is not None and not (
        isinstance(tags, list) and all(isinstance(t, str) and t for t in tags)
    ):
        raise InvalidCommandError("tags must be a list of non-empty strings", field="tags")
    if obj.get("custom_data") is not None and not isinstance(obj["custom_data"], dict):
        raise InvalidCommandError("custom_data must be an object", field="custom_data")
    return obj


def _changes(body: dict[str, Any]) -> dict[str, Any]:
    """The details a PATCH changes: `reason` is the remarks, `tags` are tags without a
    value, `custom_data` the session's parameters."""
    changes: dict[str, Any] = {"name": body.get("name")}
    changes["remarks"] = (
        body.get("remarks") if body.get("remarks") is not None else body.get("reason")
    )
    if body.get("tags") is not None:
        changes["tags"] = dict.fromkeys(body["tags"], "")
    if body.get("custom_data") is not None:
        changes["parameters"] = body["custom_data"]
    return {k: v for k, v in changes.items() if v is not None}


@router.patch("/sessions/{session_id}")
async def update_session(
    session_id: str, request: Request, container: ContainerDep, idem: IdemKey = None
) -> dict[str, Any]:
    """Update test session details: name, status (or status_ind), remarks (or reason), tags,
    custom_data."""
    body = await _patch_body(request)
    status = body.get("status") or body.get("status_ind")
    if status is not None and status not in STATUSES:
        raise InvalidCommandError(f"status must be one of {', '.join(STATUSES)}", field="status")
    changes = _changes(body)
    if not changes and status is None:
        raise InvalidCommandError(
            "send name, status (or status_ind), remarks (or reason), tags or custom_data",
            field="body",
        )
    cmd = c.UpdateDetails(
        session_id=session_id, changes=changes, status=status, by=actor(), idempotency_key=idem,
    )  # fmt: skip
    result = await execute(container, cmd)
    doc = await fresh_detail(container, session_id, result.position, missing(session_id))
    data = {k: doc.get(k) for k in ("name", "status", "remarks")}
    return {"success": True, "message": "Session updated successfully", "status": "success",
            "data": {"session_id": session_id, **data}}  # fmt: skip


@router.put("/sessions/{session_id}/stop", name="stop_session")
async def stop_session(
    session_id: str, container: ContainerDep, idem: IdemKey = None
) -> dict[str, Any]:
    """Stop session by sessionID; a session already stopped is a 400 and appends nothing."""
    cmd = c.StopSession(session_id=session_id, by=actor(), idempotency_key=idem)
    if not (await execute(container, cmd)).appended:
        raise InvalidCommandError(ALREADY_STOPPED, field="session_id")
    return {"success": True, "message": "Session stopped successfully", "status": "success"}
