"""HTTP semantics of the native API (RFC 9110): 415 for a body not declared JSON, 412 for
a stale If-Match, ETag and 304 on reads, and what stopping a session leaves."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.expiry import ExpirySweeper

JSON = {"content-type": "application/json"}


def head(client: TestClient) -> int:
    return int(client.get("/v1/ledger/digest").json()["position"])


@pytest.fixture
def started(client: TestClient) -> TestClient:
    assert client.post("/v1/sessions", json={"id": "s1"}).status_code == 201
    return client


@pytest.fixture
def routed(container, admin_key):
    """The same app served through the router, not the lane (as under a proxy's root path)."""
    app = create_app(container=container)
    auth = {"Authorization": f"Bearer {admin_key}"}
    with TestClient(app, root_path="/ledger", headers=auth) as cl:
        assert cl.post("/v1/sessions", json={"id": "s1"}).status_code == 201
        yield cl


BODIES = [
    ("post", "/v1/sessions/s1/keepalive", b'{"path": "/x"}'),  # the lane's routes
    ("post", "/v1/sessions/s1/status", b'{"status": "passed"}'),
    ("post", "/v1/sessions/s1/stop", b"{}"),
    ("post", "/v1/sessions", b'{"id": "s2"}'),  # the router's
    ("patch", "/v1/sessions/s1", b'{"name": "n"}'),
    ("post", "/v1/sessions/s1/metrics", b'{"name": "m", "value": 1}'),
]
NOT_JSON = [
    {"content-type": "text/plain"},
    {"content-type": "application/x-www-form-urlencoded"},
    {"content-type": "multipart/form-data; boundary=x"},
    {"content-type": "application/jsonx"},
    {},  # no Content-Type: not JSON (RFC 9110 §8.3), as FastAPI's strict default
]


@pytest.mark.parametrize("method,path,body", BODIES)
@pytest.mark.parametrize("headers", NOT_JSON)
@pytest.mark.parametrize("via", ["started", "routed"])
def test_a_body_not_declared_json_is_415_naming_what_is_accepted(
    request, via, method, path, body, headers
) -> None:
    client = request.getfixturevalue(via)
    before = head(client)
    r = client.request(method, path, content=body, headers=headers)
    assert r.status_code == 415, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"].endswith("/unsupported-media-type")
    assert "application/json" in problem["detail"] and problem["field"] == "Content-Type"
    assert head(client) == before


@pytest.mark.parametrize("via", ["started", "routed"])
def test_json_variants_and_an_absent_body_still_work(request, via) -> None:
    client = request.getfixturevalue(via)
    ok = {"content-type": "application/merge-patch+json; charset=utf-8"}
    assert client.post("/v1/sessions/s1/keepalive", content=b"{}", headers=ok).status_code == 200
    # No body at all (whatever the Content-Type) on the optional-body routes.
    assert client.post("/v1/sessions/s1/keepalive").status_code == 200
    plain = {"content-type": "text/plain"}
    assert client.post("/v1/sessions/s1/hide", content=b"", headers=plain).status_code == 200
    assert client.post("/v1/sessions/s1/stop").status_code == 200


def test_the_batch_takes_ndjson_or_no_content_type_and_refuses_the_rest(client) -> None:
    line = b'{"command": "start", "session_id": "b1"}\n'
    for ctype in ("application/x-ndjson", "application/jsonl; charset=utf-8", None):
        headers = {"content-type": ctype} if ctype else {}
        r = client.post("/v1/events:batch", content=line, headers=headers)
        assert r.status_code == 200, r.text
    before = head(client)
    form = {"content-type": "application/x-www-form-urlencoded"}
    r = client.post(
        "/v1/events:batch", content=b'{"command":"start","session_id":"b2"}', headers=form
    )
    assert r.status_code == 415 and "ndjson" in r.json()["detail"]
    assert head(client) == before


@pytest.mark.parametrize("via", ["started", "routed"])
def test_a_stale_if_match_is_412_and_appends_nothing(request, via) -> None:
    client = request.getfixturevalue(via)
    client.post("/v1/sessions/s1/keepalive", json={})
    before = head(client)
    for method, path, body in [
        ("post", "/v1/sessions/s1/keepalive", {}),
        ("post", "/v1/sessions/s1/stop", {}),
        ("patch", "/v1/sessions/s1", {"name": "x"}),
        ("delete", "/v1/sessions/s1", None),
    ]:
        kw = {"json": body} if body is not None else {}
        r = client.request(method, path, headers={"If-Match": '"1"'}, **kw)
        assert r.status_code == 412, r.text
        assert r.json()["type"].endswith("/precondition-failed")
        weak = client.request(method, path, headers={"If-Match": 'W/"2"'}, **kw)
        assert weak.status_code == 412  # If-Match compares strongly
    assert head(client) == before
    assert client.post("/v1/sessions/s1/keepalive", headers={"If-Match": "*"}).status_code == 200
    assert client.post("/v1/sessions/s1/keepalive", headers={"If-Match": '"3"'}).status_code == 200


def test_other_conflicts_stay_409(started) -> None:
    assert started.post("/v1/sessions", json={"id": "s1"}).status_code == 409
    started.post("/v1/sessions/s1/stop")
    assert started.post("/v1/sessions/s1/keepalive").status_code == 409


def test_a_batch_line_with_a_stale_expected_version_is_412_like_if_match(started) -> None:
    body = b'{"command": "keepalive", "session_id": "s1", "expected_version": 7}\n'
    out = started.post("/v1/events:batch", content=body).json()
    assert out["rejected"] == [
        {
            "line": 1,
            "status": 412,
            "code": "precondition-failed",
            "detail": out["rejected"][0]["detail"],
        }
    ]


def test_the_detail_etag_is_the_version_and_if_none_match_answers_304(started) -> None:
    r = started.get("/v1/sessions/s1")
    assert r.headers["etag"] == '"1"' == f'"{r.json()["version"]}"'
    for inm in ('"1"', 'W/"1"', '"9", "1"', "*"):
        again = started.get("/v1/sessions/s1", headers={"If-None-Match": inm})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == '"1"'
    cmd = started.post("/v1/sessions/s1/keepalive", json={})
    assert cmd.headers["etag"] == '"2"'  # a command moves the tag it answers
    fresh = started.get("/v1/sessions/s1", headers={"If-None-Match": '"1"'})
    assert fresh.status_code == 200 and fresh.headers["etag"] == '"2"'
    # The tag a read gives is the one If-Match takes.
    ok = started.patch("/v1/sessions/s1", json={"name": "n"}, headers={"If-Match": '"2"'})
    assert ok.status_code == 200
    assert started.get("/v1/sessions/ghost", headers={"If-None-Match": "*"}).status_code == 404


def test_the_detail_etag_moves_when_the_session_expires(started, clock) -> None:
    tag = started.get("/v1/sessions/s1").headers["etag"]
    clock.advance(10_000)
    assert ExpirySweeper(started.app.state.container).sweep() == 1
    r = started.get("/v1/sessions/s1", headers={"If-None-Match": tag})
    assert r.status_code == 200 and r.headers["etag"] != tag
    assert r.json()["status"] == "timeout"


@pytest.mark.parametrize(
    "path", ["/v1/sessions", "/v1/sessions/count", "/v1/stats?by=status", "/v1/events",
             "/v1/sessions/s1/events"]
)  # fmt: skip
def test_lists_count_stats_and_streams_answer_304_until_they_change(started, path) -> None:
    r = started.get(path)
    tag = r.headers["etag"]
    assert r.status_code == 200 and tag.startswith('"')
    assert started.get(path, headers={"If-None-Match": tag}).status_code == 304
    assert started.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    for hostile in ("garbage", '"unterminated', ",,,", "W/", tag[:-1], '"' * 5000, tag + " junk"):
        assert started.get(path, headers={"If-None-Match": hostile}).status_code == 200
    started.post("/v1/sessions/s1/status", json={"status": "passed"})
    changed = started.get(path, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag


def test_stopping_a_running_session_sets_completed_as_documented(started) -> None:
    started.post("/v1/sessions/s1/stop")
    assert started.get("/v1/sessions/s1").json()["status"] == "completed"
    op = started.get("/openapi.json").json()["paths"]["/v1/sessions/{session_id}/stop"]["post"]
    assert "completed" in op["description"]


def test_the_openapi_document_names_the_new_answers(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    keepalive = paths["/v1/sessions/{session_id}/keepalive"]["post"]["responses"]
    assert {"412", "415"} <= set(keepalive)
    detail = paths["/v1/sessions/{session_id}"]["get"]["responses"]
    assert "304" in detail and "ETag" in detail["200"]["headers"]
    listing = paths["/v1/sessions"]["get"]
    assert "cursor" in {p["name"] for p in listing["parameters"]}
