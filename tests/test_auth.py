"""API keys at the gate: 401 without a valid key on every surface (the lean lane included),
403 without the scope, project-limited keys, anonymous reads, and the key cache's bound."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import keys
from api.app import create_app
from api.bootstrap import Container, bootstrap
from persistence.settings import Settings

LT = "/compat/lambdatest/automation/api/v1"
TM = "/compat/testmo/api/v1"
CP = "/compat/canopsis/api/v2"
OT = "/compat/opentera/api"
PM = "/compat/monitor/api/v1"
NO_KEY = {"Authorization": ""}  # overrides the client's default admin key: no credential


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def basic(name: str, key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{key}".encode()).decode()}


def new_key(container: Container, name: str, *scopes: str, projects: Any = None) -> str:
    return keys.create(container.store.write_engine, name, scopes, projects)


def log_size(client: TestClient) -> int:
    return len(client.get("/v1/events", params={"limit": 10000}).json()["events"])


@pytest.fixture
def started(client: TestClient) -> TestClient:
    for sid, project in (("w1", "web"), ("m1", "mobile")):
        assert client.post("/v1/sessions", json={"id": sid, "project": project}).status_code == 201
    return client


# -- 401 ----------------------------------------------------------------------------------------

LANE = [f"/v1/sessions/w1/{c}" for c in ("keepalive", "hide", "stop")]


@pytest.mark.parametrize(
    "headers",
    [NO_KEY, bearer("sl_not-a-key"), {"Authorization": "Bearer"}, {"Authorization": "Token x"}],
    ids=["none", "unknown", "empty", "other-scheme"],
)
def test_native_and_lean_lane_refuse_without_a_valid_key(started: TestClient, headers) -> None:
    before = log_size(started)
    for method, path in [("POST", p) for p in LANE] + [
        ("POST", "/v1/sessions/w1/status"),
        ("POST", "/v1/sessions"),
        ("POST", "/v1/events:batch"),
        ("GET", "/v1/sessions"),
        ("GET", "/v1/sessions/w1"),
        ("GET", "/v1/events"),
        ("PATCH", "/v1/sessions/w1"),
    ]:
        r = started.request(method, path, json={"status": "failed"}, headers=headers)
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["status"] == 401
    assert log_size(started) == before


def test_a_revoked_key_is_refused(container: Container) -> None:
    # A cache refreshed on every request: the revocation is seen at once (see the ring's test).
    app = create_app(container=container)
    with TestClient(app) as cl:
        assert app.gate.ring is not None
        app.gate.ring.refresh = 0
        key = new_key(container, "ci", "ingest", "read")
        assert cl.post("/v1/sessions", json={"id": "r1"}, headers=bearer(key)).status_code == 201
        keys.revoke(container.store.write_engine, "ci")
        r = cl.post("/v1/sessions/r1/keepalive", json={}, headers=bearer(key))
        assert r.status_code == 401
        assert cl.get("/v1/sessions", headers=bearer(key)).status_code == 401
        r = cl.get(f"{TM}/sessions/1", headers=bearer(key))  # Testmo: 401 in its own shape
        assert r.status_code == 401 and set(r.json()) == {"message", "errors"}


def test_the_key_cache_sees_a_revocation_within_its_refresh_bound(container: Container) -> None:
    now = [0.0]
    ring = keys.KeyRing(container.store.read_engine, refresh=5.0, clock=lambda: now[0])
    keys.create_schema(container.store.write_engine)
    key = new_key(container, "elsewhere", "read")
    assert ring.lookup(key) is not None  # a new key works on its first request
    keys.revoke(container.store.write_engine, "elsewhere")  # as another process would
    now[0] = 4.9
    assert ring.lookup(key) is not None  # still cached: within the bound
    now[0] = 5.1
    assert ring.lookup(key) is None
    assert ring.lookup("sl_never-issued") is None


DIALECT_REQUESTS = [
    ("GET", f"{LT}/sessions", {}, "Basic"),
    ("PUT", f"{LT}/sessions/w1/stop", {}, "Basic"),
    ("GET", f"{TM}/projects/web/sessions", {}, "Bearer"),
    ("POST", f"{CP}/sessionstart", {}, "Basic"),
    ("POST", f"{CP}/keepalive", {"json": {"path": "/x"}}, "Basic"),
    ("GET", f"{OT}/user/sessiontypes", {}, "Bearer"),
    ("POST", f"{OT}/user/sessions", {"json": {"session": {"id_session": 0}}}, "Bearer"),
    ("GET", f"{PM}/sessions/", {}, "Bearer"),
    ("POST", f"{PM}/contexts/", {"json": {}}, "Bearer"),
]


@pytest.mark.parametrize(("method", "path", "kw", "challenge"), DIALECT_REQUESTS)
def test_every_dialect_refuses_without_a_key_in_its_own_error_shape(
    started: TestClient, method: str, path: str, kw: dict[str, Any], challenge: str
) -> None:
    before = log_size(started)
    r = started.request(method, path, headers=NO_KEY, **kw)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith(challenge)
    body = r.json()
    if path.startswith(LT):  # LambdaTest's AccessDenied: a JSON string
        assert body == "HTTP Basic: Access denied."
    elif path.startswith(CP):
        assert "description" in body
    elif path.startswith(TM):
        assert "message" in body
    assert log_size(started) == before


def test_each_dialect_takes_its_own_credential_form(
    started: TestClient, container: Container
) -> None:
    key = new_key(container, "ci", "ingest", "read")
    assert started.get(f"{LT}/sessions", headers=basic("ci", key)).status_code == 200
    assert started.get(f"{LT}/sessions", headers=basic("someone", key)).status_code == 401
    assert started.get(f"{LT}/sessions", headers=basic("ci", "")).status_code == 401
    assert started.get(f"{TM}/projects/web/sessions", headers=bearer(key)).status_code == 200
    r = started.get(f"{OT}/user/sessiontypes", headers={"Authorization": f"OpenTera {key}"})
    assert r.status_code == 200
    r = started.get(f"{OT}/user/sessiontypes", params={"token": key}, headers=NO_KEY)
    assert r.status_code == 200
    r = started.get(f"{OT}/user/sessiontypes", params={"token": "sl_bad"}, headers=NO_KEY)
    assert r.status_code == 401
    r = started.get(f"/compat/monitor/k/{key}/api/v1/sessions/", headers=NO_KEY)
    assert (r.status_code, r.content) == (204, b"")  # an empty list, as the reference answers
    r = started.get("/compat/monitor/k/sl_bad/api/v1/sessions/", headers=NO_KEY)
    assert r.status_code == 401
    # a Basic credential on the native API or an OpenTera token elsewhere is not accepted
    assert started.get("/v1/sessions", headers=basic("ci", key)).status_code == 401
    assert started.get("/v1/sessions", params={"token": key}, headers=NO_KEY).status_code == 401


def test_open_paths_need_no_key(client: TestClient) -> None:
    for path in ("/healthz", "/openapi.json", "/docs", "/redoc"):
        assert client.get(path, headers=NO_KEY).status_code == 200, path


# -- 403 ----------------------------------------------------------------------------------------


def test_a_read_key_cannot_command_and_an_ingest_key_cannot_audit(
    started: TestClient, container: Container
) -> None:
    reader = bearer(new_key(container, "reader", "read"))
    ingester = bearer(new_key(container, "ingester", "ingest"))
    auditor = bearer(new_key(container, "auditor", "audit"))
    before = log_size(started)
    for path in [*LANE, "/v1/sessions"]:
        r = started.post(path, json={"id": "n1"}, headers=reader)
        assert r.status_code == 403, path
        assert r.headers["content-type"] == "application/problem+json"
        assert "ingest" in r.json()["detail"]
    assert started.put(f"{LT}/sessions/w1/stop", headers=reader).status_code == 403
    assert started.post("/v1/sessions/w1/keepalive", headers=auditor).status_code == 403
    assert log_size(started) == before
    for path in ("/v1/events", "/v1/sessions/w1/events", "/v1/ledger/digest"):
        assert started.get(path, headers=ingester).status_code == 403, path
        assert started.get(path, headers=reader).status_code == 403, path
        assert started.get(path, headers=auditor).status_code == 200, path
    assert started.get("/v1/sessions", headers=ingester).status_code == 403
    assert started.get("/v1/sessions", headers=reader).json()["total"] == 2
    assert started.post("/v1/sessions/w1/keepalive", headers=ingester).status_code == 200


# -- project-limited keys -----------------------------------------------------------------------


@pytest.fixture
def web(started: TestClient, container: Container) -> dict[str, str]:
    """A key that may ingest, read and audit only project web's sessions."""
    return bearer(new_key(container, "web-ci", "ingest", "read", "audit", projects=["web"]))


