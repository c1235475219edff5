"""The four projections. Each turns a batch of session changes (state before the batch, state
after it) into writes on its own tables; the live worker and the rebuild run the same classes.

Count and stats are sums over sessions of a per-session contribution, so a change is applied
as "subtract the old contribution, add the new one": any order of batches gives the same sums.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any, NamedTuple, Protocol

import orjson
from sqlalchemy import Connection, and_, delete, select
from sqlalchemy.sql.elements import ColumnElement

from domain.state import State, is_active
from projections.sql import update_rows, upsert, upsert_rows
from projections.tables import ViewTables

Change = tuple[str, State | None, State]

# Duration histogram: bucket b covers (BASE * GROWTH**(b-1), BASE * GROWTH**b]; ~1% relative.
HIST_BASE = 0.001
HIST_GROWTH = 1.01
# Fine buckets per span (ViewTables.histogram_spans): 16 buckets of 1% make a span of ~17%.
HIST_SPAN = 16


def bucket_of(duration: float) -> int:
    if duration <= HIST_BASE:
        return 0
    return math.ceil(math.log(duration / HIST_BASE) / math.log(HIST_GROWTH))


def bucket_value(b: int) -> float:
    """The value reported for a bucket: its upper bound (never under-reports a percentile)."""
    return HIST_BASE * HIST_GROWTH**b if b > 0 else 0.0


def day_of(ts: float | None) -> str:
    return "" if ts is None else _day(int(ts // 86400))


@lru_cache(maxsize=4096)
def _day(n: int) -> str:
    return datetime.fromtimestamp(n * 86400, UTC).strftime("%Y-%m-%d")


# The fields a list row shows (one name per idea, the same as in the detail), then "active".
SUMMARY_FIELDS = (
    "id",
    "number",
    "name",
    "source",
    "project",
    "build",
    "user",
    "type",
    "status",
    "tags",
    "attributes",
    "started_at",
    "ended_at",
    "last_seen_at",
    "updated_at",
    "duration",
    "remarks",
    "scm_ref",
    "visible_time",
)
_summary_values = itemgetter(*SUMMARY_FIELDS)


def summary(s: State) -> dict[str, Any]:
    """The fields a list row shows (one name per idea, the same as in the detail)."""
    out = dict(zip(SUMMARY_FIELDS, _summary_values(s), strict=True))
    out["active"] = is_active(s)
    return out


def snapshot(s: State) -> State:
    """What the views need of a state before a batch changes it (copied, since the fold
    mutates in place): cheaper than a second full copy of the document."""
    return {
        "deleted": s["deleted"],
        "status": s["status"],
        "source": s["source"],
        "ended_at": s["ended_at"],
        "tags": dict(s["tags"]),
        "attributes": dict(s["attributes"]),
        "started_at": s["started_at"],
        "project": s["project"],
        "build": s["build"],
        "user": s["user"],
        "type": s["type"],
        "duration": s["duration"],
        "number": s["number"],
        "name": s["name"],
        "updated_at": s["updated_at"],
        "created_by": s["created_by"],
        "visible_time": dict(s["visible_time"]),
        "result_counts": dict(s["result_counts"]),
        **{k: list(s[k]) for k in MEMBER_KINDS},
    }


MEMBER_KINDS = ("participants", "users", "devices")


def _members(s: State) -> dict[str, list[str]]:
    return {k: s[k] for k in MEMBER_KINDS}


def dumps_sized(obj: Any) -> bytes:
    """`orjson.dumps`, copied into bytes of its own size. The orjson here (3.13) hands back
    its result inside its whole working buffer, kilobytes even for a short document: a
    batch of documents held for one executemany then costs a fresh page (a page fault)
    and its memory per document. Measured on the detail documents: 7.6 -> 3.3 us each."""
    return bytes(memoryview(orjson.dumps(obj)))


class Projection(Protocol):
    name: str

    def apply(self, conn: Connection, t: ViewTables, changes: Sequence[Change]) -> None: ...


class DetailView:
    """Everything known about one session: the folded state, as a document."""

    name = "detail"

    def prepare(self, changes: Sequence[Change]) -> list[tuple[str, bytes]]:
        return [(sid, dumps_sized(after)) for sid, _, after in changes]

    def write(self, conn: Connection, t: ViewTables, rows: list[tuple[str, bytes]]) -> None:
        upsert_rows(conn, t.detail, _DETAIL_COLS, rows, ("session_id",))

    def apply(self, conn: Connection, t: ViewTables, changes: Sequence[Change]) -> None:
        self.write(conn, t, self.prepare(changes))


class ListWrites(NamedTuple):
    """A batch's writes to the list view's tables, in the order they are made."""

    gone: list[str]  # deleted sessions: every row of theirs goes
    rows: list[tuple[Any, ...]]
    seen: list[tuple[Any, ...]]  # (last_seen_at, session_id): nothing else moved
    stale_tags: list[str]  # sessions whose tags changed: their tag rows are rewritten
    tag_rows: list[tuple[Any, ...]]
    stale_members: list[str]
    member_rows: list[tuple[str, str, str]]


class ListView:
    """One row per visible session with every filterable and sortable column, plus tags."""

    name = "list"

    def prepare(self, changes: Sequence[Change]) -> ListWrites:
        gone = [sid for sid, _, after in changes if after["deleted"]]
        live = [(sid, b, a) for sid, b, a in changes if not a["deleted"]]
        values, day = _list_values, day_of
        rows, seen = [], []
        for sid, b, a in live:
            if b is not None and _only_seen(b, a):
                seen.append((a["last_seen_at"], sid))
                continue
            attrs = a["attributes"]
            rows.append(
                (
                    sid,
                    *values(a),
                    attrs.get("browser"),
                    attrs.get("os"),
                    int(is_active(a)),
                    day(a["started_at"]),
                )
            )
        # A session new to the views (no "before") has no tag or member rows to clear.
        retag = [(sid, b, a) for sid, b, a in live if b is None or b["tags"] != a["tags"]]
        tag_rows = [
            (sid, k, str(v), a["started_at"], a["number"])
            for sid, _, a in retag
            for k, v in a["tags"].items()
        ]
        moved = [(sid, b, a) for sid, b, a in live if b is None or _members(b) != _members(a)]
        member_rows = [
            (sid, kind, m)
            for sid, _, a in moved
            for kind in MEMBER_KINDS
            for m in dict.fromkeys(a[kind])
        ]
        return ListWrites(
            gone,
            rows,
            seen,
            [sid for sid, b, _ in retag if b is not None],
            tag_rows,
            [sid for sid, b, _ in moved if b is not None],
            member_rows,
        )

    def write(self, conn: Connection, t: ViewTables, w: ListWrites) -> None:
        if w.gone:
            for table in (t.list, t.tags, t.members):
                conn.execute(delete(table).where(table.c.session_id.in_(w.gone)))
        upsert_rows(conn, t.list, _LIST_COLS, w.rows, ("session_id",))
        update_rows(conn, t.list, ("last_seen_at",), w.seen, ("session_id",))
        if w.stale_tags:
            conn.execute(delete(t.tags).where(t.tags.c.session_id.in_(w.stale_tags)))
        upsert_rows(conn, t.tags, _TAG_COLS, w.tag_rows, ("session_id", "key"))
        if w.stale_members:
            conn.execute(delete(t.members).where(t.members.c.session_id.in_(w.stale_members)))
        upsert_rows(conn, t.members, _MEMBER_COLS, w.member_rows, _MEMBER_COLS)

    def apply(self, conn: Connection, t: ViewTables, changes: Sequence[Change]) -> None:
        self.write(conn, t, self.prepare(changes))


_DETAIL_COLS = ("session_id", "doc")
# The list row's columns taken from the state as they are, then the derived ones.
_LIST_FIELDS = (
    "number",
    "name",
    "source",
    "project",
    "build",
    "user",
    "type",
    "status",
    "started_at",
    "ended_at",
    "last_seen_at",
    "updated_at",
    "duration",
    "created_by",
)
_list_values = itemgetter(*_LIST_FIELDS)
# What a keepalive or hide leaves as it was of a list row (all but the last-seen time);
# `snapshot` keeps each of these fields of the state before a batch.
_unseen_values = itemgetter(*(f for f in _LIST_FIELDS if f != "last_seen_at"))


def _only_seen(b: State, a: State) -> bool:
    """Whether a session's list row moved only in its last-seen time (what keepalives and
    hides do). Such a row is updated in that column: an upsert rewrites every column, so
    SQLite rewrote the row's entry in all 13 list indexes, where a last-seen change touches
    7 (measured: about half the time per row)."""
    ba, aa = b["attributes"], a["attributes"]
    return (
        _unseen_values(b) == _unseen_values(a)
        and ba.get("browser") == aa.get("browser")
        and ba.get("os") == aa.get("os")
    )


_LIST_COLS = ("session_id", *_LIST_FIELDS, "browser", "os", "active", "day")
_TAG_COLS = ("session_id", "key", "value", "started_at", "number")
_MEMBER_COLS = ("session_id", "kind", "member")


COUNT_DIMS = ("project", "build", "user", "type", "source")
TAG_SEP = "\x1f"
CountKey = tuple[str, str, str]


def count_keys(s: State) -> list[CountKey]:
    """The (dimension, value, status) rows a visible session counts in."""
    status = s["status"]
    keys = [("", "", status), ("active", "1" if is_active(s) else "0", status)]
    keys += [(d, s[d], status) for d in COUNT_DIMS if s[d] is not None]
    keys += [("tag", f"{k}{TAG_SEP}{v}", status) for k, v in s["tags"].items()]
    return keys


# What a session's count keys are made of (`count_keys`).
_count_fields = itemgetter("deleted", "status", "ended_at", *COUNT_DIMS)


def _counted_alike(b: State, a: State) -> bool:
    return _count_fields(b) == _count_fields(a) and b["tags"] == a["tags"]


class CountView:
    """Visible sessions per (dimension, value, status): the count view, the list's totals and
    the list planner's selectivities."""

    name = "count"

    def deltas(
        self, changes: Sequence[Change], into: dict[CountKey, int] | None = None
    ) -> dict[CountKey, int]:
        delta: dict[CountKey, int] = defaultdict(int) if into is None else into
        for _, b, a in changes:
            if b is not None and _counted_alike(b, a):
                continue  # a keepalive, say: its keys would be taken away and added back
            if b is not None and not b["deleted"]:
                for k in count_keys(b):
                    delta[k] -= 1
            if not a["deleted"]:
                for k in count_keys(a):
                    delta[k] += 1
        return delta

    def apply(self, conn: Connection, t: ViewTables, changes: Sequence[Change]) -> None:
        self.write(conn, t, self.deltas(changes))

    @staticmethod
    def write(conn: Connection, t: ViewTables, delta: dict[CountKey, int]) -> None:
        rows = [
            {"dim": d, "value": v, "status": st, "n": n} for (d, v, st), n in delta.items() if n
        ]
        upsert(conn, t.counts, rows, ["dim", "value", "status"], add=frozenset({"n"}))


