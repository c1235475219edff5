"""The OpenTera dialect: sessions, events, manager, types, assets, stats and tokens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import keys
from tests.dialects.conftest import NONE

BASE = "/compat/opentera/api"
T: dict[str, str] = {}  # ?token=<the admin key>, as OpenTera's clients send it


@pytest.fixture(autouse=True)
def _token(admin_key: str) -> Iterator[None]:
    T["token"] = admin_key
    yield
    T.clear()


START = "2023-11-14T22:13:20+00:00"  # the FakeClock's start, 1_700_000_000


def post_session(client: TestClient, ns: str = "user", **fields: Any) -> dict[str, Any]:
    # OpenTera's user API needs participants or users on a new session, the service API a
    # session type (tests/dialects/test_opentera_recorded.py): a user 1 and type 1 unless given.
    if "session_participants_ids" not in fields:
        fields.setdefault("session_users_ids", [1])
    if ns == "service":
        fields.setdefault("id_session_type", 1)
    body = {"session": {"id_session": 0, **fields}}
    r = client.post(f"{BASE}/{ns}/sessions", params=T, json=body)
    assert r.status_code == 200, r.text
    items = r.json()
    assert isinstance(items, list) and len(items) == 1
    return items[0]


def get_sessions(client: TestClient, ns: str = "user", **params: Any) -> list[dict[str, Any]]:
    r = client.get(f"{BASE}/{ns}/sessions", params={**T, **params})
    assert r.status_code == 200, r.text
    return r.json()


def log_head(client: TestClient) -> int:
    return client.get("/v1/events", params={"limit": 10000}).json()["next_after"]


def test_create_with_id_session_0_keeps_uuid_and_maps_fields(client: TestClient) -> None:
    s = post_session(
        client,
        session_uuid="a1b2c3",
        session_name="Gait",
        session_start_datetime=START,
        session_status=1,
        session_comments="first visit",
        session_parameters='{"camera": "front"}',
        id_session_type=3,
        id_creator_user=7,
        session_participants_ids=[11],
        session_participants=["p-uuid"],
        session_users_ids=[7],
    )
    native = client.get("/v1/sessions/a1b2c3").json()
    assert s["id_session"] == native["number"] and s["id_session"] > 0
    assert s["session_uuid"] == "a1b2c3"
    assert (s["session_name"], s["session_status"], s["id_session_type"]) == ("Gait", 1, 3)
    assert s["session_start_datetime"] == START
    assert s["session_comments"] == "first visit"
    assert s["session_parameters"] == {"camera": "front"}
    assert s["id_creator_user"] == 7 and s["id_creator_device"] is None
    names = {"participant_name": None, "id_project": None, "project_name": None}
    assert s["session_participants"] == [
        {"id_participant": None, "participant_uuid": "p-uuid", **names},
        {"id_participant": 11, "participant_uuid": None, **names},
    ]
    assert native["status"] == "running" and native["type"] == "3"
    assert native["source"] == "opentera" and native["created_by"] == "user:7"
    assert native["parameters"] == {"camera": "front"}


def test_get_by_id_uuid_and_member_filters(client: TestClient, clock: Any) -> None:
    a = post_session(client, session_name="a", session_participants_ids=[1], session_users_ids=[5])
    clock.advance(10)
    b = post_session(client, session_name="b", session_participants_ids=[1, 2])
    post_session(client, session_name="c", session_devices_ids=[9])
    assert [s["session_name"] for s in get_sessions(client, id_session=a["id_session"])] == ["a"]
    assert get_sessions(client, session_uuid=b["session_uuid"])[0]["id_session"] == b["id_session"]
    assert [s["session_name"] for s in get_sessions(client, id_participant=1)] == ["b", "a"]
    assert [s["session_name"] for s in get_sessions(client, id_participant=2)] == ["b"]
    assert [s["session_name"] for s in get_sessions(client, id_user=5)] == ["a"]
    assert [s["session_name"] for s in get_sessions(client, id_device=9)] == ["c"]
    assert get_sessions(client, id_participant=1, limit=1, offset=1)[0]["session_name"] == "a"
    minimal = get_sessions(client, id_participant=2, list="true")[0]
    assert "session_parameters" not in minimal and "session_participants" not in minimal
    assert get_sessions(client, id_session=999999) == []
    # GET /user/sessions needs one id, as in OpenTera.
    r = client.get(f"{BASE}/user/sessions", params=T)
    assert r.status_code == 400


def test_status_filter_and_dates(client: TestClient) -> None:
    post_session(client, session_name="planned", session_status=0, session_participants_ids=[4])
    post_session(
        client,
        session_name="old",
        session_start_datetime="2020-01-01T10:00:00Z",
        session_status=1,
        session_participants_ids=[4],
    )
    assert [s["session_name"] for s in get_sessions(client, id_participant=4, status=0)] == [
        "planned"
    ]
    found = get_sessions(client, id_participant=4, start_date="2019-12-31", end_date="2020-01-01")
    assert [s["session_name"] for s in found] == ["old"]


def test_update_changes_only_given_fields(client: TestClient) -> None:
    s = post_session(client, session_name="x", session_comments="c", session_parameters="v=1")
    assert s["session_parameters"] == "v=1"
    body = {
        "session": {
            "id_session": s["id_session"],
            "session_name": "y",
            "session_parameters": '{"k": 2}',
        }
    }
    r = client.post(f"{BASE}/user/sessions", params=T, json=body)
    assert r.status_code == 200, r.text
    got = get_sessions(client, id_session=s["id_session"])[0]
    assert (got["session_name"], got["session_comments"]) == ("y", "c")
    assert got["session_parameters"] == {"k": 2}


def test_status_integers_move_through_commands(client: TestClient, clock: Any) -> None:
    s = post_session(client, session_start_datetime=START, session_status=0)
    assert s["session_status"] == 0
    sid, uid = s["id_session"], s["session_uuid"]
    for status in (1, 2):
        body = {"session": {"id_session": sid, "session_status": status}}
        assert client.post(f"{BASE}/user/sessions", params=T, json=body).status_code == 200
        clock.advance(30)
    got = get_sessions(client, id_session=sid)[0]
    assert got["session_status"] == 2
    native = client.get(f"/v1/sessions/{uid}").json()
    assert native["status"] == "completed" and native["active"] is False
    assert got["session_duration"] == round(native["duration"])
    # completed -> in progress is not a legal move: the shared error, nothing appended.
    head = log_head(client)
    body = {"session": {"id_session": sid, "session_status": 1, "session_name": "late"}}
    r = client.post(f"{BASE}/user/sessions", params=T, json=body)
    assert r.status_code == 409
    assert r.json()["type"].endswith("/illegal-status-change")
    assert log_head(client) == head
    assert get_sessions(client, id_session=sid)[0]["session_name"] is None


def test_created_as_already_over_uses_the_given_duration(client: TestClient) -> None:
    s = post_session(client, session_start_datetime=START, session_status=3, session_duration=120)
    assert (s["session_status"], s["session_duration"]) == (3, 120)
    native = client.get(f"/v1/sessions/{s['session_uuid']}").json()
    assert native["status"] == "cancelled" and native["ended_at"] == "2023-11-14T22:15:20.000Z"


def test_delete_hides_the_session_and_keeps_its_stream(client: TestClient) -> None:
    s = post_session(client, session_status=0, session_participants_ids=[3])
    r = client.delete(f"{BASE}/user/sessions", params={**T, "id": s["id_session"]})
    assert r.status_code == 200
    assert get_sessions(client, id_session=s["id_session"]) == []
    assert get_sessions(client, id_participant=3) == []
    stream = client.get(f"/v1/sessions/{s['session_uuid']}/events").json()["events"]
    assert [e["type"] for e in stream] == ["Started", "Deleted"]


def save_event(client: TestClient, ns: str = "user", **fields: Any) -> dict[str, Any]:
    r = client.post(f"{BASE}/{ns}/sessions/events", params=T, json={"session_event": fields})
    assert r.status_code == 200, r.text
    return r.json()[0]


def test_events_are_annotations_and_corrections_keep_history(client: TestClient) -> None:
    s = post_session(client, session_status=1)
    sid = s["id_session"]
    e = save_event(
        client,
        id_session_event=0,
        id_session=sid,
        id_session_event_type=11,
        session_event_datetime="2023-11-14T22:14:00Z",
        session_event_text="joined",
        session_event_context="room 1",
    )
    eid = e["id_session_event"]
    assert e == {
        "id_session_event": eid,
        "id_session": sid,
        "id_session_event_type": 11,
        "session_event_datetime": "2023-11-14T22:14:00+00:00",
        "session_event_text": "joined",
        "session_event_context": "room 1",
    }
    created = client.get("/v1/events", params={"after": eid - 1, "limit": 1}).json()["events"][0]
    assert created["type"] == "Annotated" and created["position"] == eid

    upd = save_event(client, id_session_event=eid, session_event_text="joined late")
    assert upd["id_session_event"] == eid
    assert (upd["session_event_text"], upd["session_event_context"]) == ("joined late", "room 1")
    listed = client.get(f"{BASE}/service/sessions/events", params={**T, "id_session": sid}).json()
    assert [(x["id_session_event"], x["session_event_text"]) for x in listed] == [
        (eid, "joined late")
    ]

    r = client.delete(f"{BASE}/user/sessions/events", params={**T, "id": eid})
    assert r.status_code == 200
    assert client.get(f"{BASE}/user/sessions/events", params={**T, "id_session": sid}).json() == []
    history = [
        ev["payload"]
        for ev in client.get(f"/v1/sessions/{s['session_uuid']}/events").json()["events"]
        if ev["type"] == "Annotated"
    ]
    assert [(p["text"], p["retracted"]) for p in history] == [
        ("joined", False),
        ("joined late", False),
        (None, True),
    ]
    assert len({p["annotation_id"] for p in history}) == 1
    # A retracted event is gone for OpenTera clients.
    r = client.post(
        f"{BASE}/user/sessions/events",
        params=T,
        json={"session_event": {"id_session_event": eid, "session_event_text": "z"}},
    )
    assert r.status_code == 404


def test_service_sessions_with_events(client: TestClient) -> None:
    s = post_session(client, ns="service", session_users_ids=[2])
    save_event(
        client,
        ns="device",
        id_session_event=0,
        id_session=s["id_session"],
        session_event_text="hello",
    )
    got = get_sessions(client, ns="service", id_user=2, with_events="true")
    assert [e["session_event_text"] for e in got[0]["session_events"]] == ["hello"]


def manage(client: TestClient, **fields: Any) -> Any:
    return client.post(f"{BASE}/user/sessions/manager", params=T, json={"session_manage": fields})


def test_manager_start_and_stop(client: TestClient) -> None:
    r = manage(client, action="start", id_session_type=2, session_participants=["p-1"])
    assert r.status_code == 200, r.text
    started = r.json()
    assert started["session_status"] == 1 and started["id_session_type"] == 2
    r = manage(client, action="stop", id_session=started["id_session"])
    assert r.status_code == 200 and r.json()["session_status"] == 2
    native = client.get(f"/v1/sessions/{started['session_uuid']}").json()
    assert native["ended_at"] is not None and native["participants"] == ["p-1"]
    planned = post_session(client, session_status=0)
    assert (
        manage(client, action="start", id_session=planned["id_session"]).json()["session_status"]
        == 1
    )
    assert manage(client, action="invite", id_session=planned["id_session"]).status_code == 501


def test_assets_list_the_sessions_logs_and_artifacts(client: TestClient) -> None:
    s = post_session(client, session_status=1)
    uid = s["session_uuid"]
    up = client.post(
        f"/v1/sessions/{uid}/logs/console", content=b"hello", headers={"content-type": "text/plain"}
    )
    assert up.status_code == 201
    art = client.post(
        f"/v1/sessions/{uid}/artifacts",
        json={"kind": "video", "title": "run.mp4", "url": "https://x/run.mp4"},
    )
    assert art.status_code == 201
    r = client.get(
        f"{BASE}/user/assets", params={**T, "id_session": s["id_session"], "with_urls": "true"}
    )
    assert r.status_code == 200
    assets = r.json()
    assert [(a["asset_name"], a["asset_type"]) for a in assets] == [
        ("console", "text/plain"),
        ("run.mp4", None),
    ]
    assert [a["id_asset"] for a in assets] == [up.json()["position"], art.json()["position"]]
    assert assets[1]["asset_url"] == "https://x/run.mp4"
    assert client.get(assets[0]["asset_url"]).content == b"hello"
    assert client.get(f"{BASE}/device/assets", params=T).status_code == 400


def test_stats_for_a_session_and_a_participant(client: TestClient, clock: Any) -> None:
    s = post_session(client, session_status=1, session_participants_ids=[8], session_users_ids=[1])
    save_event(client, id_session_event=0, id_session=s["id_session"], session_event_text="e")
    post_session(
        client,
        session_start_datetime=START,
        session_status=2,
        session_duration=60,
        session_participants_ids=[8],
    )
    post_session(client, session_status=0, session_participants_ids=[8])
    one = client.get(f"{BASE}/user/stats", params={**T, "id_session": s["id_session"]}).json()
    assert one == {
        "users_total_count": 1,
        "participants_total_count": 1,
        "devices_total_count": 0,
        "assets_total_count": 0,
        "events_total_count": 1,
        "tests_total_count": 0,
    }
    p = client.get(f"{BASE}/user/stats", params={**T, "id_participant": 8}).json()
    assert p["sessions_total_count"] == 3
    assert (p["sessions_planned_count"], p["sessions_inprogress_count"]) == (1, 1)
    assert p["sessions_completed_count"] == 1 and p["sessions_total_time"] == 60
    assert client.get(f"{BASE}/user/stats", params=T).status_code == 400


def test_sessiontypes_are_the_types_seen_on_sessions(client: TestClient) -> None:
    post_session(client, id_session_type=4)
    post_session(client, id_session_type=2)
    post_session(client, id_session_type=4)
    r = client.get(f"{BASE}/user/sessiontypes", params=T)
    assert [t["id_session_type"] for t in r.json()] == [2, 4]
    one = client.get(f"{BASE}/service/sessiontypes", params={**T, "id_session_type": 4}).json()
    assert [t["session_type_name"] for t in one] == ["4"]


def test_token_is_required(client: TestClient, admin_key: str) -> None:
    for path in ("/user/sessions", "/user/sessions/events", "/user/stats", "/user/sessiontypes"):
        r = client.get(BASE + path, params={"id_session": 1}, headers=NONE)
        assert r.status_code == 401, path
        assert r.headers["content-type"] == "application/problem+json"
    r = client.post(f"{BASE}/user/sessions", json={"session": {"id_session": 0}}, headers=NONE)
    assert r.status_code == 401
    bad = client.get(f"{BASE}/user/sessiontypes", headers={"Authorization": "OpenTera abc"})
    assert bad.status_code == 401
    assert client.get("/v1/events").json()["events"] == []
    auth = {"Authorization": f"OpenTera {admin_key}"}
    ok = client.get(f"{BASE}/user/sessiontypes", headers=auth)
    assert ok.status_code == 200


def test_the_token_key_names_the_actor(client: TestClient, container: Any) -> None:
    alice = keys.create(container.store.write_engine, "alice", ["ingest", "read"])
    body = {"session": {"id_session": 0, "session_users_ids": [1]}}
    bad = client.post(f"{BASE}/user/sessions", params={"token": "other"}, json=body)
    assert bad.status_code == 401
    ok = client.post(f"{BASE}/user/sessions", params={"token": alice}, json=body)
    assert ok.status_code == 200
    native = client.get(f"/v1/sessions/{ok.json()[0]['session_uuid']}").json()
    assert native["created_by"] == "alice"
