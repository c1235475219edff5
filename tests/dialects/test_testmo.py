"""The Testmo dialect: per-project pages, filters, sort, expands, counts, detail, errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

TM = "/compat/testmo/api/v1"


def start(client: TestClient, sid: str, **fields: Any) -> int:
    r = client.post("/v1/sessions", json={"id": sid, "source": "testmo", "project": "5", **fields})
    assert r.status_code == 201, r.text
    return int(r.json()["number"])


def batch(client: TestClient, *lines: dict[str, Any]) -> None:
    r = client.post("/v1/events:batch", content=b"\n".join(orjson.dumps(x) for x in lines))
    assert r.status_code == 200, r.text


def log_size(client: TestClient) -> int:
    return len(client.get("/v1/events", params={"limit": 10000}).json()["events"])


@pytest.fixture
def project(client: TestClient) -> dict[str, int]:
    ids = {
        "a": start(client, "a", name="A", user="2", started_at="2024-05-01T00:00:00Z"),
        "b": start(client, "b", name="B", user="2", started_at="2024-05-02T00:00:00Z"),
        "c": start(client, "c", name="C", user="7", started_at="2024-05-03T00:00:00Z"),
        "other": start(client, "other", project="6"),
    }
    batch(
        client,
        {"command": "stop", "session_id": "b", "by": "3"},
        {"command": "stop", "session_id": "a", "by": "3"},
    )
    return ids


def page(client: TestClient, **params: Any) -> dict[str, Any]:
    r = client.get(f"{TM}/projects/5/sessions", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_envelope_and_paging(client: TestClient, project: dict[str, int]) -> None:
    first = page(client, per_page=2)
    assert {
        k: first[k] for k in ("page", "prev_page", "next_page", "last_page", "per_page", "total")
    } == {"page": 1, "prev_page": None, "next_page": 2, "last_page": 2, "per_page": 2, "total": 3}
    second = page(client, per_page=2, page=2)
    assert (second["prev_page"], second["next_page"]) == (1, None)
    ids = [s["id"] for s in first["result"] + second["result"]]
    assert ids == [project["c"], project["b"], project["a"]]  # latest first, nothing twice
    assert first["expands"] == {}


def test_row_fields(client: TestClient, project: dict[str, int]) -> None:
    rows = {s["name"]: s for s in page(client)["result"]}
    b, c = rows["B"], rows["C"]
    assert b["id"] == project["b"] and b["project_id"] == 5
    assert b["is_closed"] is True and b["closed_by"] == 3 and b["closed_at"]
    assert b["created_at"] == "2024-05-02T00:00:00.000Z" and b["created_by"] == 2
    assert c["is_closed"] is False and c["closed_at"] is None and c["closed_by"] is None
    assert c["updated_at"] is None and c["updated_by"] is None  # never updated
    assert all(c[f"status{n}_count"] == 0 for n in range(1, 25)) and c["total_count"] == 0
    assert c["issues"] == [] and c["tags"] == []


def test_filters_and_sort(client: TestClient, project: dict[str, int]) -> None:
    def names(**params: Any) -> list[str]:
        return [s["name"] for s in page(client, **params)["result"]]

    assert names(is_closed=0) == ["C"]
    assert names(is_closed="false") == ["C"]
    assert names(is_closed=1, sort="sessions:closed_at") == ["A", "B"]  # closed last first
    assert names(is_closed="true", sort="sessions:closed_at", order="asc") == ["B", "A"]
    assert names(sort="sessions:name", order="asc") == ["A", "B", "C"]
    assert names(created_after="2024-05-01T12:00:00.000Z") == ["C", "B"]
    assert names(created_before="2024-05-02T12:00:00Z") == ["B", "A"]
    assert names(created_by="7") == ["C"]
    assert names(milestone_id="1,2") == []  # the ledger records no milestones
    assert client.get(f"{TM}/projects/6/sessions").json()["total"] == 1
    assert client.get(f"{TM}/projects/99/sessions").json()["total"] == 0


def test_expands_comma_and_repeated(client: TestClient, project: dict[str, int]) -> None:
    comma = page(client, expands="users,statuses,milestones")["expands"]
    r = client.get(f"{TM}/projects/5/sessions?expands=users&expands=statuses,milestones")
    assert r.json()["expands"] == comma
    assert comma["users"] == [
        {"id": 2, "name": "2"},
        {"id": 3, "name": "3"},
        {"id": 7, "name": "7"},
    ]
    assert comma["milestones"] == []
    # Testmo's status ids: 1 Untested, 2 Passed (counted in status1), 3 Failed (status2)...
    assert [(s["id"], s["system_name"]) for s in comma["statuses"]][:3] == [
        (1, "untested"),
        (2, "passed"),
        (3, "failed"),
    ]
    assert comma["statuses"][0]["is_untested"] is True


def test_counts_from_results(client: TestClient, project: dict[str, int]) -> None:
    results = ["passed", "passed", "failed", "untested", "status7", "retest", "weird"]
    batch(client, *({"command": "result", "session_id": "c", "status": s} for s in results))
    r = client.get(f"{TM}/sessions/{project['c']}")
    assert r.status_code == 200
    row = r.json()["result"]
    assert (row["success_count"], row["failure_count"], row["untested_count"]) == (2, 1, 1)
    assert (row["status1_count"], row["status2_count"], row["status3_count"]) == (2, 1, 1)
    assert row["status7_count"] == 1
    assert row["completed_count"] == 4  # passed x2, failed, status7 (retest is not final)
    assert row["total_count"] == 7
    assert row["updated_at"] is not None
    described = client.get(f"{TM}/sessions/{project['c']}", params={"expands": "statuses"})
    custom = described.json()["expands"]["statuses"][-1]  # the custom slot counted: status7
    assert (custom["id"], custom["system_name"], custom["aliases"]) == (8, "status7", ["status7"])


def test_an_empty_result_has_no_pages(client: TestClient, project: dict[str, int]) -> None:
    empty = client.get(f"{TM}/projects/99/sessions").json()
    assert (empty["page"], empty["last_page"], empty["next_page"], empty["total"]) == (
        None,
        None,
        None,
        0,
    )


def test_detail_and_missing(client: TestClient, project: dict[str, int]) -> None:
    r = client.get(f"{TM}/sessions/{project['a']}", params={"expands": "users,templates"})
    assert r.status_code == 200
    assert r.json()["result"]["name"] == "A"
    assert r.json()["expands"] == {
        "users": [{"id": 2, "name": "2"}, {"id": 3, "name": "3"}],
        "templates": [],
    }
    missing = client.get(f"{TM}/sessions/404404")
    assert missing.status_code == 404
    assert set(missing.json()) == {"message", "errors"}
    client.delete("/v1/sessions/a")
    assert client.get(f"{TM}/sessions/{project['a']}").status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "expands=everything",
        "is_closed=maybe",
        "sort=sessions:colour",
        "order=up",
        "per_page=0",
        "per_page=101",
        "page=0",
        "created_after=yesterday",
        "milestone_id=x",
    ],
)
def test_bad_input_is_422_and_appends_nothing(
    client: TestClient, project: dict[str, int], query: str
) -> None:
    before = log_size(client)
    r = client.get(f"{TM}/projects/5/sessions?{query}")
    assert r.status_code == 422, r.text
    assert r.json()["message"] and isinstance(r.json()["errors"], dict)
    assert log_size(client) == before
    assert client.get(f"{TM}/sessions/abc").status_code == 422
