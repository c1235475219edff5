"""The pytest-monitor dialect: sessions, contexts, metrics, pages, and bad input."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

PM = "/compat/monitor/api/v1"
SESSION_H = "0041724ff4e0adac62b70b4f810c79fc5ad8ba5b"
CONTEXT = {
    "cpu_count": 2,
    "cpu_frequency": 2445.426,
    "cpu_type": "",
    "cpu_vendor": "AMD EPYC",
    "ram_total": 24105,
    "machine_node": "localhost",
    "machine_type": "x86_64",
    "machine_arch": "64bit",
    "system_info": "Linux - 6.18.44",
    "python_info": "3.11.7 (main) [GCC 12.2.0]",
    "h": "6a5b68829e4a5917dbe590914123f22e",
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


@pytest.fixture
def session(client: TestClient) -> str:
    assert client.post(f"{PM}/contexts/", json=CONTEXT).status_code == 201
    assert new_session(client).status_code == 201
    return SESSION_H


def test_session_is_created_with_its_hash_and_shown_as_in_the_seed(client: TestClient) -> None:
    r = new_session(client)
    assert r.status_code == 201
    item = {
        "session_h": SESSION_H,
        "run_date": "2020-12-04T23:18:15.661016",
        "scm_ref": "4914d195225cf6b1c5a160c555b6948ea1ba2bcd",
        "tags": [{"key": "numpy", "value": "1.17.1"}],
    }
    assert r.json() == item
    assert client.get(f"{PM}/sessions/").json() == {"sessions": [item], "total_page": 1}
    assert client.get(f"{PM}/sessions/count/").json() == {"count": 1}
    native = client.get(f"/v1/sessions/{SESSION_H}").json()
    assert (native["source"], native["tags"], native["started_at"]) == (
        "monitor",
        {"numpy": "1.17.1"},
        "2020-12-04T23:18:15.661Z",
    )
    assert new_session(client).status_code == 409  # the same key twice


def test_seed_spelling_h_and_description_as_json_text_are_accepted(client: TestClient) -> None:
    r = client.post(
        f"{PM}/sessions",
        json={"h": "abc", "run_date": "2020-12-04T23:18:15", "description": '{"numpy": "1.17.1"}'},
    )
    assert r.status_code == 201, r.text
    assert r.json()["tags"] == [{"key": "numpy", "value": "1.17.1"}]
    assert r.json()["scm_ref"] is None


def test_prefix_lookup_lists_only_sessions_starting_with_the_key(client: TestClient) -> None:
    for h in ("0041aa", "0041bb", "a0041c", "ff"):
        assert new_session(client, h).status_code == 201
    client.post("/v1/sessions", json={"id": "0041native", "name": "0041native"})  # not monitor
    found = client.get(f"{PM}/sessions/0041").json()
    assert [s["session_h"] for s in found["sessions"]] == ["0041aa", "0041bb"]
    assert client.get(f"{PM}/sessions/zz").json() == {"sessions": [], "total_page": 0}


def test_pages_carry_prev_next_urls_and_total_page(client: TestClient, admin_key: str) -> None:
    for i in range(5):
        assert new_session(client, f"s{i}").status_code == 201
    first = client.get(f"{PM}/sessions/", params={"per_page": 2}).json()
    assert [s["session_h"] for s in first["sessions"]] == ["s0", "s1"]
    assert first["total_page"] == 3 and "prev_url" not in first
    second = client.get(first["next_url"]).json()
    assert [s["session_h"] for s in second["sessions"]] == ["s2", "s3"]
    # The requests carry the key in their path, as the client does: so do the links.
    keyed = f"/compat/monitor/k/{admin_key}/api/v1"
    assert second["prev_url"] == f"{keyed}/sessions/?page=1&per_page=2"
    last = client.get(f"{PM}/sessions/", params={"per_page": 2, "page": -1}).json()
    assert [s["session_h"] for s in last["sessions"]] == ["s4"] and "next_url" not in last


def test_context_is_stored_found_by_prefix_and_answered_with_h(client: TestClient) -> None:
    r = client.get(f"{PM}/contexts/{CONTEXT['h']}")
    assert r.status_code == 200 and r.json()["contexts"] == []  # unknown: the client posts it
    r = client.post(f"{PM}/contexts/", json=CONTEXT)
    assert r.status_code == 201 and r.json()["h"] == CONTEXT["h"]
    found = client.get(f"{PM}/contexts/{CONTEXT['h'][:6]}").json()["contexts"]
    assert found == [CONTEXT]
    assert client.post(f"{PM}/contexts/", json=CONTEXT).status_code == 201  # same content: fine
    other = {**CONTEXT, "ram_total": 1}
    r = client.post(f"{PM}/contexts/", json=other)
    assert r.status_code == 409
    assert r.json()["message"] == f"context {CONTEXT['h']} exists with other attributes"
    assert client.get(f"{PM}/contexts/count").json() == {"count": 1}
    assert client.get(f"{PM}/contexts/").json() == {"contexts": [CONTEXT], "total_page": 1}
    assert client.get(f"/v1/sessions/{CONTEXT['h']}").status_code == 404  # not a session
    assert client.get(f"{PM}/sessions/count").json() == {"count": 0}


def test_a_context_is_one_recorded_event_in_the_chained_log(client: TestClient) -> None:
    head = log_head(client)
    assert client.post(f"{PM}/contexts/", json=CONTEXT).status_code == 201
    assert client.post(f"{PM}/contexts/", json=CONTEXT).status_code == 201  # appends nothing
    assert client.post(f"{PM}/contexts/", json={**CONTEXT, "cpu_count": 64}).status_code == 409
    events = client.get("/v1/events", params={"after": head}).json()["events"]
    assert [(e["type"], e["stream_id"], e["version"]) for e in events] == [
        ("Recorded", f"context:{CONTEXT['h']}", 1)
    ]
    attributes = {k: v for k, v in CONTEXT.items() if k != "h"}
    assert events[0]["payload"] == {"h": CONTEXT["h"], "attributes": attributes}
    assert len(events[0]["hash"]) == 64  # a link of the hash chain like any session event
    digest = client.get("/v1/ledger/digest").json()
    assert (digest["position"], digest["hash"]) == (events[0]["position"], events[0]["hash"])


def test_contexts_page_and_prefix_match_by_h(client: TestClient) -> None:
    for h in ("ab1", "ab2", "b", "abc"):
        assert client.post(f"{PM}/contexts/", json={**CONTEXT, "h": h}).status_code == 201
    first = client.get(f"{PM}/contexts/", params={"per_page": 3}).json()
    assert [x["h"] for x in first["contexts"]] == ["ab1", "ab2", "abc"]
    assert first["total_page"] == 2 and first["next_url"].endswith("page=2&per_page=3")
    assert [x["h"] for x in client.get(first["next_url"]).json()["contexts"]] == ["b"]
    found = client.get(f"{PM}/contexts/ab").json()
    assert [x["h"] for x in found["contexts"]] == ["ab1", "ab2", "abc"]
    assert client.get(f"{PM}/contexts/count/").json() == {"count": 4}
    r = client.post(f"{PM}/metrics/", json=metric(context_h="a"))  # a prefix is not a context
    assert r.status_code == 400 and "context_h" in r.json()["errors"]


def test_metrics_are_events_on_the_session_stream(client: TestClient, session: str) -> None:
    for item in ("test_server_up", "test_server_ready"):
        r = client.post(f"{PM}/metrics/", json=metric(item))
        assert r.status_code == 201, r.text
        assert r.json() == metric(item)
    listed = client.get(f"{PM}/sessions/{session}/metrics/").json()
    assert listed == {
        "metrics": [metric("test_server_up"), metric("test_server_ready")],
        "total_page": 1,
    }
    assert client.get(f"{PM}/sessions/{session}/metrics/count/").json() == {"count": 2}
    assert client.get(f"/v1/sessions/{session}").json()["metrics"] == 2
    events = client.get(f"/v1/sessions/{session}/events").json()["events"]
    recorded = [e["payload"] for e in events if e["type"] == "MetricRecorded"]
    assert recorded[0]["context"] == CONTEXT["h"]
    assert "context_sha256" not in recorded[0]["values"]  # the context is its own event now


def test_metrics_of_an_unknown_session_are_404(client: TestClient) -> None:
    r = client.get(f"{PM}/sessions/nope/metrics/")
    assert r.status_code == 404 and "nope" in r.json()["message"]


def test_all_fourteen_metric_fields_are_checked_and_named(client: TestClient, session: str) -> None:
    head = log_head(client)
    r = client.post(f"{PM}/metrics/", json={})
    assert r.status_code == 400
    assert sorted(r.json()["errors"]) == sorted(metric())  # every field named at once
    bad = metric(
        item="",
        total_time=-1,
        user_time="fast",
        kernel_time=None,
        cpu_usage=True,
        item_start_time="yesterday",
        kind=3,
    )
    errors = client.post(f"{PM}/metrics/", json=bad).json()["errors"]
    assert set(errors) == {
        "item",
        "total_time",
        "user_time",
        "kernel_time",
        "cpu_usage",
        "item_start_time",
        "kind",
    }
    assert "number" in errors["user_time"] and ">= 0" in errors["total_time"]
    r = client.post(f"{PM}/metrics/", json=metric(context_h="unknown"))
    assert r.status_code == 400 and "context_h" in r.json()["errors"]
    r = client.post(f"{PM}/metrics/", json=metric(session_h="unknown"))
    assert r.status_code == 404
    r = client.post(
        f"{PM}/metrics/", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert log_head(client) == head


def test_bad_session_and_context_bodies_are_400_and_append_nothing(client: TestClient) -> None:
    head = log_head(client)
    cases = [
        ({"run_date": "2020-12-04T23:18:15"}, "session_h"),
        ({"session_h": "x", "run_date": "not a date", "description": {}}, "run_date"),
        (
            {"session_h": "x", "run_date": "2020-12-04", "description": {"a": {"b": "c"}}},
            "description",
        ),
        ({"session_h": "x", "run_date": "2020-12-04", "description": ["a"]}, "description"),
        ({"session_h": "x", "run_date": "2020-12-04", "description": {}, "scm_ref": 5}, "scm_ref"),
    ]
    for body, field in cases:
        r = client.post(f"{PM}/sessions/", json=body)
        assert r.status_code == 400, body
        assert field in r.json()["errors"], r.json()
    r = client.post(f"{PM}/contexts/", json={**CONTEXT, "cpu_count": "two", "ram_total": None})
    assert r.status_code == 400 and set(r.json()["errors"]) == {"cpu_count", "ram_total"}
    assert client.get(f"{PM}/contexts/").json()["contexts"] == []
    assert client.get(f"{PM}/sessions/", params={"page": 0}).status_code == 400
    assert log_head(client) == head
