"""Dialect list pages read their sessions' detail documents once (`qs.list_details`), in one
statement whatever the page's size, and answer what the list plus a second read of each
detail document answered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from api.bootstrap import Container
from api.dialects.canopsis import shape as canopsis_shape
from api.dialects.testmo import shape as testmo
from projections import queries as qs

N = 12
OT = "/compat/opentera/api"
LISTS = {
    "testmo": ("/compat/testmo/api/v1/projects/5/sessions", "per_page"),
    "canopsis": ("/compat/canopsis/api/v2/sessions", "limit"),
    "opentera": (f"{OT}/participant/sessions", "limit"),  # a key bound to no one: every session
    "lambdatest": ("/compat/lambdatest/automation/api/v1/sessions", "limit"),
    "monitor": ("/compat/monitor/api/v1/sessions/", "per_page"),
}


@pytest.fixture
def sessions(client: TestClient, container: Container) -> None:
    for i in range(N):
        body = {"id": f"s{i:02}", "project": "5", "user": "u", "participants": ["p1"]}
        source = ("canopsis", "monitor", "testmo", "lambdatest")[i % 4]
        assert client.post("/v1/sessions", json={**body, "source": source}).is_success
        client.post(f"/v1/sessions/s{i:02}/keepalive", json={"path": f"/p{i % 2}"})
        client.post(f"/v1/sessions/s{i:02}/results", json={"status": "passed", "test": "t"})
        if i % 4 == 0:
            assert client.post(f"/v1/sessions/s{i:02}/stop").is_success
    assert client.delete("/v1/sessions/s03").is_success
    # The projection worker is idle from here on: only the requests use the views.
    assert container.runner.wait_for(container.ledger.last_position, 10)


@pytest.fixture
def statements(container: Container) -> Iterator[list[str]]:
    """Every SQL statement run on the views database while the test runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        seen.append(sql)

    engine = container.runner.engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def _get(client: TestClient, path: str, params: dict[str, Any]) -> Any:
    r = client.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("dialect", LISTS)
def test_a_list_page_reads_the_detail_documents_once(
    client: TestClient, sessions: None, statements: list[str], dialect: str
) -> None:
    path, size = LISTS[dialect]
    for page_size in (2, N):
        statements.clear()
        _get(client, path, {size: page_size})
        detail_reads = [s for s in statements if "session_detail" in s]
        assert len(detail_reads) == 1, detail_reads
        # The count, the planner's look at the count view and the page: never one a session.
        assert len(statements) < 8, statements


def _old_docs(container: Container, f: qs.SessionFilter, sort: str, desc: bool, limit: int) -> Any:
    """A page as the dialects read it before: the list rows, then each detail again."""
    t = container.runner.tables
    with container.runner.engine.connect() as conn:
        page = qs.list_sessions(conn, t, f, sort, desc, limit, 0)
        docs = qs.get_details(conn, t, [i["id"] for i in page.items])
    return [docs[i["id"]] for i in page.items]


@pytest.mark.parametrize(
    ("path", "key", "f", "sort", "desc", "shape"),
    [
        (
            "/compat/testmo/api/v1/projects/5/sessions",
            "result",
            qs.SessionFilter(project="5"),
            "number",
            True,
            testmo.row,
        ),
        (
            "/compat/canopsis/api/v2/sessions",
            "sessions",
            qs.SessionFilter(source="canopsis"),
            "started_at",
            False,
            canopsis_shape.session_item,
        ),
    ],
    ids=["testmo", "canopsis"],
)
def test_a_list_page_answers_the_same_documents_as_before(
    client: TestClient,
    container: Container,
    sessions: None,
    path: str,
    key: str,
    f: qs.SessionFilter,
    sort: str,
    desc: bool,
    shape: Callable[[dict[str, Any]], Any],
) -> None:
    answer = _get(client, path, {})
    expected = [shape(d) for d in _old_docs(container, f, sort, desc, 100)]
    assert answer[key] == expected and len(expected) > 1


def test_opentera_lists_the_same_sessions_as_before(
    client: TestClient, container: Container, sessions: None
) -> None:
    answer = _get(client, f"{OT}/participant/sessions", {})
    expected = _old_docs(container, qs.SessionFilter(), "started_at", True, 500)
    assert [s["session_uuid"] for s in answer] == [d["id"] for d in expected]
    assert len(answer) == N - 1
