"""Baselines for Session Ledger's performance targets.

Every target is reported as a *ratio* to a baseline measured in the same run on the same
machine (2 shared, noisy cores), so a slow or busy machine moves both sides together.
Run `python -m bench.baselines` (full, ~1-2 min) or `python -m bench.baselines --smoke`
(tiny sizes, < 20 s). `--json PATH` also writes the results; `--only NAME ...` picks some.

The baselines
-------------

``noop_http`` -- requests/s of the thinnest server we could ship.
    A uvicorn process (127.0.0.1, free port, 1 worker, ``--loop uvloop --http httptools
    --log-level warning --no-access-log``) serves a FastAPI app with one ``async def
    POST /noop`` that ignores its body and returns ``{"ok": true}`` (`bench.noop_app`).
    A separate load process drives it: ``wrk`` (1 thread, 64 keep-alive connections, a Lua
    script that POSTs a small JSON body) or, if ``wrk`` is absent, `bench.pyload` (raw asyncio
    protocols, HTTP/1.1 keep-alive, 64 connections). A short warm-up run is discarded.
    The server's keepalive endpoint is compared against this: ratio = service rps / noop rps.

``raw_sqlite_executemany`` -- rows/s the stdlib ``sqlite3`` driver can append.
    A temp-file DB in WAL mode with ``synchronous=NORMAL`` and the ledger's ``events`` table
    (INTEGER PRIMARY KEY position, UNIQUE(stream_id, version)); realistic rows (~120-byte
    orjson payload, 32-byte sha256 chain hash, 1000 streams); ``executemany`` of ``batch``
    rows, ``BEGIN``/``COMMIT`` per batch. Only executemany + commit is timed (rows are built
    between timed sections). This is the ceiling for the store's append path. It is for a
    fixed row count into an empty table (default 300 000): the rate falls as the table grows,
    because each batch dirties about one unique-index page per stream it touches and every
    commit writes them to the WAL. Note the service itself runs ``synchronous=FULL``.

``eventsourcing_lib`` -- events/s of the `eventsourcing` library's one-save-per-event path.
    ``eventsourcing.application.Application`` with ``PERSISTENCE_MODULE=eventsourcing.sqlite``
    and ``SQLITE_DBNAME`` a temp file (the library turns on WAL; synchronous stays at SQLite's
    default FULL); one aggregate with an ``@event`` method ``keep_alive(path)``; loop: call it,
    ``app.save(agg)``. This is the "just use the library" alternative the ledger must beat.

``raw_select_fetch`` / ``raw_select_orjson`` / ``raw_select_sha256`` -- rows/s of a replay.
    ``SELECT`` all columns of every row in position order (``fetchmany`` chunks of 10 000),
    doing nothing (fetch), ``orjson.loads`` of each payload (orjson), or recomputing the
    hash chain ``sha256(prev_hash + orjson([position, stream_id, version, type,
    schema_version, recorded_at]) + payload)`` and comparing with the stored hash (sha256) --
    the same link as ``persistence.store.chain_hash``, copied here so the bench does not import the
    service. These are the ceilings for replay and ``verify``. The DB comes from
    `make_event_db`; scans repeat until the time budget is spent and report the median pass.

All rates use ``time.perf_counter`` and each measurement is bounded in time.

Reusable pieces for the service benchmark: `uvicorn_server` (start any ASGI app in its own
process), `http_load` (wrk or pyload, returns rps / p50_ms / p99_ms / errors) and
`keepalive_lua` (a wrk script spreading ``POST /v1/sessions/{id}/keepalive`` over many ids).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

REPO_ROOT = Path(__file__).resolve().parent.parent
GENESIS_HASH = b"\x00" * 32
KEEPALIVE_BODY = '{"visible": true, "path": "/p"}'
NOOP_BODY = '{"visible": true, "path": "/p"}'

EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    type TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    recorded_at REAL NOT NULL,
    payload BLOB NOT NULL,
    hash BLOB NOT NULL,
    UNIQUE(stream_id, version)
)
"""
INSERT_SQL = (
    "INSERT INTO events (position, stream_id, version, type, schema_version, recorded_at, "
    "payload, hash) VALUES (?,?,?,?,?,?,?,?)"
)
SELECT_SQL = (
    "SELECT position, stream_id, version, type, schema_version, recorded_at, payload, hash "
    "FROM events ORDER BY position"
)


