"""The SQL tables of the four views (list, detail, count, stats) and their tracking positions.

`ViewTables(suffix)` builds a full set of tables; the live set has no suffix and a rebuild
fills a fresh set (suffix `_next`) that is renamed into place in one transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    inspect,
)
from sqlalchemy.types import TypeEngine

from persistence.schema import serialise_ddl
from projections import failures

# The runner's logger, as before these moved out of projections/runner.py.
log = logging.getLogger("projections.runner")

VIEW_NAMES = ("detail", "list", "count", "stats")
# The list columns with an index of their own (filters) and the sorts those indexes carry.
FILTER_COLUMNS = ("status", "project", "build", "user", "type", "active")
SORT_CARRIED = ("ended_at", "last_seen_at", "updated_at", "duration")
# Small rows looked up by their whole key: on SQLite the key is the table (no rowid, one
# B-tree walk instead of index + table); PostgreSQL ignores the option.
CLUSTERED: dict[str, Any] = {"sqlite_with_rowid": False}
_Type = type[TypeEngine[Any]]
# Log positions (and session numbers, which are positions): 64-bit on PostgreSQL too.
Position = BigInteger().with_variant(Integer(), "sqlite")


class ViewTables:
    """`bulk=True` leaves out the list's secondary indexes, which a bulk load does not read
    (a rebuild creates them once, at the swap)."""

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
        self._add_list(bulk)
        self._add_count()
        self._add_stats()

    def _add_list(self, bulk: bool) -> None:
        """The list view's tables: one row per visible session, its tags and its members
        (with their indexes unless `bulk`)."""
        m, s = self.metadata, self.suffix
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
            # No copy of the row's summary: a page reads its 50 sessions' detail documents
            # (`queries.list_details`), so a keepalive rewrites one document, not two, and a
            # rebuild writes the list at a fifth of the size.
        )
        if not bulk:
            self._list_indexes()
        self._add_tags_and_members(bulk)

    def _add_tags_and_members(self, bulk: bool) -> None:
        """A session's tag rows and member rows (the list's tag and member filters)."""
        m, s = self.metadata, self.suffix
        self.tags = Table(
            "session_tags" + s,
            m,
            Column("session_id", String, primary_key=True),
            Column("key", String, primary_key=True),
            Column("value", String, nullable=False),
            # The session's default sort, so a page of one tag walks this table's index.
            Column("started_at", Float),
            Column("number", Position, nullable=False),
            **CLUSTERED,
        )
        if not bulk:
            Index(
                f"ix_session_tags{s}_kv",
                self.tags.c.key,
                self.tags.c.value,
                self.tags.c.started_at,
                self.tags.c.number,
            )
        # Who took part (OpenTera participants, users, devices), for member filters.
        self.members = Table(
            "session_members" + s,
            m,
            Column("session_id", String, primary_key=True),
            Column("kind", String, primary_key=True),
            Column("member", String, primary_key=True),
            **CLUSTERED,
        )
        if not bulk:
            Index(f"ix_session_members{s}_km", self.members.c.kind, self.members.c.member)

    def _list_indexes(self) -> None:
        """The list's secondary indexes (a bulk load leaves them out)."""
        s = self.suffix
        # Indexes shaped like the list's questions (see projections/queries.py, which picks
        # between them by the count view's exact match counts):
        # - a filter index per equality filter, then status, in the default sort, carrying
        #   every sort column and the other filters, so "filters, any sort" finds and sorts
        #   the matches inside the index without reading a row;
        # - a sort index per sort column, carrying the filter columns, so "common filter,
        #   other sort" walks the sort order and filters inside the index.
        # Each costs every write; the rarely-selective source and the text search go without.
        # Unique in the domain already; carries the filters for pages sorted by number.
        Index(
            f"ix_session_list{s}_number",
            self.list.c.number,
            *(self.list.c[k] for k in FILTER_COLUMNS),
        )
        for col in FILTER_COLUMNS:
            # Led by the filter and then status (but for status's own), so "filter and
            # status" seeks exactly its matches; a page of the filter alone in the
            # default order merges its per-status runs (queries._status_runs).
            lead = (col,) if col == "status" else (col, "status")
            Index(
                f"ix_session_list{s}_{col}",
                *(self.list.c[k] for k in lead),
                *(self.list.c[k] for k in ("started_at", "number", *SORT_CARRIED)),
                *(self.list.c[k] for k in FILTER_COLUMNS if k not in lead),
            )
        for col in SORT_CARRIED:
            Index(
                f"ix_session_list{s}_by_{col}",
                self.list.c[col],
                self.list.c.number,
                *(self.list.c[k] for k in FILTER_COLUMNS),
            )
        Index(
            f"ix_session_list{s}_started_at",
            self.list.c.started_at,
            self.list.c.number,
            *(self.list.c[k] for k in FILTER_COLUMNS),
        )
        Index(f"ix_session_list{s}_created_by", self.list.c.created_by)

    def _add_count(self) -> None:
        m, s = self.metadata, self.suffix
        # The count view: visible sessions per (dimension, value, status). Dimension "" is
        # everything; the others are the list's equality filters, so a count (or a list
        # total) filtered on one of them plus status is a few rows, and the list planner
        # knows each filter's exact selectivity.
        self.counts = Table(
            "session_counts" + s,
            m,
            Column("dim", String, primary_key=True),
            Column("value", String, primary_key=True),
            Column("status", String, primary_key=True),
            Column("n", Integer, nullable=False),
            **CLUSTERED,
        )

    def _add_stats(self) -> None:
        m, s = self.metadata, self.suffix
        # The stats view: rollup cells over (dimension, value, day, status), with the day "*"
        # for all days. Every session counts in one cell per dimension and per day kind, so a
        # grouping by one dimension over any window of days reads a few hundred cells.
        self.cells = Table(
            "stats_cells" + s,
            m,
            Column("cell_id", BigInteger, primary_key=True, autoincrement=False),
            Column("dim", String, nullable=False),
            Column("value", String, nullable=False),
            Column("day", String, nullable=False),
            Column("status", String, nullable=False),
            Column("n", Integer, nullable=False),
            Column("ended", Integer, nullable=False),
            Column("duration_sum", Float, nullable=False),
            Column("duration_max", Float),
        )
        Index(f"ix_stats_cells{s}_dim_day", self.cells.c.dim, self.cells.c.day)
        self.histogram = self._per_cell("stats_histogram", "bucket", Integer, "n", Integer)
        # The same histogram in spans of HIST_SPAN buckets: a percentile finds its span here
        # and reads only that span's fine buckets (a few dozen rows instead of thousands).
        self.histogram_spans = self._per_cell(
            "stats_histogram_spans", "span", Integer, "n", Integer
        )
        self.paths = self._per_cell("stats_paths", "path", String, "seconds", Float)
        self.results = self._per_cell("stats_results", "status", String, "n", Integer)

    def _per_cell(
        self, name: str, key: str, key_type: _Type, value: str, value_type: _Type
    ) -> Table:
        """A stats table of one number (`value`) per cell and `key`."""
        return Table(
            name + self.suffix,
            self.metadata,
            Column("cell_id", BigInteger, primary_key=True, autoincrement=False),
            Column(key, key_type, primary_key=True),
            Column(value, value_type, nullable=False),
            **CLUSTERED,
        )

    def for_view(self, view: str) -> list[Table]:
        return {
            "detail": [self.detail],
            "list": [self.list, self.tags, self.members],
            "count": [self.counts],
            "stats": [self.cells, self.histogram, self.histogram_spans, self.paths, self.results],
        }[view]


