"""What every dialect shares, so that a new one is a copy of the pattern: who is calling (the
key the request gate in api/auth.py accepted), the views read through one helper
(`read_views`; a detail or a 404 is `api.deps.require_detail`, a list page of whole
documents `qs.list_details`), what a project-limited key sees of them (`scoped`,
`scoped_stats`, `visible`; api/scoping.py lets such a key reach only the reads that use
them), and a time parameter refused in the dialect's own words.
Commands go through `api.deps.execute`; nothing here writes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from fastapi import HTTPException
from sqlalchemy import Connection

from api import auth
from api.bootstrap import Container
from api.deps import connect, require_detail
from api.keys import Principal
from domain.errors import ForbiddenError, InvalidCommandError, SessionNotFoundError
from projections import queries as qs
from projections.present import parse_time
from projections.tables import ViewTables

P = ParamSpec("P")
R = TypeVar("R")


def gate_principal(missing: str) -> Principal:
    """The key the request gate accepted (or its anonymous reader); a 401 saying `missing`
    when there is none, which happens only when the app is served without its gate."""
    who = auth.current.get()
    if who is None:
        raise HTTPException(401, missing)
    return who


def actor() -> str | None:
    """Who writes: the name of the key the gate accepted; None for an anonymous reader."""
    who = auth.current.get()
    return None if who is None or who is auth.ANONYMOUS else who.name


def read_views(
    container: Container,
    query: Callable[Concatenate[Connection, ViewTables, P], R],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """Every view read of a dialect: `query(conn, tables, ...)` on one connection."""
    with connect(container) as conn:
        return query(conn, container.runner.tables, *args, **kwargs)


def scoped(f: qs.SessionFilter) -> qs.SessionFilter:
    """`f` narrowed to the calling key's project, so that a project-limited key's list or
    count never shows another project's session. The list filter holds one project (as the
    native list's, where a key of several projects names one with `project=`); the dialects
    have no parameter to name it, so a key of several projects is refused (403)."""
    projects = auth.projects()
    if projects is None:
        return f
    if f.project is not None:
        if f.project not in projects:
            raise ForbiddenError(f"this key may not read sessions of project {f.project!r}")
        return f
    if len(projects) != 1:
        raise ForbiddenError(
            f"this key is limited to projects {', '.join(sorted(projects))} and this list "
            "cannot name one: use a key of one project, or the native list's project="
        )
    return dataclasses.replace(f, project=next(iter(projects)))


def scoped_stats(q: qs.StatsQuery) -> qs.StatsQuery:
    """`q` counting only the calling key's projects (stats take several, as natively)."""
    projects = auth.projects()
    if projects is None:
        return q
    return dataclasses.replace(q, filters=(*q.filters, ("project", tuple(sorted(projects)))))


def visible(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """`doc`, or None when the calling key may not see its project: the dialect then answers
    as for a session that does not exist, so the answer does not tell that it does."""
    projects = auth.projects()
    if doc is None or projects is None or doc.get("project") in projects:
        return doc
    return None


def detail(conn: Connection, t: ViewTables, session_id: str) -> dict[str, Any] | None:
    """The detail document of `session_id` (None: none, deleted, or not `visible`)."""
    return visible(qs.get_detail(conn, t, session_id))


def detail_by_number(conn: Connection, t: ViewTables, number: int) -> dict[str, Any] | None:
    """The detail document of the session numbered `number` (None: none, deleted, or not
    `visible`)."""
    sid = qs.id_for_number(conn, t, number)
    return None if sid is None else detail(conn, t, sid)


def found(doc: dict[str, Any] | None, message: str, field: str | None = None) -> dict[str, Any]:
    """`doc`, or the dialect's 404 (SessionNotFoundError) saying `message`."""
    if doc is None:
        raise SessionNotFoundError(message, field=field)
    return doc


async def fresh_detail(
    container: Container, session_id: str, position: int, message: str | None = None
) -> dict[str, Any]:
    """`require_detail` once the views include `position` (read-your-writes after a command)."""
    container.runner.wake()
    await asyncio.to_thread(container.runner.wait_for, position, container.settings.read_wait)
    return await asyncio.to_thread(require_detail, container, session_id, message)


def time_param(value: str | None, field: str, why: str) -> float | None:
    """A time parameter (epoch seconds or ISO-8601), or a 4xx naming `field`: `why` follows
    the field's name and may name the value as `{value!r}`."""
    try:
        return parse_time(value)
    except ValueError:
        raise InvalidCommandError(f"{field} {why.format(value=value)}", field=field) from None
