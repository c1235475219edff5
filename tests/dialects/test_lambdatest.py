"""The LambdaTest dialect: list/detail/update/stop/delete, artifacts and logs, errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api import keys
from api.bootstrap import Container
from tests.dialects.conftest import basic

LT = "/compat/lambdatest/automation/api/v1"


def start(client: TestClient, sid: str, **fields: Any) -> dict[str, Any]:
    body = {
        "id": sid,
        "source": "lambdatest",
        "name": f"test {sid}",
        "build": "b1",
        "attributes": {
            "browser": "Chrome",
            "browser_version": "120.0",
            "os": "Windows",
            "os_version": "11",
            "resolution": "1920x1080",
        },
        **fields,
    }
    r = client.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def log_size(client: TestClient) -> int:
    return len(client.get("/v1/events", params={"limit": 10000}).json()["events"])


def event_types(client: TestClient, sid: str) -> list[str]:
    return [e["type"] for e in client.get(f"/v1/sessions/{sid}/events").json()["events"]]


@pytest.fixture
def three(client: TestClient) -> TestClient:
    start(client, "s1", started_at="2024-05-01T10:00:00Z")
    start(client, "s2", started_at="2024-05-02T10:00:00Z", build="b2")
    start(client, "s3", started_at="2024-05-03T10:00:00Z")
    client.post("/v1/sessions/s1/stop")
    return client


def test_list_maps_fields_and_meta(three: TestClient) -> None:
    r = three.get(f"{LT}/sessions")
    assert r.status_code == 200
    body = r.json()
    assert body["meta"] == {"limit": 10, "offset": 0, "total": 3}
    assert [s["session_id"] for s in body["data"]] == ["s3", "s2", "s1"]  # newest first
    s2 = body["data"][1]
    assert s2["duration"] is None and s2["build_id"] == "b2"
    assert (s2["browser"], s2["browser_version"], s2["os"], s2["os_version"], s2["resolution"]) == (
        "Chrome",
        "120.0",
        "Windows",
        "11",
        "1920x1080",
    )
    assert s2["start_timestamp"] == "2024-05-02T10:00:00.000Z"
    assert s2["end_timestamp"] is None and s2["status"] == "running"
    s1 = body["data"][2]
    assert s1["status"] == "completed" and isinstance(s1["duration"], int)
    assert s1["end_timestamp"] is not None


def test_list_filters(three: TestClient) -> None:
    def ids(**params: Any) -> list[str]:
        r = three.get(f"{LT}/sessions", params=params)
        assert r.status_code == 200, r.text
        return [s["session_id"] for s in r.json()["data"]]

    assert ids(build_id="b1") == ["s3", "s1"]
    assert ids(status="completed") == ["s1"]
    assert ids(status="completed,running", sort="asc.start_time") == ["s1", "s2", "s3"]
    assert ids(fromdate="2024-05-02", todate="2024-05-02") == ["s2"]  # both days inclusive
    assert ids(fromdate="2024-05-02") == ["s3", "s2"]
    assert ids(sort="desc.duration") == ["s1", "s3", "s2"]  # no duration yet: last
    # arrays as the clients encode them
    assert ids(**{"status[]": ["completed"]}) == ["s1"]


def test_pages_do_not_drift(client: TestClient) -> None:
    for i in range(7):  # identical start times: the tiebreak decides
        start(client, f"p{i}", started_at="2024-05-01T00:00:00Z")
    seen: list[str] = []
    for offset in range(0, 7, 3):
        r = client.get(f"{LT}/sessions", params={"limit": 3, "offset": offset})
        assert r.json()["meta"] == {"limit": 3, "offset": offset, "total": 7}
        seen += [s["session_id"] for s in r.json()["data"]]
    assert sorted(seen) == [f"p{i}" for i in range(7)] and len(set(seen)) == 7


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "sideways.name"},
        {"sort": "asc.nope"},
        {"fromdate": "05/01/2024"},
        {"limit": "0"},
        {"offset": "-1"},
    ],
)
def test_bad_list_input_is_400(client: TestClient, params: dict[str, str]) -> None:
    r = client.get(f"{LT}/sessions", params=params)
    assert r.status_code == 400
    assert r.json()["status"] == "fail" and r.json()["message"]


def test_detail_urls_point_back_here(client: TestClient) -> None:
    start(client, "d1")
    client.post(
        "/v1/sessions/d1/logs/command",
        content=b'[{"command":"navigate"}]',
        headers={"content-type": "application/json"},
    )
    r = client.get(f"{LT}/sessions/d1")
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["session_id"] == "d1" and data["name"] == "test d1"
    base = f"http://testserver{LT}/sessions/d1"
    assert data["video_url"] == f"{base}/video"
    for kind in ("console", "network", "command", "selenium"):
        assert data[f"{kind}_logs_url"] == f"{base}/log/{kind}"
    followed = client.get(data["command_logs_url"])
    assert followed.json() == {"data": [{"command": "navigate"}]}


def test_missing_session_is_404_in_lambdatest_shape(client: TestClient) -> None:
    r = client.get(f"{LT}/sessions/nope")
    assert r.status_code == 404
    assert r.json()["status"] == "fail" and "nope" in r.json()["message"]


def test_patch_json_and_form_labelled_json(client: TestClient) -> None:
    start(client, "u1")
    r = client.patch(f"{LT}/sessions/u1", json={"name": "renamed", "remarks": "flaky"})
    assert r.status_code == 200
    assert r.json()["data"] == {
        "session_id": "u1",
        "name": "renamed",
        "status": "running",
        "remarks": "flaky",
    }
    # the axios client sends the JSON text labelled as a form
    r = client.patch(
        f"{LT}/sessions/u1",
        content=b'{"status_ind":"failed"}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and r.json()["data"]["status"] == "failed"
    # a true form body works too
    r = client.patch(
        f"{LT}/sessions/u1",
        content=b"status=passed",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and r.json()["data"]["status"] == "passed"
    native = client.get("/v1/sessions/u1").json()
    assert (native["name"], native["remarks"], native["status"]) == ("renamed", "flaky", "passed")
    assert event_types(client, "u1") == [
        "Started",
        "DetailsUpdated",
        "StatusChanged",
        "StatusChanged",
    ]


@pytest.mark.parametrize(
    ("body", "ctype", "status"),
    [
        (b'{"colour":"red"}', "application/json", 400),
        (b'{"status":"exploded"}', "application/json", 400),
        (b'{"name": 3}', "application/json", 400),
        (b"not json", "application/json", 400),
        (b"", "application/json", 400),
        (b"[1]", "application/json", 400),
        (b"{}", "application/json", 400),
        (b'{"status":"queued"}', "application/json", 409),  # running -> queued is illegal
        (b'{"reason": ["x"]}', "application/json", 400),
        (b'{"tags": "smoke"}', "application/json", 400),
        (b'{"tags": [1, 2]}', "application/json", 400),
        (b'{"tags": [""]}', "application/json", 400),
        (b'{"custom_data": [1]}', "application/json", 400),
        (b'{"custom_data": "x"}', "application/json", 400),
        (b'{"tags": ["' + b"t" * 300_000 + b'"]}', "application/json", 413),
        (b'{"custom_data": {"k": "' + b"v" * 2_000_000 + b'"}}', "application/json", 413),
    ],
)
def test_bad_patch_appends_nothing(
    client: TestClient, body: bytes, ctype: str, status: int
) -> None:
    start(client, "b1")
    before = log_size(client)
    r = client.patch(f"{LT}/sessions/b1", content=body, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    assert r.json()["status"] == "fail"
    assert log_size(client) == before


def test_writes_to_missing_session_are_404_and_append_nothing(client: TestClient) -> None:
    start(client, "x")
    before = log_size(client)
    for method, path, kw in [
        ("PATCH", "/sessions/ghost", {"json": {"name": "n"}}),
        ("PUT", "/sessions/ghost/stop", {}),
        ("DELETE", "/sessions/ghost", {}),
        ("POST", "/sessions/ghost/terminal-logs", {"content": b"log"}),
        ("POST", "/sessions/ghost/exceptions", {"content": b'{"exception": ["boom"]}'}),
    ]:
        r = client.request(method, LT + path, **kw)
        assert r.status_code == 404, (method, path, r.text)
    assert log_size(client) == before


def test_stop_then_delete(client: TestClient) -> None:
    start(client, "k1")
    r = client.put(f"{LT}/sessions/k1/stop")
    assert r.status_code == 200 and r.json()["success"] is True
    before = log_size(client)
    again = client.put(f"{LT}/sessions/k1/stop")  # AlreadyStoppedSessionResponse
    assert again.status_code == 400 and again.json()["status"] == "fail"
    assert again.json()["message"] == "Oops! Looks like session is already stopped"
    assert log_size(client) == before
    detail = client.get(f"{LT}/sessions/k1").json()["data"]
    assert detail["status"] == "completed" and detail["end_timestamp"]
    r = client.delete(f"{LT}/sessions/k1")
    assert r.status_code == 200 and r.json() == {
        "success": True,
        "message": "Session deleted successfully",
        "status": "success",
    }
    assert client.get(f"{LT}/sessions/k1").status_code == 404
    assert client.patch(f"{LT}/sessions/k1", json={"name": "z"}).status_code == 404
    assert event_types(client, "k1") == ["Started", "Stopped", "Deleted"]


def test_screenshots_and_video_from_artifacts(client: TestClient) -> None:
    start(client, "a1")
    assert client.get(f"{LT}/sessions/a1/video").status_code == 404
    client.post(
        "/v1/sessions/a1/artifacts",
        json={"kind": "screenshot", "title": "home", "url": "https://cdn.example/1.png"},
    )
    client.post(
        "/v1/sessions/a1/artifacts",
        json={
            "kind": "screenshot",
            "title": "login",
            "content_base64": "iVBORw==",
            "content_type": "image/png",
        },
    )
    client.post("/v1/sessions/a1/artifacts", json={"kind": "video", "url": "https://cdn/v.mp4"})
    shots = client.get(f"{LT}/sessions/a1/screenshots").json()["data"]
    assert [(s["id"], s["title"]) for s in shots] == [
        ("screenshot_1", "home"),
        ("screenshot_2", "login"),
    ]
    assert shots[0]["url"] == "https://cdn.example/1.png" and shots[0]["timestamp"]
    stored = client.get(shots[1]["url"])
    assert stored.content == b"\x89PNG" and stored.headers["content-type"] == "image/png"
    video = client.get(f"{LT}/sessions/a1/video").json()
    assert video == {
        "message": "Retrieve video url was successful",
        "status": "success",
        "url": "https://cdn/v.mp4",
        "view_video_url": "https://cdn/v.mp4",
        "data": {"video_url": "https://cdn/v.mp4"},
    }


def test_logs_of_each_kind(client: TestClient) -> None:
    start(client, "l1")
    uploads = {
        "selenium": b"INFO started\n",
        "network": b'[{"url":"https://a"}]',
        "console": b'{"data":[{"level":"warn"}]}',
    }
    for kind, content in uploads.items():
        assert client.post(f"/v1/sessions/l1/logs/{kind}", content=content).status_code == 201
    get = lambda k: client.get(f"{LT}/sessions/l1/log/{k}")  # noqa: E731
    assert get("selenium").json() == {"data": "INFO started\n"}
    assert get("network").json() == {"data": [{"url": "https://a"}]}
    assert get("console").json() == {"data": [{"level": "warn"}]}
    assert get("command").status_code == 404  # none uploaded
    assert get("bogus").status_code == 404


HAR = {
    "log": {
        "version": "1.2",
        "entries": [
            {
                "request": {
                    "method": "POST",
                    "url": "https://a/login",
                    "postData": {"mimeType": "application/json", "text": '{"pw":"x"}'},
                },
                "response": {
                    "status": 200,
                    "content": {"size": 12, "mimeType": "text/html", "text": "<p>hello</p>"},
                },
            }
        ],
    }
}


def test_network_har_is_the_log_and_full_har_the_file_with_content(client: TestClient) -> None:
    """LambdaTest: network.har is the network HAR in JSON; full-har the HAR "along with
    request and response content", served as application/octet-stream."""
    start(client, "h1")
    uploaded = orjson.dumps(HAR)
    assert client.post("/v1/sessions/h1/logs/har", content=uploaded).status_code == 201
    net = client.get(f"{LT}/sessions/h1/log/network.har")
    assert net.status_code == 200 and net.headers["content-type"] == "application/json"
    body = net.json()
    assert (
        body["status"] == "success"
        and body["message"] == "Downloaded network.har file successfully"
    )
    (entry,) = body["data"]["log"]["entries"]
    assert entry["request"]["url"] == "https://a/login" and entry["response"]["status"] == 200
    assert entry["request"]["postData"] == {"mimeType": "application/json"}
    assert entry["response"]["content"] == {"size": 12, "mimeType": "text/html"}
    full = client.get(f"{LT}/sessions/h1/log/full-har")
    assert full.status_code == 200 and full.content == uploaded  # bodies and all
    assert full.headers["content-type"] == "application/octet-stream"
    assert full.headers["content-disposition"].startswith("attachment")
    assert full.content != net.content


