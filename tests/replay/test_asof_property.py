"""Property: for random histories, stats as of now equal the live view, and stats as of any
earlier time equal what the live view showed at that time."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.bootstrap import bootstrap
from domain import commands as c
from domain.errors import LedgerError
from persistence.settings import Settings
from projections import queries
from replay.asof import stats_as_of
from replay.source import open_store, resolve_point
from tests.conftest import FakeClock

IDS = ("a", "b", "c", "d")
QUERIES = [
    queries.StatsQuery(),
    queries.StatsQuery(group_by=("status",)),
    queries.StatsQuery(group_by=("day", "browser")),
    queries.StatsQuery(group_by=("project", "status"), from_day="2023-11-15"),
]

step = st.one_of(
    st.tuples(
        st.just("start"),
        st.sampled_from(IDS),
        st.sampled_from(["web", "api"]),
        st.sampled_from(["chrome", "firefox", None]),
        st.sampled_from(["queued", "running"]),
    ),
    st.tuples(
        st.just("keepalive"), st.sampled_from(IDS), st.sampled_from(["/a", "/b"]), st.booleans()
    ),
    st.tuples(st.just("hide"), st.sampled_from(IDS)),
    st.tuples(
        st.just("status"),
        st.sampled_from(IDS),
        st.sampled_from(["running", "passed", "failed", "cancelled"]),
    ),
    st.tuples(st.just("result"), st.sampled_from(IDS), st.sampled_from(["passed", "failed"])),
    st.tuples(st.just("stop"), st.sampled_from(IDS)),
    st.tuples(st.just("expire"), st.sampled_from(IDS)),
    st.tuples(st.just("delete"), st.sampled_from(IDS)),
    st.tuples(st.just("advance"), st.sampled_from([1, 7, 600, 40000])),
    st.tuples(st.just("checkpoint")),
)


def command(s: tuple[Any, ...]) -> c.Command | None:
    kind, *args = s
    if kind == "start":
        sid, project, browser, status = args
        attrs = {"browser": browser} if browser else {}
        return c.StartSession(session_id=sid, project=project, attributes=attrs, status=status)
    sid = args[0]
    return {
        "keepalive": lambda: c.KeepAlive(session_id=sid, path=args[1], visible=args[2]),
        "hide": lambda: c.Hide(session_id=sid),
        "status": lambda: c.ChangeStatus(session_id=sid, status=args[1]),
        "result": lambda: c.RecordResult(session_id=sid, status=args[1]),
        "stop": lambda: c.StopSession(session_id=sid),
        "expire": lambda: c.ExpireSession(session_id=sid, timeout=300),
        "delete": lambda: c.DeleteSession(session_id=sid),
    }[kind]()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=30))
def test_stats_as_of_match_the_live_view_then_and_now(steps: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clock = FakeClock()
        cfg = Settings(database_url=f"sqlite:///{tmp}/ledger.db", blob_dir=Path(tmp) / "blobs")
        container = bootstrap(cfg, clock=clock)
        store = open_store(cfg)
        try:
            seen: list[tuple[float, list[dict[str, Any]]]] = []

            def live() -> list[dict[str, Any]]:
                container.runner.catch_up()
                with container.runner.engine.connect() as conn:
                    return [queries.stats(conn, container.runner.tables, q) for q in QUERIES]

            for s in steps:
                if s[0] == "advance":
                    clock.advance(s[1])
                elif s[0] == "checkpoint":
                    seen.append((clock.now, live()))
                    clock.advance(1)
                else:
                    # A rejected command appends nothing; the property covers that too.
                    with contextlib.suppress(LedgerError):
                        container.ledger.execute(command(s))
            for t, then in seen:
                point = resolve_point(store, repr(t))
                assert [stats_as_of(store, point, q) for q in QUERIES] == then
            now = resolve_point(store, None)
            assert [stats_as_of(store, now, q) for q in QUERIES] == live()
        finally:
            store.dispose()
            container.close()