# =============================================================================================
# HTTP: server process, load process
# =============================================================================================


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _http_probe(host: str, port: int, path: str, timeout: float = 1.0) -> bool:
    """True once the server answers anything over HTTP (any status)."""
    try:
        c = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            c.request("GET", path)
            c.getresponse().read()
            return True
        finally:
            c.close()
    except (OSError, http.client.HTTPException):
        return False


@contextlib.contextmanager
def uvicorn_server(
    app: str,
    *,
    factory: bool = False,
    host: str = "127.0.0.1",
    port: int | None = None,
    env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
    ready_path: str = "/",
    startup_timeout_s: float = 30.0,
    cwd: str | Path = REPO_ROOT,
) -> Iterator[str]:
    """Run `uvicorn APP` in a separate process; yields its base URL, e.g. http://127.0.0.1:PORT.

    1 worker, uvloop, httptools, log-level warning, no access log. Ready once an HTTP request
    to `ready_path` gets any response. Stopped with SIGINT (then SIGKILL after 10 s).
    """
    attempts = 1 if port is not None else 3
    last_err = ""
    for _ in range(attempts):
        p = port if port is not None else free_port(host)
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            host,
            "--port",
            str(p),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
            *(["--factory"] if factory else []),
            *extra_args,
        ]
        penv = dict(os.environ)
        penv["PYTHONPATH"] = os.pathsep.join(
            [str(cwd), *([penv["PYTHONPATH"]] if penv.get("PYTHONPATH") else [])]
        )
        if env:
            penv.update(env)
        with tempfile.TemporaryFile() as errf:
            proc = subprocess.Popen(
                cmd, cwd=str(cwd), env=penv, stdout=subprocess.DEVNULL, stderr=errf
            )
            try:
                deadline = time.monotonic() + startup_timeout_s
                ready = False
                while time.monotonic() < deadline and proc.poll() is None:
                    if _http_probe(host, p, ready_path):
                        ready = True
                        break
                    time.sleep(0.05)
                if ready:
                    yield f"http://{host}:{p}"
                    return
                errf.seek(0)
                last_err = errf.read().decode(errors="replace")[-4000:]
                if proc.poll() is None:
                    raise RuntimeError(
                        f"uvicorn {app} not ready after {startup_timeout_s}s:\n{last_err}"
                    )
            finally:
                _stop(proc)
    raise RuntimeError(f"uvicorn {app} failed to start:\n{last_err}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class LuaScript(str):
    """A wrk Lua script; `spec` (optional) tells `bench.pyload` how to do the same without wrk.

    `spec` keys (see `bench.pyload`): method, body, headers, and path, or path_template with
    {id} plus ids or n_ids, and order.
    """

    spec: dict[str, Any] | None

    def __new__(cls, text: str, spec: dict[str, Any] | None = None) -> LuaScript:
        obj = super().__new__(cls, text)
        obj.spec = spec
        return obj


_SAFE_ID = re.compile(r"^[A-Za-z0-9._~:@!$&'()*+,;=-]+$")


def _lua_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def body_lua(method: str, body: str | bytes, headers: dict[str, str] | None = None) -> LuaScript:
    """A wrk script sending the same request each time (wrk's fast path: built once)."""
    text = body.decode() if isinstance(body, bytes) else body
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    lines = [f"wrk.method = {_lua_str(method.upper())}", f"wrk.body = {_lua_str(text)}"]
    lines += [f"wrk.headers[{_lua_str(k)}] = {_lua_str(v)}" for k, v in hdrs.items()]
    spec = {"method": method.upper(), "body": text, "headers": hdrs}
    return LuaScript("\n".join(lines) + "\n", spec)


def keepalive_lua(
    session_ids: Sequence[str] | int,
    *,
    path_template: str = "/v1/sessions/{id}/keepalive",
    body: str = KEEPALIVE_BODY,
    method: str = "POST",
    order: str = "random",
    headers: dict[str, str] | None = None,
) -> LuaScript:
    """wrk script: each request POSTs `body` to `path_template` with a session id picked per
    request from `session_ids` -- a list of ids (embedded in the script), or an int N meaning
    generated ids s-0 .. s-(N-1). `order` is "random" (uniform, seeded per wrk thread) or
    "cycle" (round-robin from a per-thread random start). Ids must be URL path-safe.
    """
    if order not in ("random", "cycle"):
        raise ValueError("order must be 'random' or 'cycle'")
    if "{id}" not in path_template:
        raise ValueError("path_template needs an {id} placeholder")
    prefix, _, suffix = path_template.partition("{id}")
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    spec: dict[str, Any] = {
        "method": method.upper(),
        "body": body,
        "headers": hdrs,
        "path_template": path_template,
        "order": order,
    }
    if isinstance(session_ids, int):
        n = session_ids
        if n <= 0:
            raise ValueError("need at least one session id")
        id_expr = '"s-" .. (i - 1)'
        ids_decl = ""
        spec["n_ids"] = n
    else:
        ids = [str(s) for s in session_ids]
        n = len(ids)
        if n == 0:
            raise ValueError("need at least one session id")
        bad = [s for s in ids if not _SAFE_ID.match(s)]
        if bad:
            raise ValueError(f"session ids must be URL path-safe, got e.g. {bad[0]!r}")
        rows = [",".join(_lua_str(s) for s in ids[i : i + 64]) for i in range(0, n, 64)]
        ids_decl = "local ids = {\n" + ",\n".join(rows) + "\n}\n"
        id_expr = "ids[i]"
        spec["ids"] = ids
    pick = (
        "counter = counter % n + 1\n  local i = counter"
        if order == "cycle"
        else "local i = math.random(n)"
    )
    hdr_lines = "\n".join(f"headers[{_lua_str(k)}] = {_lua_str(v)}" for k, v in hdrs.items())
    text = f"""-- generated by bench.baselines.keepalive_lua
{ids_decl}local n = {n}
local prefix = {_lua_str(prefix)}
local suffix = {_lua_str(suffix)}
local body = {_lua_str(body)}
local method = {_lua_str(method.upper())}
local headers = {{}}
{hdr_lines}
local counter = 0
local next_seed = 1

function setup(thread)
  thread:set("seed", next_seed)
  next_seed = next_seed + 1
end

function init(args)
  math.randomseed(1000003 * (seed or 1))
  counter = math.random(n) - 1
end

function request()
  {pick}
  return wrk.format(method, prefix .. {id_expr} .. suffix, headers, body)
end
"""
    return LuaScript(text, spec)


_DONE_LUA = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "\\nBENCHJSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %f, "
    .. "\\"p99_us\\": %f, \\"connect\\": %d, \\"read\\": %d, \\"write\\": %d, "
    .. "\\"status\\": %d, \\"timeout\\": %d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def _resolve_script(method: str, body_or_lua: Any) -> LuaScript:
    if isinstance(body_or_lua, LuaScript):
        return body_or_lua
    if isinstance(body_or_lua, (str, os.PathLike)) and str(body_or_lua).endswith(".lua"):
        path = Path(body_or_lua)
        if path.is_file():
            return LuaScript(path.read_text(encoding="utf-8"))
    if body_or_lua is None:
        body: str | bytes = ""
    elif isinstance(body_or_lua, (dict, list)):
        body = orjson.dumps(body_or_lua)
    else:
        body = body_or_lua
    return body_lua(method, body)


def http_load(
    url: str,
    method: str = "POST",
    body_or_lua: Any = None,
    connections: int = 64,
    duration_s: float = 10.0,
    *,
    threads: int = 1,
    timeout_s: float = 5.0,
    tool: str = "auto",
) -> dict[str, Any]:
    """Load `url` from a separate process; returns dict(rps, p50_ms, p99_ms, errors, ...).

    `body_or_lua`: a `LuaScript` (e.g. from `keepalive_lua`; its request() picks the path),
    a path to a .lua file (wrk only), a dict/list (sent as orjson), or str/bytes sent as the
    body of `method` to `url`. `tool` is "auto" (wrk if on PATH, else pyload), "wrk" or
    "pyload". wrk durations are whole seconds (rounded, >= 1). `errors` sums connect, read,
    write, timeout and non-2xx/3xx status errors; `error_detail` splits them.
    Extra keys: requests, duration_s, tool. wrk raises RuntimeError if it cannot connect at
    start (pyload instead counts connect errors and retries until the deadline).
    """
    script = _resolve_script(method, body_or_lua)
    use = tool
    if use == "auto":
        use = "wrk" if shutil.which("wrk") else "pyload"
    if use == "wrk":
        return _wrk_load(url, script, connections, duration_s, threads, timeout_s)
    if use == "pyload":
        return _py_load(url, script, connections, duration_s, timeout_s)
    raise ValueError(f"unknown tool {tool!r}")


def _wrk_load(
    url: str,
    script: LuaScript,
    connections: int,
    duration_s: float,
    threads: int,
    timeout_s: float,
) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk not found on PATH (apt-get install -y wrk)")
    secs = max(1, round(duration_s))
    threads = max(1, min(threads, connections))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(str(script) + "\n" + _DONE_LUA)
        lua_path = f.name
    try:
        cmd = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{secs}s",
            f"--timeout={max(1, round(timeout_s))}s",
            "-s",
            lua_path,
            url,
        ]
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=secs + timeout_s + 30, check=False
        )
    finally:
        os.unlink(lua_path)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    r = json.loads(line[len("BENCHJSON ") :])
    detail = {k: int(r[k]) for k in ("connect", "read", "write", "status", "timeout")}
    dur = r["duration_us"] / 1e6
    return {
        "rps": r["requests"] / dur if dur > 0 else 0.0,
        "p50_ms": r["p50_us"] / 1000.0,
        "p99_ms": r["p99_us"] / 1000.0,
        "errors": sum(detail.values()),
        "requests": int(r["requests"]),
        "duration_s": dur,
        "error_detail": detail,
        "tool": "wrk",
    }


