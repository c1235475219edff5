"""The tools of the differential test against the reference pytest-monitor server: pinned
venvs built once under var/, the reference server (monitor-server-api 1.1.0, Flask, its own
SQLite file) on a loopback port, a recorder of every HTTP exchange a real client makes, the
runs of the real clients (pytest-monitor, and the reference's own `monitor_api` library)
with that recorder, and the normalisation applied before two answers are compared."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.clients.venvs import pinned_venv as pinned_venv

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = Path(__file__).with_name("monitor_sample") / "test_sample.py"
# Flask 1.1 needs the Jinja2/MarkupSafe/itsdangerous of its day, flask-sqlalchemy 2.5
# SQLAlchemy 1.4: the versions pip would pick today do not import.
REFERENCE_PINS = (
    "monitor-server-api==1.1.0",
    "Flask==1.1.4",
    "Werkzeug==1.0.1",
    "Jinja2==2.11.3",
    "MarkupSafe==2.0.1",
    "itsdangerous==1.1.0",
    "click==7.1.2",
    "flask-restx==1.3.2",
    "Flask-SQLAlchemy==2.5.1",
    "SQLAlchemy==1.4.54",
    "requests==2.34.2",
    "pandas==3.1.1",
)
PAGE = 3  # the reference's page size here (its MONITOR_SERVER_PAGINATION_COUNT)
SERVE = (
    "import sys\nfrom werkzeug.serving import run_simple\n"
    "from monitor_server.app import prepare_app\n"
    "run_simple('127.0.0.1', int(sys.argv[1]), prepare_app(), threaded=False)\n"
)
# Loaded first in each client process: every exchange made through `requests` is appended
# to $MONITOR_RECORD as one JSON line. It records; it changes nothing the client sends.
RECORDER = '''"""Records each HTTP exchange of this process to $MONITOR_RECORD."""
import json, os, requests
_send = requests.Session.send
def _recording_send(self, request, **kw):
    response = _send(self, request, **kw)
    body = request.body.decode() if isinstance(request.body, bytes) else request.body
    line = {"method": request.method, "url": request.url, "body": body,
            "status": response.status_code, "text": response.text}
    with open(os.environ["MONITOR_RECORD"], "a") as f:
        f.write(json.dumps(line) + "\\n")
    return response
requests.Session.send = _recording_send
'''


def start_reference(venv: Path, workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """The reference server on 127.0.0.1:`port`, its SQLite file in `workdir`, once it answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "FLASK_ENV": "prod",
        "MONITOR_SERVER_DATABASE_URI": f"sqlite:///{workdir / 'monitor.db'}",
        "MONITOR_SERVER_PAGINATION_COUNT": str(PAGE),
    }
    log = (workdir / "reference.log").open("ab")
    cmd = [str(venv / "bin" / "python"), "-c", SERVE, str(port)]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v1/sessions/count", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError((workdir / "reference.log").read_text())


def recorded(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_pytest_monitor(
    venv: Path, url: str, workdir: Path, options: tuple[str, ...]
) -> tuple[str, list[dict[str, Any]]]:
    """pytest-monitor over the sample with `options`, reporting to `url`: its output and its
    exchanges."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLE, workdir / SAMPLE.name)
    (workdir / "pytest.ini").write_text("[pytest]\n")
    (workdir / "conftest.py").write_text(RECORDER)
    record = workdir / "exchanges.jsonl"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "MONITOR_RECORD": str(record),
        # The context's hash covers the CPU's frequency, which may move between two runs.
        "PYTEST_MONITOR_FORCE_CPU_FREQ": "1",
        "PYTEST_MONITOR_CPU_FREQ": "2445.426",
    }
    py = str(venv / "bin" / "python")
    cmd = [py, "-m", "pytest", "-p", "no:cacheprovider", "--remote-server", url, "--no-db"]
    done = subprocess.run(
        [*cmd, *options], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr, recorded(record)


def run_monitor_api(
    venv: Path, url: str, workdir: Path, calls: list[list[Any]]
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Each of `calls` ([method, *args]) made on the reference's own client library,
    `monitor_api.Monitor(url)`, sending per_page as the reference's page size: what each
    returned (as JSON) and every exchange the library made."""
    workdir.mkdir(parents=True, exist_ok=True)
    record = workdir / "exchanges.jsonl"
    (workdir / "recorder.py").write_text(RECORDER)
    (workdir / "calls.json").write_text(json.dumps(calls))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MONITOR_RECORD": str(record)}
    cmd = [str(venv / "bin" / "python"), "-c", DRIVER, url, str(PAGE)]
    done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), recorded(record)


