"""pytest-monitor sessions: create one (a StartSession), list them, count them and find them
by a prefix of their hash, from the list view."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Connection

from api.bootstrap import Container
from api.deps import ContainerDep, FreshDep, execute
from api.dialects.common import read_views, scoped
from api.dialects.monitor.shape import (
    Paging,
    PagingDep,
    check,
    envelope,
    invalid,
    json_object,
    naive_iso,
    resolve_page,
    route,
)
from domain import commands as c
from projections import queries as qs
from projections.present import parse_time
from projections.tables import ViewTables

router = APIRouter()
MONITOR = qs.SessionFilter(source="monitor")


def _session_item(doc: dict[str, Any]) -> dict[str, Any]:
    # A list row has all it needs (id, started_at, scm_ref, tags): no detail read.
    return {
        "session_h": doc["id"],
        "run_date": naive_iso(doc["started_at"]),
        "scm_ref": doc["scm_ref"],
        "tags": [{"key": k, "value": v} for k, v in doc["tags"].items()],
    }


def _description(value: Any) -> tuple[dict[str, str] | None, str | None]:
    if isinstance(value, str):  # the seed's curl example sends the dict as JSON text
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None, "must be a dictionary of strings"
    if not isinstance(value, dict):
        return None, "must be a dictionary of strings"
    bad = [k for k, v in value.items() if not isinstance(v, str)]
    if bad:
        return None, f"values must be strings (depth 1): {', '.join(sorted(bad))}"
    return value, None


@route(router, "POST", "/sessions/", 201)
async def create_session(request: Request, container: ContainerDep) -> JSONResponse:
    """Create a session (its id is the client's `session_h`; the seed also calls it `h`)."""
    body = await json_object(request)
    if body is None:
        return invalid({"body": "must be a JSON object"})
    if "h" in body and "session_h" not in body:
        body["session_h"] = body["h"]
    fields, errors = check(body, {"session_h": "id", "run_date": "time"})
    scm_ref = body.get("scm_ref")
    if scm_ref is not None and not isinstance(scm_ref, str):
        errors["scm_ref"] = "must be a string"
    tags, why = _description(body.get("description"))
    if why:
        errors["description"] = why if "description" in body else "is required"
    if errors or tags is None:
        return invalid(errors)
    started = parse_time(fields["run_date"])
    cmd = c.StartSession(
        session_id=fields["session_h"],
        source="monitor",
        name=fields["session_h"],
        started_at=started,
        scm_ref=scm_ref,
        tags=tags,
    )
    await execute(container, cmd)
    doc = {"id": cmd.session_id, "started_at": started, "scm_ref": scm_ref, "tags": tags}
    return JSONResponse(_session_item(doc), status_code=201)


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
    """All monitor sessions, oldest first, one page at a time."""
    return _answer(request, container, MONITOR, paging)


@route(router, "GET", "/sessions/count/")
def count_sessions(container: FreshDep) -> dict[str, int]:
    return {"count": read_views(container, qs.count_sessions, scoped(MONITOR))["total"]}


@route(router, "GET", "/sessions/{prefix}")
def sessions_by_prefix(
    prefix: str, request: Request, container: FreshDep, paging: PagingDep
) -> Any:
    """Sessions whose key starts with `prefix`."""
    f = qs.SessionFilter(source="monitor", id_prefix=prefix)
    return _answer(request, container, f, paging)
