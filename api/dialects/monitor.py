"""The pytest-monitor server API v1 (seed 003), translated onto the ledger.

Sessions are ledger sessions: id = the client's `session_h`, source "monitor", run_date ->
started_at, scm_ref -> scm_ref, description -> tags, and name = the hash too, so the prefix
lookup can use the list view's name filter. Each metric is one MetricRecorded event on its
session's stream; metric lists are read from that stream, never from a table.

A context (a machine description, not a session) is one RecordContext command: a `Recorded`
event on its own stream `context:<h>`, in the hash chain like every other write. Re-posting
the same context appends nothing; other content under the same h is a 409. Context lists
and lookups read those streams from the log (store.stream_ids), never a table or a file.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from api import problems
from api.deps import ContainerDep, FreshDep, connect, execute
from domain import commands as c
from domain.context import CONTEXT_PREFIX, context_stream
from domain.errors import InvalidCommandError, SessionNotFoundError
from domain.session import upcast
from projections import queries as qs
from projections.present import parse_time

PREFIX = "/compat/monitor/api/v1"
PER_PAGE = 500  # the original server's default PAGINATION_COUNT
router = APIRouter(prefix=PREFIX, tags=["compat: pytest-monitor"])
PerPage = Annotated[int, Query(ge=1, le=5000, description="extension: page size (default 500)")]

# The 14 fields of a metric, as pytest-monitor sends them, and the kind each must be.
METRIC_FIELDS = {
    "session_h": "id",
    "context_h": "id",
    "item_start_time": "time",
    "item_path": "str",
    "item": "id",
    "item_variant": "str",
    "item_fs_loc": "str",
    "kind": "str",
    "component": "str",
    "total_time": "duration",
    "user_time": "duration",
    "kernel_time": "duration",
    "cpu_usage": "number",
    "mem_usage": "number",  # MiB relative to a baseline: may be negative
}
VALUE_FIELDS = tuple(f for f in METRIC_FIELDS if f not in ("session_h", "context_h", "item"))
CONTEXT_FIELDS = {
    "h": "id",
    "cpu_count": "int",
    "cpu_frequency": "number",
    "cpu_type": "str",
    "cpu_vendor": "str?",
    "ram_total": "int",
    "machine_node": "str",
    "machine_type": "str",
    "machine_arch": "str",
    "system_info": "str",
    "python_info": "str",
}


def _render_error(status: int, code: str, detail: str, field: str | None) -> Response:
    # The original (flask-restx) answers bad input with 400 and {"message": ...}.
    body: dict[str, Any] = {"message": detail}
    if field:
        body["errors"] = {field: detail}
    return JSONResponse(body, status_code=400 if status == 422 else status)


problems.register_renderer(PREFIX, _render_error)


def _route(method: str, path: str, status_code: int = 200) -> Callable[[Any], Any]:
    """Declare `path` as the client spells it, plus the other trailing-slash form and the
    `//` form a base URL ending in "/" produces (pytest-monitor concatenates blindly)."""

    def deco(fn: Any) -> Any:
        alt = path[:-1] if path.endswith("/") else path + "/"
        for i, p in enumerate((path, alt, "/" + path, "/" + alt)):
            router.add_api_route(
                p, fn, methods=[method], status_code=status_code, include_in_schema=i == 0
            )
        return fn

    return deco


def _invalid(errors: dict[str, str]) -> JSONResponse:
    return JSONResponse(
        {"message": "Input payload validation failed", "errors": errors}, status_code=400
    )


def _check_one(kind: str, value: Any) -> str | None:
    """Why `value` is not of `kind`, or None when it is."""
    if kind == "id":
        return None if isinstance(value, str) and value else "must be a non-empty string"
    if kind in ("str", "str?"):
        return None if isinstance(value, str) else "must be a string"
    if kind == "time":
        return _check_time(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number" if kind != "int" else "must be an integer"
    if kind == "int" and not isinstance(value, int):
        return "must be an integer"
    if not math.isfinite(value):
        return "must be a finite number"
    if kind == "duration" and value < 0:
        return "must be >= 0"
    return None


def _check_time(value: Any) -> str | None:
    try:
        ok = isinstance(value, str) and parse_time(value) is not None
    except ValueError:
        ok = False
    return None if ok else "must be an ISO-8601 date-time string"


def _check(body: dict[str, Any], spec: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The known fields of `body` and, per offending field, what is wrong (all at once)."""
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, kind in spec.items():
        if name not in body:
            if not kind.endswith("?"):
                errors[name] = "is required"
            continue
        why = _check_one(kind, body[name])
        if why:
            errors[name] = why
        else:
            out[name] = body[name]
    return out, errors


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _naive_iso(ts: float | None) -> str | None:
    # pytest-monitor sends naive ISO times; they are read as UTC and given back the same way.
    return None if ts is None else datetime.fromtimestamp(ts, UTC).replace(tzinfo=None).isoformat()


