"""What every answer leaves behind: its request id and its line in the request metrics.

`Observer.watch` runs once per HTTP request, first thing in `LedgerAPI.__call__` (so the
lean lane, the gate's refusals, 404s and 500s all pass through it). It takes the client's
`X-Request-ID` when it is sane (`accepted`: at most 128 characters of a safe set) and
otherwise makes one cheaply (a per-process random prefix and a counter: no uuid4 per
request), puts it in `request_id` (a ContextVar, for log lines) and returns a `send` that
echoes it on the answer and, when the answer starts, counts it in `RequestMetrics` by route
template (never the raw path: ids would explode the label set), method and status, with its
latency (time to the answer's first byte). The request metrics are this process's own.
"""

from __future__ import annotations

import itertools
import secrets
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from time import perf_counter
from typing import Any, cast

HEADER = b"x-request-id"
MAX_LENGTH = 128
# Letters, digits and the punctuation of common id formats (UUIDs, W3C and AWS trace ids):
# nothing that could split a header or a log line, or quote, or escape.
_SAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:=+/@"
# Latency buckets in seconds: Prometheus's defaults, with finer steps below 5 ms, where a
# keepalive answers.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Methods counted by name; any other is counted as "other" (a client picks the method: as a
# label it must not be able to grow the set of series).
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))

# This request's id, as sent (bytes: decoded only when a log line is written).
request_id: ContextVar[bytes | None] = ContextVar("request_id", default=None)
# (route, duration in ms) of the answer being sent, set only while access lines are written.
access: ContextVar[tuple[str, float] | None] = ContextVar("access", default=None)


def accepted(value: bytes) -> bool:
    """Whether a client's X-Request-ID is echoed as it came (else one is made)."""
    return 0 < len(value) <= MAX_LENGTH and not value.translate(None, _SAFE)


class RequestMetrics:
    """Answers by (route, method, status), each a latency histogram: a count per bucket (the
    last is +Inf) and the sum of seconds; the answers' count is the buckets' total. Written
    only on the event loop's thread; `snapshot` copies it there for a scrape."""

    def __init__(self) -> None:
        self.started = time.time()
        self.answers: dict[tuple[str, str, int], list[float]] = {}

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "other"
        hist = self.answers.get((route, method, status))
        if hist is None:
            hist = self.answers[(route, method, status)] = [0.0] * (len(BUCKETS) + 2)
        hist[bisect_left(BUCKETS, seconds)] += 1
        hist[-1] += seconds

    def snapshot(self) -> dict[tuple[str, str, int], list[float]]:
        return {k: list(v) for k, v in list(self.answers.items())}


class Observer:
    """Request ids and request metrics for one app (see the module docstring)."""

    def __init__(self, route_of: Callable[[dict[str, Any]], str]) -> None:
        self.metrics = RequestMetrics()
        self.access_log = False  # also hand the access line its route and duration
        self._route_of = route_of  # the template a request matched, for one the router skipped
        self._prefix = secrets.token_hex(6).encode() + b"-"
        self._counter = itertools.count(1)

    def watch(self, scope: dict[str, Any], send: Any) -> Any:
        """Stamp this request with its id; the returned `send` echoes it and counts the answer."""
        rid = None
        for name, value in scope["headers"]:
            if name == HEADER:
                rid = value if accepted(value) else None
                break
        if rid is None:
            rid = b"%s%x" % (self._prefix, next(self._counter))
        request_id.set(rid)
        t0 = perf_counter()

        def observed(message: Any) -> Awaitable[None]:
            # Not a coroutine itself: it hands back `send`'s, one frame fewer per message.
            if message["type"] == "http.response.start":
                headers = message.get("headers")
                if type(headers) is list:
                    headers.append((HEADER, rid))  # made for this answer: no copy needed
                else:
                    message["headers"] = [*(headers or ()), (HEADER, rid)]
                seconds = perf_counter() - t0
                route = scope.get("route")
                label = route.path if route is not None else self._route_of(scope)
                self.metrics.record(label, scope["method"], message["status"], seconds)
                if self.access_log:
                    access.set((label, seconds * 1000))
            return cast(Awaitable[None], send(message))

        return observed
