"""pytest-monitor metrics: record one (a RecordMetric on its session's stream), list and
count every monitor session's metrics or one session's, read from the log (never a table)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import ContainerDep, execute
from api.dialects.monitor import reads
from api.dialects.monitor.shape import (
    METRIC_FIELDS,
    NOT_OBJECT,
    VALUE_FIELDS,
    PagingDep,
    bad_json,
    check,
    invalid,
    json_body,
    paged,
    route,
)
from domain import commands as c

router = APIRouter()


@route(router, "POST", "/metrics/", 201)
async def create_metric(request: Request, container: ContainerDep) -> JSONResponse:
    """Record one test's metric on its session (all 14 fields required, of their types)."""
    body, parsed = await json_body(request)
    if not parsed:
        return bad_json()
    m, errors = check(body, METRIC_FIELDS) if isinstance(body, dict) else ({}, NOT_OBJECT)
    # The reference's table has a foreign key to the contexts; the ledger holds to it.
    if "context_h" in m and not await asyncio.to_thread(
        reads.context_exists, container, m["context_h"]
    ):
        errors["context_h"] = f"unknown context {m['context_h']}"
    if errors:
        return invalid(errors)
    values = {k: m[k] for k in VALUE_FIELDS}
    cmd = c.RecordMetric(
        session_id=m["session_h"], item=m["item"], context=m["context_h"], values=values
    )
    await execute(container, cmd)  # an unknown session: 404 (the stream must exist)
    recorded = {"context": cmd.context, "item": cmd.item, "values": values}
    return JSONResponse(reads.metric_view(cmd.session_id, recorded), status_code=201)


@route(router, "GET", "/metrics/count")
async def count_metrics(container: ContainerDep) -> dict[str, int]:
    return {"count": len(await asyncio.to_thread(reads.all_metrics, container))}


@route(router, "GET", "/metrics/")
async def list_metrics(request: Request, container: ContainerDep, paging: PagingDep) -> Any:
    """Every monitor session's metrics, in the order recorded; 204 when there is none."""
    rows = await asyncio.to_thread(reads.all_metrics, container)
    return paged(request, "metrics", rows, paging)


@route(router, "GET", "/sessions/{session_h}/metrics/count")
def count_session_metrics(session_h: str, container: ContainerDep) -> dict[str, int]:
    return {"count": len(reads.session_metrics(container, session_h))}


@route(router, "GET", "/sessions/{session_h}/metrics")
def session_metrics(
    session_h: str, request: Request, container: ContainerDep, paging: PagingDep
) -> Any:
    """The metrics of one session (full key), in the order recorded; 204 when there is none
    or no such session, as the reference answers."""
    return paged(request, "metrics", reads.session_metrics(container, session_h), paging)


router.add_api_route(  # the seed's heading spells it /session/:session/metrics/
    "/session/{session_h}/metrics/", session_metrics, methods=["GET"], include_in_schema=False
)
