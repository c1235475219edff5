"""The stats query: groupings by day, status and one dimension read from the rollup cells
(percentiles from the histogram's spans, then one span's fine buckets), and groupings by two
or more dimensions folded from the matching sessions' documents with the same arithmetic."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, and_, func, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from projections.cells import (
    ALL_DAYS,
    ALL_STATUSES,
    GROUP_FIELDS,
    HIST_SPAN,
    CellDelta,
    add_to_cells,
    bucket_value,
    dim_value,
)
from projections.projection import day_of
from projections.tables import ViewTables


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
    return {"group_by": list(q.group_by), "groups": groups, "active_now": _active_now(conn, t, q)}


def _active_now(conn: Connection, t: ViewTables, q: StatsQuery) -> int:
    """Sessions not ended: every project's, or only the query's projects when it names some
    (a project-limited key's stats always do, and must not count another project's)."""
    projects = dict(q.filters).get("project")
    if projects is None:
        ct = t.counts.c
        n = conn.execute(select(func.sum(ct.n)).where(ct.dim == "active", ct.value == "1"))
    else:
        lst = t.list.c
        named = lst.project.in_(projects)
        q_all = select(func.count()).select_from(t.list).where(lst.active == 1)
        n = conn.execute(q_all.where(named | lst.project.is_(None) if "" in projects else named))
    return int(n.scalar() or 0)


def _dims(q: StatsQuery) -> set[str]:
    return {d for d in (*q.group_by, *(d for d, _ in q.filters)) if d not in ("day", "status")}


def answered_by_cells(q: StatsQuery) -> bool:
    """At most one dimension besides day and status: the rollup cells hold the answer."""
    return len(_dims(q)) <= 1


def _group(n: int, ended: int, total: float, top: float | None) -> dict[str, Any]:
    # Durations are kept to the microsecond, but a sum of them added batch by batch (live)
    # or all at once (a rebuild) differs in its last bits; rounded first, the mean is the
    # same both ways even when it falls on a half microsecond.
    total = round(total, 6)
    return {
        "count": n,
        "ended": ended,
        "duration": {
            "count": ended,
            "sum": total,
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