def test_har_that_is_not_json(client: TestClient) -> None:
    start(client, "h2")
    client.post("/v1/sessions/h2/logs/har", content=b"PK\x03\x04zipped")
    assert client.get(f"{LT}/sessions/h2/log/full-har").content == b"PK\x03\x04zipped"
    assert client.get(f"{LT}/sessions/h2/log/network.har").status_code == 200


def test_upload_terminal_and_assertion_logs(client: TestClient) -> None:
    start(client, "t1")
    r = client.post(f"{LT}/sessions/t1/terminal-logs", content=b"$ npm test\nok\n")
    assert r.status_code == 200 and r.json()["success"] is True
    r = client.post(f"{LT}/sessions/t1/exceptions", content=b'{"exception":["boom"]}')
    assert r.status_code == 200, r.text
    arts = client.get("/v1/sessions/t1").json()["artifacts"]
    assert [(a["kind"], a["size"]) for a in arts] == [("terminal", 14), ("exceptions", 22)]
    assert client.get(f"{LT}/sessions/t1/artifacts/0").content == b"$ npm test\nok\n"
    assert event_types(client, "t1") == ["Started", "ArtifactAttached", "ArtifactAttached"]
    before = log_size(client)
    assert client.post(f"{LT}/sessions/t1/terminal-logs", content=b"").status_code == 400
    assert log_size(client) == before


