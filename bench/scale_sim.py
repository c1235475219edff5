"""The growth simulation of docs/scaling.md: a PostgreSQL ledger grown through the batch API
of `ledger serve --workers 2` to each of the given sizes (default 1M, 3M and 10M events),
and at each size, with ingest paused:

- the append rate of the stretch just grown (events/s, client wall time);
- how long the views took to reach the head once ingest stopped (catch-up);
- list, detail, count and stats p95, from the server's own Server-Timing, with raw psycopg's
  point read of one event by (stream_id, version) beside them as the same-run baseline;
- the RSS of every ledger process and PostgreSQL's, and the size of `events` (with its
  indexes) and of the whole database.

`python -m bench.scale_sim [--sizes N ...] [--json PATH]`; the cluster is a throwaway one
(bench.pgcluster, durable, PostgreSQL's defaults). The workload: each of two clients keeps
1,000 sessions of its own alive at once, each session a start, 20 to 180 keepalives (now
and then hidden) on 90 paths, a status and a stop, and a new session in place of each one
stopped. 10M events are about 100,000 sessions.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
from sqlalchemy.engine import make_url

from bench.figures import say
from bench.part_queries import pct, timed_get
from bench.pgcluster import PgCluster, find_bindir
from bench.server import Server, ledger_server, ndjson, post_batch, proc_mem_mb

SIZES = (1_000_000, 3_000_000, 10_000_000)
CLIENTS = 2
ACTIVE = 1000  # sessions alive at once, per client
LINES = 5000  # lines per body
QUERIES = 200  # requests per kind at each size
PAGES = ("", "detail", "logs", "settings", "reports", "help", "tests", "compare", "history")
STATUSES = ("passed", "passed", "passed", "failed", "error")
# Server-Timing on; no session lapses while the simulation picks others to keep alive.
ENV = {"LEDGER_SERVER_TIMING": "1", "LEDGER_SESSION_TIMEOUT": "1e12"}


def workload(client: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """One client's endless stream of batch lines over its own sessions."""
    rng = random.Random(seed * 100 + client)
    made = 0
    left: dict[str, int] = {}

    def start() -> dict[str, Any]:
        nonlocal made
        sid = f"c{client}-{made}"
        made += 1
        left[sid] = rng.randint(20, 180)
        return {
            "command": "start",
            "session_id": sid,
            "project": f"project-{made % 20}",
            "user": f"user-{rng.randrange(200)}",
            "build": f"build-{made // 500}",
            "type": rng.choice(("e2e", "api", "manual")),
            "tags": {"suite": rng.choice(("nightly", "smoke", "full"))},
        }

    while len(left) < ACTIVE:
        yield start()
    while True:
        sid = rng.choice(tuple(left))
        left[sid] -= 1
        if left[sid] > 0:
            hidden = rng.random() < 0.05
            yield {
                "command": "hide" if hidden else "keepalive",
                "session_id": sid,
                "path": f"/projects/p{rng.randrange(10)}/runs/{rng.choice(PAGES)}",
            }
            continue
        del left[sid]
        yield {"command": "status", "session_id": sid, "status": rng.choice(STATUSES)}
        yield {"command": "stop", "session_id": sid}
        yield start()


