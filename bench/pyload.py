"""Fallback HTTP/1.1 load generator, used by `bench.load.http_load` when `wrk` is absent.

Runs as its own process (`python -m bench.pyload SPEC_JSON`) so it never shares an event
loop or a GIL with the server under test. It opens `connections` keep-alive connections with
raw asyncio protocols (uvloop when installed), sends one request at a time per connection
(no pipelining, like wrk), and prints one JSON object:
`{"rps", "p50_ms", "p99_ms", "errors", "requests", "duration_s", "error_detail", "tool"}`.

SPEC keys: host, port, method, body (str), headers (dict), duration_s, connections,
timeout_s, and either `path` (fixed) or `path_template` with `{id}` plus `ids` (list) or
`n_ids` (ids generated as s-0..s-N-1), and `order` ("random" or "cycle").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any, cast

_CRLF2 = b"\r\n\r\n"


def _percentile(sorted_vals: list[float], p: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, round(p / 100.0 * len(sorted_vals) + 0.5) - 1))
    return sorted_vals[k]


def make_request_factory(spec: dict[str, Any], seed: int) -> Callable[[], bytes]:
    """A callable returning the next request's bytes, per the spec."""
    method = spec.get("method", "GET").upper()
    body = spec.get("body") or ""
    body_b = body.encode() if isinstance(body, str) else bytes(body)
    host = f"{spec['host']}:{spec['port']}"
    extra = "".join(f"{k}: {v}\r\n" for k, v in (spec.get("headers") or {}).items())
    clen = f"Content-Length: {len(body_b)}\r\n" if body_b or method in ("POST", "PUT") else ""

    def build(path: str) -> bytes:
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}{clen}\r\n"
        return head.encode() + body_b

    if "path_template" not in spec:
        fixed = build(spec.get("path", "/"))
        return lambda: fixed

    template: str = spec["path_template"]
    ids: list[str] | None = spec.get("ids")
    n = len(ids) if ids is not None else int(spec["n_ids"])
    if n <= 0:
        raise ValueError("need at least one session id")
    rng = random.Random(seed)
    counter = [rng.randrange(n)]
    cycle = spec.get("order", "random") == "cycle"

    def nxt() -> bytes:
        if cycle:
            i = counter[0] = (counter[0] + 1) % n
        else:
            i = rng.randrange(n)
        sid = ids[i] if ids is not None else f"s-{i}"
        return build(template.replace("{id}", sid))

    return nxt


class _Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.status_errors = 0
        self.connect_errors = 0
        self.read_errors = 0
        self.timeouts = 0


class _Conn(asyncio.Protocol):
    """One keep-alive connection: send, parse one response, repeat until the deadline."""

    def __init__(self, runner: _Runner, next_request: Callable[[], bytes]) -> None:
        self.r = runner
        self.next_request = next_request
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.t0 = 0.0
        self.in_flight = False
        self.finished = False
        self.closing_after = False

    # -- protocol callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._send()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.in_flight:
            done = self._parse_one()
            if not done:
                return
            self.in_flight = False
            if self.closing_after:
                self._close_and_reconnect()
                return
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:
            self.r.stats.read_errors += 1
            self.in_flight = False
        if not self.finished:
            self.r.reconnect(self)

    # -- helpers ---------------------------------------------------------------------------

    def _send(self) -> None:
        if time.perf_counter() >= self.r.deadline:
            self._finish()
            return
        assert self.transport is not None
        self.in_flight = True
        self.t0 = time.perf_counter()
        self.transport.write(self.next_request())

    def _finish(self) -> None:
        if not self.finished:
            self.finished = True
            if self.transport is not None:
                self.transport.close()
            self.r.conn_done()

    def _close_and_reconnect(self) -> None:
        self.closing_after = False
        self.buf.clear()
        if self.transport is not None:
            self.transport.close()  # connection_lost reconnects

    def _parse_one(self) -> bool:
        """Consume one complete response from the buffer; False if more bytes are needed."""
        buf = self.buf
        end = buf.find(_CRLF2)
        if end < 0:
            return False
        head = bytes(buf[:end]).decode("latin-1")
        lines = head.split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            status = 0
        clen = 0
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                clen = int(value.strip())
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.strip().lower() == "close":
                self.closing_after = True
        start = end + 4
        if chunked:
            pos = start
            while True:
                le = buf.find(b"\r\n", pos)
                if le < 0:
                    return False
                size = int(bytes(buf[pos:le]).split(b";")[0], 16)
                pos = le + 2 + size + 2
                if len(buf) < pos:
                    return False
                if size == 0:
                    break
            total = pos
        else:
            total = start + clen
            if len(buf) < total:
                return False
        del buf[:total]
        self.r.stats.latencies.append(time.perf_counter() - self.t0)
        if not 200 <= status < 400:
            self.r.stats.status_errors += 1
        return True


