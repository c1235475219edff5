"""The native API under /v1, as a client sees it: commands, queries, problem+json errors
that append nothing, idempotent retries, read-your-writes and stable pages."""

from __future__ import annotations

import base64

import pytest


def head(client) -> int:
    return client.get("/v1/ledger/digest").json()["position"]


def start(client, sid: str, **fields) -> dict:
    r = client.post("/v1/sessions", json={"id": sid, **fields})
    assert r.status_code == 201, r.text
    return r.json()


def test_a_session_life_is_visible_at_once_in_every_view(client, clock) -> None:
    start(
        client,
        "s1",
        name="login test",
        user="ann",
        project="web",
        build="b7",
        attributes={"browser": "chrome", "os": "linux"},
        tags={"team": "qa"},
    )
    clock.advance(5)
    client.post("/v1/sessions/s1/keepalive", json={"visible": True, "path": "/home"})
    clock.advance(5)
    client.post("/v1/sessions/s1/hide", json={"path": "/home"})
    client.post("/v1/sessions/s1/results", json={"status": "passed", "test": "t1"})
    client.post(
        "/v1/sessions/s1/logs/console",
        content=b"log line\n",
        headers={"content-type": "text/plain"},
    )
    shot = base64.b64encode(b"\x89PNG fake").decode()
    client.post("/v1/sessions/s1/artifacts", json={"kind": "screenshot", "content_base64": shot})
    clock.advance(10)
    assert client.post("/v1/sessions/s1/stop", json={"reason": "done"}).status_code == 200
    assert client.post("/v1/sessions/s1/status", json={"status": "passed"}).status_code == 200

    d = client.get("/v1/sessions/s1").json()
    assert d["status"] == "passed" and d["active"] is False
    assert d["visible_time"] == {"/home": pytest.approx(5.0, abs=0.01)}
    assert d["result_counts"] == {"passed": 1}
    assert d["logs"][0]["kind"] == "console" and d["logs"][0]["size"] == 9
    assert d["artifacts"][0]["kind"] == "screenshot"
    assert d["duration"] == pytest.approx(20.0, abs=0.05)
    assert client.get("/v1/sessions/s1/logs/console").text == "log line\n"

    page = client.get("/v1/sessions", params={"tag": "team:qa", "status": "passed"}).json()
    assert page["total"] == 1 and page["items"][0]["id"] == "s1"
    assert client.get("/v1/sessions/count").json() == {"total": 1, "by_status": {"passed": 1}}
    stats = client.get("/v1/stats", params={"by": "browser"}).json()
    assert stats["groups"][0]["key"] == {"browser": "chrome"}
    assert stats["groups"][0]["duration"]["max"] == pytest.approx(20.0, abs=0.05)
    events = client.get("/v1/sessions/s1/events").json()["events"]
    assert [e["type"] for e in events] == [
        "Started",
        "KeptAlive",
        "Hidden",
        "ResultRecorded",
        "LogUploaded",
        "ArtifactAttached",
        "Stopped",
        "StatusChanged",
    ]
    assert [e["version"] for e in events] == list(range(1, 9))


@pytest.mark.parametrize(
    "method,path,body,status,field",
    [
        ("post", "/v1/sessions", {"id": "x", "tags": {"k": 1}}, 422, "tags.k"),
        ("post", "/v1/sessions", {"id": "x", "bogus": 1}, 422, "bogus"),
        ("post", "/v1/sessions", {"id": "s1"}, 409, "id"),
        ("post", "/v1/sessions/s1/status", {"status": "paused"}, 422, "status"),
        ("post", "/v1/sessions/s1/status", {"status": "queued"}, 409, "status"),
        ("post", "/v1/sessions/nope/keepalive", {}, 404, None),
        ("post", "/v1/sessions/s1/logs/bogus", None, 422, "kind"),
        ("post", "/v1/sessions/s1/artifacts", {"kind": "video"}, 422, "url"),
        (
            "post",
            "/v1/sessions/s1/artifacts",
            {"kind": "video", "content_base64": "!!"},
            422,
            "content_base64",
        ),
        ("patch", "/v1/sessions/s1", {"status": "queued", "name": "n"}, 409, "status"),
        ("get", "/v1/sessions?sort=colour", None, 422, "sort"),
        ("get", "/v1/sessions?limit=0", None, 422, "limit"),
        ("get", "/v1/stats?by=colour", None, 422, "by"),
    ],
)
def test_bad_input_is_a_problem_naming_the_field_and_appends_nothing(
    client, method, path, body, status, field
) -> None:
    start(client, "s1")
    before = head(client)
    kwargs = {"json": body} if body is not None else {}
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == status and problem["detail"]
    assert problem.get("field") == field
    assert head(client) == before


def test_keepalive_after_stop_is_refused(client) -> None:
    start(client, "s1")
    client.post("/v1/sessions/s1/stop")
    before = head(client)
    r = client.post("/v1/sessions/s1/keepalive", json={"path": "/a"})
    assert r.status_code == 409 and r.json()["type"].endswith("session-stopped")
    again = client.post("/v1/sessions/s1/stop")
    assert again.status_code == 200 and again.json()["appended"] == 0
    assert head(client) == before


def test_an_idempotency_key_makes_a_retry_return_the_first_answer(client) -> None:
    h = {"Idempotency-Key": "retry-1"}
    first = client.post("/v1/sessions", json={"name": "no id"}, headers=h)
    second = client.post("/v1/sessions", json={"name": "no id"}, headers=h)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert client.get("/v1/sessions/count").json()["total"] == 1


