"""Seed logs for the benchmark, fast and cached: an activity log (many events per session,
~2000 sessions active at once) and a sessions log (many short sessions over 30 days), both
appended through `Ledger.execute_many` with a fake clock, in batches of 5000 commands.

Results live in bench/out/ under names keyed by kind, size and SEED_VERSION, written to a
temporary name first and renamed when complete, so an interrupted seed is never reused.
"""

from __future__ import annotations

import heapq
import random
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event

from domain import commands as c
from domain.errors import LedgerError
from persistence.ledger import Ledger
from persistence.store import EventStore

OUT = Path(__file__).resolve().parent / "out"
SEED_VERSION = 1
BATCH = 5000
T_END = 1_732_924_800.0  # 2024-11-30T00:00:00Z: the sessions log's "now"
DAY = 86400.0
PATHS = ("/", "/dashboard", "/runs", "/runs/detail", "/settings", "/reports", "/help")
BROWSERS = ("chrome", "firefox", "safari", "edge")
OSES = ("linux", "windows", "macos")
TYPES = ("e2e", "api", "manual")


class FeedClock:
    """The ledger calls its clock once per command, in order: hand it the planned times."""

    def __init__(self) -> None:
        self._times: Iterator[float] = iter(())

    def feed(self, times: list[float]) -> None:
        self._times = iter(times)

    def __call__(self) -> float:
        return next(self._times)