def test_uploads_after_stop_are_accepted(client: TestClient) -> None:
    """LambdaTest takes terminal and assertion logs for a finished test (its API documents
    no refusal for one); the ledger attaches them to the stopped session as artifacts."""
    start(client, "t2")
    assert client.put(f"{LT}/sessions/t2/stop").status_code == 200
    r = client.post(f"{LT}/sessions/t2/terminal-logs", files={"file": ("t.txt", b"done\n")})
    assert r.status_code == 200, r.text
    r = client.post(
        f"{LT}/sessions/t2/exceptions",
        content=b'{"exception":["late"]}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    types = event_types(client, "t2")
    assert types == ["Started", "Stopped", "ArtifactAttached", "ArtifactAttached"]
    # The domain's rule is unchanged: a native log upload to a stopped session is still 409,
    # and a deleted session refuses both ways.
    assert client.post("/v1/sessions/t2/logs/terminal", content=b"x").status_code == 409
    assert client.delete(f"{LT}/sessions/t2").status_code == 200
    before = log_size(client)
    assert client.post(f"{LT}/sessions/t2/terminal-logs", content=b"x").status_code == 404
    assert log_size(client) == before


def test_list_shows_lambdatest_sessions_only(client: TestClient) -> None:
    start(client, "lt1")
    for source in ("native", "testmo", "canopsis", "monitor", "opentera"):
        r = client.post("/v1/sessions", json={"id": f"{source}-1", "source": source})
        assert r.status_code == 201, r.text
    batch = b'{"command":"start","session_id":"lt2","source":"lambdatest"}\n'
    batch += b'{"command":"start","session_id":"native-2"}\n'
    assert client.post("/v1/events:batch", content=batch).status_code == 200
    listed = client.get(f"{LT}/sessions").json()
    assert sorted(s["session_id"] for s in listed["data"]) == ["lt1", "lt2"]
    assert listed["meta"]["total"] == 2


def test_list_shows_the_calling_accounts_sessions_only(
    client: TestClient, container: Container
) -> None:
    """The account is the key (LambdaTest's Basic user name is the key's name): a start
    records it as the tag `lambdatest.account`, whatever the client sent for it."""
    other = keys.create(container.store.write_engine, "ci-other", ["ingest", "read"])
    start(client, "mine")
    bearer = {"Authorization": f"Bearer {other}"}
    body = {"id": "theirs", "source": "lambdatest", "tags": {"lambdatest.account": "admin"}}
    assert client.post("/v1/sessions", json=body, headers=bearer).status_code == 201
    assert client.get("/v1/sessions/theirs").json()["tags"] == {"lambdatest.account": "ci-other"}
    mine = client.get(f"{LT}/sessions").json()
    assert [s["session_id"] for s in mine["data"]] == ["mine"] and mine["meta"]["total"] == 1
    theirs = client.get(f"{LT}/sessions", headers={"Authorization": basic("ci-other", other)})
    assert [s["session_id"] for s in theirs.json()["data"]] == ["theirs"]


def test_a_lambdatest_start_with_bad_tags_is_refused_by_the_rules(client: TestClient) -> None:
    before = log_size(client)
    line = b'{"command":"start","session_id":"bt","source":"lambdatest","tags":"x"}\n'
    r = client.post("/v1/events:batch", content=line)
    (refused,) = r.json()["rejected"]
    assert r.status_code == 200 and refused["detail"].startswith("tags"), r.text
    assert log_size(client) == before


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'["boom"]', b'{"exception": "boom"}', b'{"exception": [1]}',
     b'{"exception": [null]}', b"", b'{"exceptions": ["wrong key"]}'],
)  # fmt: skip
def test_bad_exceptions_are_400_and_append_nothing(client: TestClient, body: bytes) -> None:
    start(client, "e1")
    before = log_size(client)
    r = client.post(f"{LT}/sessions/e1/exceptions", content=body)
    assert r.status_code == 400, r.text
    assert r.json()["status"] == "fail"
    assert log_size(client) == before


