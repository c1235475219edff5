"""pytest-monitor metrics: record one (a RecordMetric on its session's stream), count and
list a session's metrics, read from that stream (never from a table)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.bootstrap import Container
from api.deps import ContainerDep, execute
from api.dialects.monitor.contexts import context_exists
from api.dialects.monitor.shape import (
    METRIC_FIELDS,
    VALUE_FIELDS,
    PagingDep,
    checked_body,
    invalid,
    paged,
    route,
)
from domain import commands as c
from domain.errors import SessionNotFoundError
from domain.session import upcast

router = APIRouter()


def _metric_view(session_h: str, p: dict[str, Any]) -> dict[str, Any]:
    values = p["values"]
    full = {"session_h": session_h, "context_h": p["context"], "item": p["item"], **values}
    return {k: full.get(k) for k in METRIC_FIELDS}


def _session_metrics(container: Container, session_h: str) -> list[dict[str, Any]]:
    events = container.store.load_stream(session_h)
    if not events or any(e.type == "Deleted" for e in events):
        raise SessionNotFoundError(f"no session {session_h}")
    return [
        _metric_view(session_h, upcast(e.type, e.schema_version, e.data()))
        for e in events
        if e.type == "MetricRecorded"
    ]


@route(router, "POST", "/metrics/", 201)
async def create_metric(request: Request, container: ContainerDep) -> JSONResponse:
    """Record one test's metric on its session (all 14 fields required and checked)."""
    m, errors = await checked_body(request, METRIC_FIELDS)
    if "context_h" in m and not await asyncio.to_thread(context_exists, container, m["context_h"]):
        errors["context_h"] = f"unknown context {m['context_h']}"
    if errors:
        return invalid(errors)
    values = {k: m[k] for k in VALUE_FIELDS}
    cmd = c.RecordMetric(
        session_id=m["session_h"], item=m["item"], context=m["context_h"], values=values
    )
    await execute(container, cmd)
    return JSONResponse({k: m[k] for k in METRIC_FIELDS}, status_code=201)


@route(router, "GET", "/sessions/{session_h}/metrics/count/")
def count_session_metrics(session_h: str, container: ContainerDep) -> dict[str, int]:
    return {"count": len(_session_metrics(container, session_h))}


@route(router, "GET", "/sessions/{session_h}/metrics/")
def session_metrics(
    session_h: str, request: Request, container: ContainerDep, paging: PagingDep
) -> Any:
    """The metrics of one session (full key), in the order they were recorded."""
    return paged(request, "metrics", _session_metrics(container, session_h), paging)


router.add_api_route(  # the seed's heading spells it /session/:session/metrics/
    "/session/{session_h}/metrics/", session_metrics, methods=["GET"], include_in_schema=False
)
