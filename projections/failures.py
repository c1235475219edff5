"""What went wrong applying the log to the views: the record of skipped events and the
per-view health report.

Owns the `view_failures` table (one row per view and skipped event: the view's name, the
event's position, the error text naming the part that raised), how an exception is told
apart as the event's fault or the database's (`is_infrastructure`), how it is described
without leaking a connection string or bound parameters (`describe`), and `ViewHealth`.

The table lives beside the views but outside `ViewTables`: a rebuild swaps the views'
tables, not this record, and adding it did not make older views databases look like an
older schema (which would refill them from the log).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import TypedDict

from sqlalchemy import Column, Connection, Float, MetaData, String, Table, func, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError

from persistence.schema import Position

metadata = MetaData()
failures = Table(
    "view_failures",
    metadata,
    Column("view", String, primary_key=True),
    Column("position", Position, primary_key=True, autoincrement=False),
    Column("error", String, nullable=False),
    Column("recorded_at", Float, nullable=False),
)

# An error text is kept to this many characters (one line).
MAX_ERROR = 400
# PostgreSQL error classes that are the data's fault: data exception, integrity violation.
_DATA_SQLSTATES = ("22", "23")
_CREDENTIALS = re.compile(r"(\w+://)[^\s/@]*@|(password\s*=\s*)\S+", re.IGNORECASE)


class ViewHealth(TypedDict):
    position: int  # the last event the view includes
    lag: int  # events in the log after it
    state: str  # "ok", or "stopped" while the worker cannot apply batches at all
    last_error: str | None  # the current stop's cause, else the last skipped event's
    last_error_position: int | None  # that skipped event's position
    skipped: int  # events this view skipped (see the runner's docstring)


class ApplyFailed(Exception):
    """A batch raised while folding its events or writing one view (`part`)."""

    def __init__(self, part: str, cause: BaseException) -> None:
        super().__init__(f"{part}: {describe(cause)}")
        self.part = part
        self.cause = cause

    @property
    def infrastructure(self) -> bool:
        return is_infrastructure(self.cause)


class Overtaken(Exception):
    """A batch's claim found the views already moved on (another worker applied its events,
    or a rebuild was swapped in): its transaction rolls back."""


def is_infrastructure(exc: BaseException) -> bool:
    """Whether `exc` is the database's fault (locked, gone, read-only, a table missing), not
    the event's: such a batch is retried, never skipped. Errors raised by the fold or a
    view's own code, and the database refusing a value (a data or integrity error, or a
    value the driver cannot bind), are the event's."""
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:
        return str(sqlstate)[:2] not in _DATA_SQLSTATES
    # sqlite3 raises ProgrammingError for a value it cannot bind (a dict, say).
    return not isinstance(exc, DataError | IntegrityError | ProgrammingError)


def describe(exc: BaseException) -> str:
    """One line naming the error: for a database error its driver's first line only
    (SQLAlchemy's text adds the statement and its parameters), credentials blanked."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines() or [""]
    first = _CREDENTIALS.sub(lambda m: (m.group(1) or m.group(2)) + "***", lines[0])
    return f"{type(cause).__name__}: {first}"[:MAX_ERROR]


def record(conn: Connection, views: Sequence[str], position: int, error: str) -> None:
    """Note that every view in `views` skipped the event at `position` (idempotent: a
    rebuild's catch-up that skips it again leaves one row)."""
    have = set(
        conn.execute(
            select(failures.c.view).where(
                failures.c.position == position, failures.c.view.in_(views)
            )
        ).scalars()
    )
    now = time.time()
    rows = [
        {"view": v, "position": position, "error": error[:MAX_ERROR], "recorded_at": now}
        for v in views
        if v not in have
    ]
    if rows:
        conn.execute(failures.insert(), rows)


def latest(conn: Connection) -> dict[str, tuple[int, str, int]]:
    """Per view: (position, error) of its last skipped event, and how many it skipped."""
    counts = select(failures.c.view, func.max(failures.c.position), func.count()).group_by(
        failures.c.view
    )
    last = {str(v): (int(p), int(n)) for v, p, n in conn.execute(counts)}
    if not last:
        return {}
    out: dict[str, tuple[int, str, int]] = {}
    for view, (position, n) in last.items():
        error = conn.execute(
            select(failures.c.error).where(failures.c.view == view, failures.c.position == position)
        ).scalar_one()
        out[view] = (position, str(error), n)
    return out


def report(
    conn: Connection, tracking: Table, views: Sequence[str], head: int, stop: str | None
) -> dict[str, ViewHealth]:
    """Each view's health (`ProjectionRunner.health`): its tracked position and lag behind
    `head`, stopped with `stop`'s error while the worker's batches fail on the database,
    else its last skipped event's error."""
    have = dict(conn.execute(select(tracking.c.view, tracking.c.position)).all())
    skipped = latest(conn)
    out: dict[str, ViewHealth] = {}
    for name in views:
        position = int(have.get(name, 0))
        last = skipped.get(name)
        out[name] = {
            "position": position,
            "lag": max(0, head - position),
            "state": "stopped" if stop else "ok",
            "last_error": stop or (last[1] if last else None),
            "last_error_position": None if stop or last is None else last[0],
            "skipped": last[2] if last else 0,
        }
    return out
