"""`ledger replay copy`: move a ledger to another database (SQLite to PostgreSQL, say).

The events are copied as stored, row for row: positions, stream versions, recorded times,
payloads (with their sealed commitments) and hashes, so the chain, the Merkle leaves and
the head digest are the target's exactly; nothing is re-sealed or re-chained. With them go
the sealed values still held (persistence/sealing.py: an erased value is not copied, and a
value erased on the source since an earlier run is deleted from the target), the API keys
(their hashes, as stored) and the idempotency table; the Merkle tree is built again on the
target from the copied events, and its root must equal the source's. Blob files are copied
to the target's blob folder when it is another one. Then the target's views are rebuilt.

Resumable: each batch commits on its own, and a run that finds events in the target goes
on after its last one, once the source's event at that position has the same hash; a
target whose log is not a prefix of the source's is refused, never merged. The copy takes
the source's head when it starts: stop the writers for the move, or run it again to copy
what came since.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, Table, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from domain.errors import InvalidCommandError
from persistence.blobs import BlobStore
from persistence.schema import make_engine
from persistence.settings import Settings
from persistence.store import EventStore
from replay.progress import Progress
from replay.rebuild import rebuild
from replay.source import ReplayError, store_open

CHUNK = 2000
EVENT_COLUMNS = "position, stream_id, version, type, schema_version, recorded_at, payload, hash"
# Tables of the event database copied whole, by primary key: the API keys (api/keys.py,
# reflected: replay does not import the API) and the idempotency keys.
SIDE_TABLES = ("api_keys", "idempotency_keys")


@dataclass(frozen=True)
class Copied:
    resumed_after: int  # the target's last position when this run began
    head: tuple[int, bytes]  # the head both logs now have
    rows: dict[str, int]  # side tables' rows copied, by table
    blobs: int  # blob files copied


def masked(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def resume_point(source: EventStore, target: EventStore) -> int:
    """The target's last position, once its log is a prefix of the source's."""
    position, hash_ = target.head_digest()
    if position == 0:
        return 0
    src_head = source.head_digest()[0]
    if position > src_head:
        raise ReplayError(f"the target holds {position} events, the source {src_head}: refused")
    with source.read_engine.connect() as conn:
        theirs = conn.exec_driver_sql(
            f"SELECT hash FROM events WHERE position = {int(position)}"
        ).scalar_one()
    if bytes(theirs) != hash_:
        raise ReplayError(
            f"the target holds a different log (its event {position} is not the source's): "
            "refused; copy into an empty database"
        )
    return position


def _read_batch(source: EventStore, after: int, limit: int) -> tuple[list[Any], list[Any]]:
    """Events after `after` (at most `limit`) and their sealed values, in one snapshot."""
    mark = "?" if source.is_sqlite else "%s"
    with source.read_engine.connect() as conn, conn.begin():
        events = conn.exec_driver_sql(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE position > {mark} "
            f"ORDER BY position LIMIT {mark}",
            (after, limit),
        ).all()
        if not events:
            return [], []
        sealed = conn.exec_driver_sql(
            "SELECT position, slot, salt, value FROM sealed_values "
            f"WHERE position > {mark} AND position <= {mark}",
            (after, events[-1][0]),
        ).all()
    return list(events), list(sealed)


def _plain(value: Any) -> Any:
    """A value for another driver: PostgreSQL reads BYTEA as memoryview."""
    return bytes(value) if isinstance(value, memoryview) else value


def _bytes(row: Any) -> tuple[Any, ...]:
    return tuple(_plain(v) for v in row)


def copy_events(
    source: EventStore,
    target: EventStore,
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> tuple[int, tuple[int, bytes]]:
    """Copy the events after the target's head up to the source's head (as of now), with
    their sealed values and tree nodes, a committed batch at a time; returns the position
    it resumed after and the head reached."""
    target.create_schema()
    start = position = resume_point(source, target)
    end = source.head_digest()[0]
    mark = "?" if target.is_sqlite else "%s"
    insert_events = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({','.join([mark] * 8)})"
    insert_sealed = (
        f"INSERT INTO sealed_values (position, slot, salt, value) VALUES ({','.join([mark] * 4)})"
    )
    while position < end:
        events, sealed = _read_batch(source, position, min(chunk, end - position))
        with target.write_transaction() as conn:
            if target.head(conn)[0] != position:
                raise ReplayError("another process writes to the target: stop it and run again")
            conn.exec_driver_sql(insert_events, [_bytes(r) for r in events])
            if sealed:
                conn.exec_driver_sql(insert_sealed, [_bytes(r) for r in sealed])
        target.catch_up_tree()  # the tree's nodes of the batch, after it commits
        position = int(events[-1][0])
        if progress is not None:
            progress(position)
    return start, target.head_digest()


def drop_erased(source: EventStore, target: EventStore, upto: int, chunk: int = 50_000) -> int:
    """Delete the target's sealed values the source no longer holds (erased after an earlier
    run copied them); returns how many."""
    gone = 0
    for lo in range(0, upto, chunk):
        keys = []
        for store in (source, target):
            mark = "?" if store.is_sqlite else "%s"
            with store.read_engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    "SELECT position, slot FROM sealed_values "
                    f"WHERE position > {mark} AND position <= {mark}",
                    (lo, lo + chunk),
                ).all()
            keys.append({(int(p), s) for p, s in rows})
        extra = sorted(keys[1] - keys[0])
        if extra:
            mark = "?" if target.is_sqlite else "%s"
            with target.write_transaction() as conn:
                conn.exec_driver_sql(
                    f"DELETE FROM sealed_values WHERE position = {mark} AND slot = {mark}", extra
                )
            gone += len(extra)
    return gone


def _side_table(src: Table, target: Engine) -> Table:
    """The target's table of `src`'s name, created from `src`'s columns if absent."""
    with target.begin() as conn:
        if not conn.dialect.has_table(conn, src.name):
            shape = src.to_metadata(MetaData())
            for col in shape.columns:
                col.type = col.type.as_generic()  # SQLite's BLOB is PostgreSQL's BYTEA
            shape.create(conn)
        dst = Table(src.name, MetaData(), autoload_with=conn)
    if len(dst.primary_key.columns) != 1:
        raise ReplayError(f"the target's {src.name} table has no one-column key: refused")
    return dst


