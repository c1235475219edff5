"""A key limited to project a, on every dialect: its lists show a's sessions alone (never
b's, nor count them), and one of b's sessions answers exactly as a missing one does."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import keys
from api.bootstrap import Container
from tests.dialects.conftest import basic
from tests.dialects.test_monitor import CONTEXT, metric

LT = "/compat/lambdatest/automation/api/v1"
TM = "/compat/testmo/api/v1"
CP = "/compat/canopsis/api/v2"
OT = "/compat/opentera/api"
PM = "/compat/monitor/api/v1"
SOURCES = ("lambdatest", "testmo", "canopsis", "opentera", "monitor")


@pytest.fixture
def numbers(client: TestClient) -> dict[str, int]:
    """Per source, a session of project a and one of b (ids `<source>-a`, `<source>-b`):
    user u, participant 1, type 7 (a) or 8 (b), a console log; their numbers."""
    out = {}
    for source in SOURCES:
        for project in ("a", "b"):
            sid = f"{source}-{project}"
            body = {"id": sid, "source": source, "project": project, "user": "u",
                    "participants": ["1"], "type": "7" if project == "a" else "8"}  # fmt: skip
            r = client.post("/v1/sessions", json=body)
            assert r.status_code == 201, r.text
            out[sid] = r.json()["number"]
            client.post(f"/v1/sessions/{sid}/logs/console", content=b"log of " + sid.encode())
    return out


@pytest.fixture
def key_a(container: Container) -> str:
    return keys.create(container.store.write_engine, "reader-a", ["read"], ["a"])


def same_not_found(hidden: Any, missing: Any, hidden_id: str, missing_id: str) -> None:
    """`hidden` (another project's session) answers as `missing` (no such session) does."""
    assert hidden.status_code == missing.status_code == 404, (hidden.text, missing.text)
    assert hidden.text == missing.text.replace(missing_id, hidden_id)


def test_lambdatest(
    client: TestClient, numbers: dict[str, int], key_a: str, container: Container
) -> None:
    # The list is the account's (the key's) LambdaTest sessions, narrowed to the key's project.
    runner = keys.create(container.store.write_engine, "runner-a", ["ingest", "read"], ["a"])
    body = {"id": "runner-a-1", "source": "lambdatest", "project": "a"}
    r = client.post("/v1/sessions", json=body, headers={"Authorization": f"Bearer {runner}"})
    assert r.status_code == 201, r.text
    listed = client.get(f"{LT}/sessions", headers={"Authorization": basic("runner-a", runner)})
    assert [s["session_id"] for s in listed.json()["data"]] == ["runner-a-1"]
    assert listed.json()["meta"]["total"] == 1
    auth = {"Authorization": basic("reader-a", key_a)}
    assert client.get(f"{LT}/sessions", headers=auth).json()["data"] == []  # admin's, not a's
    assert client.get(f"{LT}/sessions/lambdatest-a", headers=auth).status_code == 200
    for tail in ("", "/log/console", "/screenshots"):
        hidden = client.get(f"{LT}/sessions/lambdatest-b{tail}", headers=auth)
        missing = client.get(f"{LT}/sessions/nope{tail}", headers=auth)
        same_not_found(hidden, missing, "lambdatest-b", "nope")


def test_testmo(client: TestClient, numbers: dict[str, int], key_a: str) -> None:
    auth = {"Authorization": f"Bearer {key_a}"}
    listed = client.get(f"{TM}/projects/a/sessions", headers=auth).json()
    assert listed["total"] == len(SOURCES)
    assert client.get(f"{TM}/projects/b/sessions", headers=auth).status_code == 403
    b = numbers["testmo-b"]
    assert client.get(f"{TM}/sessions/{numbers['testmo-a']}", headers=auth).status_code == 200
    hidden = client.get(f"{TM}/sessions/{b}", headers=auth)
    same_not_found(hidden, client.get(f"{TM}/sessions/9999", headers=auth), str(b), "9999")


def test_canopsis(client: TestClient, numbers: dict[str, int], key_a: str) -> None:
    for auth in ({"Authorization": basic("reader-a", key_a)}, {"x-canopsis-authkey": key_a}):
        listed = client.get(f"{CP}/sessions", headers=auth).json()
        assert [s["_id"] for s in listed["sessions"]] == ["canopsis-a"]


def test_opentera(client: TestClient, numbers: dict[str, int], key_a: str) -> None:
    auth = {"Authorization": f"OpenTera {key_a}"}
    a_ids = {f"{s}-a" for s in SOURCES}
    for ns in ("user", "service", "participant"):
        # The user and service namespaces need an id: the sessions participant 1 is in.
        params = {} if ns == "participant" else {"id_participant": 1}
        got = client.get(f"{OT}/{ns}/sessions", params=params, headers=auth).json()
        assert {s["session_uuid"] for s in got} == a_ids, ns
    b, missing = numbers["opentera-b"], 9999
    for params in ({"id_session": b}, {"session_uuid": "opentera-b"}):
        assert client.get(f"{OT}/user/sessions", params=params, headers=auth).json() == []
    assert client.get(f"{OT}/service/sessions", params={"uuid_session": "opentera-b"},
                      headers=auth).json() == []  # fmt: skip
    # Events of a session there is not are none, as OpenTera answers: b's too.
    for params in ({"id_session": b}, {"id_session": missing}):
        assert client.get(f"{OT}/user/sessions/events", params=params, headers=auth).json() == []
    for path in ("/user/assets", "/user/stats"):
        hidden = client.get(f"{OT}{path}", params={"id_session": b}, headers=auth)
        gone = client.get(f"{OT}{path}", params={"id_session": missing}, headers=auth)
        same_not_found(hidden, gone, str(b), str(missing))
    stats = client.get(f"{OT}/user/stats", params={"id_participant": 1}, headers=auth)
    assert stats.json()["sessions_total_count"] == len(SOURCES)
    types = client.get(f"{OT}/user/sessiontypes", headers=auth).json()
    assert [t["id_session_type"] for t in types] == [7]


def test_monitor(client: TestClient, numbers: dict[str, int], key_a: str) -> None:
    context = {**CONTEXT, "h": "c1"}
    assert client.post(f"{PM}/contexts/", json=context).status_code == 201
    for sid in ("monitor-a", "monitor-b"):
        m = metric(session_h=sid, context_h="c1")
        assert client.post(f"{PM}/metrics/", json=m).status_code == 201
    base = f"/compat/monitor/k/{key_a}/api/v1"
    listed = client.get(f"{base}/sessions/").json()
    assert [s["session_h"] for s in listed["sessions"]] == ["monitor-a"]
    assert client.get(f"{base}/sessions/count").json() == {"count": 1}
    assert client.get(f"{base}/sessions/monitor-").json()["sessions"] == [listed["sessions"][0]]
    assert client.get(f"{base}/sessions/monitor-b").status_code == 204
    # b's session's metrics answer as those of a session there is not: nothing (204, 0).
    for tail in ("metrics", "metrics/", "metrics/count", "metrics/count/"):
        hidden = client.get(f"{base}/sessions/monitor-b/{tail}")
        missing = client.get(f"{base}/sessions/nope/{tail}")
        assert (hidden.status_code, hidden.content) == (missing.status_code, missing.content)
    assert client.get(f"{base}/sessions/monitor-b/metrics/count").json() == {"count": 0}
    assert len(client.get(f"{base}/sessions/monitor-a/metrics").json()["metrics"]) == 1
    # Contexts belong to no project, and every session's metrics (all, or a context's)
    # cannot be narrowed to a's: they are refused.
    for tail in ("contexts/", "metrics/", "metrics/count", "contexts/c1/metrics"):
        assert client.get(f"{base}/{tail}").status_code == 403, tail
