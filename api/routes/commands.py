"""Native session commands under /v1/sessions: each builds one domain command and answers
with the command's result (`api.routes.lean.answer`). The hot ones (keepalive, hide, status,
stop) are declared once with `command_route`, which also gives them their lean twins."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from api import schemas as s
from api.deps import ContainerDep, execute, time_field
from api.dialects.lambdatest import with_account
from api.media import JSON_BODY
from api.openapi import COMMAND, CommandAnswer, documented
from api.routes.lean import IdemKey, IfMatch, answer, command_route, meta
from api.uploads import store_upload
from domain import commands as c
from domain.errors import InvalidCommandError
from domain.eventtime import event_time

router = APIRouter(prefix="/v1", tags=["sessions"])

# What each command route answers (documented, api/openapi.py; a start has no 404).
# 412: a stale If-Match; 415: a body not declared JSON (api/media.py).
UPDATED = documented(CommandAnswer, *COMMAND, 412, 415)
DELETED = documented(CommandAnswer, *COMMAND, 412)
UPLOADED = documented(CommandAnswer, *COMMAND, status=201)
CREATED = documented(CommandAnswer, *COMMAND, 415, status=201)
STARTED = documented(CommandAnswer, *(c for c in COMMAND if c != 404), 415, status=201)

# Bodyless commands (delete, a raw log upload) take their event time as a query parameter.
AtQuery = Annotated[
    str | None,
    Query(
        description="When it happened (epoch seconds or ISO-8601), if not now: the event "
        "time, within LEDGER_EVENT_TIME_PAST/FUTURE of the recording time"
    ),
]

LOG_KINDS = ("command", "selenium", "network", "console", "har", "terminal", "exceptions", "text")


def _new_id(idem: str | None) -> str:
    # A retry with the same Idempotency-Key must name the same session, so derive it.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"idempotency:{idem}") if idem else uuid.uuid4())


@router.post("/sessions", status_code=201, responses=STARTED, dependencies=JSON_BODY)
async def start_session(
    body: s.StartBody, container: ContainerDep, idem: IdemKey = None
) -> Response:
    """Start a session (its id is yours when you bring one, else generated)."""
    fields = body.model_dump(exclude={"id", "started_at", "at"})
    cmd = c.StartSession(
        session_id=body.id or _new_id(idem),
        started_at=time_field(body.started_at, "started_at"),
        at=time_field(body.at, "at"),
        idempotency_key=idem,
        by=body.user,
        **fields,
    )
    # A LambdaTest session records its account (the key), which that dialect's list shows.
    result = await execute(container, with_account(cmd))
    resp = answer(result, 201)
    # The domain's id rule keeps ids to URL path characters: safe in a header as they are.
    resp.headers["Location"] = f"/v1/sessions/{result.session_id}"
    return resp


def _keep_alive(sid: str, body: s.KeepAliveBody | None, meta: dict[str, Any]) -> c.Command:
    b = body or s.KeepAliveBody()
    at = time_field(b.at, "at") if b.at is not None else None
    return c.KeepAlive(session_id=sid, visible=b.visible, path=b.path, at=at, **meta)


def _hide(sid: str, body: s.HideBody | None, meta: dict[str, Any]) -> c.Command:
    b = body or s.HideBody()
    return c.Hide(session_id=sid, path=b.path, at=time_field(b.at, "at"), **meta)


def _change_status(sid: str, body: s.StatusBody, meta: dict[str, Any]) -> c.Command:
    at = time_field(body.at, "at")
    return c.ChangeStatus(session_id=sid, status=body.status, reason=body.reason, at=at, **meta)


def _stop(sid: str, body: s.StopBody | None, meta: dict[str, Any]) -> c.Command:
    b = body or s.StopBody()
    return c.StopSession(session_id=sid, reason=b.reason, at=time_field(b.at, "at"), **meta)


KEEPALIVE_DOC = "Record that the session is alive (visible on `path`, or not visible)."
STOP_DOC = (
    "Stop the session: a running one becomes `completed`, a queued one `cancelled`, any "
    "other keeps its status (a verdict given before, such as `passed`); a `completed` session "
    "may still be given its verdict (status `passed`, `failed` or `error`). Idempotent: a "
    "second stop appends nothing."
)
HIDE_DOC = "Record that the session's view was hidden (stops counting visible time)."
command_route(
    router, "/sessions/{session_id}/keepalive", s.KeepAliveBody, _keep_alive, optional=True,
    summary=KEEPALIVE_DOC,
)  # fmt: skip
command_route(
    router, "/sessions/{session_id}/hide", s.HideBody, _hide, optional=True, summary=HIDE_DOC
)
command_route(
    router, "/sessions/{session_id}/status", s.StatusBody, _change_status,
    summary="Move the session to another status (legal moves only).",
)  # fmt: skip
command_route(
    router, "/sessions/{session_id}/stop", s.StopBody, _stop, optional=True,
    summary=STOP_DOC,
)  # fmt: skip


@router.patch("/sessions/{session_id}", responses=UPDATED, dependencies=JSON_BODY)
async def update(
    session_id: str,
    body: s.UpdateBody,
    container: ContainerDep,
    idem: IdemKey = None,
    if_match: IfMatch = None,
) -> Response:
    """Change descriptive fields (and optionally the status) in one decision."""
    cmd = c.UpdateDetails(
        session_id=session_id,
        changes=body.changes(),
        status=body.status,
        at=time_field(body.at, "at"),
        **meta(idem, if_match),
    )
    return answer(await execute(container, cmd))


@router.delete("/sessions/{session_id}", responses=DELETED)
async def delete(
    session_id: str,
    container: ContainerDep,
    idem: IdemKey = None,
    if_match: IfMatch = None,
    at: AtQuery = None,
) -> Response:
    """Delete the session: views hide it, its stream stays for audit."""
    when = time_field(at, "at")
    cmd = c.DeleteSession(session_id=session_id, at=when, **meta(idem, if_match))
    return answer(await execute(container, cmd))


@router.post("/sessions/{session_id}/logs/{kind}", status_code=201, responses=UPLOADED)
async def upload_log(
    session_id: str,
    kind: str,
    request: Request,
    container: ContainerDep,
    idem: IdemKey = None,
    at: AtQuery = None,
) -> Response:
    """Upload a log (raw body, streamed); stored by sha256, the event carries hash and size."""
    if kind not in LOG_KINDS:
        raise InvalidCommandError(f"log kind must be one of {', '.join(LOG_KINDS)}", field="kind")
    when = time_field(at, "at")
    if when is not None:  # refused before a byte is stored (the ledger checks again)
        event_time(when, container.ledger.clock(), None, container.ledger.window)
    cap = container.settings.body_limits.max_upload_bytes
    sha, size, ctype = await store_upload(request, container.blobs, cap)
    cmd = c.UploadLog(
        session_id=session_id,
        kind=kind,
        content_type=ctype,
        size=size,
        sha256=sha,
        idempotency_key=idem,
        at=when,
    )
    return answer(await execute(container, cmd), 201)


@router.post(
    "/sessions/{session_id}/artifacts", status_code=201, responses=CREATED, dependencies=JSON_BODY
)
async def attach_artifact(
    session_id: str, body: s.ArtifactBody, container: ContainerDep, idem: IdemKey = None
) -> Response:
    """Attach a screenshot or video: a URL, or content (base64) stored by sha256."""
    sha = size = None
    if body.content_base64 is not None:
        try:
            data = base64.b64decode(body.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidCommandError(
                "content_base64 is not base64", field="content_base64"
            ) from None
        sha, size = container.blobs.put(data)
    if sha is None and not body.url:
        raise InvalidCommandError("give url or content_base64", field="url")
    fields = body.model_dump(exclude={"content_base64", "at"})  # kind, title, url, content_type
    at = time_field(body.at, "at")
    cmd = c.AttachArtifact(
        session_id=session_id, size=size, sha256=sha, idempotency_key=idem, at=at, **fields
    )
    return answer(await execute(container, cmd), 201)


@router.post(
    "/sessions/{session_id}/metrics", status_code=201, responses=CREATED, dependencies=JSON_BODY
)
async def record_metric(
    session_id: str, body: s.MetricBody, container: ContainerDep, idem: IdemKey = None
) -> Response:
    """Record one metric sample (e.g. a test's timings and memory)."""
    fields = body.model_dump(exclude={"at"})
    at = time_field(body.at, "at")
    cmd = c.RecordMetric(session_id=session_id, idempotency_key=idem, at=at, **fields)
    return answer(await execute(container, cmd), 201)


@router.post(
    "/sessions/{session_id}/results", status_code=201, responses=CREATED, dependencies=JSON_BODY
)
async def record_result(
    session_id: str, body: s.ResultBody, container: ContainerDep, idem: IdemKey = None
) -> Response:
    """Record one test result (counted per status)."""
    fields = body.model_dump(exclude={"at"})
    at = time_field(body.at, "at")
    cmd = c.RecordResult(session_id=session_id, idempotency_key=idem, at=at, **fields)
    return answer(await execute(container, cmd), 201)


@router.post(
    "/sessions/{session_id}/annotations", status_code=201, responses=CREATED, dependencies=JSON_BODY
)
async def annotate(
    session_id: str, body: s.AnnotationBody, container: ContainerDep, idem: IdemKey = None
) -> Response:
    """Add an annotation; the same id again corrects it, `retracted` withdraws it."""
    fields = body.model_dump(exclude={"id", "occurred_at", "at"})  # kind, text, context, ...
    cmd = c.Annotate(
        session_id=session_id,
        annotation_id=body.id or str(uuid.uuid4()),
        occurred_at=time_field(body.occurred_at, "occurred_at"),
        at=time_field(body.at, "at"),
        idempotency_key=idem,
        **fields,
    )
    return answer(await execute(container, cmd), 201)
