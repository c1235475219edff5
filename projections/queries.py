"""The list query: one page of sessions in a stable order, and its total. The page is found
as session numbers inside the list's indexes (walking the sort's index, collecting and
sorting the smallest filter's matches, or merging a filter's per-status runs; `_walk`
picks by the count view's numbers), then only the page's detail documents are read, in
one statement: whole (`list_details`, for the dialects) or as list rows (`list_sessions`).

Callers read every query through this module (`from projections import queries as qs`):
the filters and count, detail and stats queries are named here from their own modules."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from sqlalchemy import Connection, and_, func, literal, select, tuple_, union_all
from sqlalchemy.sql.elements import ColumnElement

from projections.cells import GROUP_FIELDS
from projections.query_count import (
    INDEXED,
    SessionFilter,
    conditions,
    count_sessions,
    dim_count,
    equalities,
    rollup_counts,
)
from projections.query_detail import get_detail, get_details, id_for_number
from projections.query_stats import StatsQuery, answered_by_cells, percentile, stats
from projections.tables import ViewTables
from projections.view_list import summary

__all__ = [
    "GROUP_FIELDS",
    "NULLABLE_SORTS",
    "SORT_FIELDS",
    "Page",
    "SessionFilter",
    "StatsQuery",
    "answered_by_cells",
    "count_sessions",
    "get_detail",
    "get_details",
    "id_for_number",
    "list_details",
    "list_sessions",
    "percentile",
    "stats",
]

SORT_FIELDS = ("started_at", "ended_at", "last_seen_at", "updated_at", "duration", "number", "name")


@dataclass
class Page:
    total: int
    items: list[dict[str, Any]] = field(default_factory=list)
    # (sort value, number) of the last item, the `after` of the next page; and whether one
    # follows.
    last: tuple[Any, int] | None = None
    more: bool = False


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
    eq = equalities(f)
    if f.status:
        eq["status"] = f.status
    driving = {d: v for d, v in eq.items() if d in INDEXED or d == "tag"}
    if not driving:
        return True
    if sort == "started_at" and any(d in INDEXED for d in driving):
        return False  # status's index is in started_at order; the others merge runs of it
    everyone = dim_count(conn, t, "", ("",))
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
            if f.status and dim in INDEXED:
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
    eq = {d: v for d, v in equalities(f).items() if d in INDEXED}
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


Row = tuple[int, Any]  # a page's session: (number, sort value)


def _beyond(after: Row | None, descending: bool, key: Any, tie: Any) -> list[ColumnElement[bool]]:
    """The keyset condition: rows past `after` = (sort value, number) in the page's order
    (none without `after`). A row value comparison, which an index on (key, number) seeks."""
    if after is None:
        return []
    value, number = after
    row, past = tuple_(key, tie), tuple_(literal(value), literal(number))
    return [row < past if descending else row > past]


def _merged(
    conn: Connection,
    t: ViewTables,
    f: SessionFilter,
    dim: str,
    runs: list[tuple[Any, str]],
    page: tuple[bool, int, int, Row | None],
) -> list[Row]:
    """A page in the default order as the merge of index runs (`_status_runs`): SQLite
    merges a UNION ALL whose arms come sorted (no temporary B-tree), PostgreSQL appends
    them with a merge."""
    descending, limit, offset, after = page
    c = t.list.c
    cleared: dict[str, Any] = {dim: () if dim == "user" else None}
    rest = replace(f, status=(), **cleared)
    conds = conditions(t, rest, walk=True)  # no other filter index may serve an arm
    conds += _beyond(after, descending, c.started_at, c.number)
    arms = [
        select(c.number, c.started_at).where(*conds, c[dim] == v, c.status == s) for v, s in runs
    ]
    u = union_all(*arms) if len(arms) > 1 else arms[0]
    k, n = u.selected_columns.started_at, u.selected_columns.number
    order = [k.desc(), n.desc()] if descending else [k.asc(), n.asc()]
    q = u.order_by(*order).limit(limit).offset(offset)
    return [(int(num), key) for num, key in conn.execute(q)]


def list_sessions(
    conn: Connection,
    t: ViewTables,
    f: SessionFilter,
    sort: str = "started_at",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
    after: Row | None = None,
) -> Page:
    """One page in a stable order (the session number breaks ties, so pages neither drift
    nor repeat), and the total, as list rows: the `summary` of each detail document.
    `after` = (sort value, number) of the last row seen reads the page after it (keyset
    pagination: rows inserted or removed before it move nothing); `Page.last` is that pair
    for this page's last row."""
    page = list_details(conn, t, f, sort, descending, limit, offset, after)
    return replace(page, items=[summary(doc) for doc in page.items])