def test_a_project_key_cannot_act_on_another_projects_sessions(
    started: TestClient, web: dict[str, str]
) -> None:
    before = log_size(started)
    refused = [
        started.post("/v1/sessions", json={"id": "x", "project": "mobile"}, headers=web),
        started.post("/v1/sessions", json={"id": "y"}, headers=web),  # no project at all
        started.post("/v1/sessions/m1/keepalive", json={}, headers=web),
        started.post("/v1/sessions/m1/hide", json={}, headers=web),
        started.post("/v1/sessions/m1/stop", headers=web),
        started.patch("/v1/sessions/m1", json={"name": "mine now"}, headers=web),
        started.patch("/v1/sessions/w1", json={"project": "mobile"}, headers=web),
        started.put(f"{LT}/sessions/m1/stop", headers=web),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused), [r.text for r in refused]
    batch = '{"command":"keepalive","session_id":"m1"}\n{"command":"keepalive","session_id":"w1"}'
    r = started.post("/v1/events:batch", content=batch, headers=web)
    assert r.json()["accepted"] == 1 and len(r.json()["rejected"]) == 1, r.text
    assert log_size(started) == before + 1  # only w1's keepalive
    ok = started.post("/v1/sessions", json={"id": "w2", "project": "web"}, headers=web)
    assert ok.status_code == 201
    assert started.post("/v1/sessions/w1/keepalive", json={}, headers=web).status_code == 200


