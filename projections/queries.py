"""Read the views: list (filter, sort, page), detail, count and stats. Plain SQL over the
view tables; nothing here writes."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from sqlalchemy import Connection, and_, exists, func, select, tuple_, union_all
from sqlalchemy.sql.elements import ColumnElement

from projections.tables import ViewTables
from projections.views import (
    ALL_DAYS,
    ALL_STATUSES,
    GROUP_FIELDS,
    HIST_SPAN,
    TAG_SEP,
    CellDelta,
    add_to_cells,
    bucket_value,
    day_of,
    dim_value,
    summary,
)

SORT_FIELDS = ("started_at", "ended_at", "last_seen_at", "updated_at", "duration", "number", "name")


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
_INDEXED = ("status", "project", "build", "user", "type", "active")


def _equalities(f: SessionFilter) -> dict[str, tuple[str, ...]]:
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
    eq = _equalities(f)
    rest = replace(
        f, status=(), project=None, build=None, user=(), source=None, type=None, active=None
    )
    if len(eq) > 1 or not (rest.is_empty() or rest == SessionFilter(tags=f.tags[:1])):
        return None
    return next(iter(eq.items()), ("", ("",)))


def _rollup_counts(conn: Connection, t: ViewTables, f: SessionFilter) -> dict[str, int] | None:
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


def _dim_count(conn: Connection, t: ViewTables, dim: str, values: tuple[str, ...]) -> int:
    ct = t.counts.c
    n = conn.execute(select(func.sum(ct.n)).where(ct.dim == dim, ct.value.in_(values))).scalar()
    return int(n or 0)


def _conditions(t: ViewTables, f: SessionFilter, walk: bool = False) -> list[ColumnElement[bool]]:
    """The WHERE terms of `f`. `walk=True` writes the indexed equality filters so that no
    index serves them (SQLite: `col || ''`), and the tag filter as a per-row probe, for a
    page read by walking a sort index instead (see `_plan`)."""
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
    if f.member is not None:
        mb = t.members.c
        kind, member = f.member
        conds.append(
            c.session_id.in_(select(mb.session_id).where(mb.kind == kind, mb.member == member))
        )
    for key, value in f.tags:
        tg = t.tags.c
        if walk:
            conds.append(
                exists()
                .where(tg.session_id == c.session_id, tg.key == key, tg.value == value)
                .correlate(t.list)
            )
        else:
            conds.append(
                c.session_id.in_(select(tg.session_id).where(tg.key == key, tg.value == value))
            )
    return conds


@dataclass
class Page:
    total: int
    items: list[dict[str, Any]] = field(default_factory=list)


# Sorts whose column may be empty: those sessions come last in either direction.
NULLABLE_SORTS = frozenset({"ended_at", "duration", "name"})
# Sorts with an index of their own carrying the filter columns (ViewTables).
WALKABLE_SORTS = frozenset(
    {"started_at", "ended_at", "last_seen_at", "updated_at", "duration", "number"}
)


def _walk(
    conn: Connection, t: ViewTables, f: SessionFilter, sort: str, need: int, matches: int | None
) -> bool:
    """Whether to read a page by walking the sort's index (filters checked on the way)
    rather than collecting the filters' matches and sorting them. The count view knows each
    filter's exact match count, so both costs are known: walking reads about
    need * all / matches entries, collecting reads the smallest filter's matches."""
    if sort not in WALKABLE_SORTS:
        return False
    eq = _equalities(f)
    if f.status:
        eq["status"] = f.status
    driving = {d: v for d, v in eq.items() if d in _INDEXED or d == "tag"}
    if not driving:
        return True
    if sort == "started_at" and any(d in _INDEXED for d in driving):
        return False  # status's index is in started_at order; the others merge runs of it
    everyone = _dim_count(conn, t, "", ("",))
    smallest = min(_seek_sizes(conn, t, f, driving).values())
    expected = smallest if matches is None else matches
    walk_cost = need * everyone / max(expected, 1)
    # Measured at 1M sessions: collecting and sorting a match costs about as much as walking
    # past an entry inside an index.
    return walk_cost < smallest