def list_details(
    conn: Connection,
    t: ViewTables,
    f: SessionFilter,
    sort: str = "started_at",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
    after: Row | None = None,
) -> Page:
    """The page `list_sessions` shows, each item the session's whole detail document (for
    the dialects, whose answers need more than a list row), read once in one statement."""
    # One row more than the page tells whether another page follows.
    total, rows = _page_numbers(conn, t, f, sort, (descending, limit + 1, offset, after))
    more, rows = len(rows) > limit, rows[:limit]
    last = (rows[-1][1], rows[-1][0]) if rows else None
    return Page(total, _documents(conn, t, [n for n, _ in rows]), last, more)


def _page_numbers(
    conn: Connection,
    t: ViewTables,
    f: SessionFilter,
    sort: str,
    page: tuple[bool, int, int, Row | None],
) -> tuple[int, list[Row]]:
    """The total and the page's rows (number, sort value), in order, found inside the
    indexes; `page` is (descending, limit, offset, after)."""
    _, limit, offset, _ = page
    if sort not in SORT_FIELDS:
        raise ValueError(f"sort must be one of {', '.join(SORT_FIELDS)}")
    by_status = rollup_counts(conn, t, f)
    if by_status is not None:
        total = sum(by_status.values())
    else:
        conds = conditions(t, f)
        total_q = select(func.count()).select_from(t.list)
        total = int(conn.execute(total_q.where(and_(*conds)) if conds else total_q).scalar() or 0)
    if limit <= 0 or offset >= total:
        return total, []
    if len(f.tags) == 1 and sort == "started_at" and replace(f, tags=()).is_empty():
        return total, _tag_page(conn, t, f.tags[0], page)
    exact = total if by_status is not None else None
    walk = _walk(conn, t, f, sort, offset + limit, exact)
    if not walk and sort == "started_at":
        merge = _status_runs(conn, t, f, by_status)
        if merge is not None:
            return total, _merged(conn, t, f, *merge, page)
    return total, _sorted_rows(conn, t, f, sort, walk, page)


def _sorted_rows(
    conn: Connection,
    t: ViewTables,
    f: SessionFilter,
    sort: str,
    walk: bool,
    page: tuple[bool, int, int, Row | None],
) -> list[Row]:
    """A page in any sort, walking the sort's index or sorting the filters' matches; the
    sessions without a sort value come after the others, ordered by number."""
    descending, limit, offset, after = page
    c = t.list.c
    conds = conditions(t, f, walk=walk)
    col = c[sort]
    key: Any = col if walk or sort == "started_at" else col + 0 if sort != "name" else col
    tie = c.number

    def rows(where: list[ColumnElement[bool]], k: Any, lim: int, off: int) -> list[Row]:
        order = [k.desc(), tie.desc()] if descending else [k.asc(), tie.asc()]
        q = select(c.number, col).where(*where).order_by(*order).limit(lim).offset(off)
        return [(int(n), v) for n, v in conn.execute(q)]

    if sort not in NULLABLE_SORTS:
        return rows([*conds, *_beyond(after, descending, key, tie)], key, limit, offset)
    got: list[Row] = []
    in_nulls = after is not None and after[0] is None  # past every session with a value
    valued = 0
    if not in_nulls:
        where = [*conds, col.is_not(None), *_beyond(after, descending, key, tie)]
        got = rows(where, key, limit, offset)
        if got:
            valued = offset + len(got)
        elif len(got) < limit:
            cq = select(func.count()).select_from(t.list).where(*where)
            valued = int(conn.execute(cq).scalar() or 0)
    if len(got) < limit:
        where = [*conds, col.is_(None)]
        if in_nulls and after is not None:
            where.append(tie < after[1] if descending else tie > after[1])
        got += rows(where, tie, limit - len(got), max(0, offset - valued))
    return got


def _tag_page(
    conn: Connection,
    t: ViewTables,
    tag_value: tuple[str, str],
    page: tuple[bool, int, int, Row | None],
) -> list[Row]:
    """One tag, default order: the tags index holds the page in order."""
    descending, limit, offset, after = page
    tg = t.tags.c
    (tag, value), k = tag_value, tg.started_at
    order = [k.desc(), tg.number.desc()] if descending else [k.asc(), tg.number.asc()]
    q = select(tg.number, k).where(tg.key == tag, tg.value == value)
    q = q.where(*_beyond(after, descending, k, tg.number))
    return [(int(n), v) for n, v in conn.execute(q.order_by(*order).limit(limit).offset(offset))]


def _documents(conn: Connection, t: ViewTables, numbers: list[int]) -> list[dict[str, Any]]:
    """The detail documents of `numbers`, in that order, in one statement. Joined to the
    list so that only visible sessions come back (a deleted one has no list row); the list
    row itself is the `summary` of this document (one copy of a session's state, not two)."""
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
    return [orjson.loads(rows[n]) for n in numbers if n in rows]
