"""The pytest-monitor dialect's metrics and contexts, as the reference server answers them:
every metric (all, a session's, a context's) in the order recorded and counted, contexts in
the order recorded with their integer fields as integers, and the reference's words for bad
input. Each metric and each context is an event of the chained log."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.dialects.test_monitor import CONTEXT, PM, SESSION_H, log_head, metric, new_session

OTHER = {**CONTEXT, "h": "0a" * 16, "machine_node": "ci-2"}  # sorts before CONTEXT


@pytest.fixture
def session(client: TestClient) -> str:
    assert client.post(f"{PM}/contexts/", json=CONTEXT).status_code == 201
    assert new_session(client).status_code == 201
    return SESSION_H


def test_metrics_are_events_on_the_session_stream(client: TestClient, session: str) -> None:
    for item in ("test_server_up", "test_server_ready"):
        r = client.post(f"{PM}/metrics/", json=metric(item, user_time=1))
        assert r.status_code == 201, r.text
        assert r.json() == metric(item, user_time=1.0)
        assert isinstance(r.json()["user_time"], float)  # the reference's Float fields
    listed = client.get(f"{PM}/sessions/{session}/metrics").json()
    both = [metric(item, user_time=1.0) for item in ("test_server_up", "test_server_ready")]
    assert listed == {"metrics": both, "total_page": 1}
    assert client.get(f"{PM}/sessions/{session}/metrics/count").json() == {"count": 2}
    assert client.get(f"/v1/sessions/{session}").json()["metrics"] == 2
    events = client.get(f"/v1/sessions/{session}/events").json()["events"]
    recorded = [e["payload"] for e in events if e["type"] == "MetricRecorded"]
    assert recorded[0]["context"] == CONTEXT["h"]


def test_every_metric_and_a_contexts_metrics_in_the_order_recorded(
    client: TestClient, session: str
) -> None:
    assert client.post(f"{PM}/contexts/", json=OTHER).status_code == 201
    assert new_session(client, "beef").status_code == 201
    plan = [(SESSION_H, CONTEXT), ("beef", OTHER), (SESSION_H, OTHER), ("beef", CONTEXT)]
    for i, (s, ctx) in enumerate(plan):
        r = client.post(f"{PM}/metrics/", json=metric(f"t{i}", session_h=s, context_h=ctx["h"]))
        assert r.status_code == 201
    # Metrics of sessions that are not pytest-monitor's, or deleted, are not listed.
    client.post("/v1/sessions", json={"id": "native-1"})
    client.post("/v1/sessions/native-1/metrics", json={"item": "n", "context": CONTEXT["h"]})
    assert new_session(client, "gone").status_code == 201
    assert client.post(f"{PM}/metrics/", json=metric("g", session_h="gone")).status_code == 201
    assert client.delete("/v1/sessions/gone").is_success

    every = client.get(f"{PM}/metrics/").json()["metrics"]
    assert [m["item"] for m in every] == ["t0", "t1", "t2", "t3"]  # log order, not by session
    assert client.get(f"{PM}/metrics/count").json() == {"count": 4}
    page = client.get(f"{PM}/metrics/", params={"per_page": 3, "page": 2}).json()
    assert [m["item"] for m in page["metrics"]] == ["t3"] and page["total_page"] == 2
    of_context = client.get(f"{PM}/contexts/{CONTEXT['h']}/metrics").json()["metrics"]
    assert [(m["item"], m["session_h"]) for m in of_context] == [("t0", SESSION_H), ("t3", "beef")]
    assert client.get(f"{PM}/contexts/{OTHER['h']}/metrics/count").json() == {"count": 2}
    assert client.get(f"{PM}/contexts/{CONTEXT['h'][:4]}/metrics").status_code == 204  # full key
    assert client.get(f"{PM}/contexts/nope/metrics/count").json() == {"count": 0}


def test_metrics_of_an_unknown_session_are_204_and_count_0(client: TestClient) -> None:
    r = client.get(f"{PM}/sessions/nope/metrics")
    assert (r.status_code, r.content) == (204, b"")
    assert client.get(f"{PM}/sessions/nope/metrics/count").json() == {"count": 0}


def test_contexts_in_the_order_recorded_with_integer_fields(client: TestClient) -> None:
    posted = {**CONTEXT, "cpu_frequency": 2445.926}  # the reference's field is an Integer
    r = client.post(f"{PM}/contexts/", json=posted)
    assert (r.status_code, r.json()) == (201, CONTEXT)
    assert client.post(f"{PM}/contexts/x", json=OTHER).status_code == 201  # h from the body
    listed = client.get(f"{PM}/contexts/").json()
    assert listed == {"contexts": [CONTEXT, OTHER], "total_page": 1}
    assert client.get(f"{PM}/contexts/{CONTEXT['h'][:6]}").json()["contexts"] == [CONTEXT]
    assert client.post(f"{PM}/contexts/", json=posted).status_code == 201  # same: appends nothing
    r = client.post(f"{PM}/contexts/", json={**CONTEXT, "ram_total": 1})
    assert r.status_code == 409
    assert r.json()["message"] == f"context {CONTEXT['h']} exists with other attributes"
    assert client.get(f"{PM}/contexts/count").json() == {"count": 2}
    assert client.get(f"/v1/sessions/{CONTEXT['h']}").status_code == 404  # not a session
    no_vendor = {k: v for k, v in CONTEXT.items() if k != "cpu_vendor"}
    r = client.post(f"{PM}/contexts/", json={**no_vendor, "h": "c3"})
    assert r.status_code == 201 and r.json()["cpu_vendor"] == ""


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
    digest = client.get("/v1/ledger/digest").json()
    assert (digest["position"], digest["hash"]) == (events[0]["position"], events[0]["hash"])


def test_metric_fields_are_checked_in_the_references_words(
    client: TestClient, session: str
) -> None:
    head = log_head(client)
    r = client.post(f"{PM}/metrics/", json={})
    assert r.status_code == 400 and r.json()["message"] == "Input payload validation failed"
    assert r.json()["errors"] == {k: f"'{k}' is a required property" for k in metric()}
    bad = metric(kind=3, user_time="fast", kernel_time=None, cpu_usage=True, session_h=5)
    assert client.post(f"{PM}/metrics/", json=bad).json()["errors"] == {
        "kind": "3 is not of type 'string'",
        "user_time": "'fast' is not of type 'number'",
        "kernel_time": "None is not of type 'number'",
        "cpu_usage": "True is not of type 'number'",
        "session_h": "5 is not of type 'string'",
    }
    r = client.post(f"{PM}/metrics/", json=metric(context_h="unknown"))  # a foreign key
    assert r.status_code == 400 and "context_h" in r.json()["errors"]
    r = client.post(f"{PM}/metrics/", json=metric(context_h=CONTEXT["h"][:4]))  # not a prefix
    assert r.status_code == 400
    assert client.post(f"{PM}/metrics/", json=metric(session_h="unknown")).status_code == 404
    r = client.post(f"{PM}/metrics/", content=b"{x", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["message"].startswith("The browser (or proxy)")
    assert log_head(client) == head
    # What the reference takes, the ledger takes: negative and non-ISO values are measures.
    r = client.post(f"{PM}/metrics/", json=metric(total_time=-1, item_start_time="yesterday"))
    assert r.status_code == 201


def test_bad_context_bodies_are_400_and_append_nothing(client: TestClient) -> None:
    head = log_head(client)
    r = client.post(f"{PM}/contexts/", json={**CONTEXT, "cpu_count": "two", "ram_total": None})
    assert r.status_code == 400
    assert r.json()["errors"] == {
        "cpu_count": "'two' is not of type 'integer'",
        "ram_total": "None is not of type 'integer'",
    }
    assert client.post(f"{PM}/contexts/", json={"h": "c3"}).status_code == 400
    assert client.post(f"{PM}/contexts/", json=["h"]).status_code == 400
    assert client.get(f"{PM}/contexts/").status_code == 204
    assert log_head(client) == head
