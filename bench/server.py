"""The service under test: `ledger serve` started in its own process on a bench database
(`ledger_server`, yielding a `Server`), the keyed connections that talk to it, its processes'
memory, and the NDJSON batches the parts post to it."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench.figures import say
from bench.procs import ROOT, free_port, http_probe, stop


def ledger_cli(*args: str) -> list[str]:
    """The command line of `ledger ARGS`, run by this interpreter (bench/ is not installed)."""
    return [sys.executable, "-m", "api.cli", *args]


class KeyedConnection(http.client.HTTPConnection):
    """An HTTP connection that sends the bench's API key with every request."""

    def __init__(self, host: str, port: int, key: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.auth = {"Authorization": f"Bearer {key}"}

    def request(
        self, method: str, url: str, body: Any = None, headers: Any = None, **kw: Any
    ) -> None:  # type: ignore[override]
        super().request(method, url, body, {**self.auth, **(headers or {})}, **kw)


class Server:
    """`ledger serve` in its own process (with its projection worker process)."""

    def __init__(self, proc: subprocess.Popen[bytes], base: str, port: int, key: str) -> None:
        self.proc, self.base, self.port, self.key = proc, base, port, key
        self.auth = {"Authorization": f"Bearer {key}"}

    def conn(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        return KeyedConnection("127.0.0.1", self.port, self.key, timeout)

    def get_json(self, path: str) -> Any:
        c = self.conn()
        try:
            return orjson.loads(get_ok(c, path)[1])
        finally:
            c.close()

    def get_json_any(self, path: str) -> Any:
        """GET `path`'s JSON body whatever its status (a 503 readiness answer too)."""
        c = self.conn()
        try:
            c.request("GET", path)
            return orjson.loads(c.getresponse().read())
        finally:
            c.close()

    def position(self) -> int:
        return int(self.get_json("/v1/ledger/digest")["position"])

    def wait_views(self, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = self.get_json("/healthz")
            if h["views_position"] >= h["log_position"]:
                return
            time.sleep(0.1)
        raise RuntimeError("the projection worker did not catch up")

    def worker_pid(self) -> int | None:
        kids = _children(self.proc.pid)
        return kids[0] if kids else None

    def descendants(self) -> list[int]:
        """Every process below the server's (`--workers N`: the API processes and the
        projection worker)."""
        found, todo = [], [self.proc.pid]
        while todo:
            kids = _children(todo.pop())
            found += kids
            todo += kids
        return found


def get_ok(c: http.client.HTTPConnection, path: str) -> tuple[http.client.HTTPResponse, bytes]:
    """GET `path` on `c`: the response and its body, or RuntimeError unless it is a 200."""
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    if r.status != 200:
        raise RuntimeError(f"GET {path}: {r.status} {body[:300]!r}")
    return r, body


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
    return out


def proc_mem_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a live process, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(val.split()[0]) / 1024
    return out


@contextlib.contextmanager
def ledger_server(
    workdir: Path,
    db: Path | str,
    extra_env: dict[str, str] | None = None,
    serve_args: tuple[str, ...] = (),
) -> Iterator[Server]:
    """`ledger serve SERVE_ARGS` on `db`: an SQLite file, or a database URL (PostgreSQL)."""
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": db if isinstance(db, str) else f"sqlite:///{db}",
        "LEDGER_BLOB_DIR": str(workdir / "blobs"),
        "PYTHONPATH": str(ROOT),
        "LEDGER_BENCH_NOOP": "1",  # the framework baseline route, served only when asked
        **(extra_env or {}),
    }
    key = _new_key(env)
    port = free_port()
    log_path = workdir / f"server-{port}.log"
    log = log_path.open("wb")
    cmd = ledger_cli("serve", "--port", str(port), "--log-level", "warning", *serve_args)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(proc, f"http://127.0.0.1:{port}", port, key)
    try:
        deadline = time.monotonic() + 120
        while not http_probe("127.0.0.1", port, "/healthz"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text()[-3000:])
            time.sleep(0.1)
        _settle(server, deadline)
        _wait_leader(server, deadline)
        yield server
    except BaseException:
        log.flush()
        say(f"  the server's log ends:\n{log_path.read_text()[-3000:]}")
        raise
    finally:
        below = server.descendants() if proc.poll() is None else []
        stop(proc, 30)
        for pid in below:  # any the server left behind (it stops them itself)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()


def _settle(server: Server, deadline: float) -> None:
    """Until a keyed read has answered three times running, each on a new connection: with
    `--workers N` the probe may have reached one API process while another still starts."""
    answered = 0
    while answered < 3:
        try:
            server.position()
            answered += 1
        except (OSError, http.client.HTTPException):
            if server.proc.poll() is not None or time.monotonic() > deadline:
                raise
            answered = 0
            time.sleep(0.2)


def _wait_leader(server: Server, deadline: float) -> None:
    """Until a projection worker leads (`/readyz` names it): started after the load, the
    worker would find the views empty under a backlog and build them in bulk instead of
    following the log, which competes for the cores differently, and figures of one run
    would not compare with another's."""
    while server.get_json_any("/readyz").get("leader") is None:
        if server.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("no projection worker took the lead")
        time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a live process has used so far (its threads', not its
    children's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _new_key(env: dict[str, str]) -> str:
    """An admin API key on the bench's database: every request needs one. A name of its own
    each time, since a seeded database is reused from run to run."""
    name = f"bench-{os.getpid()}-{time.time_ns()}"
    cmd = ledger_cli("keys", "create", name, "--scope", "admin")
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def post_batch(conn: http.client.HTTPConnection, body: bytes) -> dict[str, Any]:
    conn.request("POST", "/v1/events:batch", body, {"Content-Type": "application/x-ndjson"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError(f"events:batch answered {r.status}: {data[:300]!r}")
    out: dict[str, Any] = orjson.loads(data)
    if out["rejected"]:
        raise RuntimeError(f"events:batch rejected lines: {out['rejected'][:3]}")
    return out


def ndjson(lines: list[dict[str, Any]]) -> bytes:
    return b"\n".join(orjson.dumps(x) for x in lines) + b"\n"