class Grower:
    """The clients' line streams, cut into bodies; `grow(srv, n)` posts until `n` lines more
    are in (each client its own sessions, so its bodies only need to be in order)."""

    def __init__(self) -> None:
        self.streams = [workload(k) for k in range(CLIENTS)]

    def grow(self, srv: Server, lines: int) -> float:
        share = [lines // CLIENTS + (k < lines % CLIENTS) for k in range(CLIENTS)]
        errors: list[BaseException] = []

        def client(k: int) -> None:
            c = srv.conn(timeout=600)
            try:
                todo = share[k]
                while todo > 0 and not errors:
                    n = min(LINES, todo)
                    post_batch(c, ndjson([next(self.streams[k]) for _ in range(n)]))
                    todo -= n
            except BaseException as exc:
                errors.append(exc)
            finally:
                c.close()

        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return time.perf_counter() - t0


def query_paths(rng: random.Random, sessions: int) -> dict[str, list[str]]:
    per = max(1, sessions // CLIENTS)
    return {
        "list": [
            "/v1/sessions?limit=50",
            "/v1/sessions?status=failed&limit=50",
            f"/v1/sessions?project=project-{rng.randrange(20)}&sort=duration&limit=50",
            f"/v1/sessions?user=user-{rng.randrange(200)}&sort=last_seen_at&limit=50",
            "/v1/sessions?active=true&limit=50",
            "/v1/sessions?tag=suite:nightly&limit=50&offset=500",
        ],
        "detail": [
            f"/v1/sessions/c{rng.randrange(CLIENTS)}-{rng.randrange(per)}" for _ in range(50)
        ],
        "count": [
            "/v1/sessions/count",
            "/v1/sessions/count?status=failed",
            f"/v1/sessions/count?project=project-{rng.randrange(20)}",
        ],
        "stats": ["/v1/stats?by=status", "/v1/stats?by=project", "/v1/stats?by=day"],
    }


def measure_queries(srv: Server, sessions: int) -> dict[str, dict[str, float]]:
    rng = random.Random(5)
    out: dict[str, dict[str, float]] = {}
    c = srv.conn()
    try:
        for kind, paths in query_paths(rng, sessions).items():
            for p in paths:  # once each first: a cold page is not what p95 should show
                timed_get(c, p)
            by_path: dict[str, list[float]] = {}
            for i in range(QUERIES):
                p = paths[i % len(paths)]
                by_path.setdefault(p, []).append(timed_get(c, p))
            ms = [x for xs in by_path.values() for x in xs]
            out[kind] = {"p50_ms": pct(ms, 0.5), "p95_ms": pct(ms, 0.95)}
            if kind != "detail":  # which question is slow, when one is
                worst = max(by_path, key=lambda p: pct(by_path[p], 0.95))
                out[kind]["slowest"] = {"path": worst, "p95_ms": pct(by_path[worst], 0.95)}
    finally:
        c.close()
    return out


def raw_point_reads(dsn: str, head_streams: list[str]) -> float:
    """p95 ms of raw psycopg reading one event by (stream_id, version), the same run's floor."""
    ms: list[float] = []
    with psycopg.connect(dsn) as conn:
        for i in range(QUERIES):
            t0 = time.perf_counter()
            conn.execute(
                "SELECT payload FROM events WHERE stream_id = %s AND version = 1",
                (head_streams[i % len(head_streams)],),
            ).fetchall()
            ms.append((time.perf_counter() - t0) * 1000)
    return pct(ms, 0.95)


def sizes_of(dsn: str) -> dict[str, float]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT pg_total_relation_size('events'), pg_relation_size('events'), "
            "pg_database_size(current_database())"
        ).fetchone()
    assert row is not None
    return {
        "events_total_mb": row[0] / 2**20,
        "events_heap_mb": row[1] / 2**20,
        "database_mb": row[2] / 2**20,
    }


def rss(srv: Server, cluster: PgCluster) -> dict[str, float]:
    """RSS in MB: the largest ledger process, all of them, and PostgreSQL's processes (their
    sum counts shared buffers once per process that touched them: an upper bound)."""
    ledger = [proc_mem_mb(p).get("VmRSS", 0.0) for p in [srv.proc.pid, *srv.descendants()]]
    pg = [proc_mem_mb(p).get("VmRSS", 0.0) for p in cluster.pids()]
    return {"ledger_max_mb": max(ledger), "ledger_sum_mb": sum(ledger), "postgres_sum_mb": sum(pg)}


def catch_up(srv: Server) -> float:
    t0 = time.perf_counter()
    srv.wait_views(timeout=3600)
    return time.perf_counter() - t0


def run(sizes: tuple[int, ...], work: Path) -> list[dict[str, Any]]:
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
    cluster = PgCluster(bindir, durable=True).start()
    rows: list[dict[str, Any]] = []
    try:
        url = cluster.create_database("scale")
        dsn = cluster.dsn(str(make_url(url).database))
        grower = Grower()
        with ledger_server(work, url, ENV, serve_args=("--workers", "2")) as srv:
            have = srv.position()
            for size in sizes:
                say(f"  growing {have:,} -> {size:,} events")
                wall = grower.grow(srv, size - have)
                head = srv.position()
                row: dict[str, Any] = {"events": head, "append_eps": (head - have) / wall}
                have = head
                row["catch_up_s"] = catch_up(srv)
                sessions = int(srv.get_json("/v1/sessions/count")["total"])
                row["sessions"] = sessions
                row["queries"] = measure_queries(srv, sessions)
                row["raw_point_read_p95_ms"] = raw_point_reads(dsn, ["c0-1", "c1-2", "c0-3"])
                row["rss"] = rss(srv, cluster)
                row["sizes"] = sizes_of(dsn)
                say("  " + orjson.dumps(row).decode())
                rows.append(row)
    finally:
        cluster.stop()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| events | sessions | append ev/s | catch-up s | list p95 | detail p95 | count p95 "
        "| stats p95 | raw point read p95 | ledger RSS max / sum MB | events table MB |"
    )
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
        q = r["queries"]
        lines.append(
            f"| {r['events']:,} | {r['sessions']:,} | {r['append_eps']:,.0f} "
            f"| {r['catch_up_s']:.1f} | {q['list']['p95_ms']:.1f} ms "
            f"| {q['detail']['p95_ms']:.1f} ms | {q['count']['p95_ms']:.1f} ms "
            f"| {q['stats']['p95_ms']:.1f} ms | {r['raw_point_read_p95_ms']:.2f} ms "
            f"| {r['rss']['ledger_max_mb']:.0f} / {r['rss']['ledger_sum_mb']:.0f} "
            f"| {r['sizes']['events_total_mb']:,.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.scale_sim", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--sizes", nargs="+", type=int, default=list(SIZES), help="event counts")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    ap.add_argument("--work", metavar="DIR", default="/tmp/scale-sim", help="blobs and logs")
    a = ap.parse_args(argv)
    sizes = tuple(sorted(a.sizes))
    if not sizes or sizes[0] <= 0:
        ap.error("sizes must be positive")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = run(sizes, work)
    say("\n" + table(rows) + f"\n({time.perf_counter() - t0:.0f}s)")
    if a.json:
        Path(a.json).write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
