"""The SQL tables of the four views (list, detail, count, stats) and their tracking positions.

`ViewTables(suffix)` builds a full set of tables; the live set has no suffix and a rebuild
fills a fresh set (suffix `_next`) that is renamed into place in one transaction.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

VIEW_NAMES = ("detail", "list", "count", "stats")
SORTED_FILTERS = frozenset({"status", "project", "build", "user"})
# Log positions (and session numbers, which are positions): 64-bit on PostgreSQL too.
Position = BigInteger().with_variant(Integer(), "sqlite")


class ViewTables:
    """`bulk=True` leaves out the secondary indexes a bulk load does not need (a rebuild
    creates them once, at the swap); the list's started_at index stays, the stats view's
    max recomputation reads through it."""

    def __init__(self, suffix: str = "", bulk: bool = False) -> None:
        self.suffix = suffix
        self.metadata = MetaData()
        m, s = self.metadata, suffix
        self.tracking = Table(
            "view_tracking" + s,
            m,
            Column("view", String, primary_key=True),
            Column("position", Position, nullable=False),
        )
        self.detail = Table(
            "session_detail" + s,
            m,
            Column("session_id", String, primary_key=True),
            Column("doc", LargeBinary, nullable=False),
        )
        self.list = Table(
            "session_list" + s,
            m,
            Column("session_id", String, primary_key=True),
            Column("number", Position, nullable=False),
            Column("name", String),
            Column("source", String),
            Column("project", String),
            Column("build", String),
            Column("user", String),
            Column("type", String),
            Column("status", String, nullable=False),
            Column("browser", String),
            Column("os", String),
            Column("active", Integer, nullable=False),
            Column("started_at", Float),
            Column("ended_at", Float),
            Column("last_seen_at", Float),
            Column("updated_at", Float),
            Column("duration", Float),
            Column("day", String),
            Column("created_by", String),
            Column("summary", LargeBinary, nullable=False),
        )
        # Indexes for the selective filters and the sorts; each costs every write, so the
        # rarely-selective columns (source, type) and updated_at go without.
        for col in (
            "number",
            "status",
            "project",
            "build",
            "user",
            "started_at",
            "ended_at",
            "duration",
            "created_by",
        ):
            if bulk and col != "started_at":
                continue
            # A filter column carries the default sort (started_at, then number) so a filtered
            # page walks the index instead of sorting every match (1.6 s -> 34 ms at 1M rows).
            cols = [self.list.c[col]]
            if col in SORTED_FILTERS:
                cols += [self.list.c.started_at, self.list.c.number]
            Index(f"ix_session_list{s}_{col}", *cols, unique=(col == "number"))
        if not bulk:
            Index(f"ix_session_list{s}_active_seen", self.list.c.active, self.list.c.last_seen_at)
        self.tags = Table(
            "session_tags" + s,
            m,
            Column("session_id", String, primary_key=True),
            Column("key", String, primary_key=True),
            Column("value", String, nullable=False),
        )
        if not bulk:
            Index(f"ix_session_tags{s}_kv", self.tags.c.key, self.tags.c.value)
        # Who took part (OpenTera participants, users, devices), for member filters.
        self.members = Table(
            "session_members" + s,
            m,
            Column("session_id", String, primary_key=True),
            Column("kind", String, primary_key=True),
            Column("member", String, primary_key=True),
        )
        if not bulk:
            Index(f"ix_session_members{s}_km", self.members.c.kind, self.members.c.member)
        self.counts = Table(
            "session_counts" + s,
            m,
            Column("status", String, primary_key=True),
            Column("n", Integer, nullable=False),
        )
        self.cells = Table(
            "stats_cells" + s,
            m,
            Column("cell_id", BigInteger, primary_key=True, autoincrement=False),
            Column("day", String, nullable=False),
            Column("status", String, nullable=False),
            Column("project", String, nullable=False),
            Column("build", String, nullable=False),
            Column("user", String, nullable=False),
            Column("type", String, nullable=False),
            Column("browser", String, nullable=False),
            Column("os", String, nullable=False),
            Column("n", Integer, nullable=False),
            Column("ended", Integer, nullable=False),
            Column("duration_sum", Float, nullable=False),
            Column("duration_max", Float),
        )
        if not bulk:
            Index(f"ix_stats_cells{s}_day", self.cells.c.day)
        self.histogram = Table(
            "stats_histogram" + s,
            m,
            Column("cell_id", BigInteger, primary_key=True, autoincrement=False),
            Column("bucket", Integer, primary_key=True),
            Column("n", Integer, nullable=False),
        )
        self.paths = Table(
            "stats_paths" + s,
            m,
            Column("cell_id", BigInteger, primary_key=True, autoincrement=False),
            Column("path", String, primary_key=True),
            Column("seconds", Float, nullable=False),
        )
        self.results = Table(
            "stats_results" + s,
            m,
            Column("cell_id", BigInteger, primary_key=True, autoincrement=False),
            Column("status", String, primary_key=True),
            Column("n", Integer, nullable=False),
        )

    def for_view(self, view: str) -> list[Table]:
        return {
            "detail": [self.detail],
            "list": [self.list, self.tags, self.members],
            "count": [self.counts],
            "stats": [self.cells, self.histogram, self.paths, self.results],
        }[view]
