"""The stats view: rollup cells keyed by (dimension, value, day, status), written as
incrementing upserts of a batch's deltas (`projections/cells.py`), with the exact max
recomputed from the list view's rows when the longest session leaves a cell."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, select
from sqlalchemy.sql.elements import ColumnElement

from projections.cells import (
    ALL_DAYS,
    ALL_STATUSES,
    HIST_SPAN,
    CellDelta,
    CellKey,
    StatsDeltas,
    add_moved_extras,
    add_to_cells,
    cell_id,
    cell_keys,
    with_derived_cells,
)
from projections.projection import BulkShare, Change, Summed
from projections.sql import raise_rows, upsert, upsert_rows
from projections.tables import ViewTables


class StatsView:
    """Rollup cells (see ViewTables.cells): count, ended count, duration sum/max and
    histogram, visible time per path, results. A cell's id is a hash of its key, so a batch
    is a handful of incrementing upserts, and a whole rebuild can sum in memory first."""

    name = "stats"

    def deltas(self, changes: Sequence[Change], into: StatsDeltas | None = None) -> StatsDeltas:
        deltas: StatsDeltas = defaultdict(CellDelta) if into is None else into
        for _, b, a in changes:
            live_before = b if b is not None and not b["deleted"] else None
            if live_before is not None and not a["deleted"]:
                keys = cell_keys(a)
                if keys == cell_keys(live_before) and live_before["duration"] == a["duration"]:
                    # In the same cells with the same duration: only paths and results move.
                    if (
                        live_before["visible_time"] != a["visible_time"]
                        or live_before["result_counts"] != a["result_counts"]
                    ):
                        add_moved_extras([deltas[k] for k in keys], live_before, a)
                    continue
            if live_before is not None:
                add_to_cells([deltas[k] for k in cell_keys(live_before)], live_before, -1)
            if not a["deleted"]:
                add_to_cells([deltas[k] for k in cell_keys(a)], a, +1)
        return deltas

    def apply(self, conn: Connection, t: ViewTables, changes: Sequence[Change]) -> None:
        deltas = self.deltas(changes)
        if deltas:
            self.write(conn, t, deltas)

    def bulk(self, t: ViewTables) -> BulkShare:
        return Summed(self, t, defaultdict(CellDelta))

    @staticmethod
    def merge(into: StatsDeltas, part: StatsDeltas) -> None:
        """Add another loader's sums (`bulk`) to `into`."""
        for key, dl in part.items():
            into[key].merge(dl)

    def write(self, conn: Connection, t: ViewTables, deltas: StatsDeltas) -> None:
        """Write day-level deltas (from `deltas`) with the cells derived from them."""
        deltas = with_derived_cells(deltas)
        cells, hist, spans, paths, results = [], [], [], [], []
        maybe_lost_max: dict[int, CellKey] = {}
        for key, dl in deltas.items():
            cid = cell_id(key)
            top = dl.top
            if dl.n or dl.ended or dl.sum or top is not None or dl.durations_out:
                # A delta without any of these needs no cell row written: either only paths
                # or results moved (keepalives, say), for sessions that stay in the cell, so
                # its row is there already; or sessions came and went within the batch.
                cells.append(
                    {
                        "cell_id": cid,
                        "dim": key[0],
                        "value": key[1],
                        "day": key[2],
                        "status": key[3],
                        "n": dl.n,
                        "ended": dl.ended,
                        "duration_sum": dl.sum,
                        "duration_max": top,
                    }
                )
            if dl.durations_out:
                maybe_lost_max[cid] = key
            hist += [(cid, b, n) for b, n in dl.hist.items() if n]
            span_n: dict[int, int] = defaultdict(int)
            for b, n in dl.hist.items():
                span_n[b // HIST_SPAN] += n
            spans += [(cid, k, n) for k, n in span_n.items() if n]
            paths += [(cid, p, v) for p, v in dl.paths.items() if v]
            results += [(cid, k, n) for k, n in dl.results.items() if n]
        # The max only grows by upsert; where a duration left a cell, it is recomputed below.
        upsert(conn, t.cells, cells, ["cell_id"], add=_CELL_SUMS, keep=_CELL_KEEP)
        _raise_max(conn, t, cells)
        # Tuples: a rebuild writes every histogram bucket of every cell here at once.
        n_added = frozenset({"n"})
        upsert_rows(conn, t.histogram, _HIST_COLS, hist, _HIST_COLS[:2], n_added)
        upsert_rows(conn, t.histogram_spans, _SPAN_COLS, spans, _SPAN_COLS[:2], n_added)
        upsert_rows(conn, t.paths, _PATH_COLS, paths, _PATH_COLS[:2], frozenset({"seconds"}))
        upsert_rows(conn, t.results, _RESULT_COLS, results, _RESULT_COLS[:2], n_added)
        for cid, key in maybe_lost_max.items():
            self._recompute_max(conn, t, cid, key)
        _drop_empty(conn, t, [cell_id(k) for k, dl in deltas.items() if dl.n < 0])

    @staticmethod
    def _recompute_max(conn: Connection, t: ViewTables, cid: int, key: CellKey) -> None:
        """Exact max after a duration left the cell: read it back from the list view's rows."""
        lst = t.list
        dim, value, day, status = key
        conds: list[ColumnElement[bool]] = [lst.c.duration.is_not(None)]
        if status != ALL_STATUSES:
            conds.append(lst.c.status == status)
        if day != ALL_DAYS:
            day0 = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
            conds += [lst.c.started_at >= day0, lst.c.started_at < day0 + 86400]
        if dim:
            col = lst.c[dim]
            conds.append((col.is_(None) | (col == "")) if value == "" else (col == value))
        top = conn.execute(
            select(lst.c.duration).where(and_(*conds)).order_by(lst.c.duration.desc()).limit(1)
        ).scalar()
        conn.execute(t.cells.update().where(t.cells.c.cell_id == cid).values(duration_max=top))


def _drop_empty(conn: Connection, t: ViewTables, cids: list[int]) -> None:
    """Remove the cells no session is in any more, with their rows: a rebuild has none, and
    their value may be one erasure removed from every session (persistence/erasure.py)."""
    if not cids:
        return
    c = t.cells.c
    empty = list(conn.execute(select(c.cell_id).where(c.cell_id.in_(cids), c.n <= 0)).scalars())
    if empty:
        for table in (t.cells, t.histogram, t.histogram_spans, t.paths, t.results):
            conn.execute(table.delete().where(table.c.cell_id.in_(empty)))


_HIST_COLS = ("cell_id", "bucket", "n")
_SPAN_COLS = ("cell_id", "span", "n")
_PATH_COLS = ("cell_id", "path", "seconds")
_RESULT_COLS = ("cell_id", "status", "n")
_CELL_SUMS = frozenset({"n", "ended", "duration_sum"})
_CELL_KEEP = frozenset({"duration_max", "dim", "value", "day", "status"})


def _raise_max(conn: Connection, t: ViewTables, cells: list[dict[str, Any]]) -> None:
    """duration_max = max(duration_max, this batch's longest) for cells that gained one."""
    rows = [(c["duration_max"], c["cell_id"]) for c in cells if c["duration_max"] is not None]
    raise_rows(conn, t.cells, "duration_max", rows, "cell_id")