def test_uploads_over_two_megabytes_are_400_and_append_nothing(client: TestClient) -> None:
    start(client, "e2")
    before = log_size(client)
    big = b"x" * (2 * 1024 * 1024 + 1)
    for path, kw in (
        ("terminal-logs", {"content": big}),
        ("terminal-logs", {"files": {"file": ("t.log", big)}}),
        ("exceptions", {"content": b'{"exception": ["' + big + b'"]}'}),
    ):
        r = client.post(f"{LT}/sessions/e2/{path}", **kw)
        assert r.status_code == 400, r.text
        assert r.json() == {
            "status": "fail",
            "message": "Oops ! file size too large (> 2MB)",
            "code": "invalid-command",
        }
    assert log_size(client) == before
    exactly = b"y" * (2 * 1024 * 1024)
    assert client.post(f"{LT}/sessions/e2/terminal-logs", content=exactly).status_code == 200


@pytest.mark.parametrize(
    "query", ["tags=,,,", "tags=" + "t" * 5000, "test_name=" + "%25" * 100, "test_name=%00"]
)
def test_odd_list_filters_are_answered_without_error(client: TestClient, query: str) -> None:
    start(client, "f1")
    r = client.get(f"{LT}/sessions?{query}")
    assert r.status_code in (200, 400), r.text
    assert r.json()["status"] in ("success", "fail")
