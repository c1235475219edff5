"""The one place domain errors and bad input become HTTP answers (RFC 9457 problem+json).

A dialect whose clients expect another error shape registers a renderer for its prefix;
the status code still comes from the same table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.media import UnsupportedMediaTypeError
from domain import errors as e

STATUS: dict[type[e.LedgerError], int] = {
    e.InvalidCommandError: 422,
    e.SessionNotFoundError: 404,
    e.SessionExistsError: 409,
    e.SessionStoppedError: 409,
    e.SessionDeletedError: 410,
    e.ContentErasedError: 410,
    e.IllegalStatusChangeError: 409,
    e.ConcurrencyError: 409,
    e.PreconditionFailedError: 412,
    e.IdempotencyKeyReusedError: 422,
    e.ContextConflictError: 409,
    e.EventTimeOutOfWindowError: 422,
    e.EventOutOfOrderError: 409,
    e.UnauthorizedError: 401,
    e.ForbiddenError: 403,
    e.LimitExceededError: 413,
    e.StoreUnavailableError: 503,
    UnsupportedMediaTypeError: 415,
}

Renderer = Callable[[int, str, str, str | None], Response]
_renderers: dict[str, Renderer] = {}
# prefix → (the status bad input gets there, the JSON schema of its error body): what the
# OpenAPI document says in place of FastAPI's 422 (api/openapi.py `tidy`).
error_docs: dict[str, tuple[int, dict[str, Any]]] = {}


def register_renderer(
    prefix: str, renderer: Renderer, bad_input: int = 422, schema: dict[str, Any] | None = None
) -> None:
    """Render refusals under `prefix` with `renderer`, which answers bad input with
    `bad_input` in a body of `schema` (None: the native Problem)."""
    _renderers[prefix] = renderer
    error_docs[prefix] = (bad_input, schema or {"$ref": "#/components/schemas/Problem"})


def text_fields(*names: str) -> dict[str, Any]:
    """The schema of an error body made of string fields (`errors` is an object of them)."""
    props: dict[str, Any] = {
        n: {"type": "object"} if n == "errors" else {"type": "string"} for n in names
    }
    return {"type": "object", "properties": props, "required": [names[0]]}


def status_of(err: e.LedgerError) -> int:
    for cls in type(err).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def problem(
    status: int, code: str, detail: str, field: str | None = None, **extra: Any
) -> Response:
    body: dict[str, Any] = {
        "type": f"https://session-ledger.dev/problems/{code}",
        "title": code.replace("-", " ").capitalize(),
        "status": status,
        "detail": detail,
    }
    if field:
        body["field"] = field
    body.update(extra)
    return Response(orjson.dumps(body), status_code=status, media_type="application/problem+json")


def _render(request: Request, status: int, code: str, detail: str, field: str | None) -> Response:
    path = request.url.path
    for prefix, renderer in _renderers.items():
        if path.startswith(prefix):
            return renderer(status, code, detail, field)
    return problem(status, code, detail, field)


def install(app: FastAPI) -> None:
    @app.exception_handler(e.LedgerError)
    async def _ledger_error(request: Request, err: e.LedgerError) -> Response:
        resp = _render(request, status_of(err), err.code, err.message, err.field)
        retry_after = getattr(err, "retry_after", None)
        if retry_after is not None:
            resp.headers["Retry-After"] = str(retry_after)
        return resp

    @app.exception_handler(OverflowError)
    async def _out_of_range(request: Request, err: OverflowError) -> Response:
        # An integer parameter (an id, a page) past what the database stores: the database
        # driver refuses to bind it. Bad input, said as such, for every route at once.
        return _render(request, 422, "invalid-input", "a number is out of range", None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> Response:
        first = err.errors()[0] if err.errors() else {}
        loc = list(first.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            loc = loc[1:]  # where the field was, not part of its name (a body field may be "path")
        if first.get("type") == "json_invalid":
            loc = []  # the rest is a character offset in the body, not a field
        loc = [str(x) for x in loc]
        field = ".".join(loc) or None
        msg = f"{field}: {first.get('msg', 'invalid')}" if field else first.get("msg", "invalid")
        return _render(request, 422, "invalid-input", msg, field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized"}.get(
            err.status_code, "http-error"
        )
        resp = _render(request, err.status_code, code, str(err.detail), None)
        for name, value in (err.headers or {}).items():
            resp.headers[name] = value  # e.g. WWW-Authenticate on a 401
        return resp
