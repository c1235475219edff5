"""Keys bound to an OpenTera device or participant: they use their own namespace only,
widen nothing elsewhere (the native API, the other dialects, projects), and the ways in this
binding opened or changed take hostile input with a 4xx, appending nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import keys
from api.bootstrap import Container
from domain import commands as c
from tests.dialects.conftest import basic

BASE = "/compat/opentera/api"
NEW = {
    "id_session": 0,
    "session_name": "n",
    "id_session_type": 3,
    "session_start_datetime": "2023-11-14T22:13:20+00:00",
    "session_participants": ["p"],
}


def make(container: Container, name: str, scopes: list[str], **kw: Any) -> str:
    return keys.create(container.store.write_engine, name, scopes, **kw)


def seed(container: Container, *cmds: c.Command) -> None:
    for out in container.ledger.submit(list(cmds)).result(10):
        assert not isinstance(out, Exception), out
    assert container.runner.wait_for(container.ledger.last_position, 10)


def head(container: Container) -> int:
    return container.store.head_digest()[0]


def ot(token: str) -> dict[str, str]:
    return {"Authorization": f"OpenTera {token}"}


def test_a_bound_key_uses_its_own_namespace_only(client: TestClient, container: Container) -> None:
    dev = make(container, "dev", ["ingest", "read"], binding="opentera-device:5")
    part = make(container, "part", ["ingest", "read"], binding="opentera-participant:7")
    before = head(container)
    for token, paths in (
        (dev, ["/user/sessions", "/service/sessions", "/participant/sessions"]),
        (part, ["/user/sessions", "/service/sessions", "/device/sessions"]),
    ):
        for path in paths:
            got = client.get(BASE + path, params={"id_session": 1}, headers=ot(token))
            assert got.status_code == 403, (path, got.text)
            posted = client.post(BASE + path, json={"session": NEW}, headers=ot(token))
            assert posted.status_code == 403, (path, posted.text)
        for path in ("/user/sessiontypes", "/user/stats", "/user/sessions/manager"):
            assert client.get(BASE + path, headers=ot(token)).status_code in (403, 405)
    assert head(container) == before


def test_a_bound_key_widens_nothing_on_other_routes(
    client: TestClient, container: Container
) -> None:
    """A bound key answers everywhere else exactly as an unbound key of the same scopes."""
    seed(container, c.StartSession(session_id="s1", source="lambdatest", by="device:5"))
    for scopes in (["ingest"], ["ingest", "read"]):
        bound = make(container, f"b-{len(scopes)}", scopes, binding="opentera-device:5")
        plain = make(container, f"p-{len(scopes)}", scopes)
        for path in ("/v1/sessions", "/v1/sessions/s1", "/v1/events", "/v1/keys", "/v1/stats"):
            want = client.get(path, headers={"Authorization": f"Bearer {plain}"})
            got = client.get(path, headers={"Authorization": f"Bearer {bound}"})
            assert got.status_code == want.status_code, path
            assert got.content == want.content, path
        lt = "/compat/lambdatest/automation/api/v1/sessions"
        got = client.get(lt, headers={"Authorization": basic(f"b-{len(scopes)}", bound)})
        want = client.get(lt, headers={"Authorization": basic(f"p-{len(scopes)}", plain)})
        assert got.status_code == want.status_code
        # The device's own sessions are not its key's on LambdaTest: that list is the key's.
        assert got.status_code != 200 or got.json()["data"] == []
    # A bound key is no admin: it cannot make keys, whatever it is bound to.
    r = client.post("/v1/keys", json={"name": "x", "scopes": ["admin"]},
                    headers={"Authorization": f"Bearer {bound}"})  # fmt: skip
    assert r.status_code == 403


def test_a_bound_key_stays_within_its_projects(client: TestClient, container: Container) -> None:
    seed(
        container,
        c.StartSession(session_id="in-a", project="a", by="participant:7", source="opentera"),
        c.StartSession(session_id="in-b", project="b", by="participant:7", source="opentera"),
        c.StartSession(session_id="dev-b", project="b", by="device:5", source="opentera"),
    )
    part = make(container, "pa", ["ingest", "read"], projects=["a"],
                binding="opentera-participant:7")  # fmt: skip
    dev = make(container, "da", ["ingest", "read"], projects=["a"], binding="opentera-device:5")
    got = client.get(f"{BASE}/participant/sessions", headers=ot(part))
    assert [s["session_uuid"] for s in got.json()] == ["in-a"]
    number = client.get("/v1/sessions/dev-b").json()["number"]
    before = head(container)
    body = {"session": {"id_session": number, "id_session_type": 3, "session_name": "x"}}
    r = client.post(f"{BASE}/device/sessions", json=body, headers=ot(dev))
    assert r.status_code in (403, 404), r.text
    assert head(container) == before


def test_a_participant_key_reads_the_sessions_it_is_in_or_created(
    client: TestClient, container: Container
) -> None:
    seed(
        container,
        c.StartSession(session_id="with-7", participants=["7"], source="opentera"),
        c.StartSession(session_id="by-7", by="participant:7", source="opentera"),
        c.StartSession(session_id="with-70", participants=["70"], source="opentera"),
        c.StartSession(session_id="by-device-7", by="device:7", source="opentera"),
    )
    part = make(container, "p7", ["read"], binding="opentera-participant:7")
    got = client.get(f"{BASE}/participant/sessions", headers=ot(part)).json()
    assert sorted(s["session_uuid"] for s in got) == ["by-7", "with-7"]
    page = client.get(f"{BASE}/participant/sessions", params={"limit": 1, "offset": 1},
                      headers=ot(part)).json()  # fmt: skip
    assert len(page) == 1 and page[0]["session_uuid"] in ("by-7", "with-7")
    for uuid in ("with-70", "by-device-7", "nope"):
        one = client.get(f"{BASE}/participant/sessions", params={"session_uuid": uuid},
                         headers=ot(part))  # fmt: skip
        assert one.status_code == 200 and one.json() == [], uuid


HOSTILE_SESSIONS: list[Any] = [
    {"session": {**NEW, "id_session": -1}},
    {"session": {**NEW, "id_session": 2**70}},
    {"session": {**NEW, "id_session": "abc"}},
    {"session": {**NEW, "id_session": 1.5}},
    {"session": {**NEW, "id_session": None}},
    {"session": {**NEW, "id_session_type": "x"}},
    {"session": {**NEW, "session_participants": "p"}},
    {"session": {**NEW, "session_participants": [1, None]}},
    {"session": {**NEW, "session_participants": ["x" * 100_000]}},
    {"session": {**NEW, "session_participants": [f"p{i}" for i in range(5000)]}},
    {"session": {**NEW, "session_participants": ["bad\x00id"]}},
    {"session": {**NEW, "session_participants_uuids": "p"}},
    {"session": {**NEW, "session_users_uuids": [{"a": 1}]}},
    {"session": {**NEW, "session_devices_uuids": [f"d{i}" for i in range(5000)]}},
    {"session": {**NEW, "session_duration": -1}},
    {"session": {**NEW, "session_duration": 2**40}},
    {"session": {**NEW, "session_duration": "1h"}},
    {"session": {**NEW, "session_status": 9}},
    {"session": {**NEW, "session_start_datetime": "yesterday"}},
    {"session": {**NEW, "session_name": "n" * 100_000}},
    {"session": []},
    {"session": None},
    {"session": "x"},
    [],
    "session",
]


@pytest.mark.parametrize("ns", ["user", "service", "device", "participant"])
def test_hostile_session_posts_get_a_4xx_and_append_nothing(
    client: TestClient, container: Container, ns: str
) -> None:
    binding = {"device": "opentera-device:5", "participant": "opentera-participant:7"}
    token = make(container, "k", ["ingest", "read"], binding=binding.get(ns))
    before = head(container)
    path = f"{BASE}/{ns}/sessions"
    for body in HOSTILE_SESSIONS:
        r = client.post(path, json=body, headers=ot(token))
        assert 400 <= r.status_code < 500, (body if len(str(body)) < 300 else "big", r.text)
        assert r.status_code != 422  # OpenTera answers bad input with 400
    for raw in (b"{", b"\xff\xfe", b'{"session": {"id_session": 0', b"null", b"x" * (2 << 20)):
        r = client.post(
            path, content=raw, headers={**ot(token), "content-type": "application/json"}
        )
        assert r.status_code in (400, 413), (raw[:20], r.status_code, r.text[:200])
    odd: list[dict[str, Any]] = [{"id_session": "x"}, {"id_session": 2**70}, {"limit": -1},
                                 {"session_uuid": "\x00"}, {"offset": "a"}, {"status": 99},
                                 {"start_date": "never"}]  # fmt: skip
    for params in odd:
        r = client.get(path, params=params, headers=ot(token))
        assert r.status_code < 500 and r.status_code != 422, (params, r.text)
    for params in ({"id": "x"}, {"id": 2**70}, {"id": -5}, {}):
        r = client.delete(path, params=params, headers=ot(token))
        assert 400 <= r.status_code < 500, (params, r.text)
    assert head(container) == before