class _Runner:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.stats = _Stats()
        self.loop = asyncio.get_running_loop()
        self.deadline = 0.0
        self.remaining = 0
        self.all_done: asyncio.Future[None] = self.loop.create_future()
        self.conns: list[_Conn] = []

    def conn_done(self) -> None:
        self.remaining -= 1
        if self.remaining == 0 and not self.all_done.done():
            self.all_done.set_result(None)

    async def _connect(self, conn: _Conn) -> None:
        try:
            await self.loop.create_connection(lambda: conn, self.spec["host"], self.spec["port"])
        except OSError:
            self.stats.connect_errors += 1
            if time.perf_counter() < self.deadline:
                await asyncio.sleep(0.05)
                self.reconnect(conn)
            else:
                conn.finished = True
                self.conn_done()

    def reconnect(self, old: _Conn) -> None:
        if time.perf_counter() >= self.deadline:
            old.finished = True
            self.conn_done()
            return
        new = _Conn(self, old.next_request)
        self.conns.append(new)
        self.loop.create_task(self._connect(new))

    async def run(self) -> dict[str, Any]:
        n = int(self.spec.get("connections", 64))
        duration = float(self.spec["duration_s"])
        timeout = float(self.spec.get("timeout_s", 5.0))
        self.remaining = n
        t_start = time.perf_counter()
        self.deadline = t_start + duration
        self.conns = [_Conn(self, make_request_factory(self.spec, seed=i)) for i in range(n)]
        for c in list(self.conns):
            self.loop.create_task(self._connect(c))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.all_done), duration + timeout)
        elapsed = time.perf_counter() - t_start
        # Anything still waiting for a response past deadline + timeout is a timeout.
        for c in self.conns:
            if c.in_flight and not c.finished:
                self.stats.timeouts += 1
            c.finished = True
            if c.transport is not None:
                c.transport.close()
        measured = min(elapsed, duration) if elapsed > 0 else duration
        lat = sorted(self.stats.latencies)
        s = self.stats
        detail = {
            "connect": s.connect_errors,
            "read": s.read_errors,
            "write": 0,
            "status": s.status_errors,
            "timeout": s.timeouts,
        }
        return {
            "rps": len(lat) / measured,
            "p50_ms": _percentile(lat, 50) * 1000.0,
            "p99_ms": _percentile(lat, 99) * 1000.0,
            "errors": sum(detail.values()),
            "requests": len(lat),
            "duration_s": measured,
            "error_detail": detail,
            "tool": "pyload",
        }


async def _main_async(spec: dict[str, Any]) -> dict[str, Any]:
    return await _Runner(spec).run()


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the load described by `spec` in this process and return the result dict."""
    try:
        import uvloop

        return uvloop.run(_main_async(spec))
    except ImportError:
        return asyncio.run(_main_async(spec))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.pyload SPEC_JSON|@spec.json", file=sys.stderr)
        return 2
    raw = args[0]
    if raw.startswith("@"):
        with open(raw[1:], encoding="utf-8") as f:
            raw = f.read()
    print(json.dumps(run(json.loads(raw))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
