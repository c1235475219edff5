"""The analysts' Python API: `open_ledger()` gives a read-only handle on a ledger, whose
events, sessions and stats as of any point come from the same code as `ledger replay`
(`resolve_point`, `asof.stats_as_of`, the export's session rows): no second model.

    from replay import open_ledger
    with open_ledger("var/ledger.db") as ledger:       # or a URL; default LEDGER_DATABASE_URL
        for e in ledger.events(types=["Stopped"]): ...
        ledger.stats(as_of="2026-11-20", by=["day", "status"]).to_pandas()

Every `as_of`/`until` is what the CLI's `--as-of` takes: a log position (int), a time
(datetime, date, epoch seconds as a float, or an ISO-8601 string). One that lies before the
first event warns (`AsOfWarning`) and gives an empty answer. Every such argument is resolved
in `Ledger.point` alone, so a later way of reading times (event time beside recorded time)
is one keyword passed through there and to the stats query.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any

from domain.session import upcast
from persistence.settings import Settings
from replay import asof, export
from replay.frames import Table
from replay.source import LogHead, Point, live_views, log_head, open_store, resolve_point

AsOf = int | float | str | datetime | date | None


class AsOfWarning(UserWarning):
    """An `as_of` or `until` that lies before the first event: the answer is empty."""


def _utc(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


@dataclass(frozen=True)
class Event:
    """One event of the log, as read (never a copy that could be written back)."""

    position: int  # its place in the global log, from 1
    leaf_index: int  # its leaf in the log's Merkle tree: position - 1
    stream_id: str  # the session's id (an execution context's: "context:<hash>")
    version: int  # its place in its stream, from 1
    type: str  # the event class: Started, KeptAlive, Stopped, ...
    schema_version: int  # as stored; `payload` is upcast to the current version
    recorded_at: datetime  # when the ledger recorded it (UTC)
    payload: dict[str, Any]  # its fields; personal values as the store's reads give them
    hash: str  # the chain hash, hex

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Events(Table):
    """The events after a position up to a point, in log order; iterating reads them in
    chunks (flat memory), and each iteration reads the log again."""

    columns = tuple(f.name for f in dataclasses.fields(Event))

    def __init__(self, ledger: Ledger, after: int, until: Point, types: Sequence[str] | None):
        self._ledger, self.after, self.until = ledger, after, until
        self.types = frozenset(types) if types else None

    def __iter__(self) -> Iterator[Event]:
        for e in self._ledger.store.iter_all(after=self.after, until=self.until.position):
            if self.types is not None and e.type not in self.types:
                continue
            yield Event(
                e.position,
                e.position - 1,
                e.stream_id,
                e.version,
                e.type,
                e.schema_version,
                datetime.fromtimestamp(e.recorded_at, UTC),
                upcast(e.type, e.schema_version, e.data()),
                e.hash.hex(),
            )

    def records(self) -> Iterator[dict[str, Any]]:
        return (e.as_dict() for e in self)


class Sessions(Table):
    """The session list as it stood at a point, as `ledger replay export --what sessions`
    writes it (deleted sessions left out), in session number order."""

    columns = export.SESSION_COLUMNS

    def __init__(self, point: Point, rows: list[dict[str, Any]]) -> None:
        self.point, self.rows = point, rows

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def records(self) -> list[dict[str, Any]]:
        return self.rows


DURATION = ("count", "sum", "mean", "p50", "p95", "max")


class Stats(Table):
    """The stats view as it stood at a point, as `ledger replay stats --format json` prints
    it: `groups` (each with its `key`), `active_now`, `group_by`. A DataFrame has a row per
    group: the grouped dimensions, count, ended, duration_* and the visible time and result
    counts as JSON objects."""

    def __init__(self, point: Point, doc: dict[str, Any]) -> None:
        self.point = point
        self.group_by: list[str] = doc["group_by"]
        self.groups: list[dict[str, Any]] = doc["groups"]
        self.active_now: int = doc["active_now"]
        self.columns = (
            *self.group_by,
            "count",
            "ended",
            *(f"duration_{k}" for k in DURATION),
            "visible_time",
            "results",
        )

    def records(self) -> list[dict[str, Any]]:
        return [
            {
                **g["key"],
                "count": g["count"],
                "ended": g["ended"],
                **{f"duration_{k}": g["duration"].get(k) for k in DURATION},
                "visible_time": g["visible_time"],
                "results": g["results"],
            }
            for g in self.groups
        ]


def _as_text(value: AsOf) -> str | None:
    """An `as_of` in the CLI's words (so both read it with one function)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError("as_of is a position, a time or a date, not a bool")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # epoch seconds: always with a decimal point
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"as_of is a position, a time or a date, not {type(value).__name__}")


