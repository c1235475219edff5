"""One bulk loader: the log's streams cut into ranges (`stream_ranges`), which loader takes
which range (`Claims`: the first to create its marker file), and the fold of the ranges it
takes, stream by stream, one whole session at a time, into the views' bulk shares
(`load_part`). The parent and the second loader (`projections/second_loader.py`) both run it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import orjson
from sqlalchemy import Engine

from domain.session import ALL_EVENT_CLASSES, upcast
from domain.state import EVOLVERS, State, evolve, fold_kept_alive, new_state
from persistence.runtime import paused_gc
from persistence.store import EventStore
from projections.projection import BulkShare, Change
from projections.sql import fresh

# About this many events per range of streams a loader claims: small enough that the two
# loaders end within a fraction of a second of each other whichever runs slower (a shared
# machine's cores do not keep one speed), large enough that a range's query start is noise.
RANGE_EVENTS = 20_000
MAX_RANGES = 256
# Each event type's current schema version: the payloads already there skip `upcast`.
_CURRENT = {kind: cls.class_version for kind, cls in ALL_EVENT_CLASSES.items()}

Range = tuple[str | None, str | None]


def stream_ranges(store: EventStore, until: int, per_range: int = RANGE_EVENTS) -> list[Range]:
    """The log's streams up to `until` cut into ranges of about `per_range` events each
    (in id order, together covering every id)."""
    cuts: list[str | None] = list(
        store.stream_bounds(until, min(MAX_RANGES, max(1, until // per_range)))
    )
    return list(zip([None, *cuts], [*cuts, None], strict=True))


class Claims:
    """Which loader reads which range: a range belongs to the process that first creates
    its marker file in a directory the loaders share (O_EXCL: exactly one succeeds). Each
    loader walks the ranges in order and takes the next unclaimed one, so neither waits
    while ranges are left. Without a directory every range is this process's."""

    def __init__(self, ranges: Sequence[Range], directory: str | None = None) -> None:
        self.ranges = list(ranges)
        self.directory = directory

    def taken(self) -> Iterator[tuple[int, Range]]:
        for i, rng in enumerate(self.ranges):
            if self.directory is not None:
                try:
                    os.close(os.open(os.path.join(self.directory, str(i)), os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    continue
            yield i, rng


def load_part(
    store: EventStore,
    engine: Engine,
    shares: Sequence[BulkShare],
    until: int,
    claims: Claims,
    sessions_per_batch: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Load the sessions of the ranges this process claims through the views' `shares`, each
    range read stream by stream: a session is folded from its first event to its last up to
    `until`, then waits in `done` for the next batch write, so each session's rows are
    written once, from its final state. Views whose rows are sums over sessions (count,
    stats) add up in memory in their shares (their cells are few), for `load` to write once,
    with the tracking positions. Memory is bounded by the batch and the cells, not by the log."""
    done: list[Change] = []  # complete, not yet written (in id order: rows land in key order)

    def flush() -> None:
        changes = done[:]
        done.clear()
        writes = [w for share in shares if (w := share.add(changes)) is not None]
        with engine.begin() as conn:
            fresh(conn)  # the load's tables hold none of these sessions' rows yet
            for write in writes:
                write(conn)

    loads, current, kept_alive = orjson.loads, _CURRENT, fold_kept_alive
    n = len(claims.ranges)
    with paused_gc():
        for i, streams in claims.taken():
            base, top = until * i // n, until * (i + 1) // n
            sid: str | None = None
            state: State = {}
            in_range = 0
            for rows in store.iter_stream_rows(until, EVOLVERS, streams):
                for row_sid, kind, version, at, payload, position in rows:
                    if row_sid != sid:
                        if sid is not None:
                            done.append((sid, None, state))
                        sid, state = row_sid, new_state(row_sid)
                    data = loads(payload)
                    if version < current[kind]:
                        data = upcast(kind, version, data)
                    if kind == "KeptAlive":
                        kept_alive(state, data, at)
                    else:
                        evolve(state, kind, data, at, position)
                in_range += len(rows)
                if len(done) >= sessions_per_batch:
                    flush()
                if progress is not None:
                    progress(min(top, base + in_range))
            if sid is not None:  # a range's last stream is complete at its end
                done.append((sid, None, state))
            if len(done) >= sessions_per_batch:
                flush()
        flush()
