"""LambdaTest's uploads: terminal logs and exceptions, each the session's artifact."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.bootstrap import Container
from api.dialects.common import actor
from api.dialects.lambdatest.shape import MakeCommand, command_route
from api.uploads import store_upload
from domain import commands as c

router = APIRouter()


def _upload(kind: str) -> MakeCommand:
    """Store the body (or a multipart form's file) by sha256: an artifact of `kind` that
    records it. An artifact, not a log: LambdaTest takes these reports after the test has
    ended too, and the ledger attaches artifacts to a stopped session (logs it refuses)."""

    async def make(request: Request, container: Container, sid: str, idem: str | None) -> c.Command:
        cap = container.settings.body_limits.max_upload_bytes
        sha, size, ctype = await store_upload(request, container.blobs, cap)
        return c.AttachArtifact(
            session_id=sid, kind=kind, content_type=ctype, size=size, sha256=sha,
            by=actor(), idempotency_key=idem,
        )  # fmt: skip

    return make


command_route(
    router, "POST", "/sessions/{session_id}/terminal-logs", "terminal_logs",
    "Upload terminal logs (the session's `terminal` artifact; accepted after stop too).",
    _upload("terminal"), "Terminal logs uploaded successfully",
)  # fmt: skip
command_route(
    router, "POST", "/sessions/{session_id}/exceptions", "exceptions",
    "Upload assertion logs (the session's `exceptions` artifact; accepted after stop too).",
    _upload("exceptions"), "Assertion logs uploaded successfully",
)  # fmt: skip
