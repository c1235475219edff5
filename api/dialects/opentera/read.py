"""OpenTera reads: sessions by integer id, uuid, member or filters, a participant's own
sessions, from the views (through api/dialects/common.py `read_views`), and the 400 of a
missing argument."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException

from api.bootstrap import Container
from api.dialects import common
from api.dialects.common import detail_by_number, found, read_views, scoped
from api.dialects.opentera.shape import STATUS_OUT, time_in
from api.dialects.opentera.who import PLURAL, Caller
from domain.errors import InvalidCommandError
from projections import queries as qs

PAGE = 500
DAY = 86400.0


def detail(container: Container, session_id: str) -> dict[str, Any] | None:
    return read_views(container, common.detail, session_id)


def by_number(container: Container, number: int) -> dict[str, Any] | None:
    return read_views(container, detail_by_number, number)


def require_number(container: Container, number: int) -> dict[str, Any]:
    return found(by_number(container, number), f"no session {number}", field="id_session")


@dataclass(frozen=True)
class Selection:
    """What an OpenTera GET asks for: one selector, then status/date filters and a page."""

    id_session: int | None = None
    session_uuid: str | None = None
    member: tuple[str, str] | None = None  # (participants|users|devices, value)
    status: int | None = None
    start_date: str | None = None
    end_date: str | None = None
    limit: int | None = None
    offset: int = 0


def _filter(sel: Selection) -> qs.SessionFilter:
    if sel.status is not None and sel.status not in range(5):
        raise InvalidCommandError("status must be 0, 1, 2, 3 or 4", field="status")
    statuses = tuple(s for s, n in STATUS_OUT.items() if n == sel.status)
    start = time_in(sel.start_date, "start_date")
    end = time_in(sel.end_date, "end_date")
    if end is not None:
        # Both bounds are inclusive; a bare end date includes that whole day.
        end += DAY if len((sel.end_date or "").strip()) == 10 else 1e-6
    return qs.SessionFilter(
        status=statuses,
        started_after=None if start is None else start - 1e-6,
        started_before=end,
    )


def _matches(doc: dict[str, Any], f: qs.SessionFilter) -> bool:
    started = doc["started_at"]
    return (
        (not f.status or doc["status"] in f.status)
        and (f.started_after is None or (started is not None and started > f.started_after))
        and (f.started_before is None or (started is not None and started < f.started_before))
    )


def matching(
    container: Container, f: qs.SessionFilter, offset: int = 0, limit: int | None = None
) -> list[dict[str, Any]]:
    """Detail documents of the sessions `f` selects, newest first, one page or all."""
    f = scoped(f)
    out: list[dict[str, Any]] = []
    while limit is None or len(out) < limit:
        size = PAGE if limit is None else min(PAGE, limit - len(out))
        page = read_views(container, qs.list_details, f, "started_at", True, size, offset)
        out += page.items
        offset += size
        if offset >= page.total or not page.items:
            break
    return out


def member_sessions(
    container: Container, plural: str, value: str, f: qs.SessionFilter
) -> list[dict[str, Any]]:
    return matching(container, dataclasses.replace(f, member=(plural, value)))


def _named(container: Container, sel: Selection) -> dict[str, Any] | None:
    if sel.id_session is not None:
        return by_number(container, sel.id_session)
    return detail(container, sel.session_uuid or "")


def find(container: Container, sel: Selection) -> list[dict[str, Any]]:
    f = _filter(sel)
    end = None if sel.limit is None else sel.offset + sel.limit
    if sel.id_session is not None or sel.session_uuid is not None:
        doc = _named(container, sel)
        found = [doc] if doc is not None and _matches(doc, f) else []
        return found[sel.offset : end]
    if sel.member is not None:
        f = dataclasses.replace(f, member=sel.member)
    return matching(container, f, sel.offset, sel.limit)


def find_own(container: Container, sel: Selection, who: Caller) -> list[dict[str, Any]]:
    """The sessions `who` (a bound key) takes part in or created, as
    TeraSession.get_sessions_for_participant finds them (TeraSession.py lines 291-311):
    newest first, then the id and uuid filters, the status and dates, and the page."""
    f = _filter(sel)
    end = None if sel.limit is None else sel.offset + sel.limit
    if sel.id_session is not None or sel.session_uuid is not None:
        doc = _named(container, sel)
        ok = doc is not None and who.takes_part(doc) and _matches(doc, f)
        return ([doc] if ok and doc is not None else [])[sel.offset : end]
    if who.kind is None:
        return matching(container, f, sel.offset, sel.limit)
    member = dataclasses.replace(f, member=(PLURAL[who.kind], str(who.ident)))
    docs = {d["id"]: d for d in matching(container, member)}
    for d in matching(container, dataclasses.replace(f, created_by=who.actor)):
        docs[d["id"]] = d
    newest = sorted(docs.values(), key=lambda d: (d["started_at"], d["number"]), reverse=True)
    return newest[sel.offset : end]


def missing(what: str) -> HTTPException:
    return HTTPException(400, what)
