"""The real pytest-monitor 1.6.6 client, in its own venv, reporting to a live ledger server.

pytest-monitor breaks on pytest 9, so it gets a venv of its own (pinned versions, cached under
var/monitor-venv/<key>). Its --remote-server flag needs the scheme and the whole prefix, with
no trailing slash: http://127.0.0.1:PORT/compat/monitor/api/v1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.monitor_reference import pinned_venv

SAMPLE = Path(__file__).with_name("monitor_sample") / "test_sample.py"
PINS = (
    "pytest-monitor==1.6.6",
    "pytest==8.4.2",
    "requests==2.34.2",
    "psutil==7.2.2",
    "memory-profiler==0.61.0",
)
SAMPLE_TESTS = ("test_sum", "test_sort", "test_add[1, 2]", "test_add[3, 4]")

pytestmark = [pytest.mark.client, pytest.mark.integration]


@pytest.fixture(scope="session")
def monitor_venv() -> Path:
    """A venv with the pinned client, built once and reused while the pins do not change."""
    return pinned_venv("monitor-venv", PINS)


def run_monitor(venv: Path, monitor_url: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    # The sample runs from a copy with its own pytest.ini, so this project's conftest and
    # settings stay out of the client's pytest; no CI variables, so the tags are just ours.
    workdir.mkdir(exist_ok=True)
    shutil.copy(SAMPLE, workdir / SAMPLE.name)
    (workdir / "pytest.ini").write_text("[pytest]\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir)}
    cmd = [
        str(venv / "bin" / "python"),
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--remote-server",
        monitor_url,
        "--no-db",
        "--tag",
        "k=v",
    ]
    done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Deactivating" not in done.stdout + done.stderr  # the client gave up on the server
    return done


def get(url: str, headers: dict[str, str] | None = None) -> Any:
    r = httpx.get(url, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_pytest_monitor_reports_session_context_and_one_metric_per_test(
    monitor_venv: Path, live_server: Any, tmp_path: Path
) -> None:
    # The client sends no credentials: its server URL carries the key (/k/<key>/).
    pm = f"{live_server.url}/compat/monitor/k/{live_server.key}/api/v1"
    run_monitor(monitor_venv, pm, tmp_path / "run1")

    sessions = get(f"{pm}/sessions/")["sessions"]
    assert len(sessions) == 1
    session_h = sessions[0]["session_h"]
    assert sessions[0]["tags"] == [{"name": "k", "value": "v"}]
    contexts = get(f"{pm}/contexts/")["contexts"]
    assert len(contexts) == 1
    context_h = contexts[0]["h"]
    assert get(f"{pm}/contexts/{context_h}")["contexts"] == contexts

    metrics = get(f"{pm}/sessions/{session_h}/metrics")["metrics"]
    assert sorted(m["item_variant"] for m in metrics) == sorted(SAMPLE_TESTS)
    assert {(m["session_h"], m["context_h"], m["kind"]) for m in metrics} == {
        (session_h, context_h, "function")
    }
    assert all(m["total_time"] > 0 and m["item_path"] == "test_sample" for m in metrics)
    assert get(f"{pm}/sessions/{session_h}/metrics/count") == {"count": len(SAMPLE_TESTS)}
    assert get(f"{pm}/contexts/{context_h}/metrics/count") == {"count": len(SAMPLE_TESTS)}

    auth = {"Authorization": f"Bearer {live_server.key}"}
    native = get(f"{live_server.url}/v1/sessions/{session_h}", auth)
    assert (native["source"], native["tags"], native["metrics"]) == (
        "monitor",
        {"k": "v"},
        len(SAMPLE_TESTS),
    )

    # A second run on the same machine finds its context by hash and posts no new one.
    run_monitor(monitor_venv, pm, tmp_path / "run2")
    assert get(f"{pm}/sessions/count") == {"count": 2}
    assert get(f"{pm}/contexts/count") == {"count": 1}
    assert get(f"{pm}/metrics/count") == {"count": 2 * len(SAMPLE_TESTS)}
    second = next(
        s["session_h"] for s in get(f"{pm}/sessions/")["sessions"] if s["session_h"] != session_h
    )
    again = get(f"{pm}/sessions/{second}/metrics")["metrics"]
    assert len(again) == len(SAMPLE_TESTS) and {m["context_h"] for m in again} == {context_h}
