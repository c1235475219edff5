"""The no-op HTTP baseline: requests/s of uvicorn serving `bench.noop_app` (FastAPI's no-op,
or the bare ASGI one) in its own process, under the same load as the service."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.load import http_load
from bench.procs import ROOT, free_port, http_probe, stop

NOOP_BODY = '{"visible": true, "path": "/p"}'


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
    cwd: str | Path = ROOT,
) -> Iterator[str]:
    """Run `uvicorn APP` in a separate process; yields its base URL, e.g. http://127.0.0.1:PORT.

    1 worker, uvloop, httptools, log-level warning, no access log. Ready once an HTTP request
    to `ready_path` gets any response. Stopped with SIGINT (then SIGKILL after 10 s).
    """
    # A free port can be taken by someone else before uvicorn binds it: try a few.
    attempts = 1 if port is not None else 3
    last_err = ""
    for _ in range(attempts):
        p = port if port is not None else free_port(host)
        cmd = _uvicorn_cmd(app, host, p, factory, extra_args)
        with tempfile.TemporaryFile() as errf:
            proc = subprocess.Popen(
                cmd, cwd=str(cwd), env=_child_env(cwd, env), stdout=subprocess.DEVNULL, stderr=errf
            )
            try:
                if _wait_ready(proc, host, p, ready_path, startup_timeout_s):
                    yield f"http://{host}:{p}"
                    return
                errf.seek(0)
                last_err = errf.read().decode(errors="replace")[-4000:]
                if proc.poll() is None:
                    raise RuntimeError(
                        f"uvicorn {app} not ready after {startup_timeout_s}s:\n{last_err}"
                    )
            finally:
                stop(proc, 10)
    raise RuntimeError(f"uvicorn {app} failed to start:\n{last_err}")


def _uvicorn_cmd(
    app: str, host: str, port: int, factory: bool, extra_args: Sequence[str]
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        host,
        "--port",
        str(port),
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


def _child_env(cwd: str | Path, env: dict[str, str] | None) -> dict[str, str]:
    """This process's environment, `cwd` first on PYTHONPATH (the app imports from it)."""
    penv = dict(os.environ)
    penv["PYTHONPATH"] = os.pathsep.join(
        [str(cwd), *([penv["PYTHONPATH"]] if penv.get("PYTHONPATH") else [])]
    )
    if env:
        penv.update(env)
    return penv


def _wait_ready(
    proc: subprocess.Popen[bytes], host: str, port: int, path: str, timeout_s: float
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if http_probe(host, port, path):
            return True
        time.sleep(0.05)
    return False


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
    """Requests/s of uvicorn + FastAPI serving a no-op `POST /noop` (see bench.baselines)."""
    return float(measure_noop_http(duration_s, connections)["rps"])
