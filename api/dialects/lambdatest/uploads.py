"""LambdaTest's uploads: terminal logs (a file, as multipart `file` or a raw body) and
exceptions (`{"exception": ["..."]}`), each the session's artifact, at most 2 MB as LambdaTest
documents (a larger one is its 400, "file size too large", and appends nothing)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request

from api.bootstrap import Container
from api.deps import ContainerDep, execute
from api.dialects.common import actor
from api.dialects.lambdatest.shape import TOO_LARGE, UPLOAD_CAP, IdemKey
from api.uploads import store_upload
from domain import commands as c
from domain.errors import InvalidCommandError, LimitExceededError

router = APIRouter()
# UploadTerminalFileResposeData, plus the seed's success and message
UPLOADED = "File have been uploaded successfully to our lambda storage"


def _answer(message: str) -> dict[str, Any]:
    return {"data": UPLOADED, "status": "success", "success": True, "message": message}


def _cap(container: Container) -> int:
    return min(UPLOAD_CAP, container.settings.body_limits.max_upload_bytes)


def _too_large(container: Container) -> bool:
    """Whether a LimitExceededError is LambdaTest's 2 MB cap (else the ledger's own, 413)."""
    return container.settings.body_limits.max_upload_bytes >= UPLOAD_CAP


async def _capped_body(request: Request, container: Container) -> bytes:
    cap, body = _cap(container), bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise LimitExceededError(TOO_LARGE, field="body", limit="lambdatest_upload")
    return bytes(body)


def _exceptions(raw: bytes) -> None:
    """UploadExceptionLog: an object whose `exception` is a list of strings."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidCommandError("the body is not JSON", field="body") from None
    items = obj.get("exception") if isinstance(obj, dict) else None
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise InvalidCommandError(
            'send {"exception": ["...", ...]}: a list of strings', field="exception"
        )


async def _attach(
    container: Container, sid: str, kind: str, stored: tuple[str, int, str], idem: str | None
) -> None:
    sha, size, ctype = stored
    await execute(container, c.AttachArtifact(
        session_id=sid, kind=kind, content_type=ctype, size=size, sha256=sha, by=actor(),
        idempotency_key=idem,
    ))  # fmt: skip


@router.post("/sessions/{session_id}/terminal-logs", name="terminal_logs")
async def terminal_logs(
    session_id: str, request: Request, container: ContainerDep, idem: IdemKey = None
) -> dict[str, Any]:
    """Upload terminal logs (the session's `terminal` artifact; accepted after stop too)."""
    try:
        stored = await store_upload(request, container.blobs, _cap(container))
    except LimitExceededError:
        if not _too_large(container):
            raise
        raise InvalidCommandError(TOO_LARGE, field="file") from None
    await _attach(container, session_id, "terminal", stored, idem)
    return _answer("Terminal logs uploaded successfully")


@router.post("/sessions/{session_id}/exceptions", name="exceptions")
async def exceptions(
    session_id: str, request: Request, container: ContainerDep, idem: IdemKey = None
) -> dict[str, Any]:
    """Upload assertion logs, `{"exception": ["..."]}` (the session's `exceptions` artifact;
    accepted after stop too)."""
    try:
        raw = await _capped_body(request, container)
    except LimitExceededError:
        if not _too_large(container):
            raise
        raise InvalidCommandError(TOO_LARGE, field="body") from None
    _exceptions(raw)
    sha, size = await asyncio.to_thread(container.blobs.put, raw)
    await _attach(container, session_id, "exceptions", (sha, size, "application/json"), idem)
    return _answer("Assertion logs uploaded successfully")
