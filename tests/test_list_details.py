"""`list_details`: the page `list_sessions` shows, as whole detail documents read once."""

from __future__ import annotations

from typing import Any

import pytest

from api.bootstrap import Container
from domain import commands as c
from projections import queries as qs
from projections.view_list import summary

FILTERS = [
    qs.SessionFilter(),
    qs.SessionFilter(project="p"),
    qs.SessionFilter(status=("completed",)),
    qs.SessionFilter(tags=(("k", "v"),)),
    qs.SessionFilter(project="p", user=("u1",)),
]


@pytest.fixture
def seeded(container: Container, clock: Any) -> Container:
    ledger = container.ledger
    for i in range(14):
        ledger.execute(
            c.StartSession(
                session_id=f"s{i:02}",
                project="p" if i % 3 else "q",
                user=f"u{i % 2}",
                name=None if i % 4 == 0 else f"n{i % 5}",
                tags={"k": "v"} if i % 2 else {},
            )
        )
        clock.advance(1 + i % 3)
        if i % 3 == 1:
            ledger.execute(c.StopSession(session_id=f"s{i:02}"))
    ledger.execute(c.DeleteSession(session_id="s04"))
    container.runner.catch_up()
    return container


@pytest.mark.parametrize("f", FILTERS, ids=range(len(FILTERS)))
@pytest.mark.parametrize("descending", [True, False])
def test_the_same_page_as_the_list_with_whole_documents(
    seeded: Container, f: qs.SessionFilter, descending: bool
) -> None:
    t = seeded.runner.tables
    with seeded.runner.engine.connect() as conn:
        for sort in qs.SORT_FIELDS:
            for limit, offset in ((5, 0), (5, 5), (50, 0), (3, 11)):
                rows = qs.list_sessions(conn, t, f, sort, descending, limit, offset)
                got = qs.list_details(conn, t, f, sort, descending, limit, offset)
                docs = qs.get_details(conn, t, [r["id"] for r in rows.items])
                assert got.total == rows.total
                assert got.items == [docs[r["id"]] for r in rows.items], (sort, limit, offset)
                assert [summary(d) for d in got.items] == rows.items
