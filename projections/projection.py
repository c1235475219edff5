"""The one projection protocol every view implements, and what the views share.

A view turns a batch of session changes (the state before the batch, the state after it)
into writes on its own tables (`Projection.apply`); the live worker and the rebuild run the
same classes. A view may also say how it takes part in a bulk load into empty tables
(`bulk`, giving a `BulkShare`): its rows built per batch before the write lock is taken
(`Staged`), or summed in memory and written once at the end (`Summed`); one that does not
applies each batch as it comes (`Applied`). The runner knows the views only through this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection

from domain.state import State
from projections.tables import ViewTables

Change = tuple[str, State | None, State]
# A write a bulk share built before the write lock, made once the lock is held.
Write = Callable[[Connection], None]
Rows = TypeVar("Rows")
Sums = TypeVar("Sums")


class Projection(Protocol):
    """A view: its name (the key of its tracking position and of its skipped events) and
    `apply`, one batch's writes inside the batch's transaction."""

    name: str

    def apply(self, conn: Connection, t: ViewTables, changes: Sequence[Change]) -> None: ...


class BulkShare(Protocol):
    """One view's part of a bulk load (`projections/bulk.py`)."""

    def add(self, changes: list[Change]) -> Write | None:
        """Take a batch of complete sessions: the write to make under the lock, or None
        when the view adds them up in memory instead."""
        ...

    def result(self) -> Any:
        """What the view holds in memory for the end (picklable), or None."""
        ...

    def merge(self, other: Any) -> None:
        """Add another loader's `result` to this one's."""
        ...

    def finish(self, conn: Connection) -> None:
        """Write what the view held in memory (with the tracking positions)."""
        ...


def bulk_share(view: Projection, t: ViewTables) -> BulkShare:
    """The view's own share of a bulk load into `t`, else applying each batch."""
    make: Callable[[ViewTables], BulkShare] | None = getattr(view, "bulk", None)
    return make(t) if make is not None else Applied(view, t)


class _WritesAsItGoes:
    """A bulk share that holds nothing for the end."""

    def result(self) -> Any:
        return None

    def merge(self, other: Any) -> None:
        pass

    def finish(self, conn: Connection) -> None:
        pass


class Applied(_WritesAsItGoes):
    """A bulk share that applies each batch as it comes, as the live worker does."""

    def __init__(self, view: Projection, t: ViewTables) -> None:
        self.view, self.t = view, t

    def add(self, changes: list[Change]) -> Write | None:
        view, t = self.view, self.t
        return lambda conn: view.apply(conn, t, changes)


class Prepares(Protocol[Rows]):
    """A view whose rows can be built (documents serialised) apart from their writing."""

    def prepare(self, changes: Sequence[Change]) -> Rows: ...

    def write(self, conn: Connection, t: ViewTables, rows: Rows) -> None: ...


class Staged(_WritesAsItGoes):
    """A bulk share whose rows are built now, before the write lock is taken: two loaders
    share that lock, and the building was over half of the time a batch held it."""

    def __init__(self, view: Prepares[Any], t: ViewTables) -> None:
        self.view, self.t = view, t

    def add(self, changes: list[Change]) -> Write | None:
        view, t = self.view, self.t
        rows = view.prepare(changes)
        return lambda conn: view.write(conn, t, rows)


class Adds(Protocol[Sums]):
    """A view whose rows are sums over sessions (count, stats)."""

    def deltas(self, changes: Sequence[Change], into: Sums | None = None) -> Sums: ...

    def merge(self, into: Sums, part: Sums) -> None: ...

    def write(self, conn: Connection, t: ViewTables, sums: Sums) -> None: ...


class Summed:
    """A bulk share that adds every batch up in memory (the cells are few) and writes the
    sums once, at the end, with the tracking positions."""

    def __init__(self, view: Adds[Any], t: ViewTables, sums: Any) -> None:
        self.view, self.t, self.sums = view, t, sums

    def add(self, changes: list[Change]) -> Write | None:
        self.view.deltas(changes, self.sums)
        return None

    def result(self) -> Any:
        return self.sums

    def merge(self, other: Any) -> None:
        self.view.merge(self.sums, other)

    def finish(self, conn: Connection) -> None:
        self.view.write(conn, self.t, self.sums)


MEMBER_KINDS = ("participants", "users", "devices")


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


def day_of(ts: float | None) -> str:
    return "" if ts is None else _day(int(ts // 86400))


@lru_cache(maxsize=4096)
def _day(n: int) -> str:
    return datetime.fromtimestamp(n * 86400, UTC).strftime("%Y-%m-%d")
