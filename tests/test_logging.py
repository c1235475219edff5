"""What the `ledger` processes write: LEDGER_LOG_FORMAT=json gives one JSON object a line (with
the request id, and on access lines the route, status and duration) from a real `ledger serve`;
a bad LEDGER_* value is one line naming the setting and exit 2 for every command; passwords are
masked wherever a URL is printed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port, ledger_env

KEY_LIKE = "sl_" + "Q" * 43


def test_json_logs_are_one_object_a_line_with_the_request_id(tmp_path: Path) -> None:
    env = dict(ledger_env(tmp_path), LEDGER_LOG_FORMAT="json")
    port = free_port()
    cmd = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--access-log"]
    err = tmp_path / "stderr"
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=err.open("wb"))  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
                time.sleep(0.1)
        httpx.get(url + "/healthz", headers={"X-Request-ID": "probe-7"})
        httpx.get(url + f"/compat/opentera/api/user/sessions?id_session=1&token={KEY_LIKE}")
        httpx.get(url + "/v1/sessions/some-id", headers={"Authorization": f"Bearer {KEY_LIKE}"})
        time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    lines = err.read_text().splitlines()
    docs = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message", "request_id"} <= d.keys() for d in docs)
    assert any("Uvicorn running" in d["message"] for d in docs)
    admin = [d for d in docs if "admin_key" in d]
    assert len(admin) == 1  # the first key, shown once
    access = [d for d in docs if d["logger"] == "uvicorn.access"]
    probe = next(d for d in access if d["request_id"] == "probe-7")
    assert (probe["method"], probe["route"], probe["status"]) == ("GET", "/healthz", 200)
    assert probe["duration_ms"] >= 0
    detail = next(d for d in access if d["route"] == "/v1/sessions/{session_id}")
    assert detail["status"] == 401 and detail["request_id"]
    text = err.read_text()
    assert KEY_LIKE not in text and "token=***" in text


BAD = [
    ("LEDGER_SESSION_TIMEOUT", "soon"),
    ("LEDGER_EXPIRY_INTERVAL", "0"),
    ("LEDGER_READ_WAIT", "-1"),
    ("LEDGER_KEY_REFRESH", "inf"),
    ("LEDGER_MAX_BODY_BYTES", "1e6"),
    ("LEDGER_MAX_ID_LENGTH", "0"),
    ("LEDGER_PROJECTION_WORKER", "fork"),
    ("LEDGER_ALLOW_ANONYMOUS", "all"),
    ("LEDGER_SERVER_TIMING", "maybe"),
    ("LEDGER_LOG_FORMAT", "xml"),
    ("LEDGER_ALLOWED_HOSTS", " , "),
    ("LEDGER_LOG_ORIGIN", "has space"),
    ("LEDGER_DATABASE_URL", "not a url"),
    ("LEDGER_VIEWS_URL", "oracle://u:pw@h/db"),
    ("LEDGER_VIEWS_READ_URL", "oracle://u:pw@h/db"),
]
COMMANDS = (["serve", "--port", "1"], ["project"], ["keys", "list"], ["replay", "digest"])


def run(tmp_path: Path, args: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(ledger_env(tmp_path), **extra)
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.mark.parametrize(("name", "value"), BAD)
def test_a_bad_setting_is_one_line_naming_it_and_exit_2(
    tmp_path: Path, name: str, value: str
) -> None:
    for args in COMMANDS:
        done = run(tmp_path, args, **{name: value})
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and name in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and "configuration error" in done.stderr
        assert "pw" not in done.stderr


def test_an_unreachable_database_names_it_with_the_password_masked(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://bob:hunter2@127.0.0.1:{free_port()}/ledger"
    for args in COMMANDS:
        done = run(tmp_path, args, LEDGER_DATABASE_URL=url)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
        assert "hunter2" not in done.stderr and "LEDGER_DATABASE_URL" in done.stderr


def test_an_unreachable_read_replica_names_it_before_serving(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://bob:hunter2@127.0.0.1:{free_port()}/views"
    done = run(tmp_path, ["serve", "--port", str(free_port())], LEDGER_VIEWS_READ_URL=url)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "hunter2" not in done.stderr and "LEDGER_VIEWS_READ_URL" in done.stderr


def test_the_startup_line_masks_the_password(tmp_path: Path) -> None:
    from api.cli import masked

    assert masked("postgresql+psycopg://bob:hunter2@db/ledger") == (
        "postgresql+psycopg://bob:***@db/ledger"
    )
    help_text = run(tmp_path, ["--help"]).stdout + run(tmp_path, ["serve", "--help"]).stdout
    assert "LEDGER_DATABASE_URL" in help_text and "@" not in help_text
