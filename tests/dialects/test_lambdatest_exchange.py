"""LambdaTest's documented exchanges, replayed against the dialect.

No LambdaTest server can run here, so the requests and the answers' shapes are transcribed
from LambdaTest's published OpenAPI document of the Selenium Automation API,
`selenium-automation.yaml` ("TestMu AI Selenium Automation API Documentation" 1.0.2, the
document behind lambdatest.com/support/api-doc/?key=selenium-automation-api): its paths
`/sessions`, `/sessions/{session_id}` (GET, PATCH, DELETE), `/stop`, `/screenshots`,
`/video`, `/log/{command,selenium,network,console,network.har,full-har}`, `/terminal-logs`,
`/exceptions`, and its schemas `ListsTestsResponse`, `Session`/`SessionData`,
`UpdateSessionPayload`, `SessionUpdateSuccess`, `SessionBadResquest`, `StopSessionResponse`,
`AlreadyStoppedSessionResponse`, `SessionDeleteSuccess`, `SessionNotFound`, `VideoResponse`,
`ScreenshotResponse`, `LogResponse`, `SeleniumHarLogResponse_data`, `UploadExceptionLog`,
`UploadTerminalFileResposeData`, `UploadTerminalFileSizeError` (the 2 MB cap) and
`AccessDenied`. Each exchange runs on a fresh ledger; a refusal appends nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.dialects.conftest import NONE, basic

LT = "/compat/lambdatest/automation/api/v1"
HAR = {"log": {"version": "1.2", "entries": [
    {"request": {"method": "POST", "url": "https://a/", "postData": {"text": "secret"}},
     "response": {"status": 200, "content": {"size": 2, "text": "hi"}}},
]}}  # fmt: skip
LOG = [{"logType": "requestLog", "testID": "5HLCQ", "status": 0, "timestamp": 1551356385}]
# ListsTestsResponse_data and SessionData fields the ledger knows.
LISTED = {"session_id", "build_id", "build_name", "name", "username", "status_ind",
          "create_timestamp", "start_timestamp", "end_timestamp", "remark", "browser",
          "platform", "duration", "test_type", "tag"}  # fmt: skip
DETAILED = LISTED - {"test_type", "tag"} | {
    "browser_version", "console_logs_url", "network_logs_url", "command_logs_url",
    "selenium_logs_url", "screenshot_url", "video_url", "customData",
}  # fmt: skip
TWO_MB = 2 * 1024 * 1024
Check = Callable[[Any], Any]


@pytest.fixture
def ledger(client: TestClient) -> TestClient:
    """lt1: running, with logs, a screenshot and a video; lt2: stopped."""
    attrs = {"browser": "chrome", "browser_version": "71.0", "os": "win10"}
    for sid, day in (("lt1", 5), ("lt2", 6)):
        r = client.post("/v1/sessions", json={
            "id": sid, "source": "lambdatest", "build": "b1", "name": f"test {sid}",
            "user": "bahubali", "attributes": attrs, "tags": {"smoke": ""},
            "started_at": f"2019-02-0{day}T08:24:58Z",
        })  # fmt: skip
        assert r.status_code == 201, r.text
    for kind in ("command", "selenium", "network", "console"):
        client.post(f"/v1/sessions/lt1/logs/{kind}", content=orjson.dumps(LOG))
    client.post("/v1/sessions/lt1/logs/har", content=orjson.dumps(HAR))
    client.post("/v1/sessions/lt1/artifacts", json={"kind": "screenshot", "url": "https://s/1"})
    client.post("/v1/sessions/lt1/artifacts", json={"kind": "video", "url": "https://v/1.m3u8"})
    assert client.post("/v1/sessions/lt2/stop").status_code == 200
    return client


def ok(message: str | None = None, **fields: Any) -> Check:
    def check(body: Any) -> None:
        assert body["status"] == "success"
        if message is not None:
            assert body["message"] == message
        assert {k: body[k] for k in fields} == fields

    return check


def fail(message: str | None = None) -> Check:
    def check(body: Any) -> None:
        assert body["status"] == "fail" and body["message"]
        if message is not None:
            assert body["message"].startswith(message)

    return check


def listed(*ids: str) -> Check:
    def check(body: Any) -> None:
        assert [s["session_id"] for s in body["data"]] == list(ids)
        assert body["Meta"]["result_set"]["total"] == len(ids)
        assert set(body["Meta"]["result_set"]) == {"count", "limit", "offset", "total"}
        assert all(set(s) >= LISTED for s in body["data"])
        for s in body["data"]:
            assert (s["platform"], s["build_name"], s["tag"]) == ("win10", "b1", ["smoke"])

    return check


def detailed(body: Any) -> None:
    ok("Retrieve session was successful")(body)
    data = body["data"]
    assert set(data) >= DETAILED and data["session_id"] == "lt1"
    assert data["command_logs_url"].endswith(f"{LT}/sessions/lt1/log/command")
    assert (data["browser_version"], data["create_timestamp"]) == ("71.0", data["start_timestamp"])


def logged(body: Any) -> None:
    assert body == {"data": LOG}


def har(body: Any) -> None:
    ok("Downloaded network.har file successfully")(body)
    entry = body["data"]["log"]["entries"][0]
    assert entry["request"]["postData"] == {} and entry["response"]["content"] == {"size": 2}


UPDATE = {"name": "mytest", "status_ind": "passed", "reason": "all checks passed",
          "custom_data": {"ticket": "QA-1"}, "tags": ["tag1", "tag2"]}  # fmt: skip
UPLOADED = "File have been uploaded successfully to our lambda storage"
TOO_LARGE = "Oops ! file size too large (> 2MB)"
EXCEPTIONS = {"exception": ["exception 1", "exception 2", "expection 3"]}
# (method, path, request kwargs, status, check of the answer, appends)
EXCHANGES: list[tuple[str, str, dict[str, Any], int, Check, bool]] = [
    ("GET", "/sessions?limit=10&offset=0", {}, 200, listed("lt2", "lt1"), False),
    ("GET", "/sessions?build_id=b1&status=running,completed&fromdate=2019-02-05"
     "&todate=2019-02-05&sort=desc.duration", {}, 200, listed("lt1"), False),
    ("GET", "/sessions?tags=smoke&test_name=lt2", {}, 200, listed("lt2"), False),
    ("GET", "/sessions/lt1", {}, 200, detailed, False),
    ("GET", "/sessions/nope", {}, 404, fail("Either resource not found or already deleted"),
     False),
    ("PATCH", "/sessions/lt1", {"json": UPDATE}, 200, ok("Session updated successfully"), True),
    ("PATCH", "/sessions/lt1", {"json": {"status_ind": 5}}, 400, fail(), False),
    ("PATCH", "/sessions/lt1", {"content": b"{not json"}, 400, fail(), False),
    ("PATCH", "/sessions/nope", {"json": {"name": "x"}}, 404, fail(), False),
    ("PUT", "/sessions/lt1/stop", {}, 200, ok("Session stopped successfully"), True),
    ("PUT", "/sessions/lt2/stop", {}, 400,
     fail("Oops! Looks like session is already stopped"), False),
    ("PUT", "/sessions/nope/stop", {}, 404, fail(), False),
    ("GET", "/sessions/lt1/screenshots", {}, 200,
     ok("Retrieve screenshot url was successful"), False),
    ("GET", "/sessions/lt1/video", {}, 200,
     ok("Retrieve video url was successful", url="https://v/1.m3u8",
        view_video_url="https://v/1.m3u8"), False),
    ("GET", "/sessions/lt1/log/command", {}, 200, logged, False),
    ("GET", "/sessions/lt1/log/selenium", {}, 200, logged, False),
    ("GET", "/sessions/lt1/log/network", {}, 200, logged, False),
    ("GET", "/sessions/lt1/log/console", {}, 200, logged, False),
    ("GET", "/sessions/lt1/log/network.har", {}, 200, har, False),
    ("GET", "/sessions/lt1/log/full-har", {}, 200, lambda body: body == HAR, False),
    ("POST", "/sessions/lt1/terminal-logs", {"files": {"file": ("t.log", b"$ npm test\nok\n")}},
     200, ok(data=UPLOADED), True),
    ("POST", "/sessions/lt2/exceptions", {"json": EXCEPTIONS}, 200, ok(data=UPLOADED), True),
    ("POST", "/sessions/lt1/terminal-logs",
     {"files": {"file": ("big.log", b"x" * (TWO_MB + 1))}}, 400, fail(TOO_LARGE), False),
    ("POST", "/sessions/lt1/exceptions",
     {"json": {"exception": ["x" * (TWO_MB + 1)]}}, 400, fail(TOO_LARGE), False),
    ("POST", "/sessions/lt1/exceptions", {"json": {"exception": "not a list"}}, 400, fail(),
     False),
    ("DELETE", "/sessions/lt1", {}, 200, ok("Session deleted successfully"), True),
    ("DELETE", "/sessions/nope", {}, 404, fail("Either resource not found"), False),
    ("GET", "/sessions", {"headers": NONE}, 401,
     lambda body: body == "HTTP Basic: Access denied.", False),
    ("GET", "/sessions", {"headers": {"Authorization": basic("admin", "sl_wrong")}}, 401,
     lambda body: body == "HTTP Basic: Access denied.", False),
]  # fmt: skip


def log_size(client: TestClient) -> int:
    return len(client.get("/v1/events", params={"limit": 10000}).json()["events"])


@pytest.mark.parametrize(("method", "path", "kw", "status", "check", "appends"), EXCHANGES)
def test_documented_exchange(
    ledger: TestClient,
    method: str,
    path: str,
    kw: dict[str, Any],
    status: int,
    check: Check,
    appends: bool,
) -> None:
    before = log_size(ledger)
    r = ledger.request(method, LT + path, **kw)
    assert r.status_code == status, r.text
    assert check(r.json()) in (None, True), r.text
    assert (log_size(ledger) > before) is appends


def test_an_update_shows_in_the_detail_as_documented(ledger: TestClient) -> None:
    """`reason` is the session's remark, `tags` its tags, `custom_data` its customData."""
    assert ledger.patch(f"{LT}/sessions/lt1", json=UPDATE).status_code == 200
    data = ledger.get(f"{LT}/sessions/lt1").json()["data"]
    assert (data["name"], data["status_ind"], data["remark"]) == (
        "mytest",
        "passed",
        "all checks passed",
    )
    assert data["customData"] == {"ticket": "QA-1"} and data["tag"] == ["smoke", "tag1", "tag2"]
