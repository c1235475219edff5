"""Execution contexts: the aggregate's rules, their events in the ledger, views skip them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from api.bootstrap import Container
from domain import commands as c
from domain.context import ExecutionContext, context_stream
from domain.errors import ContextConflictError, InvalidCommandError, SessionNotFoundError
from persistence.ledger import Ledger
from projections import queries as qs

ATTRS = {"cpu_count": 2, "cpu_frequency": 2445.4, "machine_node": "box", "cpu_vendor": ""}


def record(container: Container, h: str = "6a5b", attributes: Any = None) -> c.CommandResult:
    return container.ledger.execute(c.RecordContext.of(h, attributes or ATTRS))


def test_recording_creates_one_recorded_event_stamped_with_the_given_clock() -> None:
    ctx = ExecutionContext.record("6a5b", ATTRS, at=1_700_000_000.5)
    (event,) = ctx.collect_events()
    assert isinstance(event, ExecutionContext.Recorded)
    assert (event.originator_id, event.originator_version) == ("context:6a5b", 1)
    assert event.timestamp.timestamp() == 1_700_000_000.5
    assert event.payload() == {"h": "6a5b", "attributes": ATTRS}
    assert (ctx.id, ctx.version, ctx.h, ctx.attributes) == ("context:6a5b", 1, "6a5b", ATTRS)


def test_payload_round_trips_through_orjson_into_the_same_aggregate() -> None:
    ctx = ExecutionContext.record("6a5b", ATTRS, at=10.0)
    (event,) = ctx.collect_events()
    stored = orjson.loads(orjson.dumps(event.payload(), option=orjson.OPT_SORT_KEYS))
    again = ExecutionContext.rebuild("context:6a5b", [(1, 10.0, stored)])
    assert again is not None
    assert (again.id, again.version, again.h, again.attributes) == (
        ctx.id,
        ctx.version,
        ctx.h,
        ctx.attributes,
    )
    assert ExecutionContext.rebuild("context:none", []) is None


def test_the_same_attributes_again_append_nothing_and_others_are_refused() -> None:
    ctx = ExecutionContext.record("6a5b", ATTRS, at=10.0)
    ctx.collect_events()
    ctx.record_again(dict(ATTRS))
    assert ctx.collect_events() == []
    with pytest.raises(ContextConflictError) as err:
        ctx.record_again({**ATTRS, "cpu_count": 64})
    assert err.value.code == "context-conflict"
    assert ctx.collect_events() == [] and ctx.attributes == ATTRS
    with pytest.raises(InvalidCommandError):
        ExecutionContext.record("", ATTRS, at=10.0)


def test_the_ledger_records_once_and_a_conflict_appends_nothing(container: Container) -> None:
    first = record(container)
    assert (first.session_id, first.version, first.appended, first.number) == (
        "context:6a5b",
        1,
        1,
        None,
    )
    again = record(container)
    assert (again.version, again.appended, again.position) == (1, 0, first.position)
    head = container.store.head_digest()
    with pytest.raises(ContextConflictError):
        record(container, attributes={**ATTRS, "cpu_count": 64})
    assert container.store.head_digest() == head
    (stored,) = container.store.load_stream(context_stream("6a5b"))
    assert (stored.type, stored.schema_version) == ("Recorded", 1)
    assert stored.data() == {"h": "6a5b", "attributes": ATTRS}


def test_a_fresh_ledger_rebuilds_the_context_from_its_stored_event(container: Container) -> None:
    record(container)
    other = Ledger(container.store, container.ledger.clock)  # another process: empty cache
    assert other.execute(c.RecordContext.of("6a5b", ATTRS)).appended == 0
    with pytest.raises(ContextConflictError):
        other.execute(c.RecordContext.of("6a5b", {}))


def test_the_context_namespace_is_not_a_session(container: Container) -> None:
    record(container)
    with pytest.raises(InvalidCommandError):
        container.ledger.execute(c.StartSession(session_id="context:new"))
    with pytest.raises(SessionNotFoundError):
        container.ledger.execute(c.KeepAlive(session_id="context:6a5b"))
    with pytest.raises(SessionNotFoundError):
        container.ledger.load("context:6a5b")
    with pytest.raises(InvalidCommandError):  # the stream must be the context's own
        container.ledger.execute(c.RecordContext(session_id="s1", h="6a5b"))


def test_views_skip_contexts_but_their_position_moves_past_them(container: Container) -> None:
    container.ledger.execute(c.StartSession(session_id="s1"))
    runner = container.runner
    runner.catch_up()
    with runner.engine.connect() as conn:
        before = qs.count_sessions(conn, runner.tables, qs.SessionFilter())["total"]
    last = record(container).position  # a batch of nothing but a context event
    assert runner.catch_up() == last == runner.read_position()
    container.ledger.execute(c.StartSession(session_id="s2"))
    last = record(container, "7c8d").position  # mixed with a session event in one batch
    assert runner.catch_up() == last
    with runner.engine.connect() as conn:
        total = qs.count_sessions(conn, runner.tables, qs.SessionFilter())["total"]
        page = qs.list_sessions(conn, runner.tables, qs.SessionFilter(), "number", False, 10, 0)
        assert qs.get_detail(conn, runner.tables, "context:6a5b") is None
    assert (before, total) == (1, 2)
    assert [s["id"] for s in page.items] == ["s1", "s2"]


def test_streams_are_listed_and_counted_by_exact_prefix(container: Container) -> None:
    for h in ("b", "a2", "a1"):
        record(container, h)
    container.ledger.execute(c.StartSession(session_id="contexts"))  # sorts near, no match
    container.ledger.execute(c.StartSession(session_id="context;"))  # the range's upper bound
    container.ledger.execute(c.KeepAlive(session_id="contexts"))  # a second version
    store = container.store
    assert store.stream_ids("context:", 10, 0) == ["context:a1", "context:a2", "context:b"]
    assert store.stream_ids("context:", 1, 1) == ["context:a2"]
    assert store.stream_ids("context:a", 10, 0) == ["context:a1", "context:a2"]
    assert (store.count_streams("context:"), store.count_streams("context:a")) == (3, 2)
    assert store.count_streams("context:zz") == 0
    assert store.stream_ids("contexts", 10, 0) == ["contexts"]


def test_audit_and_analyst_tools_read_context_events(container: Container, client) -> None:
    from types import SimpleNamespace

    from replay.custom import run_projection
    from replay.source import Point

    record(container)
    container.ledger.execute(c.StartSession(session_id="s1"))
    only = client.get("/v1/events", params={"type": "Recorded"}).json()["events"]
    assert [e["stream_id"] for e in only] == [context_stream("6a5b")]
    counter = SimpleNamespace(
        initial=lambda: {},
        apply=lambda st, ev: {**st, ev["type"]: st.get(ev["type"], 0) + 1},
    )
    head = container.store.head_digest()[0]
    counts = run_projection(container.store, counter, Point(head, None))
    assert counts == {"Recorded": 1, "Started": 1}
