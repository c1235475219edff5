"""The four projections. Each turns a batch of session changes (state before the batch, state
after it) into writes on its own tables; the live worker and the rebuild run the same classes.

Count and stats are sums over sessions of a per-session contribution, so a change is applied
as "subtract the old contribution, add the new one": any order of batches gives the same sums.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, Table, and_, delete, select

from domain.state import ACTIVE_STATUSES, State
from projections.sql import upsert
from projections.tables import ViewTables

Change = tuple[str, State | None, State]

# Duration histogram: bucket b covers (BASE * GROWTH**(b-1), BASE * GROWTH**b]; ~1% relative.
HIST_BASE = 0.001
HIST_GROWTH = 1.01


def bucket_of(duration: float) -> int:
    if duration <= HIST_BASE:
        return 0
    return math.ceil(math.log(duration / HIST_BASE) / math.log(HIST_GROWTH))


def bucket_value(b: int) -> float:
    """The value reported for a bucket: its upper bound (never under-reports a percentile)."""
    return HIST_BASE * HIST_GROWTH**b if b > 0 else 0.0


def day_of(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def summary(s: State) -> dict[str, Any]:
    """The fields a list row shows (one name per idea, the same as in the detail)."""
    return {
        k: s[k]
        for k in (
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
    } | {"active": is_active_state(s)}


def is_active_state(s: State) -> bool:
    return s["ended_at"] is None and not s["deleted"]


class Projection(Protocol):
    name: str

    def apply(self, conn: Connection, t: ViewTables, changes: Sequence[Change]) -> None: ...


class DetailView:
    """Everything known about one session: the folded state, as a document."""

    name = "detail"

    def apply(self, conn: Connection, t: ViewTables, changes: Sequence[Change]) -> None:
        rows = [{"session_id": sid, "doc": orjson.dumps(after)} for sid, _, after in changes]
        upsert(conn, t.detail, rows, ["session_id"])


class ListView:
    """One row per visible session with every filterable and sortable column, plus tags."""

    name = "list"

    def apply(self, conn: Connection, t: ViewTables, changes: Sequence[Change]) -> None:
        gone = [sid for sid, _, after in changes if after["deleted"]]
        live = [(sid, b, a) for sid, b, a in changes if not a["deleted"]]
        if gone:
            conn.execute(delete(t.list).where(t.list.c.session_id.in_(gone)))
            conn.execute(delete(t.tags).where(t.tags.c.session_id.in_(gone)))
        rows = [
            {
                "session_id": sid,
                "number": a["number"],
                "name": a["name"],
                "source": a["source"],
                "project": a["project"],
                "build": a["build"],
                "user": a["user"],
                "type": a["type"],
                "status": a["status"],
                "browser": a["attributes"].get("browser"),
                "os": a["attributes"].get("os"),
                "active": int(is_active_state(a)),
                "started_at": a["started_at"],
                "ended_at": a["ended_at"],
                "last_seen_at": a["last_seen_at"],
                "updated_at": a["updated_at"],
                "duration": a["duration"],
                "day": day_of(a["started_at"]),
                "summary": orjson.dumps(summary(a)),
            }
            for sid, _, a in live
        ]
        upsert(conn, t.list, rows, ["session_id"])
        retag = [sid for sid, b, a in live if b is None or b["tags"] != a["tags"]]
        if retag:
            conn.execute(delete(t.tags).where(t.tags.c.session_id.in_(retag)))
            tag_rows = [
                {"session_id": sid, "key": k, "value": str(v)}
                for sid, b, a in live
                if b is None or b["tags"] != a["tags"]
                for k, v in a["tags"].items()
            ]
            if tag_rows:
                conn.execute(t.tags.insert(), tag_rows)


class CountView:
    """Number of visible sessions per status."""

    name = "count"

    def apply(self, conn: Connection, t: ViewTables, changes: Sequence[Change]) -> None:
        delta: dict[str, int] = defaultdict(int)
        for _, b, a in changes:
            if b is not None and not b["deleted"]:
                delta[b["status"]] -= 1
            if not a["deleted"]:
                delta[a["status"]] += 1
        delta = {k: v for k, v in delta.items() if v}
        if not delta:
            return
        have = dict(
            conn.execute(
                select(t.counts.c.status, t.counts.c.n).where(t.counts.c.status.in_(delta))
            ).all()
        )
        upsert(
            conn,
            t.counts,
            [{"status": k, "n": have.get(k, 0) + v} for k, v in delta.items()],
            ["status"],
        )


CELL_DIMS = ("day", "status", "project", "build", "user", "type", "browser", "os")
CellKey = tuple[str, ...]


def cell_key(s: State) -> CellKey:
    attrs = s["attributes"]
    return (
        day_of(s["started_at"]),
        s["status"],
        s["project"] or "",
        s["build"] or "",
        s["user"] or "",
        s["type"] or "",
        attrs.get("browser") or "",
        attrs.get("os") or "",
    )


class _CellDelta:
    __slots__ = ("durations_in", "durations_out", "ended", "hist", "n", "paths", "results", "sum")

    def __init__(self) -> None:
        self.n = 0
        self.ended = 0
        self.sum = 0.0
        self.hist: dict[int, int] = defaultdict(int)
        self.paths: dict[str, float] = defaultdict(float)
        self.results: dict[str, int] = defaultdict(int)
        self.durations_in: list[float] = []
        self.durations_out: list[float] = []

    def add(self, s: State, sign: int) -> None:
        self.n += sign
        d = s["duration"]
        if d is not None:
            self.ended += sign
            self.sum += sign * d
            self.hist[bucket_of(d)] += sign
            (self.durations_in if sign > 0 else self.durations_out).append(d)
        for path, secs in s["visible_time"].items():
            self.paths[path] += sign * secs
        for st, n in s["result_counts"].items():
            self.results[st] += sign * n


def _contributes(s: State | None) -> bool:
    return s is not None and not s["deleted"]


class StatsView:
    """Pre-aggregated cells over (day, status, project, build, user, type, browser, os):
    count, ended count, duration sum/max and histogram, visible time per path, results."""

    name = "stats"

    def apply(self, conn: Connection, t: ViewTables, changes: Sequence[Change]) -> None:
        deltas: dict[CellKey, _CellDelta] = defaultdict(_CellDelta)
        for _, b, a in changes:
            if _contributes(b) and _contributes(a) and _same_contribution(b, a):  # type: ignore[arg-type]
                continue
            if _contributes(b):
                deltas[cell_key(b)].add(b, -1)  # type: ignore[arg-type]
            if _contributes(a):
                deltas[cell_key(a)].add(a, +1)
        if deltas:
            self._write(conn, t, deltas)

    def _write(self, conn: Connection, t: ViewTables, deltas: dict[CellKey, _CellDelta]) -> None:
        c = t.cells
        ids: dict[CellKey, tuple[int, int, int, float, float | None]] = {}
        for key in deltas:
            row = conn.execute(
                select(c.c.cell_id, c.c.n, c.c.ended, c.c.duration_sum, c.c.duration_max).where(
                    and_(*(c.c[d] == v for d, v in zip(CELL_DIMS, key, strict=True)))
                )
            ).first()
            if row is None:
                res = conn.execute(
                    c.insert().values(
                        **dict(zip(CELL_DIMS, key, strict=True)),
                        n=0,
                        ended=0,
                        duration_sum=0.0,
                        duration_max=None,
                    )
                )
                pk = res.inserted_primary_key
                assert pk is not None
                ids[key] = (int(pk[0]), 0, 0, 0.0, None)
            else:
                ids[key] = (int(row[0]), int(row[1]), int(row[2]), float(row[3]), row[4])
        for key, dl in deltas.items():
            cid, n, ended, total, dmax = ids[key]
            new_max = dmax
            if dl.durations_out and dmax is not None and max(dl.durations_out) >= dmax:
                new_max = None  # the max may have left: recompute below from the histogram rows
            if dl.durations_in:
                top = max(dl.durations_in)
                new_max = top if new_max is None or top > new_max else new_max
            conn.execute(
                c.update()
                .where(c.c.cell_id == cid)
                .values(
                    n=n + dl.n,
                    ended=ended + dl.ended,
                    duration_sum=round(total + dl.sum, 6),
                    duration_max=new_max,
                )
            )
            self._bump(conn, t.histogram, cid, "bucket", dl.hist, int)
            self._bump(conn, t.paths, cid, "path", dl.paths, float)
            self._bump(conn, t.results, cid, "status", dl.results, int)
            if new_max is None and ended + dl.ended > 0:
                self._recompute_max(conn, t, cid, key)

    @staticmethod
    def _bump(
        conn: Connection, table: Table, cid: int, keycol: str, delta: dict[Any, Any], kind: type
    ) -> None:
        delta = {k: v for k, v in delta.items() if v}
        if not delta:
            return
        valcol = "seconds" if keycol == "path" else "n"
        have = dict(
            conn.execute(
                select(table.c[keycol], table.c[valcol]).where(
                    table.c.cell_id == cid, table.c[keycol].in_(delta)
                )
            ).all()
        )
        rows = []
        for k, v in delta.items():
            new = have.get(k, 0) + v
            rows.append(
                {"cell_id": cid, keycol: k, valcol: round(new, 6) if kind is float else new}
            )
        upsert(conn, table, rows, ["cell_id", keycol])

    @staticmethod
    def _recompute_max(conn: Connection, t: ViewTables, cid: int, key: CellKey) -> None:
        """Exact max after the cell's max left it: read it back from the list view's rows."""
        lst = t.list
        conds = [lst.c.day == key[0], lst.c.status == key[1]]
        for dim, val in zip(CELL_DIMS[2:], key[2:], strict=True):
            col = lst.c[dim]
            conds.append((col.is_(None) | (col == "")) if val == "" else (col == val))
        top = conn.execute(
            select(lst.c.duration)
            .where(and_(*conds), lst.c.duration.is_not(None))
            .order_by(lst.c.duration.desc())
            .limit(1)
        ).scalar()
        conn.execute(t.cells.update().where(t.cells.c.cell_id == cid).values(duration_max=top))


def _same_contribution(b: State, a: State) -> bool:
    return (
        cell_key(b) == cell_key(a)
        and b["duration"] == a["duration"]
        and b["visible_time"] == a["visible_time"]
        and b["result_counts"] == a["result_counts"]
    )


def all_views() -> list[Projection]:
    """In dependency order: stats reads list rows back when a cell's max leaves it."""
    return [DetailView(), ListView(), CountView(), StatsView()]


__all__ = ["ACTIVE_STATUSES", "Change", "Projection", "all_views"]
