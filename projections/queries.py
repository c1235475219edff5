"""Read the views: list (filter, sort, page), detail, count and stats. Plain SQL over the
view tables; nothing here writes."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, and_, func, select
from sqlalchemy.sql.elements import ColumnElement

from projections.tables import ViewTables
from projections.views import CELL_DIMS, bucket_value

SORT_FIELDS = ("started_at", "ended_at", "last_seen_at", "updated_at", "duration", "number", "name")
GROUP_FIELDS = CELL_DIMS


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


def _conditions(t: ViewTables, f: SessionFilter) -> list[ColumnElement[bool]]:
    c = t.list.c
    conds: list[ColumnElement[bool]] = []
    if f.status:
        conds.append(c.status.in_(f.status))
    if f.user:
        conds.append(c.user.in_(f.user))
    if f.ids:
        conds.append(c.session_id.in_(f.ids))
    if f.id_prefix:
        escaped = f.id_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(c.session_id.like(escaped + "%", escape="\\"))
    for col, val in (
        (c.project, f.project),
        (c.build, f.build),
        (c.source, f.source),
        (c.type, f.type),
    ):
        if val is not None:
            conds.append(col == val)
    if f.active is not None:
        conds.append(c.active == int(f.active))
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
    if f.member is not None:
        mb = t.members.c
        kind, member = f.member
        conds.append(
            c.session_id.in_(select(mb.session_id).where(mb.kind == kind, mb.member == member))
        )
    for key, value in f.tags:
        tg = t.tags.c
        conds.append(
            c.session_id.in_(select(tg.session_id).where(tg.key == key, tg.value == value))
        )
    return conds


@dataclass
class Page:
    total: int
    items: list[dict[str, Any]] = field(default_factory=list)


def list_sessions(
    conn: Connection,
    t: ViewTables,
    f: SessionFilter,
    sort: str = "started_at",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    if sort not in SORT_FIELDS:
        raise ValueError(f"sort must be one of {', '.join(SORT_FIELDS)}")
    c = t.list.c
    conds = _conditions(t, f)
    where = and_(*conds) if conds else None
    total_q = select(func.count()).select_from(t.list)
    rows_q = select(c.summary)
    if where is not None:
        total_q = total_q.where(where)
        rows_q = rows_q.where(where)
    col = c[sort]
    # The number breaks ties, so pages do not drift or repeat between requests.
    order: list[Any] = [col.desc(), c.number.desc()] if descending else [col.asc(), c.number.asc()]
    if sort in ("ended_at", "duration"):
        order.insert(0, col.is_(None))  # sessions without a value go last either way
    rows_q = rows_q.order_by(*order).limit(limit).offset(offset)
    total = int(conn.execute(total_q).scalar() or 0)
    return Page(total, [orjson.loads(r[0]) for r in conn.execute(rows_q)])


def get_detail(conn: Connection, t: ViewTables, session_id: str) -> dict[str, Any] | None:
    raw = conn.execute(select(t.detail.c.doc).where(t.detail.c.session_id == session_id)).scalar()
    if raw is None:
        return None
    doc: dict[str, Any] = orjson.loads(raw)
    return None if doc["deleted"] else doc


def get_details(conn: Connection, t: ViewTables, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Many detail documents at once (deleted ones left out)."""
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        rows = conn.execute(
            select(t.detail.c.session_id, t.detail.c.doc).where(
                t.detail.c.session_id.in_(ids[i : i + 500])
            )
        )
        for sid, raw in rows:
            doc = orjson.loads(raw)
            if not doc["deleted"]:
                out[sid] = doc
    return out


def details_in_order(conn: Connection, t: ViewTables, ids: list[str]) -> list[dict[str, Any]]:
    """The detail documents of `ids`, in that order (a page of a list, made whole)."""
    docs = get_details(conn, t, ids)
    return [docs[i] for i in ids if i in docs]


def id_for_number(conn: Connection, t: ViewTables, number: int) -> str | None:
    sid = conn.execute(select(t.list.c.session_id).where(t.list.c.number == number)).scalar()
    return None if sid is None else str(sid)


