"""Event time and record time: when a command says its event happened (`at`) against when
the ledger recorded it, and the rule for late and out-of-order events.

Every event has a recorded time (the writer's clock, never going backwards along the log).
A command may also carry `at`, the time its event happened; the event keeps it in its
payload, and the fold (`domain.state.evolve`) runs on event time: `at` when present, else
the recorded time. The rules, all decided here before anything is appended:

- `at` must lie within a window around the recording clock: no more than `past` seconds
  before it (an import of last week's history passes), no more than `future` after (clock
  skew). Outside it: `EventTimeOutOfWindowError`, nothing appended.
- Within a stream, event time never goes backwards. An `at` earlier than the stream's latest
  event time is refused (`EventOutOfOrderError`, nothing appended). A command without `at`
  recorded earlier than that latest time (an earlier event came from a clock slightly ahead)
  takes the latest time as its own, written as `at`: refusing it would punish a live client
  for another client's clock.

So each stream's event times are non-decreasing in version order, and any fold of the same
events (live, rebuild, replay, as of an event time) computes the same times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.errors import EventOutOfOrderError, EventTimeOutOfWindowError

DAY = 86_400.0


@dataclass(frozen=True)
class EventTimeWindow:
    """How far an event's `at` may lie from its recorded time (settings:
    LEDGER_EVENT_TIME_PAST, LEDGER_EVENT_TIME_FUTURE, in seconds)."""

    past: float = 31 * DAY  # a month of history can be imported
    future: float = 300.0  # five minutes of clock skew

    def __post_init__(self) -> None:
        if not (self.past >= 0 and self.future >= 0):
            raise ValueError("the event time window must not be negative")


DEFAULT_WINDOW = EventTimeWindow()


def time_of(payload: dict[str, Any], recorded: float) -> float:
    """An event's event time: its `at`, else its recorded time (what the fold uses)."""
    at: float | None = payload.get("at")
    return recorded if at is None else at


def latest_time(state: dict[str, Any]) -> float:
    """The event time of a session's latest event: every event sets either `last_seen_at`
    (signs of life) or `updated_at` (every other event) to its time."""
    seen: float | None = state["last_seen_at"]
    updated: float | None = state["updated_at"]
    if seen is None:
        return updated if updated is not None else 0.0
    return seen if updated is None or seen >= updated else updated


def event_time(
    at: float | None,
    recorded: float,
    state: dict[str, Any] | None,
    window: EventTimeWindow = DEFAULT_WINDOW,
) -> float | None:
    """The `at` the command's events carry (None: their recorded time is their event time),
    or the named error of the rule a client's `at` breaks. `state`: the stream's session
    state, None for a new stream."""
    if at is None:
        if state is not None:
            latest = latest_time(state)
            if latest > recorded:
                return latest
        return None
    if at < recorded - window.past:
        raise EventTimeOutOfWindowError(
            f"at: more than {window.past:g} s before the ledger's clock (LEDGER_EVENT_TIME_PAST)",
            field="at",
        )
    if at > recorded + window.future:
        raise EventTimeOutOfWindowError(
            f"at: more than {window.future:g} s after the ledger's clock "
            "(LEDGER_EVENT_TIME_FUTURE)",
            field="at",
        )
    if state is not None and at < latest_time(state):
        raise EventOutOfOrderError(
            f"at: before the session's latest event ({latest_time(state)!r}); "
            "a session's events are taken in time order",
            field="at",
        )
    return at


def lapsed_expiry(state: dict[str, Any], at: float, timeout: float) -> float | None:
    """When a session open at event time `at` had already lapsed (no sign of life within
    `timeout` before it): the event time of the Expired the sweeper would have appended,
    else None. Live, the sweeper would have ended the session in that gap; an imported
    history ends it the same way, so the gap is never counted as visible time."""
    if state["deleted"] or state["ended_at"] is not None:
        return None
    seen: float | None = state["last_seen_at"]
    if seen is None or seen + timeout > at:
        return None
    return max(seen + timeout, latest_time(state))