def test_if_match_guards_against_a_stale_version(client) -> None:
    v = start(client, "s1")["version"]
    client.post("/v1/sessions/s1/keepalive", json={})
    r = client.patch("/v1/sessions/s1", json={"name": "x"}, headers={"If-Match": f'"{v}"'})
    assert r.status_code == 412


def test_deleted_sessions_vanish_from_views_but_not_from_the_audit_log(client) -> None:
    start(client, "s1")
    start(client, "s2")
    assert client.delete("/v1/sessions/s1").status_code == 200
    assert client.get("/v1/sessions/s1").status_code == 404
    assert [i["id"] for i in client.get("/v1/sessions").json()["items"]] == ["s2"]
    assert client.get("/v1/sessions/count").json()["total"] == 1
    events = client.get("/v1/sessions/s1/events").json()["events"]
    assert [e["type"] for e in events] == ["Started", "Deleted"]
    assert client.post("/v1/sessions/s1/keepalive", json={}).status_code == 410


def test_pages_do_not_drift_or_repeat(client) -> None:
    for i in range(25):
        start(client, f"s{i:02}", project="p")  # the clock may give equal start times
    seen = []
    for offset in range(0, 25, 7):
        page = client.get(
            "/v1/sessions",
            params={"sort": "started_at", "order": "asc", "limit": 7, "offset": offset},
        ).json()
        assert page["total"] == 25
        seen += [i["id"] for i in page["items"]]
    assert seen == [f"s{i:02}" for i in range(25)]


def test_list_filters_and_sorts(client, clock) -> None:
    start(client, "a", user="ann", name="Login flow", build="b1")
    clock.advance(10)
    start(client, "b", user="bob", name="Checkout", build="b2")
    clock.advance(30)
    client.post("/v1/sessions/a/stop")
    clock.advance(5)
    client.post("/v1/sessions/b/stop")

    def ids(**params) -> list[str]:
        return [i["id"] for i in client.get("/v1/sessions", params=params).json()["items"]]

    assert ids(q="login") == ["a"]
    assert ids(user="bob") == ["b"]
    assert ids(build="b1") == ["a"]
    assert ids(sort="duration", order="desc") == ["a", "b"]
    assert ids(sort="duration", order="asc") == ["b", "a"]
    assert ids(active="false") == ["b", "a"]
    count = client.get("/v1/sessions/count", params={"user": "ann"}).json()
    assert count == {"total": 1, "by_status": {"completed": 1}}


def test_bulk_ingest_appends_good_lines_and_reports_rejected_ones(client) -> None:
    body = b"\n".join(
        [
            b'{"command":"start","session_id":"b1","project":"p"}',
            b'{"command":"keepalive","session_id":"b1","path":"/x"}',
            b'{"command":"keepalive","session_id":"missing"}',
            b'{"command":"stop","session_id":"b1"}',
        ]
    )
    r = client.post("/v1/events:batch", content=body)
    assert r.status_code == 200
    out = r.json()
    assert out["accepted"] == 3 and out["appended"] == 3
    assert out["rejected"] == [
        {"line": 3, "status": 404, "code": "session-not-found", "detail": "no session missing"}
    ]
    assert client.get("/v1/sessions/b1").json()["status"] == "completed"


def test_a_malformed_batch_line_rejects_the_whole_batch(client) -> None:
    before = head(client)
    body = b'{"command":"start","session_id":"b1"}\n{"command":"explode","session_id":"b1"}\n'
    r = client.post("/v1/events:batch", content=body)
    assert r.status_code == 400 and "line 2" in r.json()["detail"]
    assert head(client) == before


def test_batch_lines_are_lines_whatever_the_line_ends(client) -> None:
    """CRLF ends and blank lines are fine; two values on one line are one bad line, even
    though the body as a whole holds one value per line on average."""
    before = head(client)
    two_on_one = (
        b'{"command":"start","session_id":"x1"}, {"command":"start","session_id":"x2"}\n'
        b"\n"
        b'{"command":"start","session_id":"x3"}\n'
    )
    r = client.post("/v1/events:batch", content=two_on_one)
    assert r.status_code == 400 and r.json()["field"] == "line 1"
    assert head(client) == before
    crlf = (
        b'\r\n{"command":"start","session_id":"c1"}\r\n\r\n{"command":"stop","session_id":"c1"}\r\n'
    )
    r = client.post("/v1/events:batch", content=crlf)
    assert r.status_code == 200 and r.json()["appended"] == 2
    assert client.get("/v1/sessions/c1").json()["status"] == "completed"


def test_global_log_pages_by_position_and_digest_tracks_the_head(client) -> None:
    for i in range(5):
        start(client, f"s{i}")
    first = client.get("/v1/events", params={"limit": 3}).json()
    rest = client.get("/v1/events", params={"after": first["next_after"]}).json()
    positions = [e["position"] for e in first["events"] + rest["events"]]
    assert positions == [1, 2, 3, 4, 5]
    digest = client.get("/v1/ledger/digest").json()
    assert digest["position"] == 5 and digest["hash"] == rest["events"][-1]["hash"]
    only = client.get("/v1/events", params={"type": "Started", "limit": 2}).json()
    assert len(only["events"]) == 2


def test_openapi_and_health(client) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    assert "/v1/sessions" in spec["paths"] and "/v1/ledger/digest" in spec["paths"]
    assert client.get("/docs").status_code == 200
