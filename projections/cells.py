"""The stats view's arithmetic: the cells a session adds to (keys of dimension, value, day and
status), what one batch adds to a cell (`CellDelta`: count, ended, duration sum and max, the
duration histogram, visible time per path, results), the cells summed from the day-level ones,
and the histogram's buckets. The stats view writes these; the stats query and the as-of
replays read and fold them with the same arithmetic."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict

from domain.state import State
from projections.projection import day_of

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


def cell_id(key: CellKey) -> int:
    """A stable 63-bit id for a cell key (the same live and after any rebuild)."""
    digest = hashlib.blake2b("\x1f".join(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1
