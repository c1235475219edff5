"""The bulk load (`ProjectionRunner.load`, behind `replay rebuild` and the as-of replays) reads
the log stream by stream, in ranges of streams, and writes a session once its stream is
complete: these prove it lands exactly where applying the log event by event lands, for
sessions that get events after they end (a verdict, details, an annotation, a delete), for
every batch and range size, with the ranges shared between two processes, up to any position,
and with only the count and stats views."""

from __future__ import annotations

import gc
import math
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import commands as c
from domain.state import evolve, fold_kept_alive, new_state
from persistence.ledger import Ledger
from persistence.store import EventStore
from projections import queries as qs
from projections.bulk import can_split
from projections.loader import Claims, stream_ranges
from projections.runner import ProjectionRunner
from projections.view_count import CountView
from projections.view_stats import StatsView
from tests.conftest import PG_BINDIR
from tests.pg import PgCluster
from tests.test_views_property import StepClock, dump, history, run_history


def docs(runner: ProjectionRunner) -> dict[str, Any]:
    """Every detail document, deleted sessions' too (a reader's `dump` skips those)."""
    t = runner.tables
    with runner.engine.connect() as conn:
        rows = conn.execute(t.detail.select()).all()
    return {sid: orjson.loads(doc) for sid, doc in rows}


def sums(runner: ProjectionRunner) -> dict[str, Any]:
    """What the count and stats views answer from their own rows (groupings by two
    dimensions fold the list's documents instead)."""
    t = runner.tables
    with runner.engine.connect() as conn:
        out: dict[str, Any] = {
            "count": qs.count_sessions(conn, t, qs.SessionFilter()),
            "count_tag": qs.count_sessions(conn, t, qs.SessionFilter(tags=(("k", "v"),))),
        }
        for group in [(), ("status",), ("day", "status"), ("project",), ("browser", "status")]:
            query = qs.StatsQuery(group_by=group)
            assert qs.answered_by_cells(query)
            out[f"stats{group}"] = qs.stats(conn, t, query)["groups"]
    return out


def loaded(store: EventStore, path: Path, **kw: Any) -> ProjectionRunner:
    views = kw.pop("views", None)
    runner = ProjectionRunner.for_url(store, f"sqlite:///{path}", views=views)
    runner.create_schema()
    runner.load(**kw)
    return runner


def late_events_history(tmp: Path) -> EventStore:
    """Interleaved sessions, most of them touched after they end."""
    store = EventStore(f"sqlite:///{tmp}/ledger.db")
    store.create_schema()
    clock = StepClock()
    ledger = Ledger(store, clock)
    ids = [f"s{i}" for i in range(12)]
    cmds: list[c.Command] = []
    for i, sid in enumerate(ids):
        cmds.append(
            c.StartSession(
                session_id=sid, project=f"p{i % 3}", user="ann", tags={"k": "v"}, status="running"
            )
        )
    for sid in ids:
        cmds.append(c.KeepAlive(session_id=sid, path="/a"))
        cmds.append(c.RecordResult(session_id=sid, status="passed"))
    for sid in ids[::2]:
        cmds.append(c.StopSession(session_id=sid))
    for sid in ids[1::2]:
        cmds.append(c.ExpireSession(session_id=sid, timeout=0.0))
    cmds += [
        c.ChangeStatus(session_id="s0", status="failed"),  # a verdict after the run
        c.UpdateDetails(session_id="s2", changes={"project": "moved", "tags": {"k": "w"}}),
        c.Annotate(session_id="s4", annotation_id="n", text="late"),
        c.DeleteSession(session_id="s6"),
        c.UpdateDetails(session_id="s1", changes={"name": "late"}),
        c.ChangeStatus(session_id="s3", status="passed"),
    ]
    for cmd in cmds:
        clock.now += 1.25
        ledger.execute_many([cmd])
    # The same sessions again, long after: two more rounds of late events.
    for sid in ("s0", "s2"):
        clock.now += 3600
        ledger.execute_many([c.Annotate(session_id=sid, annotation_id="m", text="later")])
    ledger.execute_many([c.DeleteSession(session_id="s0")])
    return store