def _fast_store(db: Path) -> EventStore:
    store = EventStore(f"sqlite:///{db}")

    # A seed nobody reads until it is complete: skip fsyncs (after the store's own PRAGMAs).
    @event.listens_for(store.write_engine, "connect")
    def _nosync(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.execute("PRAGMA synchronous=OFF")

    store.create_schema()
    return store


def append_all(db: Path, timeline: Iterator[tuple[float, c.Command]]) -> int:
    """Append the (time, command) timeline to a new log at `db`; returns the head position."""
    store = _fast_store(db)
    clock = FeedClock()
    ledger = Ledger(store, clock, cache_size=50_000)
    try:
        batch: list[tuple[float, c.Command]] = []
        for item in timeline:
            batch.append(item)
            if len(batch) >= BATCH:
                _flush(ledger, clock, batch)
                batch = []
        if batch:
            _flush(ledger, clock, batch)
        return store.head_digest()[0]
    finally:
        store.dispose()
        checkpoint(db)


def _flush(ledger: Ledger, clock: FeedClock, batch: list[tuple[float, c.Command]]) -> None:
    clock.feed([t for t, _ in batch])
    outcomes = ledger.execute_many([cmd for _, cmd in batch])
    bad = [o for o in outcomes if isinstance(o, LedgerError)]
    if bad:
        raise RuntimeError(f"seed command rejected: {bad[0]!r}")


def _start(
    rng: random.Random, sid: str, name: str, proj: int, build: str, tags: dict[str, str]
) -> c.StartSession:
    """A start in project `proj`: one of its 10 users, then a type, a browser and an os, drawn
    from `rng` in that order (a cached seed is only valid while the draws stay the same)."""
    return c.StartSession(
        session_id=sid,
        name=name,
        project=f"project-{proj}",
        build=build,
        user=f"user-{proj * 10 + rng.randrange(10)}",
        type=rng.choice(TYPES),
        tags=tags,
        attributes={"browser": rng.choice(BROWSERS), "os": rng.choice(OSES)},
    )


# -- the activity log: a sliding window of concurrently active sessions ------------------------


def activity_timeline(
    n_events: int, window: int = 2000, seed: int = 7, t0: float = T_END - 7 * DAY
) -> Iterator[tuple[float, c.Command]]:
    """About `n_events` events: sessions start, keep alive over a few paths, record results and
    stop; `window` of them are active at once and events interleave at random among them."""
    rng = random.Random(seed)
    made = 0
    serial = 0

    def plan() -> list[c.Command]:
        nonlocal serial
        serial += 1
        sid = f"a-{serial}"
        proj = rng.randrange(10)
        build = f"build-{proj}-{rng.randrange(20)}"
        cmds: list[c.Command] = [
            _start(rng, sid, f"run {serial}", proj, build, {"team": f"t{proj % 4}"})
        ]
        for _ in range(rng.randint(3, 12)):
            cmds.append(
                c.KeepAlive(session_id=sid, visible=rng.random() < 0.9, path=rng.choice(PATHS))
            )
        for _ in range(rng.randint(0, 3)):
            cmds.append(
                c.RecordResult(
                    session_id=sid,
                    status="passed" if rng.random() < 0.8 else "failed",
                    test=f"test_{rng.randrange(500)}",
                )
            )
        cmds.append(c.StopSession(session_id=sid))
        return cmds

    active: list[list[Any]] = [[plan(), 0] for _ in range(window)]
    t = t0
    while made < n_events:
        i = rng.randrange(len(active))
        slot = active[i]
        cmds, k = slot
        t += rng.expovariate(50.0)
        yield t, cmds[k]
        made += 1
        slot[1] = k + 1
        if slot[1] >= len(cmds):
            active[i] = [plan(), 0]


# -- the sessions log: many sessions over 30 days ---------------------------------------------


def sessions_timeline(n_sessions: int, seed: int = 11) -> Iterator[tuple[float, c.Command]]:
    """`n_sessions` sessions started over the 30 days before T_END: 10 projects, 200 builds
    (each on a day of its own, 20 per project), 100 users (10 per project), 3 types,
    4 browsers, 3 os, a few tags; ~97% stopped with spread durations, most given a verdict."""
    rng = random.Random(seed)
    t_start = T_END - 30 * DAY
    starts = sorted(rng.uniform(t_start, T_END - 60) for _ in range(n_sessions))
    pending: list[tuple[float, int, c.Command]] = []
    order = 0
    for i, ts in enumerate(starts):
        while pending and pending[0][0] <= ts:
            at, _, cmd = heapq.heappop(pending)
            yield at, cmd
        sid = f"s-{i}"
        day = int((ts - t_start) // DAY)
        # Builds run on their own day: pick one of the ~7 builds of this day.
        build = min(199, day * 200 // 30 + rng.randrange(7))
        proj = build % 10
        tags = {"team": f"t{proj % 4}"}
        if rng.random() < 0.3:
            tags["suite"] = rng.choice(("smoke", "regression", "nightly"))
        yield ts, _start(rng, sid, f"session {i}", proj, f"build-{build}", tags)
        if rng.random() < 0.03:
            continue  # still running
        dur = min(6 * 3600.0, rng.lognormvariate(5.5, 1.2))
        end = min(ts + dur, T_END)
        if rng.random() < 0.1:
            path = rng.choice(PATHS)
            order += 1
            mid = ts + (end - ts) / 2
            heapq.heappush(pending, (mid, order, c.KeepAlive(session_id=sid, path=path)))
        r = rng.random()
        if r < 0.65:
            verdict = "passed" if r < 0.5 else ("failed" if r < 0.62 else "error")
            order += 1
            heapq.heappush(pending, (end, order, c.ChangeStatus(session_id=sid, status=verdict)))
        order += 1
        heapq.heappush(pending, (end, order, c.StopSession(session_id=sid)))
    while pending:
        at, _, cmd = heapq.heappop(pending)
        yield at, cmd


# -- caching ----------------------------------------------------------------------------------


def cached(name: str, build: Callable[[Path], Any], log: Callable[[str], None] = print) -> Path:
    """bench/out/<name>/ledger.db, built once by `build(dir)` into a temporary directory."""
    final = OUT / f"{name}-v{SEED_VERSION}"
    if (final / "ledger.db").exists():
        return with_tree(final / "ledger.db", log)
    tmp = OUT / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t = time.perf_counter()
    build(tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    log(f"  seeded {final.name} in {time.perf_counter() - t:.1f}s")
    return final / "ledger.db"


def with_tree(db: Path, log: Callable[[str], None] = print) -> Path:
    """`db` with its Merkle tree up to date: a log cached before the tree existed gets it the
    way a server's first open gives it (EventStore.create_schema catches the tree up)."""
    t = time.perf_counter()
    store = EventStore(f"sqlite:///{db}")
    try:
        store.create_schema()
    finally:
        store.dispose()
    if time.perf_counter() - t > 1:
        log(f"  built the Merkle tree of {db.parent.name} in {time.perf_counter() - t:.1f}s")
    return db


def activity_log(n_events: int, log: Callable[[str], None] = print) -> Path:
    return cached(
        f"activity-{n_events}",
        lambda d: append_all(d / "ledger.db", activity_timeline(n_events)),
        log,
    )


def sessions_log(n_sessions: int, log: Callable[[str], None] = print) -> Path:
    """The sessions log (views: `views_for`)."""
    return cached(
        f"sessions-{n_sessions}",
        lambda d: append_all(d / "ledger.db", sessions_timeline(n_sessions)),
        log,
    )


VIEWS_VERSION = 7  # bumped when the view tables change shape


def views_for(db: Path, log: Callable[[str], None] = print) -> Path:
    """The views of `db`, built once by `ledger replay rebuild`'s code path and cached beside
    it (older versions removed)."""
    final = db.parent / f"ledger-views-v{VIEWS_VERSION}.db"
    if final.exists():
        return final
    for old in db.parent.glob("ledger-views*"):
        old.unlink()
    tmp = db.parent / ".views.tmp.db"
    t = time.perf_counter()
    build_views(db, tmp)
    tmp.rename(final)
    log(f"  built views for {db.parent.name} in {time.perf_counter() - t:.1f}s")
    return final


def build_views(db: Path, views: Path) -> int:
    from replay.asof import scratch_engine
    from replay.rebuild import rebuild

    store = EventStore(f"sqlite:///{db}")
    engine = scratch_engine(str(views))
    try:
        return rebuild(store, engine, progress=False).position
    finally:
        engine.dispose()
        store.dispose()
        checkpoint(views)


def checkpoint(db: Path) -> None:
    """Fold the WAL into the database file, so a reader sees one plain file."""
    conn = sqlite3.connect(str(db))
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
