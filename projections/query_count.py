"""Filters and counts: `SessionFilter` (every list filter), the WHERE terms it makes, what the
count view answers of it (a filter on at most one count dimension plus status is a few
rows, which also give the list its totals and its planner each filter's exact number of
matches), and the count query."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, and_, exists, func, select
from sqlalchemy.sql.elements import ColumnElement

from projections.tables import ViewTables
from projections.view_count import TAG_SEP


@dataclass(frozen=True)
class SessionFilter:
    """Every list filter; also used by count. Empty fields do not filter."""

    status: tuple[str, ...] = ()
    project: str | None = None
    build: str | None = None
    user: tuple[str, ...] = ()
    source: str | None = None
    type: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    active: bool | None = None
    started_after: float | None = None
    started_before: float | None = None
    stopped_after: float | None = None
    stopped_before: float | None = None
    updated_after: float | None = None
    updated_before: float | None = None
    text: str | None = None
    ids: tuple[str, ...] = ()
    id_prefix: str | None = None
    member: tuple[str, str] | None = None  # (participants|users|devices, id)
    created_by: str | None = None

    def is_empty(self) -> bool:
        return self == SessionFilter()


# Equality filters that live in the list's indexes (projections/tables.py FILTER_COLUMNS).
INDEXED = ("status", "project", "build", "user", "type", "active")


def equalities(f: SessionFilter) -> dict[str, tuple[str, ...]]:
    """The filters the count view can answer, as count dimensions and their values."""
    eq: dict[str, tuple[str, ...]] = {}
    for dim in ("project", "build", "source", "type"):
        val = getattr(f, dim)
        if val is not None:
            eq[dim] = (val,)
    if f.user:
        eq["user"] = f.user
    if f.active is not None:
        eq["active"] = ("1" if f.active else "0",)
    for key, value in f.tags[:1]:
        eq["tag"] = (f"{key}{TAG_SEP}{value}",)
    return eq


def _rollup_filter(f: SessionFilter) -> tuple[str, tuple[str, ...]] | None:
    """(dimension, values) when the count view holds the exact answer for `f`: no filter or
    one count dimension, plus any status filter."""
    eq = equalities(f)
    rest = replace(
        f, status=(), project=None, build=None, user=(), source=None, type=None, active=None
    )
    if len(eq) > 1 or not (rest.is_empty() or rest == SessionFilter(tags=f.tags[:1])):
        return None
    return next(iter(eq.items()), ("", ("",)))


def rollup_counts(conn: Connection, t: ViewTables, f: SessionFilter) -> dict[str, int] | None:
    """Matches per status, straight from the count view, or None when it cannot say."""
    dv = _rollup_filter(f)
    if dv is None:
        return None
    dim, values = dv
    ct = t.counts.c
    q = select(ct.status, func.sum(ct.n)).where(ct.dim == dim, ct.value.in_(values))
    if f.status:
        q = q.where(ct.status.in_(f.status))
    return {s: int(n) for s, n in conn.execute(q.group_by(ct.status)) if n}


def dim_count(conn: Connection, t: ViewTables, dim: str, values: tuple[str, ...]) -> int:
    ct = t.counts.c
    n = conn.execute(select(func.sum(ct.n)).where(ct.dim == dim, ct.value.in_(values))).scalar()
    return int(n or 0)


def conditions(t: ViewTables, f: SessionFilter, walk: bool = False) -> list[ColumnElement[bool]]:
    """The WHERE terms of `f`. `walk=True` writes the indexed equality filters so that no
    index serves them (SQLite: `col || ''`), and the tag filter as a per-row probe, for a
    page read by walking a sort index instead (see `queries._walk`)."""
    c = t.list.c

    def eq_col(name: str) -> Any:
        col = c[name]
        if not walk:
            return col
        return col + 0 if name == "active" else col.concat("")

    conds: list[ColumnElement[bool]] = []
    if f.status:
        conds.append(eq_col("status").in_(f.status))
    if f.user:
        conds.append(eq_col("user").in_(f.user))
    if f.ids:
        conds.append(c.session_id.in_(f.ids))
    if f.id_prefix:
        escaped = f.id_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(c.session_id.like(escaped + "%", escape="\\"))
    for name, val in (("project", f.project), ("build", f.build), ("type", f.type)):
        if val is not None:
            conds.append(eq_col(name) == val)
    if f.source is not None:
        conds.append(c.source == f.source)
    if f.active is not None:
        conds.append(eq_col("active") == int(f.active))
    for col, lo, hi in (
        (c.started_at, f.started_after, f.started_before),
        (c.ended_at, f.stopped_after, f.stopped_before),
        (c.updated_at, f.updated_after, f.updated_before),
    ):
        if lo is not None:
            conds.append(col > lo)
        if hi is not None:
            conds.append(col < hi)
    if f.text:
        conds.append(c.name.ilike(f"%{f.text}%"))
    if f.created_by is not None:
        conds.append(c.created_by == f.created_by)
    conds += _joined_terms(t, f, walk)
    return conds


def _joined_terms(t: ViewTables, f: SessionFilter, walk: bool) -> list[ColumnElement[bool]]:
    """The terms `f`'s member and tag filters make: subqueries of the members and tags
    tables (with `walk`, the tags as a per-row probe)."""
    c = t.list.c
    terms: list[ColumnElement[bool]] = []
    if f.member is not None:
        mb = t.members.c
        kind, member = f.member
        terms.append(
            c.session_id.in_(select(mb.session_id).where(mb.kind == kind, mb.member == member))
        )
    for key, value in f.tags:
        tg = t.tags.c
        if walk:
            terms.append(
                exists()
                .where(tg.session_id == c.session_id, tg.key == key, tg.value == value)
                .correlate(t.list)
            )
        else:
            terms.append(
                c.session_id.in_(select(tg.session_id).where(tg.key == key, tg.value == value))
            )
    return terms


def count_sessions(conn: Connection, t: ViewTables, f: SessionFilter) -> dict[str, Any]:
    by = rollup_counts(conn, t, f)
    if by is None:
        conds = conditions(t, f)
        q = select(t.list.c.status, func.count()).group_by(t.list.c.status)
        if conds:
            q = q.where(and_(*conds))
        by = {s: int(n) for s, n in conn.execute(q)}
    return {"total": sum(by.values()), "by_status": dict(sorted(by.items()))}
