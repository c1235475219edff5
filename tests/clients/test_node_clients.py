"""The real npm clients of LambdaTest and Testmo, run against a live ledger server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ledger_env, make_key

NODE_DIR = Path(__file__).resolve().parent / "node"
LT = "/compat/lambdatest/automation/api/v1"
TM = "/compat/testmo/api/v1"


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """The pinned clients, installed from package-lock.json when node_modules is missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run the real LambdaTest and Testmo clients")
    if not (NODE_DIR / "node_modules").is_dir():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return NODE_DIR


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def run_node(script: str, **env: str) -> dict[str, Any]:
    done = subprocess.run(
        ["node", script], cwd=NODE_DIR, env={**os.environ, **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out


HAR = {"log": {"version": "1.2", "entries": [
    {"request": {"method": "GET", "url": "https://a/"},
     "response": {"status": 200, "content": {"size": 2, "mimeType": "text/plain", "text": "hi"}}},
]}}  # fmt: skip


def start(http: httpx.Client, sid: str, headers: Any = None, **fields: Any) -> int:
    r = http.post("/v1/sessions", json={"id": sid, **fields}, headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json()["number"])


def test_lambdatest_client(node_clients: Path, live_server: Any, tmp_path: Path) -> None:
    attrs = {"browser": "Chrome", "browser_version": "120.0", "os": "Windows", "os_version": "11"}
    with httpx.Client(base_url=live_server.url, headers=bearer(live_server.key)) as http:
        for sid, build, day in (("lt-1", "b1", 2), ("lt-2", "b1", 3), ("lt-3", "b2", 4)):
            start(http, sid, source="lambdatest", build=build, name=sid, attributes=attrs,
                  started_at=f"2024-05-0{day}T10:00:00Z")  # fmt: skip
        http.post("/v1/sessions/lt-1/logs/command", content=b'[{"command":"navigate"}]')
        http.post("/v1/sessions/lt-1/logs/console", content=b'[{"level":"warn"}]')
        http.post(
            "/v1/sessions/lt-1/artifacts",
            json={"kind": "screenshot", "title": "home", "url": "https://cdn/1.png"},
        )
        http.post("/v1/sessions/lt-1/artifacts", json={"kind": "video", "url": "https://cdn/v.mp4"})
        # Not in the list: another way in's session, and another account's (key's).
        start(http, "native-b1", build="b1", started_at="2024-05-02T11:00:00Z")
        other = make_key(ledger_env(tmp_path), "ci-2", "ingest")
        start(http, "lt-other", source="lambdatest", build="b1", headers=bearer(other))
        http.post("/v1/sessions/lt-3/logs/har", content=json.dumps(HAR))
        http.post("/v1/sessions/lt-3/stop")
        out = run_node("lambdatest_client.js", LEDGER_URL=live_server.url + LT,
                       SID="lt-1", SID2="lt-2", STOPPED="lt-3", MISSING="nope",
                       LT_USER="admin", LT_KEY=live_server.key)  # fmt: skip
        events = {
            sid: [e["type"] for e in http.get(f"/v1/sessions/{sid}/events").json()["events"]]
            for sid in ("lt-1", "lt-2")
        }
    failed = {k: v for k, v in out.items() if not v["ok"]}
    assert set(failed) == {"v1_missing", "v2_missing", "v1_after_delete"}, failed

    v1_list = out["v1_list"]["result"]
    assert v1_list["meta"] == {"limit": 10, "offset": 0, "total": 2}
    assert [s["session_id"] for s in v1_list["data"]] == ["lt-1", "lt-2"]
    assert v1_list["data"][0]["browser"] == "Chrome"
    v2_list = out["v2_list"]["result"]
    assert [s["session_id"] for s in v2_list["data"]] == ["lt-2"] and v2_list["meta"]["total"] == 2

    detail = out["v1_detail"]["result"]["data"]
    assert detail["session_id"] == "lt-1" and detail["build_id"] == "b1"
    assert detail["command_logs_url"] == f"{live_server.url}{LT}/sessions/lt-1/log/command"
    assert out["v2_detail"]["result"]["data"]["session_id"] == "lt-2"
    assert json.loads(out["v1_missing"]["error"])["status"] == "fail"
    assert out["v2_missing"]["status"] == 404

    assert out["v1_update"]["result"]["data"] == {
        "session_id": "lt-1",
        "name": "v1 renamed",
        "status": "passed",
        "remarks": "ok",
    }
    assert out["v2_update"]["result"]["data"]["status"] == "failed"
    assert out["v2_update"]["result"]["data"]["name"] == "v2 renamed"
    assert out["v1_screenshots"]["result"]["data"][0]["url"] == "https://cdn/1.png"
    assert out["v1_video"]["result"]["data"]["video_url"] == "https://cdn/v.mp4"
    assert out["v1_log_command"]["result"] == {"data": [{"command": "navigate"}]}
    assert out["v2_log_console"]["result"] == {"data": [{"level": "warn"}]}
    assert out["v1_delete"]["result"]["success"] is True
    assert out["v2_delete"]["result"]["success"] is True
    har = out["v2_network_har"]["result"]
    assert har["status"] == "success" and har["data"]["log"]["entries"][0]["response"] == {
        "status": 200,
        "content": {"size": 2, "mimeType": "text/plain"},
    }
    assert out["v2_full_har"]["result"] == HAR  # axios parses the download; bodies and all
    assert out["v2_exceptions_after_stop"]["result"]["success"] is True
    # every write is an event in the same ledger
    assert events["lt-1"][-3:] == ["DetailsUpdated", "StatusChanged", "Deleted"]
    assert events["lt-2"][-3:] == ["DetailsUpdated", "StatusChanged", "Deleted"]


def test_testmo_client(node_clients: Path, live_server: Any) -> None:
    with httpx.Client(base_url=live_server.url, headers=bearer(live_server.key)) as http:
        ids = {
            name: start(http, name, source="testmo", project="1", name=name, user=user,
                        started_at=f"2024-05-0{day}T00:00:00Z")
            for name, user, day in (("t1", "2", 2), ("t2", "2", 3), ("t3", "4", 4), ("t4", "2", 5))
        }  # fmt: skip
        start(http, "elsewhere", project="2")
        lines = [
            {"command": "result", "session_id": "t1", "status": "passed"},
            {"command": "result", "session_id": "t1", "status": "failed"},
            {"command": "stop", "session_id": "t4", "by": "3"},
        ]
        r = http.post("/v1/events:batch", content="\n".join(json.dumps(x) for x in lines))
        assert r.status_code == 200, r.text
        out = run_node("testmo_client.js", LEDGER_URL=live_server.url + TM, PROJECT="1",
                       SESSION=str(ids["t1"]), MISSING="404404",
                       TM_KEY=live_server.key)  # fmt: skip

    failed = {k: v for k, v in out.items() if not v["ok"]}
    assert set(failed) == {"missing", "bad_sort"}, failed
    p1 = out["open_page"]["result"]
    assert [s["id"] for s in p1["result"]] == [ids["t1"], ids["t2"]]
    assert (p1["page"], p1["next_page"], p1["last_page"], p1["total"]) == (1, 2, 2, 3)
    first = p1["result"][0]
    assert (first["success_count"], first["failure_count"], first["total_count"]) == (1, 1, 2)
    assert first["project_id"] == 1 and first["created_by"] == 2 and first["is_closed"] is False
    assert first["created_at"] == "2024-05-02T00:00:00.000Z"
    assert p1["expands"]["users"] == [{"id": 2, "name": "2"}]  # the users on this page
    assert [s["name"] for s in p1["expands"]["statuses"][:2]] == ["Untested", "Passed"]
    p2 = out["open_page2"]["result"]
    assert [s["id"] for s in p2["result"]] == [ids["t3"]] and p2["prev_page"] == 1
    closed = out["closed_array_expands"]["result"]
    assert [s["id"] for s in closed["result"]] == [ids["t4"]]
    assert closed["result"][0]["closed_by"] == 3 and closed["result"][0]["closed_at"]
    assert closed["expands"]["milestones"] == [] and len(closed["expands"]["users"]) == 2
    assert out["all"]["result"]["total"] == 4
    detail = out["detail"]["result"]
    assert detail["result"]["id"] == ids["t1"] and detail["result"]["name"] == "t1"
    assert detail["expands"]["users"] == [{"id": 2, "name": "2"}]
    assert out["missing"]["status"] == 404 and out["missing"]["body"]["message"]
    assert out["bad_sort"]["status"] == 422 and "sort" in out["bad_sort"]["body"]["errors"]
