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
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, and_, delete, select

from domain.state import State, is_active
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
    return "" if ts is None else _day(int(ts // 86400))


@lru_cache(maxsize=4096)
def _day(n: int) -> str:
    return datetime.fromtimestamp(n * 86400, UTC).strftime("%Y-%m-%d")


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
    } | {"active": is_active(s)}


def snapshot(s: State) -> State:
    """What the views need of a state before a batch changes it (copied, since the fold
    mutates in place): cheaper than a second full copy of the document."""
    return {
        "deleted": s["deleted"],
        "status": s["status"],
        "tags": dict(s["tags"]),
        "attributes": dict(s["attributes"]),
        "started_at": s["started_at"],
        "project": s["project"],
        "build": s["build"],
        "user": s["user"],
        "type": s["type"],
        "duration": s["duration"],
        "visible_time": dict(s["visible_time"]),
        "result_counts": dict(s["result_counts"]),
        **{k: list(s[k]) for k in MEMBER_KINDS},
    }


MEMBER_KINDS = ("participants", "users", "devices")


def _members(s: State) -> dict[str, list[str]]:
    return {k: s[k] for k in MEMBER_KINDS}


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
            for table in (t.list, t.tags, t.members):
                conn.execute(delete(table).where(table.c.session_id.in_(gone)))
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
                "active": int(is_active(a)),
                "started_at": a["started_at"],
                "ended_at": a["ended_at"],
                "last_seen_at": a["last_seen_at"],
                "updated_at": a["updated_at"],
                "duration": a["duration"],
                "day": day_of(a["started_at"]),
                "created_by": a["created_by"],
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
        moved = [sid for sid, b, a in live if b is None or _members(b) != _members(a)]
        if moved:
            conn.execute(delete(t.members).where(t.members.c.session_id.in_(moved)))
            member_rows = [
                {"session_id": sid, "kind": kind, "member": m}
                for sid, b, a in live
                if b is None or _members(b) != _members(a)
                for kind, ms in _members(a).items()
                for m in dict.fromkeys(ms)
            ]
            if member_rows:
                conn.execute(t.members.insert(), member_rows)


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
        self.add_extras(s, sign)

    def add_extras(self, s: State, sign: int) -> None:
        """Visible time and results only: a session that stays in its cell with the same
        duration moves nothing else (and cannot take the cell's max away)."""
        for path, secs in s["visible_time"].items():
            self.paths[path] += sign * secs
        for st, n in s["result_counts"].items():
            self.results[st] += sign * n


class StatsView:
    """Pre-aggregated cells over (day, status, project, build, user, type, browser, os):
    count, ended count, duration sum/max and histogram, visible time per path, results.
    A cell's id is a hash of its key, so a batch is a handful of incrementing upserts."""

    name = "stats"

    def apply(self, conn: Connection, t: ViewTables, changes: Sequence[Change]) -> None:
        deltas: dict[CellKey, _CellDelta] = defaultdict(_CellDelta)
        for _, b, a in changes:
            live_before = b if b is not None and not b["deleted"] else None
            if live_before is not None and not a["deleted"]:
                if _same_contribution(live_before, a):
                    continue
                key = cell_key(a)
                if key == cell_key(live_before) and live_before["duration"] == a["duration"]:
                    deltas[key].add_extras(live_before, -1)
                    deltas[key].add_extras(a, +1)
                    continue
            if live_before is not None:
                deltas[cell_key(live_before)].add(live_before, -1)
            if not a["deleted"]:
                deltas[cell_key(a)].add(a, +1)
        if deltas:
            self._write(conn, t, deltas)

    def _write(self, conn: Connection, t: ViewTables, deltas: dict[CellKey, _CellDelta]) -> None:
        cells, hist, paths, results = [], [], [], []
        maybe_lost_max: dict[int, CellKey] = {}
        for key, dl in deltas.items():
            cid = cell_id(key)
            top = max(dl.durations_in) if dl.durations_in else None
            cells.append(
                {
                    "cell_id": cid,
                    **dict(zip(CELL_DIMS, key, strict=True)),
                    "n": dl.n,
                    "ended": dl.ended,
                    "duration_sum": dl.sum,
                    "duration_max": top,
                }
            )
            if dl.durations_out:
                maybe_lost_max[cid] = key
            hist += [{"cell_id": cid, "bucket": b, "n": n} for b, n in dl.hist.items() if n]
            paths += [{"cell_id": cid, "path": p, "seconds": v} for p, v in dl.paths.items() if v]
            results += [{"cell_id": cid, "status": k, "n": n} for k, n in dl.results.items() if n]
        # The max only grows by upsert; where a duration left a cell, it is recomputed below.
        upsert(conn, t.cells, cells, ["cell_id"], add=_CELL_SUMS, keep=_CELL_KEEP)
        _raise_max(conn, t, cells)
        upsert(conn, t.histogram, hist, ["cell_id", "bucket"], add=frozenset({"n"}))
        upsert(conn, t.paths, paths, ["cell_id", "path"], add=frozenset({"seconds"}))
        upsert(conn, t.results, results, ["cell_id", "status"], add=frozenset({"n"}))
        for cid, key in maybe_lost_max.items():
            self._recompute_max(conn, t, cid, key)

    @staticmethod
    def _recompute_max(conn: Connection, t: ViewTables, cid: int, key: CellKey) -> None:
        """Exact max after a duration left the cell: read it back from the list view's rows."""
        lst = t.list
        day0 = datetime.strptime(key[0], "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        conds = [  # the day as a started_at range, so the index on started_at serves it
            lst.c.started_at >= day0,
            lst.c.started_at < day0 + 86400,
            lst.c.status == key[1],
        ]
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


_CELL_SUMS = frozenset({"n", "ended", "duration_sum"})
_CELL_KEEP = frozenset({"duration_max", *CELL_DIMS})


def _raise_max(conn: Connection, t: ViewTables, cells: list[dict[str, Any]]) -> None:
    """duration_max = max(duration_max, this batch's longest) for cells that gained one."""
    rows = [(c["duration_max"],) * 2 + (c["cell_id"],) for c in cells if c["duration_max"]]
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
