"""`ledger replay export`: the events, or the session list as of a point, as NDJSON, CSV or
Parquet (optional extra) for pandas, DuckDB and spreadsheets. Streams rows; flat memory."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from typing import Any, BinaryIO

import orjson
from sqlalchemy import Engine, select

from persistence.store import EventStore
from projections.present import iso
from projections.tables import ViewTables
from projections.view_list import summary
from replay.asof import views_at
from replay.progress import Progress, progress_bar
from replay.source import Point, ReplayError

FORMATS = ("ndjson", "csv", "parquet")
EVENT_COLUMNS = (
    "position",
    "stream_id",
    "version",
    "type",
    "schema_version",
    "recorded_at",
    "payload",
    "hash",
)
SESSION_COLUMNS = (
    "id",
    "number",
    "name",
    "source",
    "project",
    "build",
    "user",
    "type",
    "status",
    "active",
    "browser",
    "os",
    "started_at",
    "ended_at",
    "last_seen_at",
    "updated_at",
    "duration",
    "remarks",
    "tags",
    "attributes",
)
TIME_COLUMNS = frozenset({"recorded_at", "started_at", "ended_at", "last_seen_at", "updated_at"})
JSON_COLUMNS = frozenset({"payload", "tags", "attributes"})
BATCH = 5000


def event_rows(store: EventStore, from_position: int, until: Point) -> Iterator[dict[str, Any]]:
    for e in store.iter_all(after=max(0, from_position - 1), until=until.position):
        yield e.as_dict()


def _shown(rows: Iterable[dict[str, Any]], bar: Progress) -> Iterator[dict[str, Any]]:
    """The rows, moving the bar every thousand of them."""
    for n, r in enumerate(rows, 1):
        if n % 1000 == 0:
            bar(r["position"])
        yield r


def session_rows(
    store: EventStore, live: tuple[Engine, ViewTables] | None, until: Point, stack: ExitStack
) -> Iterator[dict[str, Any]]:
    """The list view at `until` (the live views when they stand exactly there, else a replay)."""
    conn, tables = stack.enter_context(views_at(store, live, until))
    lst, detail = tables.list, tables.detail
    rows = conn.execute(
        select(detail.c.doc)
        .select_from(lst.join(detail, detail.c.session_id == lst.c.session_id))
        .order_by(lst.c.number)
    )
    for (raw,) in rows:
        s = summary(orjson.loads(raw))
        s["browser"] = s["attributes"].get("browser")
        s["os"] = s["attributes"].get("os")
        yield {c: s.get(c) for c in SESSION_COLUMNS}


def _text_value(col: str, v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if col in TIME_COLUMNS:
        return iso(v)
    if col in JSON_COLUMNS:
        return orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()
    return v


def write_ndjson(rows: Iterable[dict[str, Any]], out: BinaryIO) -> int:
    n = 0
    for r in rows:
        r = {k: iso(v) if k in TIME_COLUMNS and v is not None else v for k, v in r.items()}
        out.write(orjson.dumps(r) + b"\n")
        n += 1
    return n


def write_csv(rows: Iterable[dict[str, Any]], out: BinaryIO, columns: tuple[str, ...]) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    w = csv.writer(text)
    w.writerow(columns)
    n = 0
    for r in rows:
        w.writerow(["" if (v := _text_value(c, r[c])) is None else v for c in columns])
        n += 1
    text.detach()
    return n


def write_parquet(rows: Iterable[dict[str, Any]], path: str, columns: tuple[str, ...]) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ReplayError(
            "parquet export needs pyarrow: pip install 'session-ledger[parquet]'"
        ) from exc
    fields = []
    for c in columns:
        if c in TIME_COLUMNS:
            fields.append(pa.field(c, pa.timestamp("us", tz="UTC")))
        elif c in ("position", "version", "schema_version", "number"):
            fields.append(pa.field(c, pa.int64()))
        elif c == "duration":
            fields.append(pa.field(c, pa.float64()))
        elif c == "active":
            fields.append(pa.field(c, pa.bool_()))
        else:
            fields.append(pa.field(c, pa.string()))  # JSON columns as JSON text
    schema = pa.schema(fields)

    def batch_of(chunk: list[dict[str, Any]]) -> Any:
        cols: dict[str, list[Any]] = {c: [] for c in columns}
        for r in chunk:
            for c in columns:
                v = r[c]
                if c in TIME_COLUMNS and v is not None:
                    v = round(v * 1_000_000)
                elif c in JSON_COLUMNS and v is not None:
                    v = orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()
                cols[c].append(v)
        return pa.RecordBatch.from_pydict(cols, schema=schema)

    n = 0
    with pq.ParquetWriter(path, schema) as writer:
        chunk: list[dict[str, Any]] = []
        for r in rows:
            chunk.append(r)
            if len(chunk) >= BATCH:
                writer.write_batch(batch_of(chunk))
                n += len(chunk)
                chunk = []
        if chunk:
            writer.write_batch(batch_of(chunk))
            n += len(chunk)
    return n


def export(
    store: EventStore,
    live: tuple[Engine, ViewTables] | None,
    what: str,
    fmt: str,
    until: Point,
    from_position: int = 1,
    out_path: str | None = None,
) -> int:
    """Write the rows; returns how many were written."""
    if fmt not in FORMATS:
        raise ReplayError(f"--format must be one of {', '.join(FORMATS)}")
    if fmt == "parquet" and not out_path:
        raise ReplayError("parquet needs --out FILE")
    if what == "sessions" and from_position > 1:
        raise ReplayError("--from-position applies to events; sessions take --until")
    with ExitStack() as stack:
        if what == "events":
            start = min(max(0, from_position - 1), until.position)
            bar = stack.enter_context(progress_bar(until.position, "export", start))
            rows: Iterable[dict[str, Any]] = _shown(event_rows(store, from_position, until), bar)
            columns: tuple[str, ...] = EVENT_COLUMNS
        elif what == "sessions":
            rows = session_rows(store, live, until, stack)
            columns = SESSION_COLUMNS
        else:
            raise ReplayError("--what must be events or sessions")
        if fmt == "parquet":
            return write_parquet(rows, str(out_path), columns)
        out: BinaryIO = stack.enter_context(open(out_path, "wb")) if out_path else sys.stdout.buffer
        n = write_ndjson(rows, out) if fmt == "ndjson" else write_csv(rows, out, columns)
        out.flush()
        return n