# The stats view's grouping dimensions; "day" and "status" are in every cell's key, the others
# each have cells of their own ("" = all sessions).
GROUP_FIELDS = ("day", "status", "project", "build", "user", "type", "browser", "os")
CELL_DIMS = ("", "project", "build", "user", "type", "browser", "os")
ALL_DAYS = "*"
ALL_STATUSES = "*"  # only on all-days cells: a grouping without status reads one cell a value
CellKey = tuple[str, str, str, str]  # (dimension, value, day, status)


def dim_value(s: State, dim: str) -> str:
    if dim in ("browser", "os"):
        return s["attributes"].get(dim) or ""
    return s[dim] or "" if dim else ""


# Every session has exactly one value of this dimension: its cells sum to the "" cells.
_PARTITION_DIM = "type"


def cell_keys(s: State) -> list[CellKey]:
    """The day-level cells a session is added to, one per dimension; the other cells are
    sums of these (`with_derived_cells`), so a session costs six cells, not fourteen."""
    day, status = day_of(s["started_at"]), s["status"]
    attrs = s["attributes"]
    return [
        ("project", s["project"] or "", day, status),
        ("build", s["build"] or "", day, status),
        ("user", s["user"] or "", day, status),
        ("type", s["type"] or "", day, status),
        ("browser", attrs.get("browser") or "", day, status),
        ("os", attrs.get("os") or "", day, status),
    ]