class Ledger:
    """A read-only handle on one ledger (open it with `open_ledger`). Nothing it does can
    write: SQLite files are opened with `mode=ro` and `query_only`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = open_store(settings)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.store.dispose()

    def head(self) -> LogHead:
        """The log's head: tree size (the number of events) and root hash."""
        return log_head(self.store)

    def point(self, as_of: AsOf = None) -> Point:
        """A point of the log (the head when None); warns when it lies before the first
        event. Every other method resolves its `as_of`/`until` here."""
        text = _as_text(as_of)
        point = resolve_point(self.store, text)
        if point.warning is not None:
            warnings.warn(AsOfWarning(f"as_of {point.warning}"), stacklevel=3)
        return point

    def events(
        self,
        *,
        after: int = 0,
        until: AsOf = None,
        as_of: AsOf = None,
        types: Iterable[str] | None = None,
    ) -> Events:
        """The events after position `after` up to `until` (or `as_of`, the same thing;
        default the head), only of `types` when given."""
        if until is not None and as_of is not None:
            raise TypeError("give until or as_of, not both")
        point = self.point(until if until is not None else as_of)
        return Events(self, after, point, list(types) if types is not None else None)

    def sessions(self, *, as_of: AsOf = None) -> Sessions:
        """The session list as it stood at `as_of` (from the live views when they stand
        exactly there, else replayed; the same rows `ledger replay export` writes)."""
        point = self.point(as_of)
        views = live_views(self.settings)
        try:
            with ExitStack() as stack:
                rows = list(export.session_rows(self.store, views, point, stack))
        finally:
            if views is not None:
                views[0].dispose()
        for r in rows:
            for c in export.TIME_COLUMNS & r.keys():
                r[c] = _utc(r[c])
        return Sessions(point, rows)

    def session(
        self, session_id: str, *, as_of: AsOf = None, version: int | None = None
    ) -> dict[str, Any] | None:
        """One session's document at `as_of` or after `version` events of its stream (as
        `ledger replay session`), or None when it did not exist then."""
        point = None if version is not None else self.point(as_of)
        state = asof.session_state(self.store, session_id, point, version)
        return None if state is None else asof.session_document(state)

    def stats(
        self,
        *,
        as_of: AsOf = None,
        by: Iterable[str] = (),
        from_day: str | None = None,
        to_day: str | None = None,
        where: dict[str, str | Sequence[str]] | None = None,
    ) -> Stats:
        """The stats as they stood at `as_of`, grouped `by` dimensions (day, status, project,
        build, user, type, browser, os), over start days `from_day`..`to_day`, filtered by
        `where` ({dimension: value or values}): `ledger replay stats` in Python."""
        conditions = [
            f"{dim}={v}"
            for dim, values in (where or {}).items()
            for v in ([values] if isinstance(values, str) else values)
        ]
        query = asof.stats_query(list(by), from_day, to_day, conditions)
        point = self.point(as_of)
        return Stats(point, asof.stats_as_of(self.store, point, query))


def open_ledger(
    database: str | os.PathLike[str] | None = None, *, views: str | None = None
) -> Ledger:
    """A read-only `Ledger` on `database`: a SQLAlchemy URL (`sqlite:///…`,
    `postgresql+psycopg://…`) or the path of a SQLite file; default LEDGER_DATABASE_URL, as
    the CLI. `views` is the views database's URL (default: as the CLI finds it); the other
    LEDGER_* settings are read from the environment too. Use it in a `with` block, or
    `close()` it."""
    settings = Settings.from_env()
    if database is not None:
        url = os.fspath(database)
        if "://" not in url:
            url = f"sqlite:///{os.path.abspath(url)}"
        settings = dataclasses.replace(settings, database_url=url, views_url=views or "")
    elif views is not None:
        settings = dataclasses.replace(settings, views_url=views)
    return Ledger(settings)