def _py_load(
    url: str, script: LuaScript, connections: int, duration_s: float, timeout_s: float
) -> dict[str, Any]:
    if script.spec is None:
        raise RuntimeError("wrk is absent and this Lua script has no pyload spec")
    u = urlsplit(url)
    spec = dict(script.spec)
    spec.update(
        host=u.hostname or "127.0.0.1",
        port=u.port or 80,
        duration_s=duration_s,
        connections=connections,
        timeout_s=timeout_s,
    )
    if "path_template" not in spec:
        spec["path"] = (u.path or "/") + (f"?{u.query}" if u.query else "")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
        spec_path = f.name
    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench.pyload", "@" + spec_path],
            cwd=str(REPO_ROOT),
            capture_output=True,
            text=True,
            timeout=duration_s + timeout_s + 60,
            check=False,
        )
    finally:
        os.unlink(spec_path)
    if out.returncode != 0:
        raise RuntimeError(f"pyload failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure_noop_http(
    duration_s: float = 15.0,
    connections: int = 64,
    *,
    warmup_s: float = 2.0,
    threads: int = 1,
    tool: str = "auto",
    app: str = "bench.noop_app:app",
) -> dict[str, Any]:
    """`http_load` result against a no-op app (after a discarded warm-up): FastAPI's, or
    `bench.noop_app:raw`, a bare ASGI callable."""
    with uvicorn_server(app) as base:
        url = base + "/noop"
        if warmup_s > 0:
            http_load(url, "POST", NOOP_BODY, connections, warmup_s, threads=threads, tool=tool)
        return http_load(
            url, "POST", NOOP_BODY, connections, duration_s, threads=threads, tool=tool
        )


