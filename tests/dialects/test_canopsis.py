"""The Canopsis dialect: auth, one session per user, keepalive/hide, visible time, expiry, list."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import keys
from api.bootstrap import Container
from api.expiry import ExpirySweeper
from persistence.settings import Settings
from tests.dialects.conftest import NONE

CP = "/compat/canopsis/api/v2"
TIMEOUT = 60.0
VIEW_A = (
    "[/view/da7ac9b9-db1c-4435-a1f2-edb4d6be4db8,view-tab_edd5855b-54f1-4c51-9550-d88c2da60768]"
)
VIEW_B = "[/view/0b7e7c6c-1111-4c3d-9a3e-2f4d0d7b5a10,view-tab_4c1d]"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path}/ledger.db",
        blob_dir=tmp_path / "blobs",
        expiry_interval=3600,  # the test sweeps by hand
        session_timeout=TIMEOUT,
    )


# Each Canopsis user sends Basic `user:key`, with a key named after them (made on first use).
KEYS: dict[str, str] = {}
LEDGER: list[Container] = []


@pytest.fixture(autouse=True)
def _ledger(container: Container) -> Iterator[None]:
    LEDGER[:] = [container]
    KEYS.clear()
    yield
    LEDGER.clear()


def key_for(user: str) -> str:
    if user not in KEYS:
        KEYS[user] = keys.create(LEDGER[0].store.write_engine, user, ["ingest", "read"])
    return KEYS[user]


def basic(user: str, key: str | None = None) -> dict[str, str]:
    key = key_for(user) if key is None else key
    token = base64.b64encode(f"{user}:{key}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def sweep(container: Container) -> int:
    """One expiry pass, once the views hold every acknowledged write (the sweeper reads them)."""
    container.runner.wait_for(container.ledger.last_position, 5)
    return ExpirySweeper(container).sweep()


def log_head(client: TestClient) -> int:
    return int(client.get("/v1/events", params={"limit": 10000}).json()["next_after"])


def sessions(client: TestClient, **params: Any) -> dict[str, Any]:
    r = client.get(f"{CP}/sessions", params=params, headers=basic("alice"))
    assert r.status_code == 200, r.text
    return r.json()


def only_session(client: TestClient, user: str = "alice") -> dict[str, Any]:
    data = sessions(client, **{"usernames[]": user})["data"]
    assert len(data) == 1, data
    return data[0]


def test_sessionstart_answers_as_the_seed_and_starts_a_session_for_the_caller(
    client: TestClient,
) -> None:
    r = client.post(f"{CP}/sessionstart", headers=basic("alice"))
    assert r.status_code == 200
    assert r.json() == {"description": "Session Start"}
    native = client.get("/v1/sessions", params={"source": "canopsis"}).json()["items"]
    assert [(s["user"], s["active"], s["source"]) for s in native] == [("alice", True, "canopsis")]


def test_a_second_sessionstart_reuses_the_active_session(client: TestClient) -> None:
    client.post(f"{CP}/sessionstart", headers=basic("alice"))
    head = log_head(client)
    assert client.post(f"{CP}/sessionstart", headers=basic("alice")).json() == {
        "description": "Session Start"
    }
    assert log_head(client) == head  # nothing appended: the same session goes on
    client.post(f"{CP}/sessionstart", headers=basic("bob"))
    assert sessions(client)["total"] == 2  # one per user


def test_no_credentials_or_unknown_key_is_401_and_appends_nothing(client: TestClient) -> None:
    head = log_head(client)
    alice = key_for("alice")
    for headers in (
        NONE,
        {"x-canopsis-authkey": "nope"},
        {"Authorization": "Basic !!"},
        basic("alice", ""),  # a user name alone proves nothing
        basic("alice", "sl_wrong"),
        basic("bob", alice),  # a key works only under its own name
    ):
        r = client.post(f"{CP}/sessionstart", headers=headers)
        assert r.status_code == 401, headers
        assert "description" in r.json()
        assert r.headers["www-authenticate"].startswith("Basic")
    assert client.get(f"{CP}/sessions", headers=NONE).status_code == 401
    assert log_head(client) == head


def test_authkey_header_and_query_map_to_their_user(client: TestClient) -> None:
    carol = key_for("carol")
    assert client.post(f"{CP}/sessionstart", headers={"x-canopsis-authkey": carol}).is_success
    r = client.post(f"{CP}/keepalive", params={"authkey": carol}, json={"path": VIEW_A})
    assert r.status_code == 200, r.text
    assert only_session(client, "carol")["username"] == "carol"


def test_keepalive_answer_has_description_time_visible_paths(client: TestClient, clock) -> None:
    client.post(f"{CP}/sessionstart", headers=basic("alice"))
    r = client.post(
        f"{CP}/keepalive", json={"visible": True, "path": VIEW_A}, headers=basic("alice")
    )
    assert r.status_code == 200
    body = r.json()
    assert body == {
        "description": "Session keepalive",
        "time": body["time"],
        "visible": True,
        "paths": VIEW_A,
    }
    assert abs(body["time"] - clock.now) < 2
    r = client.post(f"{CP}/session-hide", json={"path": VIEW_A}, headers=basic("alice"))
    assert r.status_code == 200


def test_visible_time_per_path_is_counted_as_canopsis_does(client: TestClient, clock) -> None:
    client.post(f"{CP}/sessionstart", headers=basic("alice"))

    def ka(path: str, visible: bool = True) -> None:
        r = client.post(
            f"{CP}/keepalive", json={"visible": visible, "path": path}, headers=basic("alice")
        )
        assert r.status_code == 200, r.text

    ka(VIEW_A)
    clock.advance(30)
    ka(VIEW_B)  # A was visible 30 s
    clock.advance(20)
    client.post(f"{CP}/session-hide", json={"path": VIEW_B}, headers=basic("alice"))  # B: 20 s
    clock.advance(40)  # hidden: counts for nobody
    ka(VIEW_A, visible=False)
    clock.advance(15)
    ka(VIEW_A)  # a hidden keepalive credits nothing either
    clock.advance(10)
    ka(VIEW_A)  # A: +10 s
    s = only_session(client)
    assert s["paths"] == {VIEW_A: pytest.approx(40, abs=0.05), VIEW_B: pytest.approx(20, abs=0.05)}
    assert s["visible_duration"] == pytest.approx(60, abs=0.1)
    assert s["active"] is True
    assert s["duration"] == pytest.approx(115, abs=0.1)


def test_keepalive_or_hide_without_an_active_session_is_refused(client: TestClient) -> None:
    head = log_head(client)
    for path in ("/keepalive", "/session-hide"):
        r = client.post(f"{CP}{path}", json={"path": VIEW_A}, headers=basic("alice"))
        assert r.status_code == 404
        assert "sessionstart" in r.json()["description"]
    assert log_head(client) == head


def test_bad_keepalive_body_is_400_and_appends_nothing(client: TestClient) -> None:
    client.post(f"{CP}/sessionstart", headers=basic("alice"))
    head = log_head(client)
    for body in ({"visible": "maybe", "path": VIEW_A}, {"visible": True, "path": 42}):
        r = client.post(f"{CP}/keepalive", json=body, headers=basic("alice"))
        assert r.status_code == 400, body
        assert r.json()["description"]
    assert log_head(client) == head


def test_silence_expires_the_session_counting_visible_time_to_the_last_keepalive(
    client: TestClient, container: Container, clock
) -> None:
    client.post(f"{CP}/sessionstart", headers=basic("alice"))
    client.post(f"{CP}/keepalive", json={"visible": True, "path": VIEW_A}, headers=basic("alice"))
    clock.advance(25)
    client.post(f"{CP}/keepalive", json={"visible": True, "path": VIEW_A}, headers=basic("alice"))
    last_keepalive = clock.now
    sid = only_session(client)["id"]
    clock.advance(TIMEOUT - 5)
    assert sweep(container) == 0  # not yet silent for the timeout
    clock.advance(10)
    assert sweep(container) == 1

    events = client.get(f"/v1/sessions/{sid}/events").json()["events"]
    assert events[-1]["type"] == "Expired"
    assert events[-1]["payload"]["last_seen_at"] == pytest.approx(last_keepalive, abs=0.01)
    s = only_session(client)
    assert s["active"] is False and s["expired"] is True
    assert s["stop"] == pytest.approx(last_keepalive, abs=0.01)
    assert s["paths"] == {VIEW_A: pytest.approx(25, abs=0.05)}  # not the silent minute
    assert client.get(f"/v1/sessions/{sid}").json()["status"] == "timeout"

    r = client.post(f"{CP}/keepalive", json={"path": VIEW_A}, headers=basic("alice"))
    assert r.status_code == 404  # the expired session takes no more keepalives
    client.post(f"{CP}/sessionstart", headers=basic("alice"))
    assert sessions(client, active="true")["total"] == 1
    assert sessions(client)["total"] == 2


def test_list_filters_usernames_active_started_after_stopped_before_and_pages(
    client: TestClient, container: Container, clock
) -> None:
    t0 = clock.now
    client.post(f"{CP}/sessionstart", headers=basic("ann"))
    clock.advance(100)
    t1 = clock.now
    client.post(f"{CP}/sessionstart", headers=basic("ben"))
    clock.advance(TIMEOUT + 1)
    assert sweep(container) == 2  # both stopped, at their start
    client.post(f"{CP}/sessionstart", headers=basic("cid"))

    def users(**params: Any) -> list[str]:
        return sorted(s["username"] for s in sessions(client, **params)["data"])

    assert users() == ["ann", "ben", "cid"]
    assert users(**{"usernames[]": ["ann", "cid"]}) == ["ann", "cid"]
    assert users(active="true") == ["cid"]
    assert users(active="false") == ["ann", "ben"]
    assert users(started_after=str(t1 - 1)) == ["ben", "cid"]
    assert users(stopped_before=str(t0 + 50)) == ["ann"]
    page = sessions(client, limit=2, offset=0)
    assert page["total"] == 3 and len(page["data"]) == 2
    assert [s["username"] for s in sessions(client, limit=2, offset=2)["data"]] == ["ann"]
    r = client.get(f"{CP}/sessions", params={"started_after": "soon"}, headers=basic("alice"))
    assert r.status_code == 400 and "started_after" in r.json()["description"]