def copy_side_table(name: str, source: Engine, target: Engine) -> int:
    """Copy table `name` row for row (a target row with the same key is replaced; the
    target's other rows stay), streamed in parts; returns how many rows."""
    copied = 0
    with source.connect() as src_conn:
        if not src_conn.dialect.has_table(src_conn, name):
            return 0
        src = Table(name, MetaData(), autoload_with=src_conn)
        dst = _side_table(src, target)
        (key,) = dst.primary_key.columns
        rows = src_conn.execution_options(stream_results=True).execute(select(src))
        with target.begin() as conn:
            for part in rows.mappings().partitions(500):
                conn.execute(dst.delete().where(key.in_([r[key.name] for r in part])))
                conn.execute(dst.insert(), [{k: _plain(v) for k, v in r.items()} for r in part])
                copied += len(part)
    return copied


def copy_blobs(source: Path, target: Path) -> int:
    """Copy the blob files the target's folder lacks (content-addressed: a file of the same
    name is the same blob); returns how many were copied."""
    if not source.is_dir() or source.resolve() == target.resolve():
        return 0
    src, dst = BlobStore(source), BlobStore(target)
    copied = 0
    for path in sorted(source.glob("??/*")):
        try:
            there = dst.path(path.name)  # refuses any name that is not a sha256
        except InvalidCommandError:
            continue  # not a blob: a stray file is not copied
        if there.exists() or not src.matches(path.name):
            continue
        there.parent.mkdir(parents=True, exist_ok=True)
        part = there.with_name(there.name + ".part")
        shutil.copyfile(path, part)
        part.replace(there)
        copied += 1
    return copied


def copy_ledger(
    source: EventStore,
    target: EventStore,
    blobs: tuple[Path, Path],
    progress: bool | None = None,
    chunk: int = CHUNK,
) -> Copied:
    """Everything but the views (`copy_events`, then the rest); checks the trees' roots."""
    head = source.head_digest()[0]
    target.create_schema()  # an empty target has no events table to read a head from
    bar = Progress(target.head_digest()[0], head, "copy", enabled=progress)
    start, reached = copy_events(source, target, bar, chunk)
    bar.close()
    size = reached[0]
    if size and source.tree.root(size) != target.tree.root(size):
        raise ReplayError(f"the target's Merkle tree root at {size} is not the source's")
    drop_erased(source, target, size)
    rows = {n: copy_side_table(n, source.read_engine, target.write_engine) for n in SIDE_TABLES}
    return Copied(start, reached, rows, copy_blobs(*blobs))


def _urls(args: argparse.Namespace, settings: Settings) -> tuple[str, str, str]:
    """The source's, the target's and the target views' URLs, each checked to be one."""
    urls = {
        "--from": args.from_url or settings.database_url,
        "--to": args.to,
        "--to-views": args.to_views,
    }
    for option, url in urls.items():
        try:
            if url is not None:
                make_url(url).get_dialect()
        except (ArgumentError, NoSuchModuleError) as exc:
            raise ReplayError(f"{option} is not a database URL this ledger can use") from exc
    if make_url(args.to) == make_url(urls["--from"]):
        raise ReplayError("--to names the source database itself")
    views = args.to_views or Settings(database_url=args.to).views_url
    return urls["--from"], args.to, views


def cmd_copy(args: argparse.Namespace, settings: Settings) -> int:
    """`ledger replay copy --to URL [--from URL] [--to-blobs DIR] [--to-views URL]`."""
    source_url, target_url, views_url = _urls(args, settings)
    to_blobs = Path(args.to_blobs) if args.to_blobs else settings.blob_dir
    with store_open(Settings(database_url=source_url)) as source:
        target = EventStore(target_url)
        try:
            print(f"copying {masked(source_url)} to {masked(target_url)}", file=sys.stderr)
            done = copy_ledger(source, target, (settings.blob_dir, to_blobs))
            views = make_engine(views_url, immediate=True)
            try:
                rebuilt = rebuild(target, views) if not args.no_views else None
            finally:
                views.dispose()
        except OperationalError as exc:
            # The driver's first line says which server and why, never the password.
            first = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
            raise ReplayError(f"a database cannot be used: {first}") from exc
        finally:
            target.dispose()
    position, hash_ = done.head
    print(
        f"copied after position {done.resumed_after} up to {position}:{hash_.hex()}; "
        + ", ".join(f"{n}: {k} rows" for n, k in done.rows.items())
        + f"; {done.blobs} blob files"
        + (f"; views rebuilt at {rebuilt.position}" if rebuilt is not None else "")
    )
    return 0