def _envelope(
    request: Request, key: str, items: list[Any], total: int, page: int, per_page: int
) -> dict[str, Any]:
    pages = math.ceil(total / per_page)
    extra = f"&per_page={per_page}" if "per_page" in request.query_params else ""
    out: dict[str, Any] = {key: items}
    if page > 1:
        out["prev_url"] = f"{request.url.path}?page={page - 1}{extra}"
    if page < pages:
        out["next_url"] = f"{request.url.path}?page={page + 1}{extra}"
    out["total_page"] = pages
    return out


def _resolve_page(page: int, total: int, per_page: int) -> int:
    """Pages count from 1; a negative page counts from the end, as in the original."""
    if page == 0:
        raise InvalidCommandError("page must not be 0", field="page")
    return page if page > 0 else max(1, math.ceil(total / per_page) + page + 1)


def _paged(request: Request, key: str, rows: list[Any], page: int, per_page: int) -> Any:
    p = _resolve_page(page, len(rows), per_page)
    items = rows[(p - 1) * per_page : p * per_page]
    return _envelope(request, key, items, len(rows), p, per_page)


# -- sessions ---------------------------------------------------------------------------------


def _session_item(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "session_h": doc["id"],
        "run_date": _naive_iso(doc["started_at"]),
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


@_route("POST", "/sessions/", 201)
async def create_session(request: Request, container: ContainerDep) -> JSONResponse:
    """Create a session (its id is the client's `session_h`; the seed also calls it `h`)."""
    body = await _json_object(request)
    if body is None:
        return _invalid({"body": "must be a JSON object"})
    if "h" in body and "session_h" not in body:
        body["session_h"] = body["h"]
    fields, errors = _check(body, {"session_h": "id", "run_date": "time"})
    scm_ref = body.get("scm_ref")
    if scm_ref is not None and not isinstance(scm_ref, str):
        errors["scm_ref"] = "must be a string"
    tags, why = _description(body.get("description"))
    if why:
        errors["description"] = why if "description" in body else "is required"
    if errors or tags is None:
        return _invalid(errors)
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


MONITOR = qs.SessionFilter(source="monitor")


@_route("GET", "/sessions/")
def list_sessions(
    request: Request, container: FreshDep, page: int = 1, per_page: PerPage = PER_PAGE
) -> Any:
    """All monitor sessions, oldest first, one page at a time."""
    t = container.runner.tables
    with connect(container) as conn:
        total = qs.count_sessions(conn, t, MONITOR)["total"]
        p = _resolve_page(page, total, per_page)
        rows = qs.list_sessions(conn, t, MONITOR, "number", False, per_page, (p - 1) * per_page)
        docs = qs.details_in_order(conn, t, [r["id"] for r in rows.items])
    items = [_session_item(d) for d in docs if d is not None]
    return _envelope(request, "sessions", items, total, p, per_page)


@_route("GET", "/sessions/count/")
def count_sessions(container: FreshDep) -> dict[str, int]:
    with connect(container) as conn:
        return {"count": qs.count_sessions(conn, container.runner.tables, MONITOR)["total"]}


@_route("GET", "/sessions/{prefix}")
def sessions_by_prefix(
    prefix: str, request: Request, container: FreshDep, page: int = 1, per_page: PerPage = PER_PAGE
) -> Any:
    """Sessions whose key starts with `prefix`."""
    t = container.runner.tables
    f = qs.SessionFilter(source="monitor", id_prefix=prefix)
    with connect(container) as conn:
        total = qs.count_sessions(conn, t, f)["total"]
        p = _resolve_page(page, total, per_page)
        rows = qs.list_sessions(conn, t, f, "number", False, per_page, (p - 1) * per_page)
        docs = qs.details_in_order(conn, t, [r["id"] for r in rows.items])
    items = [_session_item(d) for d in docs]
    return _envelope(request, "sessions", items, total, p, per_page)


# -- metrics ----------------------------------------------------------------------------------


def _metric_view(session_h: str, p: dict[str, Any]) -> dict[str, Any]:
    values = p["values"]
    full = {"session_h": session_h, "context_h": p["context"], "item": p["item"], **values}
    return {k: full.get(k) for k in METRIC_FIELDS}


def _session_metrics(container: Any, session_h: str) -> list[dict[str, Any]]:
    events = container.store.load_stream(session_h)
    if not events or any(e.type == "Deleted" for e in events):
        raise SessionNotFoundError(f"no session {session_h}")
    return [
        _metric_view(session_h, upcast(e.type, e.schema_version, e.data()))
        for e in events
        if e.type == "MetricRecorded"
    ]


@_route("POST", "/metrics/", 201)
async def create_metric(request: Request, container: ContainerDep) -> JSONResponse:
    """Record one test's metric on its session (all 14 fields required and checked)."""
    body = await _json_object(request)
    if body is None:
        return _invalid({"body": "must be a JSON object"})
    m, errors = _check(body, METRIC_FIELDS)
    if "context_h" in m and not await asyncio.to_thread(_context_exists, container, m["context_h"]):
        errors["context_h"] = f"unknown context {m['context_h']}"
    if errors:
        return _invalid(errors)
    values = {k: m[k] for k in VALUE_FIELDS}
    cmd = c.RecordMetric(
        session_id=m["session_h"], item=m["item"], context=m["context_h"], values=values
    )
    await execute(container, cmd)
    return JSONResponse({k: m[k] for k in METRIC_FIELDS}, status_code=201)


@_route("GET", "/sessions/{session_h}/metrics/count/")
def count_session_metrics(session_h: str, container: ContainerDep) -> dict[str, int]:
    return {"count": len(_session_metrics(container, session_h))}


@_route("GET", "/sessions/{session_h}/metrics/")
def session_metrics(
    session_h: str,
    request: Request,
    container: ContainerDep,
    page: int = 1,
    per_page: PerPage = PER_PAGE,
) -> Any:
    """The metrics of one session (full key), in the order they were recorded."""
    return _paged(request, "metrics", _session_metrics(container, session_h), page, per_page)


router.add_api_route(  # the seed's heading spells it /session/:session/metrics/
    "/session/{session_h}/metrics/", session_metrics, methods=["GET"], include_in_schema=False
)


# -- contexts ---------------------------------------------------------------------------------


def _context_doc(payload: dict[str, Any]) -> dict[str, Any]:
    return {"h": payload["h"], **payload["attributes"]}


def _context_exists(container: Any, h: str) -> bool:
    # Its exact stream, not a prefix count: `context:ab` must not be found by `context:a`.
    return bool(container.store.load_stream(context_stream(h)))


def _find_contexts(
    container: Any, prefix: str, page: int, per_page: int
) -> tuple[list[Any], int, int]:
    """One page of the contexts whose h starts with `prefix` (in h order), the total, the page."""
    stream_prefix = CONTEXT_PREFIX + prefix
    total = container.store.count_streams(stream_prefix)
    p = _resolve_page(page, total, per_page)
    ids = container.store.stream_ids(stream_prefix, per_page, (p - 1) * per_page)
    docs = [container.store.load_stream(sid)[0].data() for sid in ids]
    return [_context_doc(d) for d in docs], total, p


@_route("POST", "/contexts/", 201)
async def create_context(request: Request, container: ContainerDep) -> JSONResponse:
    """Record an execution context; answers 201 with it (the client reads `h`)."""
    body = await _json_object(request)
    if body is None:
        return _invalid({"body": "must be a JSON object"})
    doc, errors = _check(body, CONTEXT_FIELDS)
    if errors:
        return _invalid(errors)
    doc.setdefault("cpu_vendor", "")
    h = doc.pop("h")
    # A conflicting re-post raises ContextConflictError: 409 in this dialect's error shape.
    await execute(container, c.RecordContext.of(h, doc))
    return JSONResponse({"h": h, **doc}, status_code=201)


@_route("GET", "/contexts/count/")
def count_contexts(container: ContainerDep) -> dict[str, int]:
    return {"count": container.store.count_streams(CONTEXT_PREFIX)}


@_route("GET", "/contexts/")
def list_contexts(
    request: Request, container: ContainerDep, page: int = 1, per_page: PerPage = PER_PAGE
) -> Any:
    items, total, p = _find_contexts(container, "", page, per_page)
    return _envelope(request, "contexts", items, total, p, per_page)


@_route("GET", "/contexts/{prefix}")
def contexts_by_prefix(
    prefix: str,
    request: Request,
    container: ContainerDep,
    page: int = 1,
    per_page: PerPage = PER_PAGE,
) -> Any:
    """Contexts whose h starts with `prefix`; always 200 with a `contexts` list."""
    items, total, p = _find_contexts(container, prefix, page, per_page)
    return _envelope(request, "contexts", items, total, p, per_page)