def test_a_project_key_sees_only_its_projects_sessions(
    started: TestClient, web: dict[str, str]
) -> None:
    r = started.get("/v1/sessions", headers=web)
    assert [s["id"] for s in r.json()["items"]] == ["w1"] and r.json()["total"] == 1
    assert started.get("/v1/sessions/count", headers=web).json()["total"] == 1
    stats = started.get("/v1/stats", params={"by": "project"}, headers=web).json()
    assert {g["key"]["project"] for g in stats["groups"]} == {"web"}, stats
    for params in ({"project": "mobile"}, {"project": ["web", "mobile"]}):
        assert started.get("/v1/sessions", params=params, headers=web).status_code == 403
        assert started.get("/v1/stats", params=params, headers=web).status_code == 403
    # Another project's session answers exactly as a session that does not exist.
    for path in ("/v1/sessions/{}", "/v1/sessions/{}/events", "/v1/sessions/{}/logs/console"):
        hidden = started.get(path.format("m1"), headers=web)
        missing = started.get(path.format("m1-nope"), headers=web)
        assert hidden.status_code == missing.status_code == 404, path
        assert hidden.json()["detail"] == missing.json()["detail"].replace("m1-nope", "m1")
    assert started.get("/v1/sessions/w1", headers=web).status_code == 200
    assert started.get("/v1/sessions/w1/events", headers=web).status_code == 200
    assert started.get("/v1/events", headers=web).status_code == 403  # the global log


def test_a_key_of_several_projects_names_one_for_lists(
    started: TestClient, container: Container
) -> None:
    both = bearer(new_key(container, "both", "read", projects=["web", "mobile"]))
    assert started.get("/v1/sessions", headers=both).status_code == 403
    r = started.get("/v1/sessions", params={"project": "mobile"}, headers=both)
    assert [s["id"] for s in r.json()["items"]] == ["m1"]
    stats = started.get("/v1/stats", params={"by": "project"}, headers=both).json()
    assert {g["key"]["project"] for g in stats["groups"]} == {"web", "mobile"}


def test_dialect_reads_of_a_project_key(started: TestClient, container: Container) -> None:
    key = new_key(container, "web-ro", "read", projects=["web"])
    lt = basic("web-ro", key)
    assert started.get(f"{LT}/sessions/w1", headers=lt).status_code == 200
    hidden = started.get(f"{LT}/sessions/m1", headers=lt)
    assert hidden.status_code == 404  # as a missing one: LambdaTest's SessionNotFound
    assert hidden.json()["message"] == (
        "Either resource not found or already deleted: Session m1 not found"
    )
    assert started.get(f"{LT}/sessions/m1/log/command", headers=lt).status_code == 404
    # The list holds the key's own LambdaTest sessions (w1 is native); its narrowing to the
    # key's project is tested in tests/dialects/test_project_keys.py.
    listed = started.get(f"{LT}/sessions", headers=lt).json()
    assert listed["data"] == [] and listed["meta"]["total"] == 0
    tm = bearer(key)
    assert started.get(f"{TM}/projects/web/sessions", headers=tm).json()["total"] == 1
    assert started.get(f"{TM}/projects/mobile/sessions", headers=tm).status_code == 403
    assert started.get(f"{TM}/sessions/1", headers=tm).status_code == 200  # w1 is number 1
    assert started.get(f"{TM}/sessions/2", headers=tm).status_code == 404  # m1
    for path in (f"{OT}/user/sessiontypes", f"{CP}/sessions"):
        assert started.get(path, headers=tm).status_code == 200, path
    assert started.get(f"{PM}/sessions/", headers=tm).status_code == 204  # none: empty
    # Contexts belong to no project, the global log to every project: neither can be narrowed.
    for path in (f"{PM}/contexts/", f"{PM}/contexts/count/", "/v1/events", "/v1/ledger/digest"):
        assert started.get(path, headers=tm).status_code == 403, path