def with_derived_cells(deltas: StatsDeltas) -> StatsDeltas:
    """The day-level deltas plus the cells that are their sums: all sessions (dimension "")
    per day, every dimension over all days (day "*"), and over all days all statuses."""
    out: StatsDeltas = defaultdict(CellDelta)
    out.update(deltas)
    for (dim, _value, day, status), dl in deltas.items():
        if dim == _PARTITION_DIM:
            out[("", "", day, status)].merge(dl)
    for (dim, value, day, status), dl in list(out.items()):
        if day != ALL_DAYS:
            out[(dim, value, ALL_DAYS, status)].merge(dl)
            out[(dim, value, ALL_DAYS, ALL_STATUSES)].merge(dl)
    return out


class CellDelta:
    """What a batch adds to (or takes from) one cell."""

    __slots__ = ("durations_out", "ended", "hist", "n", "paths", "results", "sum", "top")

    def __init__(self) -> None:
        self.n = 0
        self.ended = 0
        self.sum = 0.0
        self.hist: dict[int, int] = defaultdict(int)
        self.paths: dict[str, float] = defaultdict(float)
        self.results: dict[str, int] = defaultdict(int)
        self.top: float | None = None  # the longest duration added: it can raise the max
        self.durations_out: list[float] = []

    def merge(self, other: CellDelta) -> None:
        self.n += other.n
        self.ended += other.ended
        self.sum += other.sum
        for b, n in other.hist.items():
            self.hist[b] += n
        for p, v in other.paths.items():
            self.paths[p] += v
        for k, n in other.results.items():
            self.results[k] += n
        if other.top is not None and (self.top is None or other.top > self.top):
            self.top = other.top
        self.durations_out += other.durations_out