def _seek_sizes(
    conn: Connection, t: ViewTables, f: SessionFilter, driving: dict[str, tuple[str, ...]]
) -> dict[str, int]:
    """How many index entries collecting each driving filter's matches reads. A filter
    index is led by its column and then status, so with a status filter it seeks exactly
    the (value, status) pairs."""
    ct = t.counts.c
    sizes = {}
    for dim, values in driving.items():
        q = select(func.sum(ct.n))
        if dim == "status":
            q = q.where(ct.dim == "", ct.status.in_(values))
        else:
            q = q.where(ct.dim == dim, ct.value.in_(values))
            if f.status and dim in _INDEXED:
                q = q.where(ct.status.in_(f.status))
        sizes[dim] = int(conn.execute(q).scalar() or 0)
    return sizes


# At most this many (value, status) runs are merged for one page (see `_status_runs`).
MAX_RUNS = 64


def _status_runs(
    conn: Connection, t: ViewTables, f: SessionFilter, by_status: dict[str, int] | None
) -> tuple[str, list[tuple[Any, str]]] | None:
    """For a page in the default order under a filter index other than status's: the
    index's column and the (value, status) runs whose merge is the page's order. Each run
    is one seek, already in (started_at, number) order, so merging them reads about as
    many entries as the page needs. None when no such index filters the page, or when a
    tag or member filter (a per-row subquery) would be asked once per run."""
    if f.tags or f.member is not None:
        return None
    eq = {d: v for d, v in _equalities(f).items() if d in _INDEXED}
    if not eq:
        return None
    if len(eq) > 1:
        sizes = _seek_sizes(conn, t, f, eq)
        dim = min(eq, key=lambda d: (sizes[d], d))
    else:
        dim = next(iter(eq))
    values: list[Any] = [int(v == "1") for v in eq[dim]] if dim == "active" else list(eq[dim])
    if by_status is not None:  # the count view's exact statuses of these matches
        statuses = sorted(by_status)
    elif f.status:
        statuses = list(f.status)
    else:  # every status a visible session has (the count view and the list agree)
        ct = t.counts.c
        statuses = sorted(conn.execute(select(ct.status).where(ct.dim == "", ct.n > 0)).scalars())
    runs = [(v, s) for v in values for s in statuses]
    return (dim, runs) if len(runs) <= MAX_RUNS else None


def _merged(
    conn: Connection,
    t: ViewTables,
    f: SessionFilter,
    dim: str,
    runs: list[tuple[Any, str]],
    descending: bool,
    limit: int,
    offset: int,
) -> list[int]:
    """A page in the default order as the merge of index runs (`_status_runs`): SQLite
    merges a UNION ALL whose arms come sorted (no temporary B-tree), PostgreSQL appends
    them with a merge."""
    c = t.list.c
    cleared: dict[str, Any] = {dim: () if dim == "user" else None}
    rest = replace(f, status=(), **cleared)
    conds = _conditions(t, rest, walk=True)  # no other filter index may serve an arm
    arms = [
        select(c.number, c.started_at).where(*conds, c[dim] == v, c.status == s) for v, s in runs
    ]
    u = union_all(*arms) if len(arms) > 1 else arms[0]
    k, n = u.selected_columns.started_at, u.selected_columns.number
    order = [k.desc(), n.desc()] if descending else [k.asc(), n.asc()]
    q = u.order_by(*order).limit(limit).offset(offset)
    return [int(num) for num, _ in conn.execute(q)]


