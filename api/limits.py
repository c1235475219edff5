"""Request size limits at the ASGI edge: every body is counted as it arrives.

`bounded(scope, receive, limits)` gives the app a `receive` that refuses a body past the
limit that applies to its route (413 problem+json naming the limit, before anything is
appended): uploads stream to the blob store under their own cap (`max_upload_bytes`, the
route counts), batches have `max_batch_bytes`, every other body `max_body_bytes`. A declared
Content-Length over the limit is refused before a byte is read.
"""

from __future__ import annotations

import re
from typing import Any

from domain.errors import LedgerError, LimitExceededError
from persistence.settings import BodyLimits

# Routes whose bodies are uploads, streamed into the blob store with their own cap.
_UPLOADS = re.compile(
    r"^/v1/sessions/[^/]+/logs/[^/]+$"
    r"|^/compat/lambdatest/automation/api/v1/sessions/[^/]+/(terminal-logs|exceptions)$"
)
_BATCH = "/v1/events:batch"


def cap_for(path: str, limits: BodyLimits) -> tuple[int, str]:
    if path == _BATCH:
        return limits.max_batch_bytes, "max_batch_bytes"
    if _UPLOADS.match(path):
        return limits.max_upload_bytes, "max_upload_bytes"
    return limits.max_body_bytes, "max_body_bytes"


def too_large(cap: int, name: str) -> LimitExceededError:
    return LimitExceededError(f"the request body is larger than {cap} bytes ({name})", limit=name)


def declared_length(scope: Any) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def bounded(scope: Any, receive: Any, limits: BodyLimits) -> Any:
    """`receive` that raises LimitExceededError once the body passes its route's cap; raises
    at once when the declared Content-Length is already over it."""
    cap, name = cap_for(scope["path"], limits)
    declared = declared_length(scope)
    if declared is not None and declared > cap:
        raise too_large(cap, name)
    seen = 0

    async def receive_bounded() -> Any:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > cap:
                raise too_large(cap, name)
        return message

    return receive_bounded


class HostNotAllowedError(LedgerError):
    """The Host header names no host this ledger serves (a DNS-rebinding page, say)."""

    code = "host-not-allowed"


def check_host(scope: Any, allowed: tuple[str, ...]) -> None:
    """Refuse a Host header outside `allowed` ("*" allows any; a port is ignored)."""
    if "*" in allowed:
        return
    host = ""
    for key, value in scope["headers"]:
        if key == b"host":
            host = value.decode("latin-1").lower()
            break
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name not in allowed:
        raise HostNotAllowedError(f"this ledger does not serve the host {host!r}", field="Host")