def add_to_cells(cells: list[CellDelta], s: State, sign: int) -> None:
    """Add (sign +1) or take away (-1) one session's contribution to each of `cells`. One
    pass for all of a session's cells, since a rebuild does this for every session."""
    d = s["duration"]
    paths = [(p, sign * v) for p, v in s["visible_time"].items()]
    results = [(k, sign * n) for k, n in s["result_counts"].items()]
    b, signed = (0, 0.0) if d is None else (bucket_of(d), sign * d)
    for cell in cells:
        cell.n += sign
        if d is not None:
            cell.ended += sign
            cell.sum += signed
            cell.hist[b] += sign
            if sign < 0:
                cell.durations_out.append(d)
            elif cell.top is None or d > cell.top:
                cell.top = d
        for p, v in paths:
            cell.paths[p] += v
        for k, n in results:
            cell.results[k] += n


def add_moved_extras(cells: list[CellDelta], before: State, after: State) -> None:
    """What moved between two states of a session that stays in its cells with the same
    duration: the visible time of the paths whose time changed and the results whose count
    did. (A keepalive moves one path; taking every path away and adding it back cost each
    keepalive two cell updates per path the session ever saw, per cell, when measured.)"""
    bv, av = before["visible_time"], after["visible_time"]
    paths = [(p, v - bv.get(p, 0.0)) for p, v in av.items() if v != bv.get(p)]
    paths += [(p, -v) for p, v in bv.items() if p not in av]
    br, ar = before["result_counts"], after["result_counts"]
    results = [(k, n - br.get(k, 0)) for k, n in ar.items() if n != br.get(k)]
    results += [(k, -n) for k, n in br.items() if k not in ar]
    for cell in cells:
        for p, v in paths:
            cell.paths[p] += v
        for k, n in results:
            cell.results[k] += n


StatsDeltas = dict[CellKey, CellDelta]


