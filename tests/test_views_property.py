"""The heart: any sequence of commands gives the same views live, after a rebuild, and as a
pure fold of the stored events (hypothesis generates the sequences)."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import commands as c
from domain.errors import LedgerError
from domain.eventtime import EventTimeWindow
from domain.state import STATUSES
from persistence.aggregates import fold
from persistence.blobs import BlobStore
from persistence.erasure import erase
from persistence.ledger import Ledger
from persistence.store import EventStore
from projections import queries as qs
from projections.cells import bucket_of
from projections.runner import ProjectionRunner
from projections.tables import ViewTables
from projections.view_list import summary

IDS = ["a", "b", "c", "d"]
PATHS = ["/home", "/view/1", "/view/2"]

# Event times (`at`), drawn as offsets from the clock when the command is sent (`timed_at`):
# some out of the test's window (WINDOW), some before the session's latest event (refused as
# out of order), some a little ahead (later commands without `at` then take that time).
AT_OFFSETS = st.none() | st.none() | st.sampled_from([-200.0, -2.5, -0.25, 0.0, 0.5, 2.0, 10.0])
WINDOW = EventTimeWindow(past=100.0, future=5.0)
TIMEOUT = 2.0  # as the drawn ExpireSession commands'


def with_offset(strategy: Any) -> Any:
    """Commands of `strategy` that sometimes carry an `at` offset (see `timed_at`)."""
    return st.tuples(strategy, AT_OFFSETS).map(
        lambda t: t[0] if t[1] is None else dataclasses.replace(t[0], at=t[1])
    )


def timed_at(cmd: c.Command, now: float) -> c.Command:
    """The command as sent at `now`: its drawn `at` offset made a time."""
    return cmd if cmd.at is None else dataclasses.replace(cmd, at=now + cmd.at)


start = st.builds(
    lambda i, p, b, u, br: c.StartSession(
        session_id=IDS[i],
        project=p,
        build=b,
        user=u,
        attributes={"browser": br},
        tags={"email": f"{u}@example.org"},
    ),
    st.integers(0, 3),
    st.sampled_from(["p1", "p2", None]),
    st.sampled_from(["b1", "b2"]),
    st.sampled_from(["ann", "bob"]),
    st.sampled_from(["chrome", "firefox"]),
)
command_untimed = st.one_of(
    start,
    st.builds(
        lambda i, v, p: c.KeepAlive(session_id=IDS[i], visible=v, path=p),
        st.integers(0, 3),
        st.booleans(),
        st.sampled_from(PATHS),
    ),
    st.builds(
        lambda i, p: c.Hide(session_id=IDS[i], path=p), st.integers(0, 3), st.sampled_from(PATHS)
    ),
    st.builds(
        lambda i, s: c.ChangeStatus(session_id=IDS[i], status=s),
        st.integers(0, 3),
        st.sampled_from(STATUSES),
    ),
    st.builds(
        lambda i, n, t: c.UpdateDetails(session_id=IDS[i], changes={"name": n, "tags": t}),
        st.integers(0, 3),
        st.sampled_from(["login", "checkout"]),
        st.sampled_from([{"k": "v"}, {"k": "w"}, {"env": "ci"}]),
    ),
    st.builds(
        lambda i, s: c.RecordResult(session_id=IDS[i], status=s),
        st.integers(0, 3),
        st.sampled_from(["passed", "failed"]),
    ),
    st.builds(lambda i: c.StopSession(session_id=IDS[i]), st.integers(0, 3)),
    st.builds(lambda i: c.ExpireSession(session_id=IDS[i], timeout=2.0), st.integers(0, 3)),
    st.builds(lambda i: c.DeleteSession(session_id=IDS[i]), st.integers(0, 3)),
    st.builds(
        lambda i, t: c.Annotate(session_id=IDS[i], annotation_id="n1", text=t),
        st.integers(0, 3),
        st.sampled_from(["hello", "corrected"]),
    ),
    # Not a command any way in sends: `ledger replay erase` (persistence/erasure.py).
    st.builds(lambda i: c.EraseSession(session_id=IDS[i]), st.integers(0, 3)),
)
command = with_offset(command_untimed)
# Quarter-second steps: binary-exact, so sums do not depend on the order they are added in.
step = st.integers(0, 12).map(lambda n: n / 4)
# Histories open with a few starts: a command on a session nobody started is refused, and
# without them most drawn histories would hold no session at all.
history = st.tuples(
    st.lists(st.tuples(with_offset(start), step, st.booleans()), min_size=1, max_size=4),
    st.lists(st.tuples(command, step, st.booleans()), max_size=36),
).map(lambda two: two[0] + two[1])


class StepClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def dump(runner: ProjectionRunner) -> dict[str, Any]:
    """Everything a reader can see through the views, normalised."""
    t = runner.tables
    with runner.engine.connect() as conn:
        page = qs.list_sessions(conn, t, qs.SessionFilter(), "number", False, 1000, 0)
        details = {i["id"]: qs.get_detail(conn, t, i["id"]) for i in page.items}
        out = {
            "list": page.items,
            # Default-order pages under filter indexes: PostgreSQL runs the merged status
            # runs too, and must agree with SQLite.
            "list_p1": qs.list_sessions(conn, t, qs.SessionFilter(project="p1")).items,
            "list_ann": qs.list_sessions(
                conn, t, qs.SessionFilter(user=("ann",), status=("running", "completed"))
            ).items,
            "details": details,
            "count": qs.count_sessions(conn, t, qs.SessionFilter()),
            "count_tag": qs.count_sessions(conn, t, qs.SessionFilter(tags=(("k", "v"),))),
        }
        for group in [(), ("status",), ("day", "project", "browser"), ("build", "user")]:
            out[f"stats{group}"] = qs.stats(conn, t, qs.StatsQuery(group_by=group))["groups"]
    return out


def oracle(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The same answers computed directly from folded states, without any view table."""
    live = sorted((s for s in states if not s["deleted"]), key=lambda s: s["number"])
    by_status = Counter(s["status"] for s in live)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for s in live:
        groups[(s["status"],)].append(s)
    stats = []
    for key, members in sorted(groups.items()):
        durations = sorted(s["duration"] for s in members if s["duration"] is not None)
        paths: dict[str, float] = defaultdict(float)
        results: Counter[str] = Counter()
        for s in members:
            for p, v in s["visible_time"].items():
                paths[p] += v
            results.update(s["result_counts"])
        hist = Counter(bucket_of(d) for d in durations)
        stats.append(
            {
                "key": {"status": key[0]},
                "count": len(members),
                "ended": len(durations),
                "duration": {
                    "count": len(durations),
                    "sum": round(sum(durations), 6),
                    "mean": round(round(sum(durations), 6) / len(durations), 6)
                    if durations
                    else None,
                    "max": durations[-1] if durations else None,
                    "p50": qs.percentile(
                        hist, len(durations), 0.5, durations[-1] if durations else None
                    ),
                    "p95": qs.percentile(
                        hist, len(durations), 0.95, durations[-1] if durations else None
                    ),
                },
                "visible_time": {p: round(v, 6) for p, v in sorted(paths.items()) if v},
                "results": dict(sorted((k, v) for k, v in results.items() if v)),
            }
        )
    return {
        "list": [orjson.loads(orjson.dumps(summary(s))) for s in live],
        "count": {"total": len(live), "by_status": dict(sorted(by_status.items()))},
        "stats('status',)": stats,
    }


