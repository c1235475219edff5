"""Dependencies shared by the routers: the container, command submission, and
read-your-writes waiting before a query."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from sqlalchemy import Connection

from api import auth
from api.bootstrap import Container
from domain.commands import Command, CommandResult
from domain.errors import InvalidCommandError, LedgerError, SessionNotFoundError
from persistence.schema import reading
from projections import queries as qs
from projections.present import parse_time

# The largest offset or page size a query takes: the databases bind 64-bit integers (a larger
# one was a 500), and no client pages past 2^31 rows.
PAGE_BOUND = 2**31 - 1


async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def execute(container: Container, cmd: Command) -> CommandResult:
    """Submit one command and wait for its group's commit; a refusal is raised. A key
    limited to projects (api/auth.py) may act only on sessions of those projects."""
    out = (await container.ledger.submit_async([cmd], auth.projects()))[0]
    if isinstance(out, LedgerError):
        raise out
    return out


async def fresh_views(
    container: ContainerDep,
    x_min_position: Annotated[int | None, Header()] = None,
) -> Container:
    """Wait (bounded) until the views include every write this process acknowledged, and
    the position the client names (X-Min-Position: a write another process acknowledged)."""
    target = max(container.ledger.last_position, x_min_position or 0)
    if target > container.ledger.last_position and target > container.store.head_digest()[0]:
        # Not in the log yet, so no wait can see it: say so at once rather than hold a
        # worker thread for the whole wait.
        raise InvalidCommandError(
            f"X-Min-Position {target} is beyond the log's head", field="X-Min-Position"
        )
    reader = container.reader
    if reader.position < target:
        container.runner.wake()
        await asyncio.to_thread(reader.wait_for, target, container.settings.read_wait)
    return container


FreshDep = Annotated[Container, Depends(fresh_views)]


def connect(container: Container) -> Connection:
    """A connection that reads the views (a snapshot; it never waits for their writer)."""
    return reading(container.reader.engine)


def time_field(value: float | str | None, field: str) -> float | None:
    """A time the caller gave (epoch seconds or ISO-8601), or a refusal naming the field."""
    try:
        return parse_time(value)
    except ValueError:
        raise InvalidCommandError(f"{field} is not a time: {value!r}", field=field) from None


def require_detail(
    container: Container, session_id: str, message: str | None = None
) -> dict[str, Any]:
    """One session's detail document from the views, or a 404 (`message`, by default
    "no session <id>"): the one such read for native routes and dialects alike."""
    with connect(container) as conn:
        doc = qs.get_detail(conn, container.runner.tables, session_id)
    if doc is None:
        raise SessionNotFoundError(f"no session {session_id}" if message is None else message)
    return doc
