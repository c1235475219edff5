"""The list view: one row per visible session with every filterable and sortable column, its
tag and member rows, and the fields a list page shows of a session (`summary`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import Connection, delete

from domain.state import State, is_active
from projections.projection import MEMBER_KINDS, BulkShare, Change, Staged, day_of
from projections.sql import update_rows, upsert_rows
from projections.tables import ViewTables

# What a session is and how it stands: the first fields of a list row and of its summary.
_DESCRIBED = ("number", "name", "source", "project", "build", "user", "type", "status")
# Its times, and how long it ran.
_TIMES = ("started_at", "ended_at", "last_seen_at", "updated_at", "duration")
# The fields a list row shows (one name per idea, the same as in the detail), then "active".
SUMMARY_FIELDS = (
    "id",
    *_DESCRIBED,
    "tags",
    "attributes",
    *_TIMES,
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


def _members(s: State) -> dict[str, list[str]]:
    return {k: s[k] for k in MEMBER_KINDS}


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

    def bulk(self, t: ViewTables) -> BulkShare:
        return Staged(self, t)


# The list row's columns taken from the state as they are, then the derived ones.
_LIST_FIELDS = (*_DESCRIBED, *_TIMES, "created_by")
_list_values = itemgetter(*_LIST_FIELDS)
# What a keepalive or hide leaves as it was of a list row (all but the last-seen time);
# `snapshot` keeps each of these fields of the state before a batch.
_unseen_values: Callable[[State], tuple[Any, ...]] = itemgetter(
    *(f for f in _LIST_FIELDS if f != "last_seen_at")
)


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
