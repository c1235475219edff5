"""Hostile and careless input, as an attacker would send it: every refusal appends nothing,
no route answers 500, and nothing the domain would refuse reaches the log."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api.bootstrap import Container
from domain import commands as c
from domain.errors import InvalidCommandError
from domain.rules import validate
from persistence.blobs import BlobStore
from persistence.settings import BodyLimits, Settings


def head(container: Container) -> int:
    return container.store.head_digest()[0]


def batch(client: TestClient, *lines: dict[str, Any]) -> Any:
    body = b"\n".join(orjson.dumps(line) for line in lines)
    return client.post("/v1/events:batch", content=body)


@pytest.fixture
def started(client: TestClient) -> str:
    assert client.post("/v1/sessions", json={"id": "s1", "project": "p"}).status_code == 201
    return "s1"


# -- finding 1: arbitrary file read and state forgery through `update` ------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"logs": [{"kind": "console", "sha256": "/etc/passwd", "size": 1, "content_type": "x"}]},
        {"ended_at": None},
        {"status": "running"},
        {"stopped_at": 1.0},
        {"number": 1},
        {"deleted": False},
        {"visible_time": {"/": 1e9}},
    ],
)
def test_update_may_change_only_descriptive_fields(
    client: TestClient, container: Container, started: str, changes: dict[str, Any]
) -> None:
    before = head(container)
    r = batch(client, {"command": "update", "session_id": started, "changes": changes})
    assert r.status_code == 200
    assert r.json()["accepted"] == 0 and r.json()["rejected"][0]["status"] == 422
    assert head(container) == before
    assert client.get(f"/v1/sessions/{started}/logs/console").status_code == 404


def test_a_stopped_session_cannot_be_reopened_by_update(
    client: TestClient, container: Container, started: str
) -> None:
    client.post(f"/v1/sessions/{started}/stop")
    r = batch(client, {"command": "update", "session_id": started, "changes": {"ended_at": None}})
    assert r.json()["rejected"]
    assert client.post(f"/v1/sessions/{started}/keepalive").status_code == 409


@pytest.mark.parametrize("name", ["/etc/passwd", "../../etc/passwd", "AB" * 32, "a" * 63, ""])
def test_the_blob_store_refuses_any_name_but_a_sha256(tmp_path: Any, name: str) -> None:
    blobs = BlobStore(tmp_path)
    for use in (blobs.get, blobs.exists, blobs.matches, blobs.path):
        with pytest.raises(InvalidCommandError):
            use(name)


# -- finding 2: poison values never reach the log ----------------------------------------------

POISON_LINES = [
    {"command": "start", "session_id": "p1", "started_at": "1e18"},
    {"command": "start", "session_id": "p2", "started_at": "yesterday"},
    {"command": "start", "session_id": "p3", "started_at": 1e18},
    {"command": "start", "session_id": "p4", "started_at": -5},
    {"command": "start", "session_id": "p5", "tags": "notadict"},
    {"command": "start", "session_id": "p6", "tags": 5},
    {"command": "start", "session_id": "p7", "tags": {"k": 5}},
    {"command": "start", "session_id": "x" * 5000},
    {"command": "start", "session_id": "café"},
    {"command": "start", "session_id": "a\u0000b"},
    {"command": "start", "session_id": "a/b"},
    {"command": "start", "session_id": "p8", "name": "a\u0000b"},
    {"command": "start", "session_id": "p9", "participants": "alice"},
    {"command": "start", "session_id": "p10", "parameters": {"deep": [[[[[[[[[[1]]]]]]]]]]}},
    {"command": "start", "session_id": "p11", "source": "evil"},
    {"command": "start", "session_id": "p12", "status": 7},
    {"command": "keepalive", "session_id": "s1", "visible": "yes"},
    {"command": "keepalive", "session_id": "s1", "path": {"a": 1}},
    {"command": "update", "session_id": "s1", "changes": [1]},
    {"command": "update", "session_id": "s1", "changes": {"tags": ["a"]}},
    {"command": "metric", "session_id": "s1", "item": "t", "values": {"m": {"nested": 1}}},
    {"command": "stop", "session_id": "s1", "ended_at": "later"},
    {"command": "annotate", "session_id": "s1", "annotation_id": 5},
    {"command": "status", "session_id": "s1", "status": ["failed"]},
]


@pytest.mark.parametrize("line", POISON_LINES, ids=range(len(POISON_LINES)))
def test_a_poison_line_is_refused_and_appends_nothing(
    client: TestClient, container: Container, started: str, line: dict[str, Any]
) -> None:
    before = head(container)
    r = batch(client, line)
    assert r.status_code in (200, 400, 413), r.text
    if r.status_code == 200:
        assert r.json()["accepted"] == 0, r.json()
        assert r.json()["rejected"][0]["status"] in (413, 422)
    assert head(container) == before
    # The views still follow the log: a later command is applied and visible.
    assert client.post(f"/v1/sessions/{started}/keepalive").status_code == 200
    assert client.get(f"/v1/sessions/{started}").json()["keepalives"] == 1


def test_rules_name_the_field(container: Container) -> None:
    with pytest.raises(InvalidCommandError) as err:
        validate(c.KeepAlive(session_id="s", visible="yes"))  # type: ignore[arg-type]
    assert err.value.field == "visible"


def test_the_native_routes_refuse_what_the_batch_refuses(
    client: TestClient, container: Container
) -> None:
    before = head(container)
    for body in ({"id": "x" * 5000}, {"id": "a b"}, {"started_at": "1e18"}, {"name": "\u0000"}):
        r = client.post("/v1/sessions", json=body)
        assert r.status_code in (413, 422), (body, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert head(container) == before


# -- finding 3: one bad line fails only itself --------------------------------------------------


def test_a_bad_line_in_a_commit_group_fails_only_itself(
    client: TestClient, container: Container, started: str
) -> None:
    r = batch(
        client,
        {"command": "keepalive", "session_id": started},
        {"command": "update", "session_id": started, "changes": [1]},
        {"command": "keepalive", "session_id": started},
    )
    assert r.status_code == 200
    assert r.json()["accepted"] == 2 and [x["line"] for x in r.json()["rejected"]] == [2]


def test_a_writer_fault_on_one_submission_spares_the_others(container: Container) -> None:
    """A command that slips past the rules and breaks deciding fails alone."""
    ledger = container.ledger
    ledger.execute(c.StartSession(session_id="a"))
    good = [(c.KeepAlive(session_id="a"),), (c.KeepAlive(session_id="a"),)]
    bad = c.UpdateDetails(session_id="a", changes={"tags": None})
    object.__setattr__(bad, "changes", 5)  # as a bug would: not a mapping
    items: list[Any] = []
    from concurrent.futures import Future

    for cmds in (good[0], (bad,), good[1]):
        fut: Future[Any] = Future()
        items.append((list(cmds), fut, None))
    ledger._process(items)
    assert [type(i[1].result()[0]).__name__ for i in (items[0], items[2])] == ["CommandResult"] * 2
    assert isinstance(items[1][1].exception(), Exception)
    assert ledger.load("a")["keepalives"] == 2


# -- finding 5: bounded bodies -------------------------------------------------------------------


def test_bodies_over_their_cap_are_refused_with_413(
    client: TestClient, container: Container, started: str
) -> None:
    limits = container.settings.body_limits
    before = head(container)
    big = b"x" * (limits.max_body_bytes + 1)
    r = client.post("/v1/sessions", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "max_body_bytes" in r.json()["detail"]
    r = client.post(f"/v1/sessions/{started}/keepalive", content=big)  # the lean lane too
    assert r.status_code == 413
    assert head(container) == before


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small caps, so the tests cross them cheaply."""
    return replace(settings, body_limits=BodyLimits(max_upload_bytes=4096, max_batch_lines=10))