class StatsView:
    """Rollup cells (see ViewTables.cells): count, ended count, duration sum/max and
    histogram, visible time per path, results. A cell's id is a hash of its key, so a batch
    is a handful of incrementing upserts, and a whole rebuild can sum in memory first."""

    name = "stats"

    def deltas(self, changes: Sequence[Change], into: StatsDeltas | None = None) -> StatsDeltas:
        deltas: StatsDeltas = defaultdict(CellDelta) if into is None else into
        for _, b, a in changes:
            live_before = b if b is not None and not b["deleted"] else None
            if live_before is not None and not a["deleted"]:
                keys = cell_keys(a)
                if keys == cell_keys(live_before) and live_before["duration"] == a["duration"]:
                    # In the same cells with the same duration: only paths and results move.
                    if (
                        live_before["visible_time"] != a["visible_time"]
                        or live_before["result_counts"] != a["result_counts"]
                    ):
                        add_moved_extras([deltas[k] for k in keys], live_before, a)
                    continue
            if live_before is not None:
                add_to_cells([deltas[k] for k in cell_keys(live_before)], live_before, -1)
            if not a["deleted"]:
                add_to_cells([deltas[k] for k in cell_keys(a)], a, +1)
        return deltas

    def apply(self, conn: Connection, t: ViewTables, changes: Sequence[Change]) -> None:
        deltas = self.deltas(changes)
        if deltas:
            self.write(conn, t, deltas)

    def write(self, conn: Connection, t: ViewTables, deltas: StatsDeltas) -> None:
        """Write day-level deltas (from `deltas`) with the cells derived from them."""
        deltas = with_derived_cells(deltas)
        cells, hist, spans, paths, results = [], [], [], [], []
        maybe_lost_max: dict[int, CellKey] = {}
        for key, dl in deltas.items():
            cid = cell_id(key)
            top = dl.top
            if dl.n or dl.ended or dl.sum or top is not None or dl.durations_out:
                # A delta without any of these needs no cell row written: either only paths
                # or results moved (keepalives, say), for sessions that stay in the cell, so
                # its row is there already; or sessions came and went within the batch.
                cells.append(
                    {
                        "cell_id": cid,
                        "dim": key[0],
                        "value": key[1],
                        "day": key[2],
                        "status": key[3],
                        "n": dl.n,
                        "ended": dl.ended,
                        "duration_sum": dl.sum,
                        "duration_max": top,
                    }
                )
            if dl.durations_out:
                maybe_lost_max[cid] = key
            hist += [(cid, b, n) for b, n in dl.hist.items() if n]
            span_n: dict[int, int] = defaultdict(int)
            for b, n in dl.hist.items():
                span_n[b // HIST_SPAN] += n
            spans += [(cid, k, n) for k, n in span_n.items() if n]
            paths += [(cid, p, v) for p, v in dl.paths.items() if v]
            results += [(cid, k, n) for k, n in dl.results.items() if n]
        # The max only grows by upsert; where a duration left a cell, it is recomputed below.
        upsert(conn, t.cells, cells, ["cell_id"], add=_CELL_SUMS, keep=_CELL_KEEP)
        _raise_max(conn, t, cells)
        # Tuples: a rebuild writes every histogram bucket of every cell here at once.
        n_added = frozenset({"n"})
        upsert_rows(conn, t.histogram, _HIST_COLS, hist, _HIST_COLS[:2], n_added)
        upsert_rows(conn, t.histogram_spans, _SPAN_COLS, spans, _SPAN_COLS[:2], n_added)
        upsert_rows(conn, t.paths, _PATH_COLS, paths, _PATH_COLS[:2], frozenset({"seconds"}))
        upsert_rows(conn, t.results, _RESULT_COLS, results, _RESULT_COLS[:2], n_added)
        for cid, key in maybe_lost_max.items():
            self._recompute_max(conn, t, cid, key)

    @staticmethod
    def _recompute_max(conn: Connection, t: ViewTables, cid: int, key: CellKey) -> None:
        """Exact max after a duration left the cell: read it back from the list view's rows."""
        lst = t.list
        dim, value, day, status = key
        conds: list[ColumnElement[bool]] = [lst.c.duration.is_not(None)]
        if status != ALL_STATUSES:
            conds.append(lst.c.status == status)
        if day != ALL_DAYS:
            day0 = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
            conds += [lst.c.started_at >= day0, lst.c.started_at < day0 + 86400]
        if dim:
            col = lst.c[dim]
            conds.append((col.is_(None) | (col == "")) if value == "" else (col == value))
        top = conn.execute(
            select(lst.c.duration).where(and_(*conds)).order_by(lst.c.duration.desc()).limit(1)
        ).scalar()
        conn.execute(t.cells.update().where(t.cells.c.cell_id == cid).values(duration_max=top))


_HIST_COLS = ("cell_id", "bucket", "n")
_SPAN_COLS = ("cell_id", "span", "n")
_PATH_COLS = ("cell_id", "path", "seconds")
_RESULT_COLS = ("cell_id", "status", "n")
_CELL_SUMS = frozenset({"n", "ended", "duration_sum"})
_CELL_KEEP = frozenset({"duration_max", "dim", "value", "day", "status"})


def _raise_max(conn: Connection, t: ViewTables, cells: list[dict[str, Any]]) -> None:
    """duration_max = max(duration_max, this batch's longest) for cells that gained one."""
    rows = [
        (c["duration_max"],) * 2 + (c["cell_id"],) for c in cells if c["duration_max"] is not None
    ]
    if rows:
        m = "?" if conn.dialect.name == "sqlite" else "%s"
        conn.exec_driver_sql(
            f"UPDATE {t.cells.name} SET duration_max = {m} "
            f"WHERE (duration_max IS NULL OR duration_max < {m}) AND cell_id = {m}",
            rows,
        )


def cell_id(key: CellKey) -> int:
    """A stable 63-bit id for a cell key (the same live and after any rebuild)."""
    digest = hashlib.blake2b("\x1f".join(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def all_views() -> list[Projection]:
    """In dependency order: stats reads list rows back when a cell's max leaves it."""
    return [DetailView(), ListView(), CountView(), StatsView()]
