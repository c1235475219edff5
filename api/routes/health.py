"""The probes: `GET /healthz` (liveness) and `GET /readyz` (readiness).

Liveness answers 200 while the process serves, whatever the database or the views do (a
restart would not mend them), with the log's head and the views' position for tools that
watch the catch-up. Readiness answers 200 only when the event log and the views database
take a write, no view is stopped, (under `ledger serve`) the projection worker process still
runs, and the leading projection worker is not a process of this host that is gone (the one
worker of `ledger serve --workers N`); otherwise 503 `application/problem+json` with
`Retry-After`. Both answer the same per-view detail (position, lag, state, last error; see
ProjectionRunner.health); /readyz also names the leading `ledger project` worker and the
views' lag (projections/leadership.py). Probes carry no key (api/auth.py leaves both paths
open), so they show no database error text: its class only, the rest goes to the server's
log.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import APIRouter, Request
from sqlalchemy import Engine
from starlette.responses import Response

from api.deps import ContainerDep
from projections import leadership
from projections.failures import describe

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

# Seconds a client (or an orchestrator) is told to wait before asking again.
RETRY_AFTER = 5
# PostgreSQL: whether this session can write at all (a standby, or read-only by setting).
_PG_PROBE = "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"


def write_probe(engine: Engine) -> str | None:
    """None when the database behind `engine` takes a write, else why not (the error's class:
    its text can name hosts, users and statements). Nothing is kept: the transaction rolls
    back. SQLite: the write lock and a header write (`BEGIN IMMEDIATE` alone succeeds on a
    read-only file); PostgreSQL: not a standby, transaction not read-only."""
    try:
        with engine.connect() as conn:
            tx = conn.begin()
            try:
                if conn.dialect.name == "sqlite":
                    version = conn.exec_driver_sql("PRAGMA user_version").scalar_one()
                    conn.exec_driver_sql(f"PRAGMA user_version = {int(version)}")
                elif conn.exec_driver_sql(_PG_PROBE).scalar_one():
                    return "the database is read-only"
            finally:
                tx.rollback()
    except Exception as exc:
        log.warning("readiness: %s is not writable: %s", engine.url, describe(exc))
        return f"{type(exc).__name__} (see the server's log)"
    return None


def _leader(container: Any, views: dict[str, Any]) -> dict[str, Any] | None:
    """The leading `ledger project` worker and the views' lag (projections/leadership.py);
    None when none ever led (a worker thread applies alone)."""
    lag = max((v["lag"] for v in views.values()), default=None)
    try:
        return leadership.shown(container.runner.engine, lag)
    except Exception as exc:
        log.warning("readiness: the projection lease cannot be read: %s", describe(exc))
        return None


def _replica(container: Any) -> dict[str, Any]:
    """The read replica's views (LEDGER_VIEWS_READ_URL): their position and how many events
    of the log they lack (replication delay and the workers' lag together)."""
    try:
        position = container.reader.read_position()
    except Exception as exc:
        log.warning("readiness: the read replica cannot be read: %s", describe(exc))
        return {"position": None, "lag": None, "error": f"{type(exc).__name__} (see the log)"}
    lag = max(0, container.ledger.last_position - position)
    return {"position": position, "lag": lag, "error": None}


@router.get("/healthz")
def healthz(container: ContainerDep) -> dict[str, Any]:
    """Liveness: 200 while the process serves, with the log's head, how far the views have
    caught up (None when the views database cannot be read: /readyz says why) and how many
    events the Merkle tree's stored nodes cover (persistence/tree.py: integrated after the
    appends, in whole blocks; reads recompute the rest)."""
    try:
        views_position: int | None = container.runner.read_position()
    except Exception as exc:
        log.warning("liveness: the views' position cannot be read: %s", describe(exc))
        views_position = None
    try:
        tree_integrated: int | None = container.store.tree.integrated()
    except Exception as exc:
        log.warning("liveness: the tree's integrated size cannot be read: %s", describe(exc))
        tree_integrated = None
    return {
        "status": "ok",
        "log_position": container.ledger.last_position,
        "views_position": views_position,
        "tree_integrated": tree_integrated,
        "projection_error": container.runner.last_error,
    }


@router.get(
    "/readyz",
    responses={503: {"description": "not ready", "content": {"application/problem+json": {}}}},
)
def readyz(container: ContainerDep, request: Request) -> Response:
    """Readiness: the event log and the views database take a write, and no view is
    stopped. 200 with each view's position, lag, state and last error; 503 problem+json
    with `Retry-After` and the same detail when not."""
    engines = {"log": container.store.write_engine, "views": container.runner.engine}
    if str(engines["log"].url) == str(engines["views"].url):
        del engines["views"]  # one database (PostgreSQL's default): one probe
    database = {name: write_probe(engine) for name, engine in engines.items()}
    try:
        views = container.runner.health()
    except Exception as exc:
        log.warning("readiness: the views cannot be read: %s", describe(exc))
        views = {}
        database["views"] = database.get("views") or f"{type(exc).__name__} (see the server's log)"
    reasons = [
        f"the {name} database is not writable: {why}" for name, why in database.items() if why
    ]
    stopped = sorted(name for name, v in views.items() if v["state"] != "ok")
    if stopped:
        reasons.append(f"stopped views: {', '.join(stopped)}")
    worker = getattr(request.app.state, "worker", None)  # `ledger serve`'s worker process
    if worker is not None and worker.poll() is not None:
        reasons.append(f"the projection worker process exited (code {worker.returncode})")
    leader = _leader(container, views)
    if leader is not None and leadership.gone_from_this_host(leader["worker"]):
        # `ledger serve --workers N`: the API processes' one projection worker is not theirs.
        reasons.append(f"the leading projection worker {leader['worker']} is gone")
    body: dict[str, Any] = {
        "database": {
            name: {"writable": why is None, "error": why} for name, why in database.items()
        },
        "views": views,
        "leader": leader,
    }
    if container.reader is not container.runner:
        body["replica"] = _replica(container)
        if body["replica"]["error"]:
            reasons.append(f"the views' read replica cannot be read: {body['replica']['error']}")
    if not reasons:
        return Response(orjson.dumps({"status": "ready", **body}), media_type="application/json")
    problem = {
        "type": "https://session-ledger.dev/problems/not-ready",
        "title": "Not ready",
        "status": 503,
        "detail": "; ".join(reasons),
        **body,
    }
    return Response(
        orjson.dumps(problem),
        status_code=503,
        media_type="application/problem+json",
        headers={"Retry-After": str(RETRY_AFTER)},
    )
