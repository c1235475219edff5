"""pytest-monitor contexts (machine descriptions, not sessions): record one (a RecordContext:
a `Recorded` event on its own stream `context:<h>`), count, list and find them by a prefix
of their hash, read from those streams (store.stream_ids), never a table or a file."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.bootstrap import Container
from api.deps import ContainerDep, execute
from api.dialects.monitor.shape import (
    CONTEXT_FIELDS,
    Paging,
    PagingDep,
    checked_body,
    envelope,
    invalid,
    resolve_page,
    route,
)
from domain import commands as c
from domain.context import CONTEXT_PREFIX, context_stream

router = APIRouter()


def _context_doc(payload: dict[str, Any]) -> dict[str, Any]:
    return {"h": payload["h"], **payload["attributes"]}


def context_exists(container: Container, h: str) -> bool:
    # Its exact stream, not a prefix count: `context:ab` must not be found by `context:a`.
    return bool(container.store.load_stream(context_stream(h)))


def _contexts(
    request: Request, container: Container, prefix: str, paging: Paging
) -> dict[str, Any]:
    """One page of the contexts whose h starts with `prefix` (in h order), enveloped."""
    stream_prefix = CONTEXT_PREFIX + prefix
    total = container.store.count_streams(stream_prefix)
    per_page = paging.per_page
    p = resolve_page(paging.page, total, per_page)
    ids = container.store.stream_ids(stream_prefix, per_page, (p - 1) * per_page)
    docs = [container.store.load_stream(sid)[0].data() for sid in ids]
    return envelope(request, "contexts", [_context_doc(d) for d in docs], total, p, per_page)


@route(router, "POST", "/contexts/", 201)
async def create_context(request: Request, container: ContainerDep) -> JSONResponse:
    """Record an execution context; answers 201 with it (the client reads `h`)."""
    doc, errors = await checked_body(request, CONTEXT_FIELDS)
    if errors:
        return invalid(errors)
    doc.setdefault("cpu_vendor", "")
    h = doc.pop("h")
    # A conflicting re-post raises ContextConflictError: 409 in this dialect's error shape.
    await execute(container, c.RecordContext.of(h, doc))
    return JSONResponse({"h": h, **doc}, status_code=201)


@route(router, "GET", "/contexts/count/")
def count_contexts(container: ContainerDep) -> dict[str, int]:
    return {"count": container.store.count_streams(CONTEXT_PREFIX)}


@route(router, "GET", "/contexts/")
def list_contexts(request: Request, container: ContainerDep, paging: PagingDep) -> Any:
    return _contexts(request, container, "", paging)


@route(router, "GET", "/contexts/{prefix}")
def contexts_by_prefix(
    prefix: str, request: Request, container: ContainerDep, paging: PagingDep
) -> Any:
    """Contexts whose h starts with `prefix`; always 200 with a `contexts` list."""
    return _contexts(request, container, prefix, paging)
