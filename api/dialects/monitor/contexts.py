"""pytest-monitor contexts (machine descriptions, not sessions): record one (a RecordContext:
a `Recorded` event on its own stream `context:<h>`), count, list and find them by a prefix
of their hash, and list or count one context's metrics, all read from the log."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import ContainerDep, execute
from api.dialects.monitor import reads
from api.dialects.monitor.shape import (
    CONTEXT_FIELDS,
    NOT_OBJECT,
    PagingDep,
    bad_json,
    check,
    invalid,
    json_body,
    paged,
    route,
)
from domain import commands as c
from domain.context import CONTEXT_PREFIX

router = APIRouter()


async def _record(request: Request, container: ContainerDep) -> JSONResponse:
    body, parsed = await json_body(request)
    if not parsed:
        return bad_json()
    doc, errors = check(body, CONTEXT_FIELDS) if isinstance(body, dict) else ({}, NOT_OBJECT)
    if errors:
        return invalid(errors)
    doc.setdefault("cpu_vendor", "")
    h = doc.pop("h")
    # A conflicting re-post raises ContextConflictError: 409 in this dialect's error shape.
    await execute(container, c.RecordContext.of(h, doc))
    return JSONResponse(reads.context_view({"h": h, "attributes": doc}), status_code=201)


@route(router, "POST", "/contexts/", 201)
async def create_context(request: Request, container: ContainerDep) -> JSONResponse:
    """Record an execution context; answers 201 with it (the client reads `h`)."""
    return await _record(request, container)


@route(router, "POST", "/contexts/{environ_hash}", 201)
async def create_context_at(
    environ_hash: str, request: Request, container: ContainerDep
) -> JSONResponse:
    """As POST /contexts/: the reference takes the hash from the body, not the path."""
    return await _record(request, container)


@route(router, "GET", "/contexts/count")
def count_contexts(container: ContainerDep) -> dict[str, int]:
    return {"count": container.store.count_streams(CONTEXT_PREFIX)}


@route(router, "GET", "/contexts/")
def list_contexts(request: Request, container: ContainerDep, paging: PagingDep) -> Any:
    """All contexts, in the order recorded; 204 when there is none."""
    return paged(request, "contexts", reads.contexts(container, ""), paging)


@route(router, "GET", "/contexts/{prefix}")
def contexts_by_prefix(
    prefix: str, request: Request, container: ContainerDep, paging: PagingDep
) -> Any:
    """Contexts whose h starts with `prefix`; 204 when there is none."""
    return paged(request, "contexts", reads.contexts(container, prefix), paging)


@route(router, "GET", "/contexts/{context_h}/metrics")
async def context_metrics(
    context_h: str, request: Request, container: ContainerDep, paging: PagingDep
) -> Any:
    """The metrics measured in one context (full key), in the order recorded."""
    rows = await asyncio.to_thread(reads.all_metrics, container, context_h)
    return paged(request, "metrics", rows, paging)


@route(router, "GET", "/contexts/{context_h}/metrics/count")
async def count_context_metrics(context_h: str, container: ContainerDep) -> dict[str, int]:
    return {"count": len(await asyncio.to_thread(reads.all_metrics, container, context_h))}