def create_schema(engine: Engine, tables: ViewTables) -> None:
    """Create the views' tables; views written by an older schema (a table of this one is
    missing, or has other columns, while positions are tracked) are dropped and refilled
    from position 0, since views are only ever derived from the log. An index of another
    shape than this schema's is built again from its table."""
    with engine.begin() as conn:
        serialise_ddl(conn)
        insp = inspect(conn)
        have = set(insp.get_table_names())
        sorted_tables = tables.metadata.sorted_tables
        if tables.tracking.name in have and any(
            x.name not in have
            or {col["name"] for col in insp.get_columns(x.name)} != set(x.c.keys())
            for x in sorted_tables
        ):
            log.warning("views were written by an older schema: refilling them from the log")
            tables.metadata.drop_all(conn)
            have = set()
        for x in sorted_tables:
            if x.name not in have or not x.indexes:
                continue
            shapes = {ix["name"]: ix["column_names"] for ix in insp.get_indexes(x.name)}
            for index in x.indexes:
                shape = shapes.get(index.name)
                if shape is not None and shape != [col.name for col in index.columns]:
                    log.warning("index %s has an older shape: building it again", index.name)
                    index.drop(conn)
                    index.create(conn)  # create_all passes over a table that exists
        tables.metadata.create_all(conn)
        failures.metadata.create_all(conn)
