"""`ledger serve --workers N`: N API processes on one port and one projection worker process
beside them (not one per API process), the first admin key made once; 200 sessions started
through both processes, on SQLite and on PostgreSQL, are all answered and all listed once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_BINDIR, ROOT, ledger_env, start_server
from tests.pg import PgCluster
from tests.workers import cmdline, descendants


def serve_workers(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    return start_server(env, log, "--workers", "2", probe="/readyz", wait=60)


def start(url: str, key: str, i: int) -> int:
    for _ in range(5):  # a write that collided with the other process's is a 409 to retry
        r = httpx.post(
            f"{url}/v1/sessions",
            json={"id": f"w{i:03d}"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,  # two cores shared with the rest of a test run: slow is not wrong
        )
        if r.status_code != 409:
            break
    return r.status_code


def check_two_api_processes_and_one_worker(env: dict[str, str], log: Path) -> None:
    proc, url = serve_workers(env, log)
    try:
        text = log.read_text()
        assert text.count("Created the API key 'admin'") == 1
        key = re.search(r"^    (sl_\S+)$", text, re.M)
        assert key is not None
        below = descendants(proc.pid)
        projecting = [p for p in below if "api.cli project" in cmdline(p)]
        assert len(projecting) == 1, [cmdline(p) for p in below]
        serving = [p for p in below if "spawn_main" in cmdline(p)]  # uvicorn's processes
        assert len(serving) == 2, [cmdline(p) for p in below]
        leader = httpx.get(url + "/readyz", timeout=60).json()["leader"]
        assert leader["worker"].endswith(f":{projecting[0]}")
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(lambda i: start(url, key[1], i), range(200)))
        assert codes == [201] * 200
        auth = {"Authorization": f"Bearer {key[1]}"}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = httpx.get(f"{url}/v1/sessions?limit=500", headers=auth, timeout=60).json()
            if len(listed["items"]) == 200:
                break
            time.sleep(0.2)
        assert sorted(s["id"] for s in listed["items"]) == [f"w{i:03d}" for i in range(200)]
        os.kill(projecting[0], signal.SIGKILL)  # no other worker runs: the API says so
        deadline = time.monotonic() + 30
        while (r := httpx.get(url + "/readyz", timeout=60)).status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert r.status_code == 503 and f"{leader['worker']} is gone" in r.json()["detail"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not [p for p in projecting if os.path.exists(f"/proc/{p}/cmdline")]


def test_two_api_processes_on_sqlite(tmp_path: Path) -> None:
    check_two_api_processes_and_one_worker(ledger_env(tmp_path), tmp_path / "serve.log")


@pytest.mark.skipif(PG_BINDIR is None, reason="no PostgreSQL server binaries")
def test_two_api_processes_on_postgres(pg: PgCluster, tmp_path: Path) -> None:
    env = dict(ledger_env(tmp_path), LEDGER_DATABASE_URL=pg.create_database("serve"))
    check_two_api_processes_and_one_worker(env, tmp_path / "serve.log")


def test_workers_must_be_a_positive_count_with_a_worker_process(tmp_path: Path) -> None:
    for args in (["--workers", "0"], ["--workers", "-3"], ["--workers", "2", "--worker", "thread"]):
        out = subprocess.run(
            [sys.executable, "-m", "api.cli", "serve", *args],
            cwd=ROOT, env=ledger_env(tmp_path), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 2 and "--workers" in out.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", "--workers", "two"],
        cwd=ROOT, env=ledger_env(tmp_path), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "invalid int value" in bad.stderr
