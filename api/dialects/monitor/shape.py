"""pytest-monitor's shapes, as the reference server (monitor-server-api 1.1.0) answers: the
fields a metric and a context have and the check of each, the error shape, the paths as the
client spells them, and the paged envelope (204 for an empty page, 404 for one past the end)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NamedTuple
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api import problems
from api.auth import client_path

PREFIX = "/compat/monitor/api/v1"
PER_PAGE = 500  # the reference's default PAGINATION_COUNT
PerPage = Annotated[int, Query(ge=1, le=5000, description="extension: page size (default 500)")]
# The reference's (werkzeug's) words for a body that is not JSON and for a page past the end.
BAD_JSON = "The browser (or proxy) sent a request that this server could not understand."
NOT_FOUND = (
    "The requested URL was not found on the server. If you entered the URL manually please "
    "check your spelling and try again."
)
NOT_FOUND_PAGE = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<title>404 Not Found</title>\n'
    f"<h1>Not Found</h1>\n<p>{NOT_FOUND}</p>\n"
)


class Paging(NamedTuple):
    """The page asked for (from 1; a negative one counts from the end) and its size."""

    page: int
    per_page: int


def _paging(
    page: Annotated[str | None, Query(description="from 1; negative: from the end")] = None,
    per_page: PerPage = PER_PAGE,
) -> Paging:
    # The reference reads `page` as an int and takes page 1 for anything else.
    try:
        number = int(page) if page is not None else 1
    except ValueError:
        number = 1
    return Paging(number, per_page)


PagingDep = Annotated[Paging, Depends(_paging)]

# The 14 fields of a metric, as pytest-monitor sends them, and the JSON type of each.
METRIC_FIELDS = {
    "session_h": "string",
    "context_h": "string",
    "item_start_time": "string",
    "item_path": "string",
    "item": "string",
    "item_variant": "string",
    "item_fs_loc": "string",
    "kind": "string",
    "component": "string",
    "total_time": "number",
    "user_time": "number",
    "kernel_time": "number",
    "cpu_usage": "number",
    "mem_usage": "number",  # MiB relative to a baseline: may be negative
}
VALUE_FIELDS = tuple(f for f in METRIC_FIELDS if f not in ("session_h", "context_h", "item"))
FLOAT_FIELDS = tuple(f for f, kind in METRIC_FIELDS.items() if kind == "number")
CONTEXT_FIELDS = {
    "h": "string",
    "cpu_count": "integer",
    "cpu_frequency": "number",
    "cpu_type": "string",
    "cpu_vendor": "string?",
    "ram_total": "integer",
    "machine_node": "string",
    "machine_type": "string",
    "machine_arch": "string",
    "system_info": "string",
    "python_info": "string",
}
INT_FIELDS = ("cpu_count", "cpu_frequency", "ram_total")  # the reference answers them as ints


def _render_error(status: int, code: str, detail: str, field: str | None) -> Response:
    # The reference (flask-restx) answers bad input with 400 and {"message", "errors"}, and
    # a path it does not have with werkzeug's HTML page (which monitor_api meets when it
    # follows a next_url: it joins the link's whole path onto its base URL).
    if status == 404 and code == "not-found" and detail == "Not Found":
        return HTMLResponse(NOT_FOUND_PAGE, status_code=404)
    body: dict[str, Any] = {"message": detail}
    if field:
        body["errors"] = {field: detail}
    return JSONResponse(body, status_code=400 if status == 422 else status)


problems.register_renderer(PREFIX, _render_error, 400, problems.text_fields("message", "errors"))


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


NOT_OBJECT = {"body": "must be a JSON object"}


def invalid(errors: dict[str, str]) -> JSONResponse:
    return JSONResponse(
        {"message": "Input payload validation failed", "errors": errors}, status_code=400
    )


def bad_json() -> JSONResponse:
    return JSONResponse({"message": BAD_JSON}, status_code=400)


def _is_type(kind: str, value: Any) -> bool:
    if kind.startswith("string"):
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return kind == "number" or isinstance(value, int)


def check(body: dict[str, Any], spec: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The known fields of `body` and, per offending field, what is wrong (all at once), in
    the words of the reference's JSON-schema check."""
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, kind in spec.items():
        if name not in body:
            if not kind.endswith("?"):
                errors[name] = f"'{name}' is a required property"
        elif not _is_type(kind, body[name]):
            errors[name] = f"{body[name]!r} is not of type '{kind.rstrip('?')}'"
        else:
            out[name] = body[name]
    return out, errors


async def json_body(request: Request) -> tuple[Any, bool]:
    """The request's JSON value and whether it parsed."""
    try:
        return orjson.loads(await request.body()), True
    except orjson.JSONDecodeError:
        return None, False


def envelope(
    request: Request, key: str, items: list[Any], total: int, page: int, per_page: int
) -> Any:
    """One page of `items` under `key`, with links to the pages before and after it, or an
    empty 204 when there is nothing, as the reference answers. The links keep the request's
    query and the `/k/<key>/` it came in with: the client sends no credentials."""
    if not items:
        return Response(status_code=204)
    pages = -(-total // per_page)
    out: dict[str, Any] = {key: items}
    if page > 1:
        out["prev_url"] = _link(request, page - 1)
    if page < pages:
        out["next_url"] = _link(request, page + 1)
    out["total_page"] = pages
    return out


def _link(request: Request, page: int) -> str:
    # As the reference's url_for: the request's parameters (first value of each, in their
    # order) with `page` set in its place or added last.
    params: dict[str, str] = {}
    for k, v in request.query_params.multi_items():
        params.setdefault(k, v)
    params["page"] = str(page)
    return f"{client_path(request.scope, request.url.path)}?{urlencode(params)}"


def resolve_page(page: int, total: int, per_page: int) -> int:
    """Pages count from 1; a negative page counts from the end. A page before the first or
    past the last (but the first) is 404, as flask-sqlalchemy's paginate answers."""
    pages = -(-total // per_page)
    p = page if page >= 0 else pages + page + 1
    if p < 1 or (p > 1 and (p - 1) * per_page >= total):
        raise HTTPException(404, NOT_FOUND)
    return p


def paged(request: Request, key: str, rows: list[Any], paging: Paging) -> Any:
    per_page = paging.per_page
    p = resolve_page(paging.page, len(rows), per_page)
    items = rows[(p - 1) * per_page : p * per_page]
    return envelope(request, key, items, len(rows), p, per_page)