DRIVER = """
import json, sys
import recorder
from monitor_api import Monitor
def plain(x):
    if hasattr(x, 'to_dict'):
        return x.to_dict()
    if hasattr(x, 'data') and isinstance(x.data, dict):
        return {k: plain(v) for k, v in x.data.items()}
    if hasattr(x, 'data') and isinstance(x.data, list):
        return [plain(v) for v in x.data]
    return x
def call(name, *args):
    try:
        return plain(getattr(m, name)(*args))
    except Exception as exc:  # the library's own bugs are part of what it answers
        return {'raised': f'{type(exc).__name__}: {exc}'}
m = Monitor(sys.argv[1], params={'per_page': sys.argv[2]})
print(json.dumps([call(*c) for c in json.load(open('calls.json'))], default=str))
"""

FLASK_404_HELP = re.compile(r" You have requested this URI \[[^\]]*\] but did you mean .*$")
# What a run measures, as the server names it and as monitor_api's objects do.
MEASURED = ("total_time", "user_time", "kernel_time", "cpu_usage", "mem_usage", "wall_time")
TIMES = ("run_date", "item_start_time", "start_time", "memory_usage")


class Normaliser:
    """Makes one server's answers comparable with the other's: its base path taken out of
    links and URLs, the hashes its pytest-monitor runs made (from the time of the run)
    numbered in the order first seen, flask-restx's route suggestions cut from its 404s, and
    a session's tags in key order. With `measured`, also the times and figures a run
    measures (never equal twice)."""

    def __init__(self, base_path: str) -> None:
        self.base_path = base_path
        self.generated: dict[str, str] = {}
        self.contexts: list[str] = []

    def learn(self, exchanges: list[dict[str, Any]]) -> None:
        """The session hashes (and contexts) a client run posted."""
        for x in exchanges:
            path = urlsplit(x["url"]).path
            if x["method"] == "POST" and path.endswith("/sessions/"):
                h = json.loads(x["body"])["session_h"]
                self.generated.setdefault(h, f"<session-{len(self.generated) + 1}>")
            elif x["method"] == "POST" and path.endswith("/contexts/"):
                self.contexts.append(json.loads(x["body"])["h"])

    def text(self, s: str) -> str:
        s = s.replace(self.base_path, "")
        for h, name in self.generated.items():
            s = s.replace(h, name)
        return FLASK_404_HELP.sub("", s)

    def value(self, v: Any, measured: bool = False) -> Any:
        if isinstance(v, dict) and isinstance(v.get("tags"), list):
            # Tags are a mapping (monitor_api reads them into a dict): compared in key order.
            v = {**v, "tags": sorted(v["tags"], key=lambda t: str(t.get("name")))}
        if isinstance(v, dict):
            return {
                k: "<measured>" if measured and (k in MEASURED or k in TIMES) else
                self.value(x, measured)
                for k, x in v.items()
            }  # fmt: skip
        if isinstance(v, list):
            return [self.value(x, measured) for x in v]
        return self.text(v) if isinstance(v, str) else v

    def answer(self, status: int, text: str, measured: bool = False) -> tuple[int, Any]:
        """(status, body) with the body parsed when it is JSON, else as text."""
        try:
            body: Any = json.loads(text) if text else ""
        except ValueError:
            body = text
        return status, self.value(body, measured)

    def exchange(self, x: dict[str, Any], measured: bool = False) -> tuple[Any, ...]:
        u = urlsplit(x["url"])
        target = self.text(u.path + (f"?{u.query}" if u.query else ""))
        sent = self.value(json.loads(x["body"]), measured) if x["body"] else None
        return (x["method"], target, sent, *self.answer(x["status"], x["text"], measured))
