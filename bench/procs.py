"""The processes the benchmark starts: a free loopback port, an HTTP readiness probe, and a
stop by SIGINT that falls back to SIGKILL."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository: every child runs from it


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_probe(host: str, port: int, path: str, timeout: float = 1.0) -> bool:
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


def stop(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGINT (a clean shutdown), then SIGKILL if it has not exited after `grace_s`."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace_s)