def count_sessions(conn: Connection, t: ViewTables, f: SessionFilter) -> dict[str, Any]:
    if f.is_empty():
        by = {s: int(n) for s, n in conn.execute(select(t.counts.c.status, t.counts.c.n)) if n}
    else:
        conds = _conditions(t, f)
        q = select(t.list.c.status, func.count()).group_by(t.list.c.status)
        if conds:
            q = q.where(and_(*conds))
        by = {s: int(n) for s, n in conn.execute(q)}
    return {"total": sum(by.values()), "by_status": dict(sorted(by.items()))}


@dataclass(frozen=True)
class StatsQuery:
    """Stats over the dimension filters and a window of start days (inclusive)."""

    group_by: tuple[str, ...] = ()
    from_day: str | None = None
    to_day: str | None = None
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()


def percentile(hist: dict[int, int], total: int, q: float, top: float | None) -> float | None:
    """Nearest-rank percentile from the duration histogram (within 1%; capped at the max)."""
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            v = bucket_value(b)
            return round(min(v, top) if top is not None else v, 6)
    return top


def stats(conn: Connection, t: ViewTables, q: StatsQuery) -> dict[str, Any]:
    for g in q.group_by:
        if g not in GROUP_FIELDS:
            raise ValueError(f"group by one of {', '.join(GROUP_FIELDS)}")
    cells = t.cells
    conds: list[ColumnElement[bool]] = [cells.c.n > 0]
    if q.from_day:
        conds.append(cells.c.day >= q.from_day)
    if q.to_day:
        conds.append(cells.c.day <= q.to_day)
    for dim, values in q.filters:
        conds.append(cells.c[dim].in_(values))
    gcols = [cells.c[g] for g in q.group_by]
    where = and_(*conds)

    def key(row: Any) -> tuple[str, ...]:
        return tuple(row[: len(gcols)])

    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    base = conn.execute(
        select(
            *gcols,
            func.sum(cells.c.n),
            func.sum(cells.c.ended),
            func.sum(cells.c.duration_sum),
            func.max(cells.c.duration_max),
        )
        .where(where)
        .group_by(*gcols)
    )
    for row in base:
        if row[-4] is None:  # no group at all: an aggregate over zero cells
            continue
        n, ended, total, top = int(row[-4]), int(row[-3]), float(row[-2] or 0), row[-1]
        groups[key(row)] = {
            "count": n,
            "ended": ended,
            "duration": {
                "count": ended,
                "sum": round(total, 6),
                "mean": round(total / ended, 6) if ended else None,
                "max": top,
            },
            "_hist": defaultdict(int),
            "visible_time": {},
            "results": {},
        }
    for table, col, val, field_name in (
        (t.histogram, "bucket", "n", "_hist"),
        (t.paths, "path", "seconds", "visible_time"),
        (t.results, "status", "n", "results"),
    ):
        rows = conn.execute(
            select(*gcols, table.c[col], func.sum(table.c[val]))
            .select_from(cells.join(table, table.c.cell_id == cells.c.cell_id))
            .where(where)
            .group_by(*gcols, table.c[col])
        )
        for row in rows:
            hit = groups.get(key(row))
            if hit is not None and row[-1]:
                v = row[-1]
                hit[field_name][row[-2]] = round(v, 6) if isinstance(v, float) else int(v)
    out = []
    for k, grp in sorted(groups.items()):
        hist = grp.pop("_hist")
        d = grp["duration"]
        d["p50"] = percentile(hist, d["count"], 0.50, d["max"])
        d["p95"] = percentile(hist, d["count"], 0.95, d["max"])
        grp["visible_time"] = dict(sorted(grp["visible_time"].items()))
        grp["results"] = dict(sorted(grp["results"].items()))
        out.append({"key": dict(zip(q.group_by, k, strict=True)), **grp})
    active = conn.execute(
        select(func.count()).select_from(t.list).where(t.list.c.active == 1)
    ).scalar()
    return {"group_by": list(q.group_by), "groups": out, "active_now": int(active or 0)}