def test_uploads_stream_under_their_own_cap(
    client: TestClient, container: Container, started: str
) -> None:
    before = head(container)

    def chunks() -> Any:
        for _ in range(10):
            yield b"y" * 1000

    r = client.post(f"/v1/sessions/{started}/logs/console", content=chunks())
    assert r.status_code == 413
    assert head(container) == before
    assert not [p for p in container.blobs.root.rglob("*") if p.is_file()]
    r = client.post(f"/v1/sessions/{started}/logs/console", content=b"ok")
    assert r.status_code == 201


def test_a_batch_over_its_line_cap_is_refused(
    client: TestClient, container: Container, started: str
) -> None:
    before = head(container)
    r = batch(client, *[{"command": "keepalive", "session_id": started}] * 11)
    assert r.status_code == 413 and "max_batch_lines" in r.json()["detail"]
    assert head(container) == before
    assert batch(client, *[{"command": "keepalive", "session_id": started}] * 10).status_code == 200


# -- finding 6: hostile ids and parameters -------------------------------------------------------


def test_ids_that_cannot_travel_in_a_header_are_refused_before_appending(
    client: TestClient, container: Container
) -> None:
    before = head(container)
    for sid in ("\u4e2d\u6587", "tab\there", "new\nline"):
        r = client.post("/v1/sessions", json={"id": sid})
        assert r.status_code == 422, (sid, r.text)
    assert head(container) == before