def test_a_key_of_several_projects_cannot_list_dialect_sessions(
    started: TestClient, container: Container
) -> None:
    """The dialects' lists have no project parameter to name one of the key's projects."""
    both = bearer(new_key(container, "both-ro", "read", projects=["web", "mobile"]))
    for path in (f"{LT}/sessions", f"{CP}/sessions", f"{PM}/sessions/", f"{OT}/user/stats"):
        params = {"id_participant": 1} if path.endswith("stats") else {}
        assert started.get(path, params=params, headers=both).status_code == 403, path
    assert started.get(f"{TM}/projects/mobile/sessions", headers=both).json()["total"] == 1
    assert started.get(f"{OT}/user/sessions", params={"id_session": 2}, headers=both).json()


def test_stats_of_a_project_key_count_only_its_active_sessions(
    started: TestClient, container: Container
) -> None:
    web = bearer(new_key(container, "web-stats", "read", projects=["web"]))
    assert started.get("/v1/stats").json()["active_now"] == 2
    assert started.get("/v1/stats", headers=web).json()["active_now"] == 1
    assert started.get("/v1/stats", params={"project": "mobile"}).json()["active_now"] == 1


# -- anonymous reads -----------------------------------------------------------------------------


def test_anonymous_read_when_allowed(settings: Settings, clock, admin_key: str) -> None:
    container = bootstrap(replace(settings, allow_anonymous="read"), clock=clock)
    keys.create_schema(container.store.write_engine)
    admin = bearer(keys.create(container.store.write_engine, "root", ["admin"]))
    try:
        with TestClient(create_app(container=container)) as cl:
            assert cl.post("/v1/sessions", json={"id": "a1"}, headers=admin).status_code == 201
            assert cl.get("/v1/sessions").json()["total"] == 1
            assert cl.get("/v1/sessions/a1").status_code == 200
            for r in (
                cl.post("/v1/sessions/a1/keepalive", json={}),
                cl.post("/v1/sessions", json={"id": "a2"}),
                cl.get("/v1/events"),
            ):
                assert r.status_code == 401 and "www-authenticate" in r.headers
            assert cl.get("/v1/sessions", headers=bearer("sl_bad")).status_code == 401
            # Testmo's API wants a token on every request: no anonymous reads there
            for headers in ({}, bearer("sl_bad")):
                r = cl.get(f"{TM}/projects/web/sessions", headers=headers)
                assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
                assert set(r.json()) == {"message", "errors"} and r.json()["message"]
            # Nor do LambdaTest, Canopsis and OpenTera; pytest-monitor's server has no keys
            for path in (f"{LT}/sessions", f"{CP}/sessions", f"{OT}/user/sessions?id_session=1"):
                assert cl.get(path).status_code == 401, path
            assert cl.get(f"{PM}/sessions/count").status_code == 200
    finally:
        container.close()


def test_no_anonymous_access_by_default(client: TestClient) -> None:
    assert Settings().allow_anonymous == ""
    assert client.get("/v1/sessions", headers=NO_KEY).status_code == 401
    with pytest.raises(ValueError):
        Settings(allow_anonymous="ingest")


def test_keys_on_postgresql_are_shared_by_every_process(pg: Any) -> None:
    """Two processes' key rings on one PostgreSQL store: a key made by one works in the
    other at once; a revocation is seen after the other's refresh."""
    from persistence.schema import make_engine

    url = pg.create_database("keys")
    mine, theirs = make_engine(url), make_engine(url)
    try:
        keys.create_schema(mine)
        keys.create_schema(theirs)  # idempotent, as each process does at start
        now = [0.0]
        ring = keys.KeyRing(theirs, refresh=5.0, clock=lambda: now[0])
        secret = keys.create(mine, "ci", ["ingest"], ["web"])
        who = ring.lookup(secret)
        assert who is not None and who.projects == frozenset({"web"}) and who.allows("ingest")
        assert not who.allows("read")
        keys.revoke(mine, "ci")
        now[0] = 6.0
        assert ring.lookup(secret) is None
        assert [k.name for k in keys.list_keys(theirs)] == ["ci"]
    finally:
        mine.dispose()
        theirs.dispose()
