"""A commit group's bookkeeping for the writer (persistence/ledger.py): what deciding a
group gives, a context's events as rows, the rows that remember idempotency keys, the first
answer a retried key gets, the refusals of the command boundary merged back among the
outcomes, and deciding a group's commands in order (`decide_group`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import orjson

from domain import commands as c
from domain.context import ExecutionContext
from domain.decide import Aggregate, decide, lapse_if_due
from domain.errors import IdempotencyKeyReusedError, LedgerError
from domain.events import NewEvent
from domain.eventtime import EventTimeWindow
from domain.rules import check_projects
from domain.session import Session
from persistence.answers import Outcome, Waiter

# A key limited to projects submits with their names: its commands may touch only sessions
# of those projects (None: any project).
Projects = frozenset[str] | None
Item = tuple[list[c.Command], Waiter, Projects]

# What deciding a group gives: outcomes (None where known only after the insert), the new
# events, commands that appended nothing, fresh idempotency keys, and repeats of a key.
Group = tuple[
    list[Outcome | None],
    list[NewEvent],
    list[tuple[int, str, int, int | None]],
    dict[str, tuple[str, int]],
    list[tuple[int, int]],
]


def check_project_limit(cmd: c.Command, agg: Aggregate | None, allowed: frozenset[str]) -> None:
    """The project rule (domain/rules.py) against the aggregate the command targets."""
    check_projects(cmd, agg.state if isinstance(agg, Session) else None, allowed)


def context_events(agg: ExecutionContext, at: float) -> list[NewEvent]:
    """An execution context's pending library events as rows to append."""
    return [
        NewEvent(
            str(e.originator_id),
            e.originator_version,
            type(e).__name__,
            type(e).class_version,
            at,
            e.payload(),
        )
        for e in cast(list[ExecutionContext.Event], agg.collect_events())
    ]


def remembered(
    fresh_keys: dict[str, tuple[str, int]], outcomes: list[Outcome | None]
) -> list[dict[str, Any]]:
    """The rows that remember each fresh idempotency key with its command's answer."""
    rows = []
    for key, (fp, idx) in fresh_keys.items():
        first = cast(c.CommandResult, outcomes[idx])
        rows.append(
            {
                "key": key,
                "fingerprint": fp,
                "result": orjson.dumps(first.as_dict()),
                "position": first.position,
            }
        )
    return rows


def merge(refused: list[LedgerError | None], outcomes: list[Outcome]) -> list[Outcome]:
    """The refusals in their places, the valid commands' outcomes in order between them."""
    rest = iter(outcomes)
    return [err if err is not None else next(rest) for err in refused]


def any_limit(items: list[Item]) -> bool:
    return any(item[2] is not None for item in items)


def replayed(
    cmd: c.Command,
    key: str,
    known: dict[str, tuple[str, bytes]],
    fresh: dict[str, tuple[str, int]],
) -> Outcome | int:
    """The first answer to a retried key: stored, or (same batch) the index of the
    command that first used it, whose answer is known only after the insert."""
    fp, first = known[key] if key in known else fresh[key]
    if fp != cmd.fingerprint():
        return IdempotencyKeyReusedError(
            f"Idempotency-Key {key!r} was used for a different command"
        )
    if isinstance(first, int):
        return first
    return c.CommandResult(**orjson.loads(first))


def decide_group(
    cmds: list[c.Command],
    limits: list[Projects] | None,
    known: dict[str, tuple[str, bytes]],
    touched: dict[str, Aggregate],
    base: int,
    floor: float,
    clock: Callable[[], float],
    window: EventTimeWindow,
    timeout: float | None,
) -> Group:
    """Decide the group's commands in order. Event i of the group will be at position
    base + 1 + i, so each answer is known as soon as its command is decided."""
    outcomes: list[Outcome | None] = [None] * len(cmds)
    new: list[NewEvent] = []
    idle: list[tuple[int, str, int, int | None]] = []  # decided, appended nothing
    fresh_keys: dict[str, tuple[str, int]] = {}
    repeats: list[tuple[int, int]] = []  # (outcome index, index of the first answer)
    result = c.CommandResult
    for i, cmd in enumerate(cmds):
        key = cmd.idempotency_key
        if key is not None and (key in known or key in fresh_keys):
            first = replayed(cmd, key, known, fresh_keys)
            if isinstance(first, int):
                repeats.append((i, first))
            else:
                outcomes[i] = first
            continue
        sid = cmd.session_id
        floor = at = max(clock(), floor)  # recorded times never go backwards along the log
        mark = len(new)
        try:
            allowed = limits[i] if limits is not None else None
            if allowed is not None:
                check_project_limit(cmd, touched.get(sid), allowed)
            if lapse_if_due(cmd, touched.get(sid), at, new, timeout, window):
                mark = len(new)  # the gap's Expired is the ledger's: kept if cmd is refused
            agg = decide(cmd, touched.get(sid), at, new, window)
        except LedgerError as err:
            if len(new) != mark:  # rules are checked before any event is decided
                raise RuntimeError(f"{cmd!r} refused after deciding events") from err
            outcomes[i] = err
            continue
        touched[sid] = agg
        if isinstance(agg, Session):
            state = agg.state
            if len(new) > mark and new[mark].type == "Started":
                state["number"] = base + 1 + mark  # a start decides only Started
            number = state["number"]
        else:  # a context: the library's event objects, and no session number
            new.extend(context_events(agg, at))
            number = None
        count = len(new) - mark
        if count:
            outcomes[i] = result(sid, agg.version, base + mark + count, count, number)
        else:
            idle.append((i, sid, agg.version, number))
        if key is not None:
            fresh_keys[key] = (cmd.fingerprint(), i)
    return outcomes, new, idle, fresh_keys, repeats