def test_huge_positions_are_refused_not_500(client: TestClient, started: str) -> None:
    assert client.get("/v1/events", params={"after": 10**20}).status_code == 422
    r = client.get("/v1/sessions", headers={"X-Min-Position": str(10**12)})
    assert r.status_code == 422 and r.json()["field"] == "X-Min-Position"


HUGE = str(10**20)  # past a 64-bit integer: the databases cannot bind it


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/sessions", {"offset": HUGE}),
        ("/compat/lambdatest/automation/api/v1/sessions", {"offset": HUGE}),
        ("/compat/testmo/api/v1/projects/1/sessions", {"page": HUGE}),
        ("/compat/canopsis/api/v2/sessions", {"offset": HUGE}),
        ("/compat/opentera/api/user/sessions", {"id_user": "1", "offset": HUGE}),
        ("/compat/opentera/api/user/sessions", {"id_user": "1", "limit": HUGE}),
        ("/compat/monitor/api/v1/sessions/", {"page": HUGE}),
    ],
)
def test_huge_pages_are_refused_not_500(
    client: TestClient, started: str, path: str, params: dict[str, str]
) -> None:
    # Found by the OpenAPI fuzzer: an offset of 1.7e20 on GET /v1/sessions was a 500.
    r = client.get(path, params=params)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])


# -- finding 7: faults answered as faults -------------------------------------------------------


def test_a_store_that_cannot_write_answers_503_and_recovers(
    client: TestClient, container: Container, started: str, monkeypatch: Any
) -> None:
    from sqlalchemy.exc import OperationalError

    store = container.store
    real = store.append

    def full(*a: Any, **k: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("database or disk is full"))

    monkeypatch.setattr(store, "append", full)
    before = head(container)
    r = client.post(f"/v1/sessions/{started}/keepalive")
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["Retry-After"]) > 0
    assert head(container) == before
    monkeypatch.setattr(store, "append", real)
    assert client.post(f"/v1/sessions/{started}/keepalive").status_code == 200


# -- finding 8: content served on the API's origin ----------------------------------------------


def test_uploaded_html_is_never_rendered(client: TestClient, started: str) -> None:
    page = b"<script>alert(document.cookie)</script>"
    r = client.post(
        f"/v1/sessions/{started}/logs/console", content=page, headers={"content-type": "text/html"}
    )
    assert r.status_code == 201
    r = client.get(f"/v1/sessions/{started}/logs/console")
    assert r.content == page
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"]
    assert r.headers["content-disposition"].startswith("attachment")


def test_hosts_outside_the_allowed_list_are_refused(container: Container, admin_key: str) -> None:
    from api.app import create_app

    settings = replace(container.settings, allowed_hosts=("localhost", "127.0.0.1"))
    app = create_app(settings=settings, container=container)
    with TestClient(app, base_url="http://localhost") as cl:
        auth = {"Authorization": f"Bearer {admin_key}"}
        assert cl.get("/v1/sessions", headers=auth).status_code == 200
        r = cl.get("/v1/sessions", headers={**auth, "Host": "evil.example:8000"})
        assert r.status_code == 400 and "evil.example" in r.json()["detail"]


def test_a_collision_with_another_writer_is_decided_again_then_409(
    client: TestClient, container: Container, started: str, monkeypatch: Any
) -> None:
    from sqlalchemy.exc import IntegrityError

    store = container.store
    real = store.append
    collisions = [1]

    def collide(*a: Any, **k: Any) -> Any:
        if collisions[0] > 0:
            collisions[0] -= 1
            raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))
        return real(*a, **k)

    monkeypatch.setattr(store, "append", collide)
    assert client.post(f"/v1/sessions/{started}/keepalive").status_code == 200
    collisions[0] = 2  # collides again after deciding anew: a conflict to retry, never 500
    before = head(container)
    r = client.post(f"/v1/sessions/{started}/keepalive")
    assert r.status_code == 409 and r.json()["detail"].endswith("retry")
    assert head(container) == before
