"""A commit group's bookkeeping for the writer (persistence/ledger.py): what deciding a
group gives, a context's events as rows, the rows that remember idempotency keys, the first
answer a retried key gets, and the refusals of the command boundary merged back among the
outcomes."""

from __future__ import annotations

from typing import Any, cast

import orjson

from domain import commands as c
from domain.context import ExecutionContext
from domain.decide import Aggregate
from domain.errors import IdempotencyKeyReusedError, LedgerError
from domain.events import NewEvent
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
