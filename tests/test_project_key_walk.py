"""A project-limited key walks every operation of the OpenAPI document, its parameters
filled with another project's session (its id, number, hash, name, user), and never gets
that session back: no answer names it, counts it, streams its events or serves its logs."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api import keys
from api.bootstrap import Container

# The other project's session, and everything that could identify it in an answer.
SECRET = {"id": "hidden-7f3a", "project": "other", "name": "hidden-name", "user": "hidden-user"}
NEEDLES = ("hidden-7f3a", "hidden-name", "hidden-user", "hidden-log")


@pytest.fixture
def seeded(client: TestClient) -> dict[str, Any]:
    r = client.post("/v1/sessions", json={**SECRET, "tags": {"t": "hidden-tag"}})
    assert r.status_code == 201
    number = r.json()["number"]
    sid = SECRET["id"]
    client.post(f"/v1/sessions/{sid}/keepalive", json={"path": "/p"})
    client.post(f"/v1/sessions/{sid}/logs/console", content=b"hidden-log")
    client.post(f"/v1/sessions/{sid}/results", json={"status": "passed", "test": "t"})
    client.post(f"/v1/sessions/{sid}/annotations", json={"id": "a1", "text": "hidden-name"})
    assert client.post("/v1/sessions", json={"id": "mine-1", "project": "mine"}).is_success
    return {
        "session_id": sid,
        "id": number,
        "id_session": number,
        "session_uuid": sid,
        "uuid_session": sid,
        "session_h": sid,
        "prefix": sid[:6],
        "h": sid,
        "project_id": "other",
        "project": "other",
        "username": SECRET["user"],
        "user": SECRET["user"],
        "kind": "console",
        "index": 0,
        "id_session_event": number,
    }


def fill(path: str, values: dict[str, Any]) -> str:
    return re.sub(r"{(\w+)}", lambda m: str(values.get(m.group(1), values["session_id"])), path)


# Dialect reads that narrow themselves to the key's project: a key of one project gets them.
NARROWED = {
    "/compat/lambdatest/automation/api/v1/sessions",
    "/compat/canopsis/api/v2/sessions",
    "/compat/monitor/api/v1/sessions/",
    "/compat/monitor/api/v1/sessions/count",
    "/compat/opentera/api/participant/sessions",
    "/compat/opentera/api/user/sessiontypes",
}


def walk(client: TestClient, auth: dict[str, str], seeded: dict[str, Any]) -> dict[str, int]:
    """GET every operation with `auth` (no query, then the seeded one); asserts that no
    answer names the hidden session; returns each path's status without a query."""
    spec = client.get("/openapi.json").json()
    statuses = {}
    for path, ops in spec["paths"].items():
        if "get" not in ops:
            continue
        params = [p["name"] for p in ops["get"].get("parameters", []) if p["in"] == "query"]
        query = {p: seeded[p] for p in params if p in seeded}
        for q in ({}, query):
            r = client.get(fill(path, seeded), params=q, headers=auth)
            assert r.status_code < 500, (path, q, r.text)
            statuses.setdefault(path, r.status_code)
            if r.status_code >= 300:
                continue  # a refusal may echo what was asked; it gives nothing back
            body = r.content
            for needle in NEEDLES:
                assert needle.encode() not in body, (path, q, r.status_code, body[:300])
    assert len(statuses) > 20
    return statuses


@pytest.mark.parametrize("projects", [["mine"], ["mine", "third"]], ids=["one", "several"])
def test_a_project_key_never_gets_another_projects_session(
    client: TestClient, container: Container, seeded: dict[str, Any], projects: list[str]
) -> None:
    key = keys.create(container.store.write_engine, "limited", ["read", "audit"], projects)
    auth = {"Authorization": f"Bearer {key}", "Idempotency-Key": "none"}
    statuses = walk(client, auth, seeded)
    if len(projects) > 1:
        return  # lists without a way to name one of the key's projects answer 403
    # pytest-monitor answers an empty list 204, as its reference server does.
    empty = {"/compat/monitor/api/v1/sessions/": 204}
    assert {p for p in NARROWED if statuses[p] != empty.get(p, 200)} == set()
    lt = client.get("/compat/lambdatest/automation/api/v1/sessions", headers=auth).json()
    assert lt["data"] == []  # mine-1 is native: the LambdaTest list holds its own sessions
    # Counts and stats count the key's project alone.
    count = client.get("/v1/sessions/count", headers=auth).json()
    assert count["total"] == 1
    stats = client.get("/v1/stats", headers=auth).json()
    assert orjson.dumps(stats).count(b'"count":1') >= 1
    assert b'"count":2' not in orjson.dumps(stats) and stats["active_now"] == 1