def run_history(tmp: Path, hist: list[tuple[c.Command, float, bool]]) -> tuple[Any, ...]:
    store = EventStore(f"sqlite:///{tmp}/ledger.db")
    store.create_schema()
    clock = StepClock()
    ledger = Ledger(store, clock, window=WINDOW, session_timeout=TIMEOUT)
    live = ProjectionRunner.for_url(store, f"sqlite:///{tmp}/live.db", batch_size=3)
    live.create_schema()
    blobs, erased = BlobStore(tmp / "blobs"), set()
    for cmd, dt, catch_up in hist:
        clock.now += dt
        before = store.head_digest()
        if isinstance(cmd, c.EraseSession):
            try:
                erase(store, blobs, cmd.session_id, clock)
                erased.add(cmd.session_id)
            except LedgerError:
                assert store.head_digest() == before, "a refused erasure appended something"
            continue
        out = ledger.execute_many([timed_at(cmd, clock.now)])[0]
        if isinstance(out, LedgerError):
            # Nothing of its own; only the Expired a gap before its `at` implied (a lapse).
            appended = store.read(before[0])
            assert all(e.type == "Expired" for e in appended), "a rejected command appended"
        if catch_up:
            live.catch_up()
    live.catch_up()
    rebuilt = ProjectionRunner.for_url(store, f"sqlite:///{tmp}/rebuilt.db", batch_size=10_000)
    rebuilt.create_schema()
    rebuilt.catch_up()
    # The rebuild's bulk path (stream after stream, sums in memory) must land the same.
    loaded = ProjectionRunner.for_url(store, f"sqlite:///{tmp}/loaded.db")
    loaded.create_schema()
    loaded.load()
    assert dump(loaded) == dump(rebuilt)
    by_stream: dict[str, list[Any]] = defaultdict(list)
    for e in store.iter_all():
        by_stream[e.stream_id].append(e)
    states = [fold(events) for events in by_stream.values()]
    for events in by_stream.values():  # event times never go backwards along a stream
        times = [e.data().get("at", e.recorded_at) for e in events]
        assert times == sorted(times)
    for sid in erased:  # no value logged before its last erasure is left to read
        last = max(e.position for e in by_stream[sid] if e.type == "Erased")
        before = [e.position for e in by_stream[sid] if e.position < last]
        assert not any(store.sealed_values(before).values())
    ledger.erased = erased  # type: ignore[attr-defined]
    return store, ledger, live, rebuilt, [s for s in states if s is not None]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(hist=history)
