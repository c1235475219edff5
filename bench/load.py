"""HTTP load from a separate process: wrk when it is on PATH, else `bench.pyload`; either
way the same dict of rps, p50_ms, p99_ms and errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench.lua import LuaScript, body_lua
from bench.procs import ROOT

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


def default_tool() -> str:
    """The load tool "auto" picks on this machine."""
    return "wrk" if shutil.which("wrk") else "pyload"


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
    use = default_tool() if tool == "auto" else tool
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
            cwd=str(ROOT),
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
