"""Several projection workers on one views database apply each event once: while commands
are appended, three workers (threads, and on PostgreSQL `ledger project` processes too) race
for the same batches, and afterwards every view reads exactly as a rebuild from zero."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from domain import commands as c
from persistence.ledger import Ledger
from persistence.store import EventStore
from projections import queries as qs
from projections.runner import ProjectionRunner
from tests.pg import PgCluster
from tests.test_views_property import StepClock, dump
from tests.workers import start_project_process

SESSIONS = [f"s{i:03d}" for i in range(40)]
STATUSES = ["passed", "failed", "completed", "error", "cancelled"]


def random_commands(rng: random.Random, n: int) -> list[c.Command]:
    """A busy mix: starts, keepalives, hides, status moves, results, detail changes, stops
    (some refused by the rules: a refused command appends nothing, which is fine here)."""
    out: list[c.Command] = [
        c.StartSession(session_id=s, project=f"p{i % 3}", user=f"u{i % 4}", tags={"k": f"{i % 2}"})
        for i, s in enumerate(SESSIONS[:10])
    ]
    for _ in range(n - len(out)):
        sid = rng.choice(SESSIONS)
        kind = rng.randrange(10)
        if kind == 0:
            out.append(c.StartSession(session_id=sid, project=f"p{rng.randrange(3)}"))
        elif kind <= 3:
            out.append(c.KeepAlive(session_id=sid, visible=rng.random() < 0.7, path="/a"))
        elif kind == 4:
            out.append(c.Hide(session_id=sid, path="/a"))
        elif kind == 5:
            out.append(c.ChangeStatus(session_id=sid, status=rng.choice(STATUSES)))
        elif kind == 6:
            out.append(c.RecordResult(session_id=sid, status=rng.choice(["passed", "failed"])))
        elif kind == 7:
            out.append(c.UpdateDetails(session_id=sid, changes={"tags": {"k": str(kind)}}))
        else:
            out.append(c.StopSession(session_id=sid))
    return out


def append_while_running(store: EventStore, n: int) -> int:
    """Append `n` commands in small groups (each its own commit, so the workers see the log
    grow under them); returns the head position."""
    # Quarter-second steps: binary-exact times, so the live and rebuilt sums agree exactly.
    clock, rng = StepClock(), random.Random(7)
    ledger = Ledger(store, clock)
    cmds = random_commands(rng, n)
    i = 0
    while i < len(cmds):
        k = rng.randint(1, 6)
        ledger.execute_many(cmds[i : i + k])
        clock.now += rng.randint(0, 120) / 4
        i += k
        if rng.random() < 0.2:
            time.sleep(0.002)  # let a worker's batch end mid-stream
    return store.head_digest()[0]


def raw_sums(runner: ProjectionRunner) -> dict[str, Any]:
    """The count and stats rows themselves (what a double-applied batch inflates)."""
    t = runner.tables
    with runner.engine.connect() as conn:
        counts = conn.execute(
            text(f"SELECT dim, value, status, n FROM {t.counts.name} WHERE n <> 0 ORDER BY 1,2,3")
        ).all()
        cells = conn.execute(
            text(
                f"SELECT dim, value, day, status, n, ended, duration_sum FROM {t.cells.name} "
                "WHERE n <> 0 OR ended <> 0 ORDER BY 1,2,3,4"
            )
        ).all()
    # Durations are kept to the microsecond; a sum of them added in another order (the live
    # worker's batches, the rebuild's) differs in its last bits, so it is compared to the
    # microsecond. A double-applied duration moves it by far more.
    return {
        "counts": [tuple(r) for r in counts],
        "cells": [(*r[:-1], round(r[-1], 6)) for r in cells],
    }


def active_now(runner: ProjectionRunner) -> int:
    with runner.engine.connect() as conn:
        return qs.count_sessions(conn, runner.tables, qs.SessionFilter(active=True))["total"]


def rebuilt_from_zero(store: EventStore, url: str) -> ProjectionRunner:
    fresh = ProjectionRunner.for_url(store, url)
    fresh.create_schema()
    fresh.load()
    return fresh


def assert_views_match_rebuild(live: ProjectionRunner, rebuilt: ProjectionRunner) -> None:
    assert live.read_position() == rebuilt.read_position()
    assert active_now(live) == active_now(rebuilt)
    assert raw_sums(live) == raw_sums(rebuilt)
    assert dump(live) == dump(rebuilt)


def run_workers(store: EventStore, views_url: str, n: int) -> tuple[int, list[ProjectionRunner]]:
    workers = [ProjectionRunner.for_url(store, views_url, batch_size=5) for _ in range(3)]
    for w in workers:
        w.create_schema()
        w.start(poll_interval=0.001)
    try:
        head = append_while_running(store, n)
        for w in workers:
            assert w.wait_for(head, timeout=60), w.last_error
    finally:
        for w in workers:
            w.close()
    return head, workers


def test_three_worker_threads_on_sqlite_apply_each_event_once(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path}/log.db")
    store.create_schema()
    head, workers = run_workers(store, f"sqlite:///{tmp_path}/views.db", 900)
    rebuilt = rebuilt_from_zero(store, f"sqlite:///{tmp_path}/rebuilt.db")
    assert rebuilt.read_position() == head
    assert_views_match_rebuild(workers[0], rebuilt)
    for r in (*workers, rebuilt):
        r.engine.dispose()
    store.dispose()


def test_workers_and_ledger_project_processes_on_postgres_apply_each_event_once(
    pg: PgCluster, tmp_path: Path
) -> None:
    url = pg.create_database("once")
    store = EventStore(url)
    store.create_schema()
    ProjectionRunner.for_url(store, url).create_schema()
    procs = [start_project_process(url, tmp_path / f"worker{i}.log") for i in range(2)]
    try:
        head, workers = run_workers(store, url, 900)
        deadline = time.monotonic() + 60
        while workers[0].read_position() < head and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=20)
    rebuilt = rebuilt_from_zero(store, f"sqlite:///{tmp_path}/rebuilt.db")
    assert rebuilt.read_position() == head
    assert_views_match_rebuild(workers[0], rebuilt)
    for r in (*workers, rebuilt):
        r.engine.dispose()
    store.dispose()