def test_live_views_equal_rebuilt_views_equal_pure_fold(tmp_path_factory: Any, hist: Any) -> None:
    tmp = tmp_path_factory.mktemp("h")
    store, ledger, live, rebuilt, states = run_history(tmp, hist)
    live_view, rebuilt_view = dump(live), dump(rebuilt)
    assert live_view == rebuilt_view
    expected = oracle(states)
    assert live_view["list"] == expected["list"]
    assert live_view["count"] == expected["count"]
    assert live_view["stats('status',)"] == expected["stats('status',)"]
    for s in states:
        if not s["deleted"]:
            assert live_view["details"][s["id"]] == s
        # The aggregate the ledger decided with is the fold of what it stored.
        cached = ledger.cache.get(s["id"])
        if cached is not None and s["id"] not in ledger.erased:
            assert cached.state == s
    totals = live_view["stats()"]
    assert sum(g["count"] for g in totals) == live_view["count"]["total"]
    store.dispose()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(hist=history, cut=st.floats(0, 1))
def test_history_split_in_two_replays_to_the_same_views(
    tmp_path_factory: Any, hist: Any, cut: float
) -> None:
    tmp = tmp_path_factory.mktemp("s")
    store, _, live, _, _ = run_history(tmp, hist)
    head = store.head_digest()[0]
    split = ProjectionRunner(store, live.engine, ViewTables("_split"), batch_size=10_000)
    split.create_schema()
    split.catch_up(until=math.floor(head * cut))
    split.catch_up()
    assert dump(split) == dump(live)
    store.dispose()


LIST_FILTERS = [
    qs.SessionFilter(),
    qs.SessionFilter(status=("running",)),
    qs.SessionFilter(status=("passed", "failed")),
    qs.SessionFilter(project="p1"),
    qs.SessionFilter(user=("ann",), status=("running",)),
    qs.SessionFilter(tags=(("k", "v"),)),
    qs.SessionFilter(active=True),
    qs.SessionFilter(active=False, build="b2"),
    qs.SessionFilter(project="p2", tags=(("env", "ci"),)),
    qs.SessionFilter(project="p1", status=("failed", "running")),
    qs.SessionFilter(user=("ann", "bob")),
    qs.SessionFilter(project="p1", build="b2", status=("running",)),
]
SORTS = ["started_at", "ended_at", "duration", "last_seen_at", "number", "name"]


def _matches(s: dict[str, Any], f: qs.SessionFilter) -> bool:
    active = s["ended_at"] is None
    return (
        (not f.status or s["status"] in f.status)
        and (f.project is None or s["project"] == f.project)
        and (f.build is None or s["build"] == f.build)
        and (not f.user or s["user"] in f.user)
        and (f.active is None or active == f.active)
        and all(s["tags"].get(k) == v for k, v in f.tags)
    )


def _sorted(live: list[dict[str, Any]], sort: str, desc: bool) -> list[dict[str, Any]]:
    """Sessions without a value last either way; the number breaks ties in the sort's direction."""
    have = [s for s in live if s[sort] is not None]
    none = [s for s in live if s[sort] is None]
    have.sort(key=lambda s: (s[sort], s["number"]), reverse=desc)
    none.sort(key=lambda s: s["number"], reverse=desc)
    return have + none


