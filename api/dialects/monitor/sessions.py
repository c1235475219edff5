"""pytest-monitor sessions: create one (a StartSession), list them, count them and find them
by a prefix of their hash, from the list view."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Connection

from api.bootstrap import Container
from api.deps import ContainerDep, FreshDep, execute
from api.dialects.common import read_views, scoped
from api.dialects.monitor.shape import (
    NOT_OBJECT,
    Paging,
    PagingDep,
    bad_json,
    check,
    envelope,
    invalid,
    json_body,
    resolve_page,
    route,
)
from domain import commands as c
from projections import queries as qs
from projections.present import parse_time
from projections.tables import ViewTables

router = APIRouter()
MONITOR = qs.SessionFilter(source="monitor")
SESSION_FIELDS = {"session_h": "string", "run_date": "string", "scm_ref": "string?"}


def _naive_iso(ts: float | None) -> str | None:
    # pytest-monitor sends naive ISO times; they are read as UTC and given back the same way.
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None).isoformat()


def _session_item(doc: dict[str, Any]) -> dict[str, Any]:
    # A list row has all it needs (id, started_at, scm_ref, tags): no detail read.
    return {
        "session_h": doc["id"],
        "run_date": _naive_iso(doc["started_at"]),
        "scm_ref": doc["scm_ref"],
        "tags": [{"name": k, "value": v} for k, v in doc["tags"].items()],
    }


def _fields(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The session's fields (its tags under "tags") and what is wrong with them. As the
    reference: a description that is not an object is "Bad description format", and a
    number or a boolean in it is answered as its string (the ledger's tags are strings)."""
    fields, errors = check({k: v for k, v in body.items() if v is not None}, SESSION_FIELDS)
    if "run_date" in fields and _time(fields["run_date"]) is None:
        errors["run_date"] = f"{fields['run_date']!r} is not an ISO-8601 date-time"
    description = body.get("description")
    if "description" not in body:
        errors["description"] = "'description' is a required property"
    elif not isinstance(description, dict):
        errors["description"] = "Bad description format"
    else:
        fields["tags"] = {k: v if isinstance(v, str) else str(v) for k, v in description.items()}
        bad = sorted(k for k, v in description.items() if not isinstance(v, str | int | float))
        if bad:
            errors["description"] = f"tag values must be strings or numbers: {', '.join(bad)}"
    return fields, errors


def _time(value: str) -> float | None:
    try:
        return parse_time(value)
    except ValueError:
        return None


async def _start(request: Request, container: Container, path_h: str | None) -> JSONResponse:
    body, parsed = await json_body(request)
    if not parsed:
        return bad_json()
    if not isinstance(body, dict):
        return invalid(NOT_OBJECT)
    if path_h is not None and body.get("session_h") is None:
        body["session_h"] = path_h  # the reference's POST /sessions/<hash>
    fields, errors = _fields(body)
    if errors.get("description") == "Bad description format" and len(errors) == 1:
        return JSONResponse({"message": "Bad description format"}, status_code=400)
    if errors:
        return invalid(errors)
    started = _time(fields["run_date"])
    cmd = c.StartSession(
        session_id=fields["session_h"],
        source="monitor",
        name=fields["session_h"],
        started_at=started,
        scm_ref=fields.get("scm_ref"),
        tags=fields["tags"],
    )
    await execute(container, cmd)
    doc = {"id": cmd.session_id, "started_at": started, "scm_ref": cmd.scm_ref, "tags": cmd.tags}
    return JSONResponse(_session_item(doc), status_code=201)


@route(router, "POST", "/sessions/", 201)
async def create_session(request: Request, container: ContainerDep) -> JSONResponse:
    """Create a session (its id is the client's `session_h`)."""
    return await _start(request, container, None)


@route(router, "POST", "/sessions/{session_hash}", 201)
async def create_session_at(
    session_hash: str, request: Request, container: ContainerDep
) -> JSONResponse:
    """Create a session whose hash is in the path when the body has no `session_h`."""
    return await _start(request, container, session_hash)


def _page(
    conn: Connection, t: ViewTables, f: qs.SessionFilter, per_page: int, page: int
) -> tuple[list[dict[str, Any]], int, int]:
    """One page of the sessions `f` selects, oldest first: its items, the total, the page."""
    total = qs.count_sessions(conn, t, f)["total"]
    p = resolve_page(page, total, per_page)
    rows = qs.list_sessions(conn, t, f, "number", False, per_page, (p - 1) * per_page)
    return [_session_item(r) for r in rows.items], total, p


def _answer(request: Request, container: Container, f: qs.SessionFilter, paging: Paging) -> Any:
    per_page = paging.per_page
    items, total, p = read_views(container, _page, scoped(f), per_page, paging.page)
    return envelope(request, "sessions", items, total, p, per_page)


@route(router, "GET", "/sessions/")
def list_sessions(request: Request, container: FreshDep, paging: PagingDep) -> Any:
    """All monitor sessions, oldest first, one page at a time; 204 when there is none."""
    return _answer(request, container, MONITOR, paging)


@route(router, "GET", "/sessions/count")
def count_sessions(container: FreshDep) -> dict[str, int]:
    return {"count": read_views(container, qs.count_sessions, scoped(MONITOR))["total"]}


@route(router, "GET", "/sessions/{prefix}")
def sessions_by_prefix(
    prefix: str, request: Request, container: FreshDep, paging: PagingDep
) -> Any:
    """Sessions whose key starts with `prefix`; 204 when there is none."""
    f = qs.SessionFilter(source="monitor", id_prefix=prefix)
    return _answer(request, container, f, paging)
