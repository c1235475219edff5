"""Testmo's documented exchanges, replayed against the dialect.

No Testmo server can run here, so the requests and the answers' shapes are transcribed from
Testmo's documentation and its generated client:
- docs.testmo.com/api/reference/sessions (the seed's text): the list and detail examples;
- docs.testmo.com/api/introduction/pagination-expands: page/prev_page/next_page/last_page
  (null for an empty result without pages), per_page (default 100);
- docs.testmo.com/api/introduction/api-authentication: `Authorization: Bearer <token>`;
- docs.testmo.com/api/introduction/error-handling: 401 invalid or missing token, 403
  permissions, 404 unknown objects, 405 GET instead of POST or vice versa, 422 invalid
  parameters; the body is the client's `ErrorCollection`, `{"message", "errors"}`;
- @testmo/testmo-api 2.4.0 `model/Session.js` (the session's fields) and
  `api/RunResultsApi.js` (status ids: 1 Untested, 2 Passed, ... 6 Skipped).
The paths drop Testmo's `/api/v1`, which the dialect's base URL ends with.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.dialects.conftest import NONE

TM = "/compat/testmo/api/v1"
# The Session model of the npm client, member by member.
SESSION_FIELDS = {
    "id", "project_id", "template_id", "name", "config_id", "milestone_id", "state_id",
    "assignee_id", "estimate", "forecast", "elapsed", "is_started", "is_closed", "issues",
    "tags", "untested_count", *(f"status{n}_count" for n in range(1, 25)), "success_count",
    "failure_count", "completed_count", "total_count", "started_at", "created_at",
    "created_by", "updated_at", "updated_by", "closed_at", "closed_by",
}  # fmt: skip
# Sessions created after 2023-02-15: those of day 15 and later, and the one of March.
AFTER_15TH = 1 + sum(1 for i in range(1, 101) if 1 + i % 28 >= 15)
PAGE_FIELDS = {"page", "prev_page", "next_page", "last_page", "per_page", "total", "result"}
Check = Callable[[dict[str, Any]], None]


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@pytest.fixture
def project(client: TestClient) -> None:
    """101 sessions in project 5 (two pages of 100), the first two closed by user 1, one
    result each on the first; created in February 2023 but the last, created in March."""
    lines: list[dict[str, Any]] = [
        {"command": "start", "session_id": f"s{i}", "source": "testmo", "project": "5",
         "name": f"Session {i}", "user": "2",
         "started_at": epoch(f"2023-0{3 if i == 101 else 2}-{1 + i % 28:02d}T12:00:00Z")}
        for i in range(1, 102)
    ]  # fmt: skip
    lines += [{"command": "stop", "session_id": s, "by": "1"} for s in ("s1", "s2")]
    lines += [{"command": "result", "session_id": "s1", "status": "passed"}]
    r = client.post("/v1/events:batch", content=b"\n".join(orjson.dumps(x) for x in lines))
    assert r.status_code == 200 and not r.json()["rejected"], r.text


def rows(total: int, first: int | None = None) -> Check:
    def check(body: dict[str, Any]) -> None:
        assert set(body) >= PAGE_FIELDS and body["total"] == total
        assert all(set(row) == SESSION_FIELDS for row in body["result"])
        if first is not None:
            assert body["result"][0]["id"] == first
        for row in body["result"]:
            assert row["project_id"] == 5 and row["created_by"] == 2
            assert isinstance(row["is_closed"], bool) and row["created_at"].endswith("Z")
            closed = (row["closed_at"], row["closed_by"])
            assert closed == (None, None) if not row["is_closed"] else closed[1] == 1

    return check


def envelope(**expected: Any) -> Check:
    def check(body: dict[str, Any]) -> None:
        assert {k: body[k] for k in expected} == expected

    return check


def both(*checks: Check) -> Check:
    def check(body: dict[str, Any]) -> None:
        for c in checks:
            c(body)

    return check


def expands(*names: str) -> Check:
    def check(body: dict[str, Any]) -> None:
        assert set(body["expands"]) == set(names)
        if "users" in names:  # UserExpand: {id, name}; the users the answer references
            assert body["expands"]["users"] and all(
                set(u) == {"id", "name"} for u in body["expands"]["users"]
            )
        for name in set(names) - {"users", "statuses"}:
            assert body["expands"][name] == []  # no session references one

    return check


def detail(number: int, **fields: Any) -> Check:
    def check(body: dict[str, Any]) -> None:
        assert set(body) == {"result", "expands"} and set(body["result"]) == SESSION_FIELDS
        assert body["result"]["id"] == number
        assert {k: body["result"][k] for k in fields} == fields

    return check


def error(body: dict[str, Any]) -> None:
    assert set(body) == {"message", "errors"} and body["message"]
    assert isinstance(body["errors"], dict)


CLOSED = {"is_closed": True}
# (method, path as documented, headers, status, what the answer holds)
EXCHANGES: list[tuple[str, str, dict[str, str] | None, int, Check]] = [
    # "Get latest 100 sessions for project with ID 5"
    ("GET", "/projects/5/sessions", None, 200,
     both(rows(101, first=101), envelope(page=1, prev_page=None, next_page=2, last_page=2,
                                         per_page=100, expands={}))),
    # "Get second result page (pagination)"
    ("GET", "/projects/5/sessions?page=2", None, 200,
     both(rows(101, first=1), envelope(page=2, prev_page=1, next_page=None, last_page=2))),
    # "Get latest 100 active sessions"
    ("GET", "/projects/5/sessions?is_closed=0", None, 200, both(rows(99, first=101))),
    # "Get latest 100 closed sessions, ordered by close date" (s2 was closed last)
    ("GET", "/projects/5/sessions?is_closed=1&sort=sessions:closed_at", None, 200,
     both(rows(2, first=2), lambda b: [r["is_closed"] for r in b["result"]] == [True, True])),
    # "Get latest sessions created after a certain date & time"
    ("GET", "/projects/5/sessions?created_after=2023-02-15T00:00:00.000Z", None, 200,
     rows(AFTER_15TH, first=101)),
    # "Get sessions and include expands"
    ("GET", "/projects/5/sessions?expands=configs,issues,users", None, 200,
     both(rows(101), expands("configs", "issues", "users"))),
    # "Get the session with ID 5"
    ("GET", "/sessions/5", None, 200, both(detail(5, name="Session 5"), envelope(expands={}))),
    # "Get a session and include expands"
    ("GET", "/sessions/1?expands=configs,issues,users", None, 200,
     both(detail(1, is_closed=True, success_count=1, status1_count=1, completed_count=1,
                 total_count=1), expands("configs", "issues", "users"))),
    # status ids as the client documents them: 1 Untested, 2 Passed, 3 Failed ...
    ("GET", "/sessions/1?expands=statuses", None, 200,
     lambda b: [(s["id"], s["name"]) for s in b["expands"]["statuses"]][:6] == [
         (1, "Untested"), (2, "Passed"), (3, "Failed"), (4, "Retest"), (5, "Blocked"),
         (6, "Skipped")]),
    # an empty project: no pages
    ("GET", "/projects/404/sessions", None, 200,
     envelope(page=None, prev_page=None, next_page=None, last_page=None, total=0, result=[])),
    # error handling: 401 missing or invalid token, 404 unknown, 405 wrong method, 422 input
    ("GET", "/projects/5/sessions", NONE, 401, error),
    ("GET", "/sessions/1", {"Authorization": "Bearer not-a-token"}, 401, error),
    ("GET", "/sessions/404404", None, 404, error),
    ("POST", "/projects/5/sessions", None, 405, error),
    ("GET", "/projects/5/sessions?sort=sessions:colour", None, 422, error),
    ("GET", "/projects/5/sessions?expands=everything", None, 422, error),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "headers", "status", "check"), EXCHANGES)
def test_documented_exchange(
    client: TestClient,
    project: None,
    method: str,
    path: str,
    headers: dict[str, str] | None,
    status: int,
    check: Check,
) -> None:
    before = log_size(client)
    r = client.request(method, TM + path, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert check(body) in (None, True), body
    assert log_size(client) == before  # reads and refusals append nothing


def log_size(client: TestClient) -> int:
    return len(client.get("/v1/events", params={"limit": 10000}).json()["events"])
