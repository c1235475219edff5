"""Where replay reads from: read-only connections to the event log and the live views, and
turning `--as-of` / `--until` arguments into log positions."""

from __future__ import annotations

import base64
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.engine import make_url

from persistence.blobs import BlobStore
from persistence.migrations import pending
from persistence.schema import make_engine, sqlite_path, tree_path
from persistence.settings import Settings
from persistence.store import EventStore
from persistence.tree import LogTree
from projections.present import iso, parse_time
from projections.tables import ViewTables
from projections.views import all_views


class ReplayError(Exception):
    """A user-facing problem (bad argument, missing database): printed, exit code 2."""


def readonly_engine(url: str) -> Engine:
    """A reader that can never write: SQLite `mode=ro` + `query_only`. In WAL mode it runs
    beside a live server's writer without blocking it (and without being blocked)."""
    path = sqlite_path(url)
    if path is None:
        return make_engine(url)
    if not path.exists():
        raise ReplayError(f"no database at {path} (set LEDGER_DATABASE_URL)")
    uri = f"file:{path.resolve()}?mode=ro"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
        conn.isolation_level = None
        conn.execute("PRAGMA query_only=1")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    engine = create_engine("sqlite://", creator=connect)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")  # one snapshot per transaction

    return engine


def open_store(settings: Settings) -> EventStore:
    """The event store with a read-only read engine; replay never appends."""
    path = sqlite_path(settings.database_url)
    if path is not None and not path.exists():
        raise ReplayError(f"no ledger database at {path} (set LEDGER_DATABASE_URL)")
    store = EventStore(settings.database_url, settings.personal_keys)
    if store.is_sqlite and path is not None:
        store.read_engine.dispose()
        store.tree.nodes.dispose()
        store.read_engine = readonly_engine(settings.database_url)
        # The tree's reads too (qmark: SQLite), from its own file when there is one (a log no
        # server of this version has opened has none: verify says so).
        nodes = tree_path(path)
        tree = readonly_engine(f"sqlite:///{nodes}") if nodes.exists() else None
        store.tree = LogTree(store.read_engine, "?", tree)
    try:
        pending(store.read_engine)  # a schema newer than this code's is not read (SettingsError)
    except BaseException:
        store.dispose()
        raise
    return store


@contextmanager
def store_open(settings: Settings) -> Iterator[EventStore]:
    """`open_store` for the length of a `with` block, disposed of at its end."""
    store = open_store(settings)
    try:
        yield store
    finally:
        store.dispose()


def open_blobs(settings: Settings) -> BlobStore:
    return BlobStore(settings.blob_dir)


@dataclass(frozen=True)
class Point:
    """A point in the log: everything up to and including `position`."""

    position: int
    time: float | None  # the time asked for, when it was a time
    # Why the point holds nothing of a log that is not empty (it lies before the first
    # event), for the caller to warn with; None otherwise.
    warning: str | None = None

    def describe(self) -> str:
        when = f" (time {iso(self.time)})" if self.time is not None else ""
        return f"position {self.position}{when}"


_POSITION = re.compile(r"^\d+$")


def resolve_point(store: EventStore, value: str | None) -> Point:
    """`None` is the head; digits are a log position; anything else is a time (ISO-8601, a
    date, or epoch seconds with a decimal point such as 1700000000.0)."""
    head = store.head_digest()[0]
    if value is None or value == "" or value == "now":
        return Point(head, None)
    if _POSITION.match(value.strip()):
        pos = int(value)
        if pos > head:
            raise ReplayError(f"position {pos} is past the log head ({head})")
        return Point(pos, None, _before_first(store, value) if pos == 0 < head else None)
    try:
        t = parse_time(value)
    except ValueError:
        t = None
    if t is None:
        raise ReplayError(f"not a position or time: {value!r}")
    pos = store.position_at(t)
    return Point(pos, t, _before_first(store, value) if pos == 0 < head else None)


def _before_first(store: EventStore, value: str) -> str:
    first = store.read(0, 1)
    when = f", recorded {iso(first[0].recorded_at)}" if first else ""
    return f"{value} lies before the first event (position 1{when}): nothing had happened yet"


@dataclass(frozen=True)
class LogHead:
    """The head of the log's Merkle tree, as `ledger replay checkpoint` signs it: the tree
    size (the number of events, the last one at position `size`) and the root hash."""

    size: int
    root: bytes

    @property
    def root_hex(self) -> str:
        return self.root.hex()

    @property
    def root_base64(self) -> str:
        """As a checkpoint's third line writes it."""
        return base64.b64encode(self.root).decode()


def log_head(store: EventStore) -> LogHead:
    size, root = store.tree.latest()
    return LogHead(size, root)


def live_views(settings: Settings) -> tuple[Engine, ViewTables] | None:
    """The live views, read-only, or None when that database does not exist yet."""
    path = sqlite_path(settings.views_url)
    if path is not None and not path.exists():
        return None
    return readonly_engine(settings.views_url), ViewTables()


def tracked_position(conn: Connection, tables: ViewTables) -> int | None:
    """The views' position (min over views) seen by `conn`, or None when they have no tables."""
    if not conn.dialect.has_table(conn, tables.tracking.name):
        return None
    have = dict(conn.execute(select(tables.tracking.c.view, tables.tracking.c.position)).all())
    return min(int(have.get(v.name, 0)) for v in all_views())


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"
