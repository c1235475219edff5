"""The Canopsis dialect, as the real Canopsis UI calls it: auth, one session per user,
keepalive and trace-path (starting a session when none is active), visible time, expiry, list."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import keys
from api.bootstrap import Container
from api.dialects.canopsis.shape import session_item
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


def sessions(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    r = client.get(f"{CP}/sessions", params=params, headers=basic("alice"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"description", "sessions"} and body["description"] == "Sessions"
    return list(body["sessions"])


def only_session(client: TestClient, user: str = "alice") -> dict[str, Any]:
    data = sessions(client, **{"usernames[]": user})
    assert len(data) == 1, data
    return data[0]


def detail(client: TestClient, user: str = "alice") -> dict[str, Any]:
    """The ledger's own view of the user's one session."""
    return dict(client.get(f"/v1/sessions/{only_session(client, user)['_id']}").json())


def ping(client: TestClient, path: Any, visible: bool = True, user: str = "alice") -> Any:
    r = client.post(f"{CP}/keepalive", json={"visible": visible, "path": path}, headers=basic(user))
    assert r.status_code == 200, r.text
    return r.json()


# The UI's four calls as canopsis-next makes them (api/v2 paths, bodies).
CALLS = (
    ("GET", "/sessionstart", None),
    ("POST", "/keepalive", {"visible": True, "path": ["/view/v1", "tab1"]}),
    ("POST", "/session_tracepath", {"path": ["/view/v1"]}),
    ("GET", "/sessions", None),
)


def test_the_ui_starts_its_session_with_get_sessionstart_and_the_seeds_post_still_works(
    client: TestClient,
) -> None:
    r = client.get(f"{CP}/sessionstart", headers=basic("alice"))
    assert r.status_code == 200
    assert r.json() == {"description": "Session Start"}
    native = client.get("/v1/sessions", params={"source": "canopsis"}).json()["items"]
    assert [(s["user"], s["active"], s["source"]) for s in native] == [("alice", True, "canopsis")]
    assert client.post(f"{CP}/sessionstart", headers=basic("bob")).json() == {
        "description": "Session Start"
    }
    assert sorted(s["username"] for s in sessions(client)) == ["alice", "bob"]


def test_a_second_sessionstart_reuses_the_active_session(client: TestClient) -> None:
    client.get(f"{CP}/sessionstart", headers=basic("alice"))
    head = log_head(client)
    assert client.get(f"{CP}/sessionstart", headers=basic("alice")).json() == {
        "description": "Session Start"
    }
    client.post(f"{CP}/sessionstart", headers=basic("alice"))
    assert log_head(client) == head  # nothing appended: the same session goes on
    client.get(f"{CP}/sessionstart", headers=basic("bob"))
    assert len(sessions(client)) == 2  # one per user


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
        for method, path, body in CALLS:
            r = client.request(method, f"{CP}{path}", json=body, headers=headers)
            assert r.status_code == 401, (headers, path)
            assert "description" in r.json()
            assert r.headers["www-authenticate"].startswith("Basic")
    assert log_head(client) == head


def test_a_read_only_key_cannot_start_a_session_with_get(
    client: TestClient, container: Container
) -> None:
    reader = keys.create(container.store.write_engine, "reader", ["read"])
    head = log_head(client)
    r = client.get(f"{CP}/sessionstart", headers=basic("reader", reader))
    assert r.status_code == 403 and "ingest" in r.json()["description"]
    assert client.get(f"{CP}/sessions", headers=basic("reader", reader)).status_code == 200
    assert log_head(client) == head


def test_authkey_header_and_query_map_to_their_user(client: TestClient) -> None:
    carol = key_for("carol")
    assert client.get(f"{CP}/sessionstart", headers={"x-canopsis-authkey": carol}).is_success
    body = {"visible": True, "path": VIEW_A}
    r = client.post(f"{CP}/keepalive", params={"authkey": carol}, json=body)
    assert r.status_code == 200, r.text
    assert only_session(client, "carol")["username"] == "carol"


def test_keepalive_answer_has_description_time_visible_paths_as_sent(
    client: TestClient, clock
) -> None:
    client.get(f"{CP}/sessionstart", headers=basic("alice"))
    for path in (VIEW_A, ["/view/v1", "tab1"], ["/view/v1"]):
        body = ping(client, path)
        assert body == {
            "description": "Session keepalive",
            "time": body["time"],
            "visible": True,
            "paths": path,
        }
        assert isinstance(body["time"], int) and abs(body["time"] - clock.now) < 2


def test_keepalive_or_tracepath_without_an_active_session_starts_one(
    client: TestClient,
) -> None:
    ping(client, ["/view/v1", "tab1"], user="alice")
    a = detail(client, "alice")
    assert (a["user"], a["source"], a["active"], a["keepalives"]) == ("alice", "canopsis", True, 1)
    events = client.get(f"/v1/sessions/{a['id']}/events").json()["events"]
    assert [e["type"] for e in events] == ["Started", "KeptAlive"]
    for user, path in (
        ("u1", "/session_tracepath"),
        ("u2", "/session_hide"),
        ("u3", "/session-hide"),
    ):
        r = client.post(f"{CP}{path}", json={"path": ["/view/v2"]}, headers=basic(user))
        assert r.status_code == 200 and r.content == b"", (path, r.text)
        assert detail(client, user)["keepalives"] == 1
    ping(client, ["/view/v1", "tab1"], user="alice")  # the active one goes on
    assert detail(client, "alice")["keepalives"] == 2


def test_tracepath_is_a_visible_keepalive_on_the_new_path(client: TestClient, clock) -> None:
    """The UI posts session_tracepath on each route change: the time since the previous
    visible keepalive goes to the path shown then, and the new path is shown from now."""
    ping(client, ["/view/a", "t1"])
    clock.advance(30)
    client.post(f"{CP}/session_tracepath", json={"path": ["/view/b"]}, headers=basic("alice"))
    clock.advance(20)
    ping(client, ["/view/b"], visible=False)  # the tab went to the background
    clock.advance(40)  # hidden: counts for nobody
    client.post(f"{CP}/session_hide", json={"path": ["/view/a", "t2"]}, headers=basic("alice"))
    clock.advance(10)
    ping(client, ["/view/a", "t2"])
    s = only_session(client)
    assert s["tab_duration"] == {"/view/a": {"t1": 30, "t2": 10}, "/view/b": 20}
    assert s["visible_duration"] == 60
    assert s["last_visible_path"] == ["/view/a", "t2"]


def test_the_list_answers_canopsis_session_documents(client: TestClient, clock) -> None:
    t0 = int(clock.now)
    client.get(f"{CP}/sessionstart", headers=basic("alice"))
    ping(client, VIEW_A)
    clock.advance(30)
    ping(client, ["/view/b"])
    clock.advance(20)
    ping(client, ["/view/b"])
    s = only_session(client)
    start = s["start"]
    assert abs(start - t0) <= 1
    assert s == {
        "_id": detail(client)["id"],
        "id_beaker_session": base64.b64encode(f"alice_{start}".encode()).decode(),
        "username": "alice",
        "start": start,
        "last_ping": int(clock.now),
        "last_visible_ping": int(clock.now),
        "last_visible_path": ["/view/b"],
        "visible_duration": 50,
        "tab_duration": {
            "/view/da7ac9b9-db1c-4435-a1f2-edb4d6be4db8": {
                "view-tab_edd5855b-54f1-4c51-9550-d88c2da60768": 30
            },
            "/view/b": 20,
        },
    }
    for field in ("start", "last_ping", "last_visible_ping", "visible_duration"):
        assert isinstance(s[field], int), field
    last_visible = int(clock.now)
    clock.advance(5)
    ping(client, ["/view/b"], visible=False)
    clock.advance(7)
    ping(client, ["/view/c"], visible=False)
    hidden = only_session(client)
    # Hidden: only last_ping moves; the last visible ping and path stay (Canopsis's manager)
    assert hidden["last_ping"] == int(clock.now)
    assert (hidden["last_visible_ping"], hidden["last_visible_path"]) == (last_visible, ["/view/b"])
    assert hidden["visible_duration"] == 55
    native = detail(client)  # the native detail shows the same two, the time in ISO-8601
    assert native["last_visible_path"] == "[/view/b]" and native["last_visible_at"].endswith("Z")
    clock.advance(3)
    client.post(f"{CP}/session_tracepath", json={"path": ["/view/d"]}, headers=basic("alice"))
    traced = only_session(client)
    assert (traced["last_visible_ping"], traced["last_visible_path"]) == (
        int(clock.now),
        ["/view/d"],
    )


def test_before_any_visible_keepalive_the_last_visible_ping_is_the_start(
    client: TestClient, clock
) -> None:
    client.get(f"{CP}/sessionstart", headers=basic("alice"))
    clock.advance(10)
    ping(client, ["/view/a"], visible=False)
    s = only_session(client)
    assert (s["last_visible_ping"], s["last_visible_path"]) == (s["start"], [])
    assert s["last_ping"] == s["start"] + 10


def test_bad_bodies_are_400_and_append_nothing(client: TestClient) -> None:
    client.get(f"{CP}/sessionstart", headers=basic("alice"))
    head = log_head(client)
    keepalives: list[Any] = [
        {"visible": "maybe", "path": VIEW_A},
        {"visible": True, "path": 42},
        {"path": ["/view/v1"]},  # visible is required, as Canopsis requires it
        {"visible": True},  # so is the path
        {"visible": True, "path": []},
        {"visible": True, "path": ["/view/v1", "t", "extra"]},  # Canopsis: at most two
        {"visible": True, "path": ["/view/v1", 7]},
        {"visible": True, "path": ["/view/\x00"]},  # the rules refuse a control character
        ["visible", True],
    ]
    for body in keepalives:
        r = client.post(f"{CP}/keepalive", json=body, headers=basic("alice"))
        assert r.status_code == 400, (body, r.text)
        assert r.json()["description"]
    for path in ("/keepalive", "/session_tracepath"):
        r = client.post(f"{CP}{path}", content=b"{not json", headers=basic("alice"))
        assert r.status_code == 400 and "JSON" in r.json()["description"]
    r = client.post(f"{CP}/session_tracepath", json={"path": {}}, headers=basic("alice"))
    assert r.status_code == 400 and "path" in r.json()["description"]
    assert log_head(client) == head


def test_a_refused_first_keepalive_starts_no_session(client: TestClient) -> None:
    head = log_head(client)
    long = ["/view/" + "x" * 2000]
    for path, body in (
        ("/keepalive", {"visible": True, "path": long}),
        ("/session_tracepath", {"path": long}),
    ):
        r = client.post(f"{CP}{path}", json=body, headers=basic("dave"))
        assert r.status_code == 413 and "path" in r.json()["description"], r.text
    r = client.post(f"{CP}/keepalive", json={"visible": True, "path": ["/v\x07"]},
                    headers=basic("dave"))  # fmt: skip
    assert r.status_code == 400
    assert log_head(client) == head
    assert sessions(client) == []


def test_the_body_is_read_as_json_whatever_its_content_type(client: TestClient) -> None:
    body = b'{"visible":true,"path":["/view/x"]}'
    for ctype in ("application/x-www-form-urlencoded", "text/plain"):
        r = client.post(
            f"{CP}/keepalive", content=body, headers={**basic("eve"), "content-type": ctype}
        )
        assert r.status_code == 200, r.text
    assert detail(client, "eve")["keepalives"] == 2


def test_silence_expires_the_session_counting_visible_time_to_the_last_keepalive(
    client: TestClient, container: Container, clock
) -> None:
    client.get(f"{CP}/sessionstart", headers=basic("alice"))
    ping(client, VIEW_A)
    clock.advance(25)
    ping(client, VIEW_A)
    last_keepalive = clock.now
    sid = only_session(client)["_id"]
    clock.advance(TIMEOUT - 5)
    assert sweep(container) == 0  # not yet silent for the timeout
    clock.advance(10)
    assert sweep(container) == 1

    events = client.get(f"/v1/sessions/{sid}/events").json()["events"]
    assert events[-1]["type"] == "Expired"
    assert events[-1]["payload"]["last_seen_at"] == pytest.approx(last_keepalive, abs=0.01)
    s = only_session(client)
    assert s["last_ping"] == int(last_keepalive)
    assert s["visible_duration"] == 25  # not the silent minute
    assert sessions(client, active="false") == [s]
    assert client.get(f"/v1/sessions/{sid}").json()["status"] == "timeout"

    ping(client, VIEW_A)  # a keepalive after the expiry starts a new session, as Canopsis does
    assert [x["_id"] for x in sessions(client, active="false")] == [sid]
    assert len(sessions(client, active="true")) == 1
    assert len(sessions(client)) == 2


def test_list_filters_usernames_active_started_after_stopped_before_and_pages(
    client: TestClient, container: Container, clock
) -> None:
    t0 = clock.now
    client.get(f"{CP}/sessionstart", headers=basic("ann"))
    clock.advance(100)
    t1 = clock.now
    client.get(f"{CP}/sessionstart", headers=basic("ben"))
    clock.advance(TIMEOUT + 1)
    assert sweep(container) == 2  # both stopped, at their start
    client.get(f"{CP}/sessionstart", headers=basic("cid"))

    def users(**params: Any) -> list[str]:
        return [s["username"] for s in sessions(client, **params)]

    assert users() == ["ann", "ben", "cid"]  # oldest first, as Canopsis stores them
    assert users(**{"usernames[]": ["ann", "cid"]}) == ["ann", "cid"]
    assert users(active="true") == ["cid"]
    assert users(active="false") == ["ann", "ben"]
    assert users(started_after=str(t1 - 1)) == ["ben", "cid"]
    assert users(stopped_before=str(t0 + 50)) == ["ann"]
    assert users(limit=2, offset=0) == ["ann", "ben"]
    assert users(limit=2, offset=2) == ["cid"]
    r = client.get(f"{CP}/sessions", params={"started_after": "soon"}, headers=basic("alice"))
    assert r.status_code == 400 and "started_after" in r.json()["description"]


def test_an_oversized_body_is_413_and_appends_nothing(client: TestClient) -> None:
    head = log_head(client)
    big = b'{"visible":true,"path":["' + b"x" * (1 << 20) + b'"]}'
    for path in ("/keepalive", "/session_tracepath"):
        r = client.post(f"{CP}{path}", content=big, headers=basic("alice"))
        assert r.status_code == 413 and r.json()["description"], r.text
    assert log_head(client) == head


def test_a_project_key_cannot_act_on_another_projects_session(
    client: TestClient, container: Container
) -> None:
    """The key of project a named pat: its user's active session of project b is refused
    (403, nothing appended), and so is starting one outside its project."""
    pat = keys.create(container.store.write_engine, "pat", ["ingest", "read"], ["a"])
    body = {"id": "pat-b", "source": "canopsis", "project": "b", "user": "pat"}
    assert client.post("/v1/sessions", json=body).status_code == 201
    head = log_head(client)
    for method, path, json in CALLS[:3]:
        r = client.request(method, f"{CP}{path}", json=json, headers=basic("pat", pat))
        if path == "/sessionstart":  # pat has an active session: nothing to start
            assert r.status_code == 200, r.text
        else:
            assert r.status_code == 403 and r.json()["description"], (path, r.text)
    assert log_head(client) == head
    client.post("/v1/sessions/pat-b/stop")
    head = log_head(client)
    for method, path, json in CALLS[:3]:
        r = client.request(method, f"{CP}{path}", json=json, headers=basic("pat", pat))
        assert r.status_code == 403, (path, r.text)  # a session of no project is not a's
    assert log_head(client) == head


def test_a_detail_folded_before_the_last_visible_fields_answers_as_before() -> None:
    """A detail document written before the fold kept last_visible_at (until its next visible
    keepalive or a rebuild of the detail view): the time the shown path became visible, else
    the last keepalive once there was visible time, else the start."""
    doc = {"id": "s", "user": "ann", "started_at": 100.0, "last_seen_at": 160.0,
           "visible_path": None, "visible_since": None, "visible_time": {"[/v]": 30.0}}  # fmt: skip
    assert session_item(doc)["last_visible_ping"] == 160
    assert session_item({**doc, "visible_time": {}})["last_visible_ping"] == 100
    shown = session_item({**doc, "visible_path": "[/v,t]", "visible_since": 150.0})
    assert (shown["last_visible_ping"], shown["last_visible_path"]) == (150, ["/v", "t"])
