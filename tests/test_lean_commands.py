"""The lean command endpoints (keepalive, hide, status, stop served as plain ASGI twins) and
the ledger's async submission: same answers, same problem+json refusals that append nothing,
Idempotency-Key and If-Match as before, the OpenAPI schema unchanged, and a commit group's
coroutine waiters answered with one loop callback."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from api import schemas
from api.routes import lean
from domain import commands as c
from domain.errors import LedgerError, SessionNotFoundError
from persistence.answers import answer as _answer
from persistence.ledger import Ledger
from persistence.store import EventStore

JSON = {"content-type": "application/json"}


def head(client) -> int:
    return client.get("/v1/ledger/digest").json()["position"]


@pytest.fixture
def started(client):
    assert client.post("/v1/sessions", json={"id": "s1"}).status_code == 201
    return client


def test_the_hot_commands_are_declared_once_with_their_lean_twins(client) -> None:
    twins = {
        r.path: r.endpoint.__lean__
        for r in client.app.router.routes
        if getattr(getattr(r, "endpoint", None), "__lean__", None) is not None
    }
    assert set(twins) == {
        f"/v1/sessions/{{session_id}}/{name}" for name in ("keepalive", "hide", "status", "stop")
    }
    assert set(twins.values()) == {twin for _, twin in client.app.lane}


def test_the_lane_serves_the_lean_twins_ahead_of_the_stack(client) -> None:
    served = {regex.pattern for regex, _ in client.app.lane}
    assert served == {
        f"^/v1/sessions/(?P<session_id>[^/]+)/{name}$"
        for name in ("keepalive", "hide", "status", "stop")
    }


def test_under_a_root_path_the_router_serves_the_same_answers(container, admin_key) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app

    auth = {"Authorization": f"Bearer {admin_key}"}
    app = create_app(container=container)
    with TestClient(app, root_path="/ledger", headers=auth) as behind_proxy:
        assert behind_proxy.post("/v1/sessions", json={"id": "r1"}).status_code == 201
        r = behind_proxy.post("/v1/sessions/r1/keepalive", json={"path": "/p"})
        assert r.status_code == 200 and r.json()["version"] == 2
        r = behind_proxy.post("/v1/sessions/r1/status", json={"status": "bogus"})
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["field"] == "status"


def test_server_timing_is_on_lane_answers_and_refusals_as_on_the_stack(settings, clock) -> None:
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from api import keys
    from api.app import create_app
    from api.bootstrap import bootstrap

    timed = bootstrap(replace(settings, server_timing=True), clock=clock)
    keys.create_schema(timed.store.write_engine)
    auth = {"Authorization": f"Bearer {keys.create(timed.store.write_engine, 'a', ['admin'])}"}
    try:
        with TestClient(create_app(container=timed), headers=auth) as client:
            assert client.post("/v1/sessions", json={"id": "t1"}).status_code == 201
            lane = client.post("/v1/sessions/t1/keepalive", json={})
            refused = client.post("/v1/sessions/ghost/keepalive", json={})
            stack = client.get("/healthz")
    finally:
        timed.close()
    assert lane.status_code == 200 and refused.status_code == 404
    for r in (lane, refused, stack):
        assert r.headers["server-timing"].startswith("app;dur=")


def test_a_lean_answer_is_the_command_answer(started) -> None:
    r = started.post("/v1/sessions/s1/keepalive", json={"visible": True, "path": "/p"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["etag"] == '"2"' and r.headers["x-ledger-position"] == "2"
    assert r.json() == {"id": "s1", "number": 1, "version": 2, "position": 2, "appended": 1}
    # No body, an empty one and JSON null all mean the defaults, as they did through FastAPI.
    for kwargs in ({}, {"content": b"", "headers": JSON}, {"content": b"null", "headers": JSON}):
        assert started.post("/v1/sessions/s1/keepalive", **kwargs).status_code == 200
    assert started.post("/v1/sessions/s1/hide", json={"path": "/p"}).json()["version"] == 6
    assert started.post("/v1/sessions/s1/stop").json()["version"] == 7
    r = started.post("/v1/sessions/s1/status", json={"status": "passed", "reason": "ok"})
    assert r.status_code == 200 and r.json()["version"] == 8
    state = started.app.state.container.ledger.load("s1")
    assert state["keepalives"] == 4 and state["status"] == "passed"


@pytest.mark.parametrize(
    "what,content,headers,field,detail",
    [
        ("keepalive", b'{"visible": "maybe"}', JSON, "visible", "valid boolean"),
        ("keepalive", b'{"bogus": 1}', JSON, "bogus", "Extra inputs are not permitted"),
        ("keepalive", b"[1]", JSON, None, "valid dictionary"),
        ("keepalive", b"{bad", JSON, None, "JSON decode error"),
        ("keepalive", b'{"path": 5}', JSON, "path", "valid string"),
        ("hide", b'{"path": []}', JSON, "path", "valid string"),
        ("hide", b'{"visible": true}', JSON, "visible", "Extra inputs"),
        ("status", b'{"status": "paused"}', JSON, "status", "Input should be"),
        ("status", b"{}", JSON, "status", "Field required"),
        ("status", b"", JSON, None, "Field required"),
        ("stop", b'{"reason": 1}', JSON, "reason", "valid string"),
    ],
)
def test_a_bad_body_is_a_problem_naming_the_field_and_appends_nothing(
    started, what, content, headers, field, detail
) -> None:
    before = head(started)
    r = started.post(f"/v1/sessions/s1/{what}", content=content, headers=headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"].endswith("/invalid-input")
    assert problem.get("field") == field and detail in problem["detail"]
    assert head(started) == before


def test_refusals_append_nothing(started) -> None:
    started.post("/v1/sessions/s1/stop")
    before = head(started)
    r = started.post("/v1/sessions/s1/keepalive", json={})
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert started.post("/v1/sessions/ghost/keepalive", json={}).status_code == 404
    assert started.post("/v1/sessions/s1/status", json={"status": "queued"}).status_code == 409
    assert head(started) == before


def test_idempotency_key_and_if_match_on_the_lean_path(started) -> None:
    k = {"Idempotency-Key": "ka-1"}
    first = started.post("/v1/sessions/s1/keepalive", json={"path": "/a"}, headers=k)
    again = started.post("/v1/sessions/s1/keepalive", json={"path": "/a"}, headers=k)
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    before = head(started)
    other = started.post("/v1/sessions/s1/keepalive", json={"path": "/b"}, headers=k)
    assert other.status_code == 422 and "ka-1" in other.json()["detail"]

    stale = started.post("/v1/sessions/s1/keepalive", json={}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412 and stale.json()["type"].endswith("/precondition-failed")
    bad = started.post("/v1/sessions/s1/hide", json={}, headers={"If-Match": "soon"})
    assert bad.status_code == 422 and bad.json()["field"] == "If-Match"
    assert head(started) == before
    ok = started.post("/v1/sessions/s1/keepalive", json={}, headers={"If-Match": '"2"'})
    assert ok.status_code == 200 and ok.json()["version"] == 3


def test_the_openapi_schema_still_documents_body_and_headers(client) -> None:
    op = client.get("/openapi.json").json()["paths"]["/v1/sessions/{session_id}/keepalive"]
    post = op["post"]
    names = {p["name"] for p in post["parameters"]}
    assert names == {"session_id", "Idempotency-Key", "If-Match"}
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert "KeepAliveBody" in str(schema)
    assert "422" in post["responses"]


def test_parse_body_is_what_fastapi_made_of_it() -> None:
    model = schemas.KeepAliveBody
    assert lean.parse_body(model, b"", None, optional=True) is None
    got = lean.parse_body(model, b'{"path":"/q"}', b"application/vnd.x+json; charset=utf-8", False)
    assert got == model(path="/q")


# -- the ledger's async submission -------------------------------------------------------------


def _ledger(tmp_path: Path) -> Ledger:
    store = EventStore(f"sqlite:///{tmp_path}/l.db")
    store.create_schema()
    return Ledger(store, time.time)


def test_async_submissions_are_answered_in_order_and_durably(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.start()
    try:
        ledger.execute(c.StartSession(session_id="a"))

        async def many() -> list[Any]:
            futs = [
                ledger.submit_async([c.KeepAlive(session_id="a", path=f"/{i}")]) for i in range(50)
            ]
            futs.append(ledger.submit_async([c.KeepAlive(session_id="ghost")]))
            return [(await f)[0] for f in futs]

        outs = asyncio.run(many())
        assert sorted(o.version for o in outs[:50]) == list(range(2, 52))
        assert isinstance(outs[50], SessionNotFoundError)
        assert ledger.load("a")["keepalives"] == 50
        assert ledger.store.head_digest()[0] == 51
    finally:
        ledger.close()
        ledger.store.dispose()


def test_without_a_writer_thread_async_submission_still_answers(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)

    async def one() -> Any:
        return (await ledger.submit_async([c.StartSession(session_id="b")]))[0]

    assert asyncio.run(one()).version == 1
    ledger.store.dispose()


class CountingLoop:
    """Stands in for an event loop: counts thread-safe callbacks and runs them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.calls = loop, 0

    def call_soon_threadsafe(self, fn: Any, *args: Any) -> None:
        self.calls += 1
        self.loop.call_soon_threadsafe(fn, *args)


def test_a_group_wakes_each_loop_once_and_skips_cancelled_waiters() -> None:
    async def scenario() -> tuple[int, list[Any]]:
        loop = CountingLoop(asyncio.get_running_loop())
        futs = [asyncio.get_running_loop().create_future() for _ in range(5)]
        for f in futs:
            f.get_loop = lambda: loop  # type: ignore[method-assign]
        futs[1].cancel()
        thread_fut: Future[Any] = Future()
        err = LedgerError("append failed")
        _answer([(f, [i]) for i, f in enumerate(futs[:4])] + [(futs[4], err), (thread_fut, [9])])
        await asyncio.sleep(0)
        assert thread_fut.result() == [9]
        with pytest.raises(LedgerError):
            futs[4].result()
        return loop.calls, [futs[0].result(), futs[1].cancelled(), futs[3].result()]

    calls, seen = asyncio.run(scenario())
    assert calls == 1 and seen == [[0], True, [3]]
