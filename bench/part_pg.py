"""Part 7 of the service benchmark, the PostgreSQL scale-out (issue #19), on a throwaway
cluster of its own on loopback (bench.pgcluster) with PostgreSQL's default settings, and
`ledger serve --workers 2` (two API processes and one `ledger project` child) on it:

1. HTTP keepalive ingest against the eventsourcing library's PostgreSQL recorder, one save
   per event (measured before and after), with the same server's POST /noop beside it;
2. bulk ingest through POST /v1/events:batch against raw psycopg COPY of as many rows into a
   table shaped like `events` (before and after);
3. the projection catch-up of a `ledger project` started on a backlog (the activity log,
   copied in by `ledger replay copy --no-views`) with empty views, then a `ledger replay
   rebuild` of the same views, each against raw SELECT + orjson of the same table (before
   and after).

Without PostgreSQL server binaries the part says so and adds no figure."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bench import seed
from bench.baseline_library import postgres_env
from bench.baseline_pg import measure_raw_copy, measure_raw_select_pg
from bench.figures import Figures, say
from bench.part_bulk import bulk_bodies, post_all
from bench.part_keepalive import (
    durable_rate,
    measure_library,
    noop_keepalive_noop,
    start_sessions,
)
from bench.pgcluster import PgCluster, find_bindir
from bench.procs import ROOT, stop
from bench.server import ledger_cli, ledger_server

SERVE = ("--workers", "2")
PG_STEPS = ("keepalive", "bulk", "catch_up")
# Reported with the figures: what the cluster ran with (all PostgreSQL's defaults).
SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "shared_buffers",
    "max_connections",
    "work_mem",
)


def bench_pg(cfg: dict[str, Any], figs: Figures, work: Path) -> dict[str, Any]:
    say("\n[7] PostgreSQL scale-out: ledger serve --workers 2 on a loopback cluster")
    bindir = find_bindir()
    if bindir is None:
        say("  no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): part skipped")
        return {"skipped": "no PostgreSQL server binaries"}
    cluster = PgCluster(bindir, durable=True).start()
    try:
        settings = cluster.show(*SETTINGS)
        say("  cluster settings (defaults): " + ", ".join(f"{k}={v}" for k, v in settings.items()))
        res: dict[str, Any] = {"settings": settings}
        steps = {"keepalive": _keepalive, "bulk": _bulk, "catch_up": _catch_up}
        for name in cfg.get("pg_steps", PG_STEPS):
            res[name] = steps[name](cluster, cfg, figs, work)
        return res
    finally:
        cluster.stop()


def _database(cluster: PgCluster, prefix: str) -> tuple[str, str]:
    """A fresh database: its SQLAlchemy URL and its libpq DSN."""
    url = cluster.create_database(prefix)
    return url, cluster.dsn(str(make_url(url).database))


def _keepalive(
    cluster: PgCluster, cfg: dict[str, Any], figs: Figures, work: Path
) -> dict[str, Any]:
    n, secs = cfg["http_sessions"], cfg["http_s"]
    es_db = str(make_url(cluster.create_database("es")).database)
    es_env = postgres_env("127.0.0.1", cluster.port, es_db, "postgres")
    # The library's rate brackets the HTTP runs, as in part 1.
    es_before = measure_library(cfg, es_env)
    url, _ = _database(cluster, "keepalive")
    with ledger_server(work, url, serve_args=SERVE) as srv:
        start_sessions(srv, n)
        runs = noop_keepalive_noop(srv, cfg, n, secs)
    es_after = measure_library(cfg, es_env)
    ka = runs["keepalive"]
    acked, durable = durable_rate(ka)
    noop = (runs["noop1"]["rps"] + runs["noop2"]["rps"]) / 2
    es = (es_before["rate"] + es_after["rate"]) / 2
    detail = (
        f"errors={ka['errors']} rps={ka['rps']:,.0f} p99={ka['p99_ms']:.1f}ms, views caught up "
        f"{ka['views_behind_s']:.1f}s after"
    )
    figs.add(
        "pg_keepalive_vs_eventsourcing",
        durable,
        "ev/s",
        es,
        "es lib on PostgreSQL ev/s, mean of before and after",
        3.0,
        detail=f"{detail}; library before {es_before['rate']:,.0f}, after "
        f"{es_after['rate']:,.0f} ev/s",
    )
    figs.add("pg_keepalive_vs_noop", durable, "ev/s", noop, "noop rps", None, detail=detail)
    return {
        "runs": runs,
        "acked": acked,
        "durable_eps": durable,
        "noop_rps": noop,
        "eventsourcing": {"rate": es, "before": es_before, "after": es_after},
    }


def _bulk(cluster: PgCluster, cfg: dict[str, Any], figs: Figures, work: Path) -> dict[str, Any]:
    total, per = cfg["bulk_events"], cfg["bulk_lines"]
    say(f"  bulk: {total:,} events through POST /v1/events:batch, bodies of {per} lines")
    bodies = bulk_bodies(total, per)
    _, copy_dsn = _database(cluster, "copy")

    def raw() -> dict[str, Any]:
        r = measure_raw_copy(copy_dsn, total, per)
        say(f"  raw psycopg COPY, {per} rows a commit: {r['rate']:,.0f} rows/s ({r['rows']} rows)")
        return r

    before = raw()
    url, dsn = _database(cluster, "bulk")
    with ledger_server(work, url, serve_args=SERVE) as srv:
        p0 = srv.position()
        wall = post_all(srv, bodies)
        rise = srv.position() - p0
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT avg(octet_length(payload)) FROM events").fetchone()
    payload = float(row[0]) if row and row[0] is not None else 0.0
    eps = rise / wall
    say(f"  ledger: {rise} events in {wall:.2f}s = {eps:,.0f} events/s (payload ~{payload:.0f} B)")
    after = raw()
    copy = (before["rate"] + after["rate"]) / 2
    figs.add(
        "pg_bulk_vs_copy",
        eps,
        "ev/s",
        copy,
        "psycopg COPY rows/s, mean of before and after",
        0.6,
        detail=f"{rise} events, bodies of {per} lines, payload ~{payload:.0f} B (COPY's "
        f"~{before['payload_bytes']:.0f} B); COPY before {before['rate']:,.0f}, after "
        f"{after['rate']:,.0f} rows/s",
    )
    res = {"events": rise, "seconds": wall, "eps": eps, "payload_bytes": payload}
    return {**res, "copy": {"rate": copy, "before": before, "after": after}}


def _catch_up(cluster: PgCluster, cfg: dict[str, Any], figs: Figures, work: Path) -> dict[str, Any]:
    """`ledger project` on the backlog with empty views, then `ledger replay rebuild` of the
    same views, each between two raw scans (three in all, the middle one shared)."""
    n = cfg["log_events"]
    say(f"  catch-up: `ledger project` on a backlog of {n:,} events, views empty")
    url, dsn = _database(cluster, "backlog")
    head = _copy_backlog(seed.activity_log(n, log=say), url, dsn, work)

    def raw() -> float:
        r = measure_raw_select_pg(dsn, "orjson", duration_s=cfg["select_s"])
        say(f"  raw SELECT + orjson (psycopg, server-side cursor): {r['rate']:,.0f} rows/s")
        return float(r["rate"])

    scans = [raw()]
    run = _project_until(url, dsn, head, work)
    eps = head / run["wall_s"]
    say(
        f"  ledger project: {head:,} events in {run['wall_s']:.1f}s = {eps:,.0f} events/s"
        f" (first batch committed {run['first_s']:.1f}s after the start)"
    )
    scans.append(raw())
    rebuild_s = _rebuild(url, work)
    say(f"  ledger replay rebuild: {rebuild_s:.1f}s = {head / rebuild_s:,.0f} events/s")
    scans.append(raw())
    for name, rate, pair, what in (
        ("pg_catch_up_vs_select", eps, scans[:2], "ledger project from its start"),
        ("pg_rebuild_vs_select", head / rebuild_s, scans[1:], "whole ledger replay rebuild run"),
    ):
        figs.add(
            name,
            rate,
            "ev/s",
            sum(pair) / 2,
            "SELECT+orjson rows/s, mean of before and after",
            0.3,
            detail=f"{head:,} events, {what}; SELECT+orjson before {pair[0]:,.0f}, after "
            f"{pair[1]:,.0f} rows/s",
        )
    return {"events": head, "eps": eps, **run, "rebuild_s": rebuild_s, "select": scans}


def _rebuild(url: str, work: Path) -> float:
    """The seconds of a whole `ledger replay rebuild` run on `url` (views swapped in)."""
    t0 = time.perf_counter()
    cmd = ledger_cli("replay", "rebuild", "--quiet")
    out = subprocess.run(cmd, cwd=ROOT, env=_env(url, work), capture_output=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"ledger replay rebuild failed:\n{out.stderr[-3000:]!r}")
    return time.perf_counter() - t0


def _env(url: str, work: Path, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "LEDGER_DATABASE_URL": url,
        "LEDGER_BLOB_DIR": str(work / "blobs"),
        "PYTHONPATH": str(ROOT),
        **more,
    }


def _copy_backlog(src: Path, url: str, dsn: str, work: Path) -> int:
    """The SQLite activity log copied into `url` as `ledger replay copy --no-views` does it
    (events, tree, keys; no views); returns the head position."""
    env = _env(f"sqlite:///{src}", work, LEDGER_VIEWS_URL=f"sqlite:///{work / 'src-views.db'}")
    t0 = time.perf_counter()
    cmd = ledger_cli("replay", "copy", "--to", url, "--no-views")
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"ledger replay copy failed:\n{out.stderr[-3000:]}")
    with psycopg.connect(dsn) as c:
        row = c.execute("SELECT max(position) FROM events").fetchone()
    head = int(row[0]) if row and row[0] is not None else 0
    say(f"  copied {head:,} events into PostgreSQL in {time.perf_counter() - t0:.1f}s")
    return head


def _project_until(url: str, dsn: str, head: int, work: Path) -> dict[str, Any]:
    """Start `ledger project` on `url` and time it until every view tracks `head`."""
    log = (work / "project.log").open("wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ledger_cli("project"), cwd=ROOT, env=_env(url, work), stdout=log, stderr=log
    )
    first = None
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while True:
                position = _tracked(conn)
                now = time.perf_counter()
                if first is None and position > 0:
                    first = now - t0
                if position >= head:
                    break
                if proc.poll() is not None:
                    raise RuntimeError((work / "project.log").read_text()[-3000:])
                time.sleep(0.05)
        wall = time.perf_counter() - t0
    finally:
        stop(proc, 30)
        log.close()
    return {"wall_s": wall, "first_s": first or wall}


def _tracked(conn: psycopg.Connection[Any]) -> int:
    """The views' committed position: the least of their tracking rows (0 before any)."""
    try:
        row = conn.execute("SELECT min(position), count(*) FROM view_tracking").fetchone()
    except psycopg.errors.UndefinedTable:
        return 0
    return int(row[0]) if row and row[1] else 0
