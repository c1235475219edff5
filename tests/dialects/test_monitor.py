"""The pytest-monitor dialect's sessions and pages, answered as the reference server
(monitor-server-api 1.1.0) answers: tags as name/value, 204 for nothing, 404 past the last
page, and the reference's words for bad input."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

PM = "/compat/monitor/api/v1"
SESSION_H = "0041724ff4e0adac62b70b4f810c79fc5ad8ba5b"
CONTEXT = {
    "h": "6a5b68829e4a5917dbe590914123f22e",
    "cpu_count": 2,
    "cpu_frequency": 2445,
    "cpu_type": "",
    "cpu_vendor": "AMD EPYC",
    "ram_total": 24105,
    "machine_node": "localhost",
    "machine_type": "x86_64",
    "machine_arch": "64bit",
    "system_info": "Linux - 6.18.44",
    "python_info": "3.11.7 (main) [GCC 12.2.0]",
}


def metric(item: str = "test_server_up", **over: Any) -> dict[str, Any]:
    return {
        "session_h": SESSION_H,
        "context_h": CONTEXT["h"],
        "item_start_time": "2020-12-04T23:18:15.661016",
        "item_path": "tests.test_file",
        "item": item,
        "item_variant": f"{item}[]",
        "item_fs_loc": "tests/test_file.py",
        "kind": "function",
        "component": "server",
        "total_time": 0.25,
        "user_time": 0.125,
        "kernel_time": 0.0,
        "cpu_usage": 0.5,
        "mem_usage": -0.25,
        **over,
    }


def new_session(client: TestClient, h: str = SESSION_H, **over: Any) -> Any:
    body = {
        "session_h": h,
        "run_date": "2020-12-04T23:18:15.661016",
        "scm_ref": "4914d195225cf6b1c5a160c555b6948ea1ba2bcd",
        "description": {"numpy": "1.17.1"},
        **over,
    }
    return client.post(f"{PM}/sessions/", json=body)


def log_head(client: TestClient) -> int:
    return int(client.get("/v1/events", params={"limit": 10000}).json()["next_after"])


def test_session_is_created_with_its_hash_and_tags_as_name_and_value(client: TestClient) -> None:
    r = new_session(client)
    assert r.status_code == 201
    item = {
        "session_h": SESSION_H,
        "run_date": "2020-12-04T23:18:15.661016",
        "scm_ref": "4914d195225cf6b1c5a160c555b6948ea1ba2bcd",
        "tags": [{"name": "numpy", "value": "1.17.1"}],  # monitor_api reads `name`
    }
    assert r.json() == item
    assert client.get(f"{PM}/sessions/").json() == {"sessions": [item], "total_page": 1}
    assert client.get(f"{PM}/sessions/count").json() == {"count": 1}
    native = client.get(f"/v1/sessions/{SESSION_H}").json()
    assert (native["source"], native["tags"], native["started_at"]) == (
        "monitor",
        {"numpy": "1.17.1"},
        "2020-12-04T23:18:15.661Z",
    )
    assert new_session(client).status_code == 409  # the same key twice


def test_nothing_to_list_is_an_empty_204_as_in_the_reference(client: TestClient) -> None:
    for path in ("sessions/", "sessions/zz", "contexts/", "contexts/zz", "metrics/"):
        r = client.get(f"{PM}/{path}")
        assert (r.status_code, r.content) == (204, b""), path
    assert client.get(f"{PM}/sessions/count").json() == {"count": 0}


def test_the_seeds_spellings_are_refused_as_the_reference_refuses_them(
    client: TestClient,
) -> None:
    # The seed's curl sends `h` and the description as JSON text; the reference takes neither.
    body = {"h": "abc", "run_date": "2020-12-04T23:18:15", "description": {}}
    r = client.post(f"{PM}/sessions", json=body)
    assert r.status_code == 400
    assert r.json()["errors"] == {"session_h": "'session_h' is a required property"}
    r = new_session(client, "abc", description='{"numpy": "1.17.1"}')
    assert (r.status_code, r.json()) == (400, {"message": "Bad description format"})
    assert client.get(f"{PM}/sessions/count").json() == {"count": 0}


def test_a_hash_in_the_path_and_numbers_in_the_description(client: TestClient) -> None:
    body = {"run_date": "2021-03-01", "scm_ref": None, "description": {"n": 1, "ok": True}}
    r = client.post(f"{PM}/sessions/c0ffee", json=body)
    assert r.status_code == 201, r.text
    assert r.json() == {
        "session_h": "c0ffee",
        "run_date": "2021-03-01T00:00:00",
        "scm_ref": None,
        "tags": [{"name": "n", "value": "1"}, {"name": "ok", "value": "True"}],
    }


def test_prefix_lookup_lists_only_sessions_starting_with_the_key(client: TestClient) -> None:
    for h in ("0041aa", "0041bb", "a0041c", "ff"):
        assert new_session(client, h).status_code == 201
    client.post("/v1/sessions", json={"id": "0041native", "name": "0041native"})  # not monitor
    found = client.get(f"{PM}/sessions/0041").json()
    assert [s["session_h"] for s in found["sessions"]] == ["0041aa", "0041bb"]
    assert client.get(f"{PM}/sessions/zz").status_code == 204


def test_pages_carry_the_requests_query_in_their_links(client: TestClient, admin_key: str) -> None:
    for i in range(5):
        assert new_session(client, f"s{i}").status_code == 201
    first = client.get(f"{PM}/sessions/", params={"per_page": 2}).json()
    assert [s["session_h"] for s in first["sessions"]] == ["s0", "s1"]
    assert first["total_page"] == 3 and "prev_url" not in first
    keyed = f"/compat/monitor/k/{admin_key}/api/v1"
    # As the reference's url_for: the request's parameters, then `page` (or it in place).
    assert first["next_url"] == f"{keyed}/sessions/?per_page=2&page=2"
    second = client.get(first["next_url"]).json()
    assert [s["session_h"] for s in second["sessions"]] == ["s2", "s3"]
    assert second["prev_url"] == f"{keyed}/sessions/?per_page=2&page=1"
    last = client.get(f"{PM}/sessions/", params={"page": -1, "per_page": 2}).json()
    assert [s["session_h"] for s in last["sessions"]] == ["s4"] and "next_url" not in last
    assert last["prev_url"] == f"{keyed}/sessions/?page=2&per_page=2"
    odd = client.get(f"{PM}/sessions/", params={"page": "abc", "per_page": 2}).json()
    assert odd["sessions"] == first["sessions"]  # not an integer: page 1, as the reference


@pytest.mark.parametrize("page", [0, 4, -4, 10**30, -(10**30)])
def test_a_page_outside_the_list_is_404(client: TestClient, page: int) -> None:
    for i in range(5):
        assert new_session(client, f"s{i}").status_code == 201
    r = client.get(f"{PM}/sessions/", params={"page": page, "per_page": 2})
    assert r.status_code == 404
    assert r.json()["message"].startswith("The requested URL was not found on the server.")


def test_bad_session_bodies_are_400_and_append_nothing(client: TestClient) -> None:
    head = log_head(client)
    ok = {"session_h": "x", "run_date": "2020-12-04", "description": {}}
    cases = [
        ({"run_date": "2020-12-04T23:18:15", "description": {}}, "session_h"),
        ({**ok, "run_date": "not a date"}, "run_date"),
        ({**ok, "description": {"a": {"b": "c"}}}, "description"),
        ({**ok, "description": {"a": None}}, "description"),
        ({"session_h": "x", "run_date": "2020-12-04"}, "description"),
        ({**ok, "scm_ref": 5}, "scm_ref"),
        ({**ok, "session_h": 5}, "session_h"),
    ]
    for body, field in cases:
        r = client.post(f"{PM}/sessions/", json=body)
        assert r.status_code == 400, body
        assert field in r.json()["errors"], r.json()
    r = client.post(f"{PM}/sessions/", content=b"{", headers={"content-type": "application/json"})
    assert r.json() == {
        "message": "The browser (or proxy) sent a request that this server could not understand."
    }
    assert client.post(f"{PM}/sessions/", json=[1]).status_code == 400
    assert log_head(client) == head


def test_a_path_the_api_does_not_have_is_the_references_html_404(client: TestClient) -> None:
    r = client.get(f"{PM}/api/v1/sessions/?page=2")  # what monitor_api makes of a next_url
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "<h1>Not Found</h1>" in r.text
