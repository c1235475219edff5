"""The count view: visible sessions per (dimension, value, status), where the dimension is
nothing (all sessions), project, build, user, type, source, active or one tag. It answers
counts, the list's totals and the list planner's selectivities."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, bindparam

from domain.state import State, is_active
from projections.projection import BulkShare, Change, Summed
from projections.sql import upsert
from projections.tables import ViewTables

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
_count_fields: Callable[[State], tuple[Any, ...]] = itemgetter(
    "deleted", "status", "ended_at", *COUNT_DIMS
)


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

    def bulk(self, t: ViewTables) -> BulkShare:
        return Summed(self, t, defaultdict(int))

    @staticmethod
    def merge(into: dict[CountKey, int], part: dict[CountKey, int]) -> None:
        """Add another loader's sums (`bulk`) to `into`."""
        for key, n in part.items():
            into[key] += n

    @staticmethod
    def write(conn: Connection, t: ViewTables, delta: dict[CountKey, int]) -> None:
        rows = [
            {"dim": d, "value": v, "status": st, "n": n} for (d, v, st), n in delta.items() if n
        ]
        upsert(conn, t.counts, rows, ["dim", "value", "status"], add=frozenset({"n"}))
        # A count back at zero goes: a rebuild has no such row, and its value may be one
        # erasure removed from every session (persistence/erasure.py).
        gone = [{"d": d, "v": v, "s": st} for (d, v, st), n in delta.items() if n < 0]
        if gone:
            c = t.counts.c
            conn.execute(
                t.counts.delete().where(
                    c.dim == bindparam("d"), c.value == bindparam("v"),
                    c.status == bindparam("s"), c.n <= 0,
                ),
                gone,
            )  # fmt: skip