def test_sessions_with_events_after_they_end_load_like_the_live_path(tmp_path: Path) -> None:
    store = late_events_history(tmp_path)
    live = ProjectionRunner.for_url(store, f"sqlite:///{tmp_path}/live.db", batch_size=4)
    live.create_schema()
    live.catch_up()
    head = store.head_digest()[0]
    for n, kw in enumerate(
        [
            {},
            {"sessions_per_batch": 1},  # a write after every completed session
            {"range_events": 1},  # as many ranges as the sample finds streams
            {"parallel_from": 0, "range_events": 4},  # ranges shared with a second process
            {"parallel_from": 0, "sessions_per_batch": 1, "range_events": 2},
        ]
    ):
        got = loaded(store, tmp_path / f"l{n}.db", **kw)
        assert got.position == head
        assert dump(got) == dump(live), kw
        assert docs(got) == docs(live), kw
    # Only the sum views (what `replay stats` replays): no detail rows to lean on.
    only = [CountView(), StatsView()]
    got = loaded(store, tmp_path / "sums.db", views=only, sessions_per_batch=1)
    assert sums(got) == sums(live)
    store.dispose()


@pytest.mark.skipif(PG_BINDIR is None, reason="no PostgreSQL server binaries")
def test_a_load_into_postgresql_lands_where_the_live_path_does(
    pg: PgCluster, tmp_path: Path
) -> None:
    """On PostgreSQL the load writes its fresh tables by COPY, and a second loader shares
    the ranges (its own connections, side by side): the same views as event by event."""
    store = late_events_history(tmp_path)
    live = ProjectionRunner.for_url(store, f"sqlite:///{tmp_path}/live.db", batch_size=4)
    live.create_schema()
    live.catch_up()
    for kw in ({}, {"parallel_from": 0, "range_events": 4, "sessions_per_batch": 1}):
        got = ProjectionRunner.for_url(store, pg.create_database("load"))
        got.create_schema()
        assert can_split(got)  # a second process can open the views database too
        got.load(**kw)
        assert got.read_position() == store.head_digest()[0]
        assert dump(got) == dump(live), kw
        assert docs(got) == docs(live), kw
        assert sums(got) == sums(live), kw
        got.engine.dispose()
    store.dispose()


def test_ranges_of_streams_cover_every_stream_once_and_share_the_events(tmp_path: Path) -> None:
    store = late_events_history(tmp_path)
    head = store.head_digest()[0]
    every = sorted({e.stream_id for e in store.iter_all()})
    assert stream_ranges(store, head, per_range=head * 2) == [(None, None)]
    ranges = stream_ranges(store, head, per_range=4)
    assert len(ranges) > 3
    held = []
    for lo, hi in ranges:
        ids = [sid for sid in every if (lo is None or sid >= lo) and (hi is None or sid < hi)]
        got = {r[0] for rows in store.iter_stream_rows(head, {"Started"}, (lo, hi)) for r in rows}
        assert got == set(ids)
        held += ids
    assert held == every  # in order, none twice, none missing
    # Within a range each stream comes whole and in version order.
    rows = [
        r
        for rows in store.iter_stream_rows(head, {"Started", "KeptAlive", "Stopped"})
        for r in rows
    ]
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    by_stream: dict[str, list[int]] = {}
    for r in rows:
        by_stream.setdefault(r[0], []).append(r[5])
    assert all(p == sorted(p) for p in by_stream.values())
    store.dispose()


def test_two_loaders_claiming_ranges_take_each_exactly_once(tmp_path: Path) -> None:
    ranges = [(None, "b"), ("b", "d"), ("d", "f"), ("f", None)]
    first, second = Claims(ranges, str(tmp_path)), Claims(ranges, str(tmp_path))
    a, b = first.taken(), second.taken()
    # Interleaved as two processes would: whoever asks first gets the next free range.
    got_a = [next(a)[0]]
    got_b = [next(b)[0], next(b)[0]]
    got_a += [i for i, _ in a]
    got_b += [i for i, _ in b]
    assert got_a == [0, 3] and got_b == [1, 2]
    # Without a directory every range is this process's.
    assert [i for i, _ in Claims(ranges).taken()] == [0, 1, 2, 3]


