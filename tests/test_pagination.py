"""Cursor pagination of the native lists: keyset pages that sessions started between two
fetches neither shift nor repeat (where offset pages do), cursors bound to their list and
never a 500 for a forged one, nor a window on another project's sessions."""

from __future__ import annotations

import base64
import json

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import keys
from tests.conftest import bearer


def start(client: TestClient, sid: str, clock, **fields) -> None:
    clock.advance(1)
    r = client.post("/v1/sessions", json={"id": sid, **fields})
    assert r.status_code == 201, r.text


def ids(page: dict) -> list[str]:
    return [item["id"] for item in page["items"]]


@pytest.fixture
def ten(client: TestClient, clock) -> TestClient:
    for i in range(10):
        start(client, f"s{i}", clock, project="web" if i % 2 else "mobile", name=f"n{i % 3}")
    return client


def test_cursor_pages_neither_skip_nor_repeat_while_sessions_are_started(ten, clock) -> None:
    seen: list[str] = []
    r = ten.get("/v1/sessions", params={"limit": 3})  # newest first
    page = r.json()
    seen += ids(page)
    new = 0
    while page["next"]:
        assert r.headers["link"] == f'<{page["next"]}>; rel="next"'
        start(ten, f"new{new}", clock)  # lands before the cursor: must not shift the pages
        new += 1
        r = ten.get(page["next"])
        page = r.json()
        seen += ids(page)
    assert seen == [f"s{i}" for i in range(9, -1, -1)]
    assert "link" not in r.headers and page["next_cursor"] is None


def test_offset_pages_drift_under_the_same_writes(ten, clock) -> None:
    first = ids(ten.get("/v1/sessions", params={"limit": 3}).json())
    start(ten, "new", clock)
    second = ids(ten.get("/v1/sessions", params={"limit": 3, "offset": 3}).json())
    assert first[-1] == second[0]  # offset repeats a row: the reason for cursors


@pytest.mark.parametrize(
    "sort,order", [("name", "asc"), ("name", "desc"), ("ended_at", "desc"), ("number", "asc"),
                   ("duration", "asc"), ("started_at", "asc")]
)  # fmt: skip
def test_every_sort_pages_through_all_sessions_once(ten, sort, order) -> None:
    for sid in ("s1", "s4", "s8"):  # some have an end and a duration, the others sort last
        ten.post(f"/v1/sessions/{sid}/stop")
    whole = ids(ten.get("/v1/sessions", params={"sort": sort, "order": order}).json())
    got: list[str] = []
    page = ten.get("/v1/sessions", params={"sort": sort, "order": order, "limit": 2}).json()
    got += ids(page)
    while page["next"]:
        page = ten.get(page["next"]).json()
        got += ids(page)
    assert got == whole and len(got) == 10


@pytest.mark.parametrize("params", [{"project": "web"}, {"tag": "k:v"}, {"status": "running"}])
def test_filtered_pages_follow_their_filter(client, clock, params) -> None:
    for i in range(7):
        start(client, f"f{i}", clock, project="web" if i < 5 else "app", tags={"k": "v"})
    want = ids(client.get("/v1/sessions", params=params).json())
    page = client.get("/v1/sessions", params={**params, "limit": 2}).json()
    got = ids(page)
    while page["next"]:
        page = client.get(page["next"]).json()
        got += ids(page)
    assert got == want


def test_a_cursor_is_good_only_for_its_own_list(ten) -> None:
    cursor = ten.get("/v1/sessions", params={"limit": 2}).json()["next_cursor"]
    assert ten.get("/v1/sessions", params={"cursor": cursor}).status_code == 200
    for other in ({"sort": "name"}, {"order": "asc"}, {"project": "web"}, {"offset": 2}):
        r = ten.get("/v1/sessions", params={"cursor": cursor, **other})
        assert r.status_code == 422, r.text
        assert r.json()["field"] in ("cursor", "offset")


def _forged(value, number, bound="0" * 16, version=1) -> str:
    raw = json.dumps([version, bound, value, number]).encode()  # any int, NaN, Infinity
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _bound(client: TestClient, sort: str) -> str:
    cursor = client.get("/v1/sessions", params={"limit": 1, "sort": sort}).json()["next_cursor"]
    return str(orjson.loads(base64.urlsafe_b64decode(cursor + "=="))[1])


VALUES = st.one_of(
    st.none(), st.floats(), st.text(), st.integers(), st.booleans(), st.lists(st.none())
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(), st.none(), st.text()
)


@given(
    raw=st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300).map(lambda b: base64.urlsafe_b64encode(b).decode()),
        st.builds(_forged, VALUES, NUMBERS),
    ),
    value=VALUES,
    number=NUMBERS,
)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_a_forged_cursor_is_422_never_500(ten, raw, value, number) -> None:
    for sort in ("started_at", "name", "duration"):
        # Garbage, a cursor of no list, and one of this very list with any position.
        for cursor in (raw, _forged(value, number, _bound(ten, sort))):
            r = ten.get("/v1/sessions", params={"cursor": cursor, "sort": sort})
            assert r.status_code in (200, 422), r.text
            if r.status_code == 422:
                assert r.headers["content-type"] == "application/problem+json"


def test_a_well_formed_cursor_of_this_list_with_any_position_stays_inside_the_filter(
    ten, container
) -> None:
    key = keys.create(container.store.write_engine, "web-ro", ["read"], ["web"])
    web = bearer(key)
    page = ten.get("/v1/sessions", params={"limit": 2}, headers=web).json()
    assert {i["project"] for i in page["items"]} == {"web"}
    # The key's list is the web list: an admin's cursor of another list is refused.
    admin_cursor = ten.get("/v1/sessions", params={"limit": 2}).json()["next_cursor"]
    r = ten.get("/v1/sessions", params={"cursor": admin_cursor}, headers=web)
    assert r.status_code == 422
    # Any position in the web list's own cursor shows web sessions only.
    bound = orjson.loads(base64.urlsafe_b64decode(page["next_cursor"] + "=="))[1]
    for value in (0.0, 1e300, -1e300, 1_700_000_005.0):
        forged = _forged(value, 2**62, bound)
        items = ten.get("/v1/sessions", params={"cursor": forged}, headers=web).json()["items"]
        assert {i["project"] for i in items} <= {"web"}


def test_the_global_log_links_its_next_page(ten) -> None:
    r = ten.get("/v1/events", params={"limit": 4})
    page = r.json()
    assert page["next"] == f"/v1/events?limit=4&after={page['next_after']}"
    assert r.headers["link"] == f'<{page["next"]}>; rel="next"'
    positions = [e["position"] for e in page["events"]]
    while page["next"]:
        page = ten.get(page["next"]).json()
        positions += [e["position"] for e in page["events"]]
    assert positions == list(range(1, 11))
