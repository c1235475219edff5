"""What api/observe.py adds to one answer (request id, request metrics), in µs: a loop of
ASGI sends with and without `Observer.watch`, best of 40 runs (no server, no network).

    .venv/bin/python bench/observe_overhead.py
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from api.observe import Observer


class _Route:
    path = "/v1/sessions/{session_id}/keepalive"


HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"python-httpx/0.28.1"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
    (b"authorization", b"Bearer sl_" + b"x" * 43),
    (b"content-type", b"application/json"),
    (b"content-length", b"31"),
]
WITH_ID = [*HEADERS, (b"x-request-id", b"0f8fad5b-d9cb-469f-a165-70867728950e")]


async def _send(message: Any) -> None:
    pass


async def _loop(observer: Observer | None, headers: list[tuple[bytes, bytes]], n: int) -> float:
    route = _Route()
    t0 = time.perf_counter()
    for _ in range(n):
        scope = {"type": "http", "method": "POST", "headers": headers, "route": route}
        send = observer.watch(scope, _send) if observer is not None else _send
        start = [(b"content-length", b"50"), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": start})
        await send({"type": "http.response.body", "body": b"{}"})
    return (time.perf_counter() - t0) / n * 1e6


async def main(n: int = 20_000, runs: int = 40) -> None:
    observer = Observer(lambda scope: "unmatched")
    base, made, given = [], [], []
    for _ in range(runs):
        base.append(await _loop(None, HEADERS, n))
        made.append(await _loop(observer, HEADERS, n))
        given.append(await _loop(observer, WITH_ID, n))
    b = min(base)
    print(
        f"added per answer: {min(made) - b:.2f} µs (id made), {min(given) - b:.2f} µs (client's id)"
    )


if __name__ == "__main__":
    asyncio.run(main())
