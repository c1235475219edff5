"""Aggregates from stored events, for the command service (persistence/ledger.py) and the
tools that fold a stream: the pure fold of a whole stream (`fold`), a stream's aggregate
rebuilt from all its events (`rebuild`), and a cached aggregate brought forward by only the
events stored after it (`caught_up`), which another process's appends make necessary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.context import ExecutionContext, is_context_stream
from domain.decide import Aggregate
from domain.session import Session, upcast
from domain.state import State, evolve, new_state
from persistence.chain import StoredEvent

# Past this many appends of other processes (or the cache's size), the command service
# forgets its cache rather than read which streams they touched (persistence/ledger.py).
STALE_SCAN = 100_000


def fold(events: Sequence[StoredEvent], session_id: str | None = None) -> dict[str, Any] | None:
    """The pure fold of one stream's stored events (None when there are none)."""
    state = None
    for e in events:
        if state is None:
            state = new_state(session_id or e.stream_id)
        fold_onto(state, e)
    return state


def fold_onto(state: State, e: StoredEvent) -> None:
    """One stored event folded onto `state` in place (the step `fold` takes)."""
    evolve(state, e.type, upcast(e.type, e.schema_version, e.data()), e.recorded_at, e.position)


def rebuild(sid: str, stored: Sequence[StoredEvent]) -> Aggregate:
    """The aggregate of a stored stream: a context replays its events through the
    library; a session is rehydrated from the pure fold."""
    if not stored:
        raise RuntimeError(f"stream {sid} vanished inside a transaction")
    if is_context_stream(sid):
        ctx = ExecutionContext.rebuild(sid, ((e.version, e.recorded_at, e.data()) for e in stored))
        assert ctx is not None
        return ctx
    state = fold(stored, sid)
    assert state is not None
    return Session.from_state(state)


def caught_up(agg: Session, later: Sequence[StoredEvent]) -> Session:
    """The cached session `agg` (a fold of its stream up to its version) with the events
    stored after it, `later`, folded on: the fold of the whole stream without reading it.
    Folds onto `agg`'s own state: a caller that fails afterwards must drop `agg` from its
    cache (the command service drops every aggregate its failed group touched)."""
    state = agg.state
    for e in later:
        if e.version != state["version"] + 1:
            raise RuntimeError(f"stream {agg.id}: version {e.version} after {state['version']}")
        fold_onto(state, e)
    return Session.from_state(state)