def noop_http_rate(duration_s: float = 15.0, connections: int = 64) -> float:
    """Requests/s of uvicorn + FastAPI serving a no-op `POST /noop` (see module doc)."""
    return float(measure_noop_http(duration_s, connections)["rps"])


# =============================================================================================
# SQLite: rows shaped like the ledger's events
# =============================================================================================

_TYPES = ("KeptAlive", "KeptAlive", "KeptAlive", "VisibilityChanged", "PathChanged")


def _payload(position: int, stream: int, version: int) -> bytes:
    """~120 bytes of orjson (sorted keys, as the store encodes payloads)."""
    return orjson.dumps(
        {
            "path": f"/app/section-{position % 97}/item-{position % 10007}",
            "visible": position % 7 != 0,
            "client_ts": 1_732_000_000.0 + position * 0.25,
            "tab": f"t-{(position * 2654435761) % 16**8:08x}",
            "seq": version,
            "session": f"s-{stream}",
        },
        option=orjson.OPT_SORT_KEYS,
    )


def chain_link(
    prev: bytes,
    position: int,
    stream_id: str,
    version: int,
    type_: str,
    schema_version: int,
    recorded_at: float,
    payload: bytes,
) -> bytes:
    """sha256(prev_hash + orjson(head fields) + payload) -- same link as the store's."""
    head = orjson.dumps([position, stream_id, version, type_, schema_version, recorded_at])
    return hashlib.sha256(prev + head + payload).digest()


