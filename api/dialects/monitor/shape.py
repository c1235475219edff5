"""pytest-monitor's shapes: the fields a metric and a context must have and the check of
each, the error shape, the paths as the client spells them, and the paged envelope."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from api import problems
from api.auth import client_path
from domain.errors import InvalidCommandError
from projections.present import parse_time

PREFIX = "/compat/monitor/api/v1"
PER_PAGE = 500  # the original server's default PAGINATION_COUNT
PerPage = Annotated[int, Query(ge=1, le=5000, description="extension: page size (default 500)")]


class Paging(NamedTuple):
    """The page asked for (from 1; a negative one counts from the end) and its size."""

    page: int
    per_page: int


def _paging(page: int = 1, per_page: PerPage = PER_PAGE) -> Paging:
    return Paging(page, per_page)


PagingDep = Annotated[Paging, Depends(_paging)]

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


def route(
    router: APIRouter, method: str, path: str, status_code: int = 200
) -> Callable[[Any], Any]:
    """Declare `path` on `router` as the client spells it, plus the other trailing-slash form
    and the `//` form a base URL ending in "/" produces (pytest-monitor concatenates blindly)."""

    def deco(fn: Any) -> Any:
        alt = path[:-1] if path.endswith("/") else path + "/"
        for i, p in enumerate((path, alt, "/" + path, "/" + alt)):
            router.add_api_route(
                p, fn, methods=[method], status_code=status_code, include_in_schema=i == 0
            )
        return fn

    return deco


def invalid(errors: dict[str, str]) -> JSONResponse:
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


def check(body: dict[str, Any], spec: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
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


async def json_object(request: Request) -> dict[str, Any] | None:
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


async def checked_body(
    request: Request, spec: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """`check` of the request's JSON object; a body that is not one is the only error."""
    body = await json_object(request)
    if body is None:
        return {}, {"body": "must be a JSON object"}
    return check(body, spec)


def naive_iso(ts: float | None) -> str | None:
    # pytest-monitor sends naive ISO times; they are read as UTC and given back the same way.
    return None if ts is None else datetime.fromtimestamp(ts, UTC).replace(tzinfo=None).isoformat()


def envelope(
    request: Request, key: str, items: list[Any], total: int, page: int, per_page: int
) -> dict[str, Any]:
    """One page of `items` under `key`, with links to the pages before and after it. The
    links keep the `/k/<key>/` the request came in with: the client sends no credentials."""
    pages = math.ceil(total / per_page)
    extra = f"&per_page={per_page}" if "per_page" in request.query_params else ""
    here = client_path(request.scope, request.url.path)
    out: dict[str, Any] = {key: items}
    if page > 1:
        out["prev_url"] = f"{here}?page={page - 1}{extra}"
    if page < pages:
        out["next_url"] = f"{here}?page={page + 1}{extra}"
    out["total_page"] = pages
    return out


def resolve_page(page: int, total: int, per_page: int) -> int:
    """Pages count from 1; a negative page counts from the end, as in the original."""
    if page == 0:
        raise InvalidCommandError("page must not be 0", field="page")
    return page if page > 0 else max(1, math.ceil(total / per_page) + page + 1)


def paged(request: Request, key: str, rows: list[Any], paging: Paging) -> Any:
    per_page = paging.per_page
    p = resolve_page(paging.page, len(rows), per_page)
    items = rows[(p - 1) * per_page : p * per_page]
    return envelope(request, key, items, len(rows), p, per_page)