def test_a_second_loader_takes_the_ranges_the_first_has_not_reached(tmp_path: Path) -> None:
    store = late_events_history(tmp_path)
    live = ProjectionRunner.for_url(store, f"sqlite:///{tmp_path}/live.db")
    live.create_schema()
    live.catch_up()
    ranges = stream_ranges(store, store.head_digest()[0], per_range=2)
    reached: list[int] = []

    def slow(at: int) -> None:  # the first loader crawls: the second has time to start
        reached.append(at)
        time.sleep(0.25)

    got = ProjectionRunner.for_url(store, f"sqlite:///{tmp_path}/two.db")
    got.create_schema()
    got.load(progress=slow, parallel_from=0, range_events=2, sessions_per_batch=1)
    assert 0 < len(reached) < len(ranges)  # one progress step per range it loaded itself
    assert dump(got) == dump(live)
    assert docs(got) == docs(live)
    store.dispose()


def test_a_load_pauses_the_cyclic_collector_and_gives_it_back(tmp_path: Path) -> None:
    store = late_events_history(tmp_path)
    try:
        for n, enabled in enumerate((True, False)):
            (gc.enable if enabled else gc.disable)()
            loaded(store, tmp_path / f"gc{n}.db", sessions_per_batch=1)
            assert gc.isenabled() is enabled
    finally:
        gc.enable()
        store.dispose()


def test_load_up_to_a_position_stops_there(tmp_path: Path) -> None:
    store = late_events_history(tmp_path)
    head = store.head_digest()[0]
    for until in (1, 13, head // 2, head - 3):
        ref = ProjectionRunner.for_url(store, f"sqlite:///{tmp_path}/ref{until}.db")
        ref.create_schema()
        ref.catch_up(until=until)
        for n, kw in enumerate(
            [{}, {"parallel_from": 0, "sessions_per_batch": 2, "range_events": 3}]
        ):
            got = loaded(store, tmp_path / f"u{until}-{n}.db", until=until, **kw)
            assert got.position == until
            assert dump(got) == dump(ref), (until, kw)
            assert docs(got) == docs(ref), (until, kw)
    store.dispose()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(hist=history, cut=st.floats(0, 1), per_range=st.sampled_from([1, 2, 5, 20_000]))
def test_small_batches_and_cuts_load_like_catch_up(
    tmp_path_factory: Any, hist: Any, cut: float, per_range: int
) -> None:
    tmp = tmp_path_factory.mktemp("l")
    store, _, live, _, _ = run_history(tmp, hist)
    got = loaded(store, tmp / "one.db", sessions_per_batch=1, range_events=per_range)
    assert dump(got) == dump(live)
    assert docs(got) == docs(live)
    until = math.floor(store.head_digest()[0] * cut)
    ref = ProjectionRunner.for_url(store, f"sqlite:///{tmp}/ref.db")
    ref.create_schema()
    ref.catch_up(until=until)
    part = loaded(store, tmp / "part.db", until=until, sessions_per_batch=1, range_events=per_range)
    assert dump(part) == dump(ref)
    stats_only = loaded(store, tmp / "sums.db", views=[CountView(), StatsView()], until=until)
    assert sums(stats_only) == sums(ref)
    store.dispose()


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["KeptAlive", "Hidden", "Stopped", "ResultRecorded"]),
            st.fixed_dictionaries(
                {},
                optional={
                    "visible": st.booleans(),
                    "path": st.sampled_from(["", "/a", "/b"]) | st.none(),
                    "status": st.just("passed"),
                    "at": st.integers(-4, 12).map(lambda n: n / 3 + 0.5),  # an event time
                },
            ),
            st.integers(-4, 12).map(lambda n: n / 3),
        ),
        max_size=12,
    )
)
def test_the_inlined_keepalive_step_is_evolve(
    steps: list[tuple[str, dict[str, Any], float]],
) -> None:
    a, b = new_state("s"), new_state("s")
    evolve(a, "Started", {}, 0.0, 1)
    evolve(b, "Started", {}, 0.0, 1)
    for kind, payload, at in steps:
        if kind == "ResultRecorded" and "status" not in payload:
            continue
        evolve(a, kind, payload, at)
        if kind == "KeptAlive":
            fold_kept_alive(b, payload, at)
        else:
            evolve(b, kind, payload, at)
        assert a == b
