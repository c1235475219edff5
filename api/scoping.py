"""What a project-limited key may read, enforced in the request gate (api/auth.py).

Writes need nothing here: the ledger's writer refuses any command of such a key on a session
of another project (`submit(..., projects=)`, passed by api/deps.py and the batch route).
Reads are checked before any route runs, and a read is let through only when it cannot
show, count or stream a session of another project:

- the native list and count get the key's project as a filter (a key of several projects
  must name one with `project=`), the stats get `project=` for each of the key's projects;
  naming a project outside the key is 403;
- one session named in the path (native, LambdaTest, Testmo) answers 404, with the
  route's own not-found message, when the session belongs to another project, so the
  answer does not reveal that it exists;
- Testmo's per-project list is allowed for the key's projects only;
- the dialect reads in `SCOPED_IN_ROUTE` narrow themselves (api/dialects/common.py
  `scoped`, `scoped_stats`, `visible`): their lists and counts have no project parameter to
  rewrite here, OpenTera names its sessions in the query string, and pytest-monitor answers
  another project's session's metrics as it answers a session it does not know (204);
- every other read is 403 for a project-limited key: the global log and the digest (every
  project's events), and pytest-monitor's contexts and its lists of every session's
  metrics (all, or a context's), which cannot be narrowed to a project.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from api.bootstrap import Container
from api.keys import Principal
from domain.errors import ForbiddenError, LedgerError, SessionNotFoundError
from persistence.schema import reading
from projections import queries as qs

LT = "/compat/lambdatest/automation/api/v1"
TM = "/compat/testmo/api/v1"
PM = "/compat/monitor/api/v1/+"  # the client's base URL may end in "/": `//` paths too
OT = "/compat/opentera/api"

# A read of one session: (path pattern with `id` or `number`, the route's not-found message).
ONE_SESSION: tuple[tuple[re.Pattern[str], Callable[[str], str]], ...] = (
    (re.compile(r"^/v1/sessions/(?P<id>[^/]+)(/events|/logs/[^/]+)?$"), "no session {}".format),
    (re.compile(rf"^{LT}/sessions/(?P<id>[^/]+)(/.+)?$"), "Session {} not found".format),
    (re.compile(rf"^{TM}/sessions/(?P<number>\d+)$"), "Session {} not found".format),
)
TESTMO_LIST = re.compile(rf"^{TM}/projects/(?P<project>[^/]+)/sessions$")
FILTERED = {"/v1/sessions": "list", "/v1/sessions/count": "list", "/v1/stats": "stats"}
SCOPED_IN_ROUTE = re.compile(
    rf"^(?:{LT}/sessions|/compat/canopsis/api/v2/sessions|{PM}sessions(?:/[^/]*)?/?"
    rf"|{PM}sessions?/[^/]+/metrics(?:/count)?/?"
    rf"|{OT}/(?:user|device|participant|service)/sessions(?:/events)?"
    rf"|{OT}/(?:user|service)/sessiontypes|{OT}/(?:user|device|service)/assets|{OT}/user/stats)$"
)


async def check_read(
    scope: dict[str, Any], path: str, who: Principal, container: Container
) -> None:
    """Raise (403 or 404) when `who`, limited to projects, may not read `path` (the app's
    own path); may narrow the query string of the native list, count and stats to the key's
    projects."""
    projects = who.projects
    if projects is None:
        return
    kind = FILTERED.get(path)
    if kind is not None:
        scope["query_string"] = constrain_query(scope["query_string"], projects, kind == "stats")
        return
    for pattern, not_found in ONE_SESSION:
        m = pattern.match(path)
        if m is not None:
            ident = m.groupdict().get("id") or m.group("number")
            project = await asyncio.to_thread(_project_of, container, m.groupdict())
            if project is not _MISSING and project not in projects:
                raise SessionNotFoundError(not_found(ident))
            return
    m = TESTMO_LIST.match(path)
    if (m is not None and m.group("project") in projects) or SCOPED_IN_ROUTE.match(path):
        return
    raise ForbiddenError(
        "a key limited to projects may read only its projects' sessions: not the global "
        "log, the digest, another project's list or pytest-monitor's contexts"
    )


def constrain_query(query: bytes, projects: frozenset[str], stats: bool) -> bytes:
    """The query string with `project` limited to `projects` (403 when it names another)."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    named = [v for k, v in pairs if k == "project"]
    outside = sorted(set(named) - projects)
    if outside:
        raise ForbiddenError(
            f"this key may not read sessions of project {outside[0]!r}", field="project"
        )
    if named:
        return query
    if stats:
        extra = [("project", p) for p in sorted(projects)]
    elif len(projects) == 1:
        extra = [("project", next(iter(projects)))]
    else:
        raise ForbiddenError(
            f"this key is limited to projects {', '.join(sorted(projects))}: "
            "name one with project=",
            field="project",
        )
    return urlencode(pairs + extra).encode("latin-1")


_MISSING: Any = object()


def _project_of(container: Container, ids: dict[str, str | None]) -> Any:
    """The session's project (None when it has none), or _MISSING when there is no session
    (the route then answers its own 404)."""
    sid = ids.get("id")
    if sid is None:
        with reading(container.reader.engine) as conn:
            sid = qs.id_for_number(conn, container.runner.tables, int(ids["number"] or 0))
        if sid is None:
            return _MISSING
    try:
        return container.ledger.load(sid).get("project")
    except LedgerError:
        return _MISSING