class EventRows:
    """Generates realistic event rows in position order, chaining hashes as it goes."""

    def __init__(self, n_streams: int = 1000, t0: float = 1_732_000_000.0) -> None:
        self.n_streams = n_streams
        self.t0 = t0
        self.position = 0
        self.prev = GENESIS_HASH

    def take(self, count: int) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        prev = self.prev
        pos = self.position
        n_streams = self.n_streams
        for _ in range(count):
            pos += 1
            stream = (pos - 1) % n_streams
            version = (pos - 1) // n_streams + 1
            sid = f"s-{stream}"
            typ = "SessionStarted" if version == 1 else _TYPES[pos % len(_TYPES)]
            rec = self.t0 + pos * 0.001
            payload = _payload(pos, stream, version)
            prev = chain_link(prev, pos, sid, version, typ, 1, rec, payload)
            out.append((pos, sid, version, typ, 1, rec, payload, prev))
        self.position = pos
        self.prev = prev
        return out


def _connect_rw(path: str | Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(EVENTS_DDL)
    return conn


def make_event_db(
    path: str | Path, n_rows: int, *, n_streams: int = 1000, chunk: int = 100_000
) -> Path:
    """Create (or extend) an events DB at `path` with `n_rows` realistic, hash-chained rows.

    Fast: synchronous=OFF, a 256 MB page cache, one transaction per `chunk` rows. The result
    is in WAL mode and checkpointed, so readers see a plain DB file. Appends after existing
    rows.
    """
    path = Path(path)
    conn = _connect_rw(path, "OFF")
    conn.execute("PRAGMA cache_size=-262144")
    try:
        gen = EventRows(n_streams)
        last = conn.execute("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
        row = last.fetchone()
        if row is not None:
            # Resume the chain; versions stay unique if the DB came from make_event_db
            # with the same n_streams.
            gen.position, gen.prev = int(row[0]), bytes(row[1])
        left = n_rows
        while left > 0:
            k = min(chunk, left)
            rows = gen.take(k)
            conn.execute("BEGIN")
            conn.executemany(INSERT_SQL, rows)
            conn.execute("COMMIT")
            left -= k
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path


def measure_raw_sqlite_executemany(
    n_rows: int = 300_000,
    batch: int = 1000,
    *,
    max_duration_s: float = 30.0,
    synchronous: str = "NORMAL",
    n_streams: int = 1000,
    db_dir: str | None = None,
) -> dict[str, Any]:
    """Append `n_rows` rows to an empty table in `batch`-row transactions.

    The rate falls as the table grows (each batch dirties ~one UNIQUE(stream_id, version)
    index page per stream it touches, and each commit writes them all to the WAL), so the
    rate is for a fixed row count, not a fixed time; `max_duration_s` is only a safety cap
    (`capped` says if it cut the run short). Compare with the service at the same row and
    stream counts.
    """
    with tempfile.TemporaryDirectory(dir=db_dir, prefix="bench-sqlite-") as d:
        conn = _connect_rw(Path(d) / "events.db", synchronous)
        try:
            gen = EventRows(n_streams)
            timed = 0.0
            rows_done = 0
            wall0 = time.perf_counter()
            deadline = wall0 + max_duration_s
            while rows_done < n_rows and time.perf_counter() < deadline:
                rows = gen.take(min(batch, n_rows - rows_done))
                t = time.perf_counter()
                conn.execute("BEGIN")
                conn.executemany(INSERT_SQL, rows)
                conn.execute("COMMIT")
                timed += time.perf_counter() - t
                rows_done += len(rows)
            wall = time.perf_counter() - wall0
        finally:
            conn.close()
        db_bytes = sum(f.stat().st_size for f in Path(d).iterdir())
    return {
        "rate": rows_done / timed if timed > 0 else 0.0,
        "rows": rows_done,
        "seconds": timed,
        "wall_rate_incl_rowgen": rows_done / wall if wall > 0 else 0.0,
        "batch": batch,
        "synchronous": synchronous,
        "n_streams": n_streams,
        "capped": rows_done < n_rows,
        "db_bytes": db_bytes,
    }


def raw_sqlite_executemany_rate(n_rows: int = 300_000, batch: int = 1000) -> float:
    """Rows/s of stdlib sqlite3 executemany into the events table, commit per batch."""
    return float(measure_raw_sqlite_executemany(n_rows, batch)["rate"])


def _scan_once(db_path: str | Path, mode: str, chunk: int, deadline: float) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{Path(db_path).resolve()}?mode=ro", uri=True)
    try:
        rows = 0
        mismatches = 0
        t0 = time.perf_counter()
        cur = conn.execute(SELECT_SQL)
        fetch = cur.fetchmany
        if mode == "fetch":
            while batch := fetch(chunk):
                rows += len(batch)
                if time.perf_counter() > deadline:
                    break
        elif mode == "orjson":
            loads = orjson.loads
            while batch := fetch(chunk):
                for r in batch:
                    loads(r[6])
                rows += len(batch)
                if time.perf_counter() > deadline:
                    break
        elif mode == "sha256":
            sha, dumps = hashlib.sha256, orjson.dumps
            prev = GENESIS_HASH
            while batch := fetch(chunk):
                for pos, sid, ver, typ, sv, rec, payload, h in batch:
                    prev = sha(prev + dumps([pos, sid, ver, typ, sv, rec]) + payload).digest()
                    if prev != h:
                        mismatches += 1
                        prev = h  # resync so one bad row counts once
                rows += len(batch)
                if time.perf_counter() > deadline:
                    break
        else:
            raise ValueError(f"unknown scan mode {mode!r}")
        secs = time.perf_counter() - t0
    finally:
        conn.close()
    return {"rows": rows, "seconds": secs, "mismatches": mismatches}


def measure_raw_select(
    db_path: str | Path,
    mode: str = "orjson",
    *,
    duration_s: float = 10.0,
    chunk: int = 10_000,
) -> dict[str, Any]:
    """Scan the whole table in position order, repeating passes while within `duration_s`
    (a pass is cut at the budget's end). `mode`: fetch | orjson | sha256. Returns the median
    pass rate as `rate`, plus best, passes, rows per pass and hash mismatches (sha256)."""
    t_end = time.perf_counter() + duration_s
    passes: list[dict[str, Any]] = []
    while True:
        passes.append(_scan_once(db_path, mode, chunk, t_end))
        if time.perf_counter() >= t_end:
            break
    rates = [p["rows"] / p["seconds"] for p in passes if p["seconds"] > 0]
    return {
        "rate": statistics.median(rates) if rates else 0.0,
        "best": max(rates, default=0.0),
        "passes": len(passes),
        "rows": passes[0]["rows"],
        "mismatches": passes[0]["mismatches"],
        "mode": mode,
    }


def raw_select_orjson_rate(db_path: str | Path, duration_s: float = 10.0) -> float:
    """Rows/s: SELECT all rows in position order (fetchmany 10k) + orjson.loads(payload)."""
    return float(measure_raw_select(db_path, "orjson", duration_s=duration_s)["rate"])


def raw_select_sha256_rate(db_path: str | Path, duration_s: float = 10.0) -> float:
    """Rows/s: SELECT all rows in position order (fetchmany 10k) + recompute the hash chain."""
    return float(measure_raw_select(db_path, "sha256", duration_s=duration_s)["rate"])


# =============================================================================================
# eventsourcing library
# =============================================================================================


class BenchSession(Aggregate):
    """A minimal session aggregate for the library baseline."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = ""
        self.keepalives = 0

    @event("KeptAlive")
    def keep_alive(self, path: str) -> None:
        self.path = path
        self.keepalives += 1


def measure_eventsourcing_lib(
    n_events: int = 20_000, *, max_duration_s: float = 20.0, db_dir: str | None = None
) -> dict[str, Any]:
    """One `keep_alive` + `app.save(agg)` per event, up to `n_events` or `max_duration_s`."""
    with tempfile.TemporaryDirectory(dir=db_dir, prefix="bench-es-") as d:
        app = Application(
            env={
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(Path(d) / "es.db"),
            }
        )
        try:
            agg = BenchSession("bench")
            app.save(agg)
            done = 0
            t0 = time.perf_counter()
            deadline = t0 + max_duration_s
            while done < n_events:
                agg.keep_alive("/p")
                app.save(agg)
                done += 1
                if done % 64 == 0 and time.perf_counter() >= deadline:
                    break
            secs = time.perf_counter() - t0
            assert agg.version == done + 1
        finally:
            with contextlib.suppress(Exception):
                app.close()
    return {"rate": done / secs if secs > 0 else 0.0, "events": done, "seconds": secs}


def eventsourcing_lib_rate(n_events: int = 20_000) -> float:
    """Events/s of eventsourcing's Application + SQLite, one save per event."""
    return float(measure_eventsourcing_lib(n_events)["rate"])


# =============================================================================================
# CLI
# =============================================================================================

FULL = {
    "http_s": 15.0,
    "warmup_s": 2.0,
    "sqlite_rows": 300_000,
    "sqlite_s": 30.0,
    "es_events": 20_000,
    "es_s": 20.0,
    "select_rows": 1_000_000,
    "select_s": 10.0,
}
SMOKE = {
    "http_s": 2.0,
    "warmup_s": 1.0,
    "sqlite_rows": 20_000,
    "sqlite_s": 5.0,
    "es_events": 500,
    "es_s": 2.0,
    "select_rows": 50_000,
    "select_s": 1.0,
}
NAMES = (
    "noop_http",
    "raw_sqlite_executemany",
    "eventsourcing_lib",
    "raw_select_fetch",
    "raw_select_orjson",
    "raw_select_sha256",
)


def run_baselines(
    smoke: bool = False, only: Sequence[str] | None = None, connections: int = 64
) -> dict[str, dict[str, Any]]:
    """Run the chosen baselines; {name: {"rate", "unit", "detail"...}}."""
    cfg = SMOKE if smoke else FULL
    names = list(only or NAMES)
    res: dict[str, dict[str, Any]] = {}
    if "noop_http" in names:
        r = measure_noop_http(cfg["http_s"], connections, warmup_s=cfg["warmup_s"])
        res["noop_http"] = {
            "rate": r["rps"],
            "unit": "req/s",
            "detail": (
                f"{r['tool']} c={connections} p50={r['p50_ms']:.2f}ms "
                f"p99={r['p99_ms']:.2f}ms errors={r['errors']} n={r['requests']}"
            ),
            "raw": r,
        }
    if "raw_sqlite_executemany" in names:
        r = measure_raw_sqlite_executemany(cfg["sqlite_rows"], 1000, max_duration_s=cfg["sqlite_s"])
        res["raw_sqlite_executemany"] = {
            "rate": r["rate"],
            "unit": "rows/s",
            "detail": (
                f"batch={r['batch']} sync={r['synchronous']} rows={r['rows']} "
                f"streams={r['n_streams']} db={r['db_bytes'] / 1e6:.0f}MB "
                f"(incl. rowgen {r['wall_rate_incl_rowgen']:,.0f}/s)"
                + (" CAPPED" if r["capped"] else "")
            ),
            "raw": r,
        }
    if "eventsourcing_lib" in names:
        r = measure_eventsourcing_lib(cfg["es_events"], max_duration_s=cfg["es_s"])
        res["eventsourcing_lib"] = {
            "rate": r["rate"],
            "unit": "events/s",
            "detail": f"one save per event, events={r['events']}",
            "raw": r,
        }
    scans = [n for n in names if n.startswith("raw_select_")]
    if scans:
        with tempfile.TemporaryDirectory(prefix="bench-select-") as d:
            db = Path(d) / "events.db"
            t = time.perf_counter()
            make_event_db(db, cfg["select_rows"])
            build_s = time.perf_counter() - t
            for name in scans:
                mode = name.removeprefix("raw_select_")
                r = measure_raw_select(db, mode, duration_s=cfg["select_s"])
                res[name] = {
                    "rate": r["rate"],
                    "unit": "rows/s",
                    "detail": (
                        f"median of {r['passes']} pass(es), best {r['best']:,.0f}/s, "
                        f"rows={r['rows']}"
                        + (f" mismatches={r['mismatches']}" if mode == "sha256" else "")
                        + (f" (db built in {build_s:.1f}s)" if name == scans[0] else "")
                    ),
                    "raw": r,
                }
    return res


def format_table(res: dict[str, dict[str, Any]]) -> str:
    w = max([len(n) for n in res] + [8])
    lines = [f"{'baseline':<{w}}  {'rate':>14}  {'unit':<8}  detail", "-" * (w + 60)]
    for name, r in res.items():
        lines.append(f"{name:<{w}}  {r['rate']:>14,.0f}  {r['unit']:<8}  {r['detail']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.baselines", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, < 20 s in total")
    ap.add_argument("--only", nargs="+", choices=NAMES, help="run only these baselines")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--json", metavar="PATH", help="also write results as JSON")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = run_baselines(smoke=a.smoke, only=a.only, connections=a.connections)
    total = time.perf_counter() - t0
    print(format_table(res))
    print(f"({'smoke' if a.smoke else 'full'} run, {total:.1f}s, {os.cpu_count()} cpus)")
    if a.json:
        out = Path(a.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"smoke": a.smoke, "total_s": total, "baselines": res}
        out.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
