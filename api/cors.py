"""CORS for browser clients (LEDGER_CORS_ORIGINS): off by default, then exact origins.

When no origin is configured the app holds no `Cors` and does nothing per request. When
some are, every answer (the lean lane's, refusals and errors included) carries `Vary:
Origin`, and an answer to an allowed origin carries `Access-Control-Allow-Origin` and
`Access-Control-Expose-Headers`. A preflight (`OPTIONS` with
`Access-Control-Request-Method`) from an allowed origin is answered here, before the key
gate, because a browser sends no key with it; from any other origin it goes on to the gate
like any request (401 without a key). `*` allows every origin. Credentials are never
allowed: a key travels in `Authorization`, set by the page's code, not by the browser, so no
origin ever gets the browser's cookies or cached Basic credentials sent along.
"""

from __future__ import annotations

import re
from typing import Any

ALLOW_METHODS = b"GET, POST, PUT, PATCH, DELETE"
EXPOSE = b"ETag, Location, X-Ledger-Position, Link, X-Request-ID, Retry-After"
MAX_AGE = b"600"
# Request headers a preflight may ask for: HTTP tokens, comma-separated (echoed back).
_HEADER_LIST = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$")


class Cors:
    def __init__(self, origins: tuple[str, ...]) -> None:
        self.any = "*" in origins
        self.origins = frozenset(o.encode() for o in origins)

    def allowed(self, scope: Any) -> bytes | None:
        """The request's Origin when it is allowed, else None."""
        for name, value in scope["headers"]:
            if name == b"origin":
                return value if self.any or value in self.origins else None
        return None

    def wrap(self, scope: Any, send: Any) -> Any:
        """`send` adding the CORS headers to the answer's start."""
        origin = self.allowed(scope)
        extra = [(b"vary", b"Origin")]
        if origin is not None:
            extra += [
                (b"access-control-allow-origin", b"*" if self.any else origin),
                (b"access-control-expose-headers", EXPOSE),
            ]

        async def cors_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        return cors_send

    async def preflight(self, scope: Any, send: Any) -> bool:
        """Answer a preflight from an allowed origin (204; `send` is `wrap`'s, which adds the
        origin); False when this is not one."""
        if scope["method"] != "OPTIONS" or self.allowed(scope) is None:
            return False
        method, asked = False, b""
        for name, value in scope["headers"]:
            if name == b"access-control-request-method":
                method = True
            elif name == b"access-control-request-headers":
                asked = value
        if not method:
            return False
        headers = [
            (b"access-control-allow-methods", ALLOW_METHODS),
            (b"access-control-max-age", MAX_AGE),
        ]
        if asked and _HEADER_LIST.match(asked):
            headers.append((b"access-control-allow-headers", asked))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return True