def list_sessions(
    conn: Connection,
    t: ViewTables,
    f: SessionFilter,
    sort: str = "started_at",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """One page in a stable order (the session number breaks ties, so pages neither drift
    nor repeat), and the total. The page is found as session numbers inside the indexes,
    then only its rows are read."""
    if sort not in SORT_FIELDS:
        raise ValueError(f"sort must be one of {', '.join(SORT_FIELDS)}")
    c = t.list.c
    by_status = _rollup_counts(conn, t, f)
    if by_status is not None:
        total = sum(by_status.values())
    else:
        conds = _conditions(t, f)
        total_q = select(func.count()).select_from(t.list)
        total = int(conn.execute(total_q.where(and_(*conds)) if conds else total_q).scalar() or 0)
    if limit <= 0 or offset >= total:
        return Page(total, [])
    if len(f.tags) == 1 and sort == "started_at" and replace(f, tags=()).is_empty():
        # One tag, default order: the tags index holds the page in order.
        tg = t.tags.c
        (tag, value), k = f.tags[0], tg[sort]
        order = [k.desc(), tg.number.desc()] if descending else [k.asc(), tg.number.asc()]
        q = select(tg.number).where(tg.key == tag, tg.value == value)
        got = [int(n) for (n,) in conn.execute(q.order_by(*order).limit(limit).offset(offset))]
        return Page(total, _summaries(conn, t, got))
    exact = total if by_status is not None else None
    walk = _walk(conn, t, f, sort, offset + limit, exact)
    if not walk and sort == "started_at":
        merge = _status_runs(conn, t, f, by_status)
        if merge is not None:
            got = _merged(conn, t, f, *merge, descending, limit, offset)
            return Page(total, _summaries(conn, t, got))
    conds = _conditions(t, f, walk=walk)
    col = c[sort]
    key: Any = col if walk or sort == "started_at" else col + 0 if sort != "name" else col
    tie = c.number

    def numbers(where: list[ColumnElement[bool]], k: Any, lim: int, off: int) -> list[int]:
        order = [k.desc(), tie.desc()] if descending else [k.asc(), tie.asc()]
        q = select(c.number).where(*where).order_by(*order).limit(lim).offset(off)
        return [int(n) for (n,) in conn.execute(q)]

    if sort in NULLABLE_SORTS:
        got = numbers([*conds, col.is_not(None)], key, limit, offset)
        if len(got) < limit:
            if got:
                valued = offset + len(got)
            else:
                cq = select(func.count()).select_from(t.list).where(*conds, col.is_not(None))
                valued = int(conn.execute(cq).scalar() or 0)
            got += numbers([*conds, col.is_(None)], tie, limit - len(got), max(0, offset - valued))
    else:
        got = numbers(conds, key, limit, offset)
    return Page(total, _summaries(conn, t, got))


def _summaries(conn: Connection, t: ViewTables, numbers: list[int]) -> list[dict[str, Any]]:
    """The list rows of `numbers`, in that order: each the `summary` of its session's detail
    document (one copy of a session's state in the views, not two)."""
    if not numbers:
        return []
    lst, detail = t.list, t.detail
    rows = dict(
        conn.execute(
            select(lst.c.number, detail.c.doc)
            .select_from(lst.join(detail, detail.c.session_id == lst.c.session_id))
            .where(lst.c.number.in_(numbers))
        ).all()
    )
    return [summary(orjson.loads(rows[n])) for n in numbers if n in rows]


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
    by = _rollup_counts(conn, t, f)
    if by is None:
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


PERCENTILES = (("p50", 0.50), ("p95", 0.95))


def percentile(hist: dict[int, int], total: int, q: float, top: float | None) -> float | None:
    """Nearest-rank percentile from the duration histogram (within 1%; capped at the max)."""
    if total <= 0:
        return None
    return _crossing(hist, 0, max(1, math.ceil(q * total)), top)


def _crossing(hist: dict[int, int], seen: int, rank: int, top: float | None) -> float | None:
    """The value of the bucket where the running count (from `seen`) reaches `rank`."""
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            v = bucket_value(b)
            return round(min(v, top) if top is not None else v, 6)
    return top


def stats(conn: Connection, t: ViewTables, q: StatsQuery) -> dict[str, Any]:
    """Stats from the rollup cells when the query names at most one dimension besides day
    and status (every grouping the API offers on its own); otherwise folded from the
    matching sessions' documents, with the same arithmetic."""
    for g in q.group_by:
        if g not in GROUP_FIELDS:
            raise ValueError(f"group by one of {', '.join(GROUP_FIELDS)}")
    if answered_by_cells(q):
        groups = _stats_from_cells(conn, t, q, _dims(q))
    else:
        groups = _stats_from_docs(conn, t, q)
    active = conn.execute(
        select(func.sum(t.counts.c.n)).where(t.counts.c.dim == "active", t.counts.c.value == "1")
    ).scalar()
    return {"group_by": list(q.group_by), "groups": groups, "active_now": int(active or 0)}


def _dims(q: StatsQuery) -> set[str]:
    return {d for d in (*q.group_by, *(d for d, _ in q.filters)) if d not in ("day", "status")}


def answered_by_cells(q: StatsQuery) -> bool:
    """At most one dimension besides day and status: the rollup cells hold the answer."""
    return len(_dims(q)) <= 1


def _group(n: int, ended: int, total: float, top: float | None) -> dict[str, Any]:
    return {
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


def _finish(q: StatsQuery, groups: dict[tuple[str, ...], dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for k, grp in sorted(groups.items()):
        if grp["count"] <= 0:
            continue
        hist = grp.pop("_hist", None)
        if hist is not None:  # else the cells' spans have answered already
            d = grp["duration"]
            for label, share in PERCENTILES:
                d[label] = percentile(hist, d["count"], share, d["max"])
        grp["visible_time"] = {p: v for p, v in sorted(grp["visible_time"].items()) if v}
        grp["results"] = {r: v for r, v in sorted(grp["results"].items()) if v}
        out.append({"key": dict(zip(q.group_by, k, strict=True)), **grp})
    return out


def _stats_from_cells(
    conn: Connection, t: ViewTables, q: StatsQuery, dims: set[str]
) -> list[dict[str, Any]]:
    cells = t.cells
    dim = next(iter(dims), "")
    filters = dict(q.filters)
    by_day = "day" in q.group_by or "day" in filters or q.from_day or q.to_day
    conds: list[ColumnElement[bool]] = [cells.c.dim == dim]
    if by_day:
        conds.append(cells.c.day != ALL_DAYS)
    else:
        by_status = "status" in q.group_by or "status" in filters
        conds.append(cells.c.day == ALL_DAYS)
        every_status = cells.c.status == ALL_STATUSES
        conds.append(~every_status if by_status else every_status)
    if q.from_day:
        conds.append(cells.c.day >= q.from_day)
    if q.to_day:
        conds.append(cells.c.day <= q.to_day)
    for name, values in filters.items():
        conds.append(cells.c["value" if name == dim else name].in_(values))
    gcols = [cells.c["value" if g == dim else g] for g in q.group_by]
    where = and_(*conds)
    width = len(gcols)
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
        groups[tuple(row[:width])] = _group(
            int(row[-4]), int(row[-3]), float(row[-2] or 0), row[-1]
        )
    _cell_percentiles(conn, t, where, gcols, groups)
    for table, col, val, field_name in (
        (t.paths, "path", "seconds", "visible_time"),
        (t.results, "status", "n", "results"),
    ):
        rows = conn.execute(
            select(*gcols, table.c[col], func.sum(table.c[val]))
            .select_from(cells.join(table, table.c.cell_id == cells.c.cell_id))
            .where(where)
            .group_by(*gcols, table.c[col])
        ).all()  # one fetchall: row-by-row iteration costs more than the query here
        for row in rows:
            hit = groups.get(tuple(row[:width]))
            if hit is not None and row[-1]:
                v = row[-1]
                hit[field_name][row[-2]] = round(v, 6) if isinstance(v, float) else int(v)
    return _finish(q, groups)


def _cell_percentiles(
    conn: Connection,
    t: ViewTables,
    where: ColumnElement[bool],
    gcols: list[Any],
    groups: dict[tuple[str, ...], dict[str, Any]],
) -> None:
    """p50/p95 of each group, the same nearest rank `percentile` finds in the whole
    histogram: sum the groups' spans, find the span each rank falls in, then read only that
    span's fine buckets."""
    cells, width = t.cells, len(gcols)

    def summed(table: Any, col: str, *extra: ColumnElement[bool]) -> dict[Any, dict[int, int]]:
        rows = conn.execute(
            select(*gcols, table.c[col], func.sum(table.c.n))
            .select_from(cells.join(table, table.c.cell_id == cells.c.cell_id))
            .where(where, *extra)
            .group_by(*gcols, table.c[col])
        ).all()  # one fetchall: row-by-row iteration costs more than the query here
        out: dict[Any, dict[int, int]] = defaultdict(dict)
        for row in rows:
            if row[-1]:
                out[tuple(row[:width])][row[-2]] = int(row[-1])
        return out

    spans = summed(t.histogram_spans, "span")
    # span -> the (group, label, count before the span, rank) that fall in it
    asks: dict[int, list[tuple[tuple[str, ...], str, int, int]]] = defaultdict(list)
    for k, grp in groups.items():
        grp.pop("_hist")
        d = grp["duration"]
        for label, q in PERCENTILES:
            d[label] = d["max"] if d["count"] > 0 else None
            if d["count"] <= 0:
                continue
            rank, seen = max(1, math.ceil(q * d["count"])), 0
            for span, n in sorted(spans.get(k, {}).items()):
                if seen + n >= rank:
                    asks[span].append((k, label, seen, rank))
                    break
                seen += n
    h = t.histogram
    for span, wanted in asks.items():
        lo = span * HIST_SPAN
        only: list[ColumnElement[bool]] = []
        if gcols and len(wanted) < len(groups):  # only the groups whose rank is in this span
            keys = list({k for k, *_ in wanted})
            only.append(
                gcols[0].in_([k[0] for k in keys]) if width == 1 else tuple_(*gcols).in_(keys)
            )
        fine = summed(h, "bucket", h.c.bucket >= lo, h.c.bucket < lo + HIST_SPAN, *only)
        for k, label, seen, rank in wanted:
            d = groups[k]["duration"]
            d[label] = _crossing(fine.get(k, {}), seen, rank, d["max"])


def _stats_from_docs(conn: Connection, t: ViewTables, q: StatsQuery) -> list[dict[str, Any]]:
    """Groupings over two or more dimensions: read the matching sessions (the list's columns
    filter them) and add up their contributions exactly as the cells would."""
    lst, det = t.list.c, t.detail.c
    conds: list[ColumnElement[bool]] = []
    for name, values in q.filters:
        conds.append(
            lst[name].in_(values)
            if "" not in values
            else (lst[name].in_(values) | lst[name].is_(None))
        )
    if q.from_day:
        conds.append(lst.day >= q.from_day)
    if q.to_day:
        conds.append(lst.day <= q.to_day)
    acc: dict[tuple[str, ...], CellDelta] = defaultdict(CellDelta)
    tops: dict[tuple[str, ...], float] = {}
    rows = conn.execute(
        select(det.doc)
        .select_from(t.list.join(t.detail, det.session_id == lst.session_id))
        .where(*conds)
    )
    for (raw,) in rows:
        s = orjson.loads(raw)
        k = tuple(_group_value(s, g) for g in q.group_by)
        add_to_cells([acc[k]], s, +1)
        d = s["duration"]
        if d is not None and (k not in tops or d > tops[k]):
            tops[k] = d
    groups = {}
    for k, dl in acc.items():
        g = _group(dl.n, dl.ended, dl.sum, tops.get(k))
        g["_hist"].update(dl.hist)
        g["visible_time"] = {p: round(v, 6) for p, v in dl.paths.items()}
        g["results"] = dict(dl.results)
        groups[k] = g
    return _finish(q, groups)


def _group_value(s: dict[str, Any], g: str) -> str:
    if g == "day":
        return day_of(s["started_at"])
    if g == "status":
        return str(s["status"])
    return dim_value(s, g)