def oracle_stats(
    live: list[dict[str, Any]], group_by: tuple[str, ...], where: dict[str, str]
) -> list[dict[str, Any]]:
    from projections.cells import dim_value
    from projections.projection import day_of

    def val(s: dict[str, Any], g: str) -> str:
        return (
            day_of(s["started_at"])
            if g == "day"
            else (s["status"] if g == "status" else dim_value(s, g))
        )

    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for s in live:
        if all(val(s, d) == v for d, v in where.items()):
            groups[tuple(val(s, g) for g in group_by)].append(s)
    out = []
    for key, members in sorted(groups.items()):
        durations = sorted(s["duration"] for s in members if s["duration"] is not None)
        top = durations[-1] if durations else None
        hist = Counter(bucket_of(d) for d in durations)
        paths: dict[str, float] = defaultdict(float)
        results: Counter[str] = Counter()
        for s in members:
            for p, v in s["visible_time"].items():
                paths[p] += v
            results.update(s["result_counts"])
        out.append(
            {
                "key": dict(zip(group_by, key, strict=True)),
                "count": len(members),
                "ended": len(durations),
                "duration": {
                    "count": len(durations),
                    "sum": round(sum(durations), 6),
                    "mean": round(round(sum(durations), 6) / len(durations), 6)
                    if durations
                    else None,
                    "max": top,
                    "p50": qs.percentile(hist, len(durations), 0.5, top),
                    "p95": qs.percentile(hist, len(durations), 0.95, top),
                },
                "visible_time": {p: round(v, 6) for p, v in sorted(paths.items()) if v},
                "results": dict(sorted((k, v) for k, v in results.items() if v)),
            }
        )
    return out


STATS_QUERIES = [
    ((), {}),
    (("project",), {}),
    (("day", "status"), {}),
    (("browser",), {"status": "running"}),
    (("status",), {"project": "p1"}),
    (("build", "user"), {}),  # two dimensions: folded from the documents
    (("user",), {"browser": "chrome"}),
]


def keyset_pages(
    conn: Any, t: Any, f: qs.SessionFilter, sort: str, desc: bool, limit: int
) -> list[str]:
    """Every matching session, a keyset page at a time (`after` = the last page's `last`)."""
    got: list[str] = []
    after = None
    for _ in range(1000):
        page = qs.list_sessions(conn, t, f, sort, desc, limit, 0, after)
        got += [i["id"] for i in page.items]
        if not page.more:
            return got
        after = page.last
    raise AssertionError("keyset pages never ended")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(hist=history, page=st.tuples(st.integers(0, 5), st.integers(1, 3)))
def test_every_list_plan_count_and_stats_grouping_answers_like_the_fold(
    tmp_path_factory: Any, hist: Any, page: tuple[int, int]
) -> None:
    """List pages (each filter and sort, walked along the sort or collected and sorted),
    counts and stats groupings (rollup cells or documents) against the folded states."""
    offset, limit = page
    tmp = tmp_path_factory.mktemp("q")
    store, _, live, _, states = run_history(tmp, hist)
    alive = [s for s in states if not s["deleted"]]
    t = live.tables
    natural = qs._walk
    with live.engine.connect() as conn:
        for f in LIST_FILTERS:
            matching = [s for s in alive if _matches(s, f)]
            want_count = dict(sorted(Counter(s["status"] for s in matching).items()))
            assert qs.count_sessions(conn, t, f) == {
                "total": len(matching),
                "by_status": want_count,
            }
            for sort in SORTS:
                for desc in (True, False):
                    want = [s["id"] for s in _sorted(matching, sort, desc)]
                    # The drawn page, and the first page whole (the drawn offset is often
                    # past the few matches a short history has).
                    for off, lim in ((offset, limit), (0, 10)):
                        for plan in (natural, lambda *a, **k: True, lambda *a, **k: False):
                            qs._walk = plan  # type: ignore[assignment]
                            try:
                                got = qs.list_sessions(conn, t, f, sort, desc, lim, off)
                            finally:
                                qs._walk = natural  # type: ignore[assignment]
                            assert got.total == len(matching)
                            assert [i["id"] for i in got.items] == want[off : off + lim], (
                                f,
                                sort,
                                desc,
                                off,
                            )
                    for plan in (natural, lambda *a, **k: True, lambda *a, **k: False):
                        qs._walk = plan  # type: ignore[assignment]
                        try:
                            walked = keyset_pages(conn, t, f, sort, desc, limit)
                        finally:
                            qs._walk = natural  # type: ignore[assignment]
                        assert walked == want, (f, sort, desc, "keyset")
        for group_by, where in STATS_QUERIES:
            q = qs.StatsQuery(group_by=group_by, filters=tuple((d, (v,)) for d, v in where.items()))
            assert qs.stats(conn, t, q)["groups"] == oracle_stats(alive, group_by, where), q
    store.dispose()
