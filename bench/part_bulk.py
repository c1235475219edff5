"""Part 2 of the service benchmark: bulk ingest through POST /v1/events:batch (two keep-alive
client threads) against raw sqlite3 executemany at synchronous FULL (measured before and
after) and NORMAL."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

from bench.baseline_sqlite import measure_raw_sqlite_executemany
from bench.event_rows import scalar
from bench.figures import Figures, say
from bench.server import Server, cpu_seconds, ledger_server, ndjson, post_batch


def bulk_bodies(total: int, per_body: int, streams: int = 1000) -> list[bytes]:
    """`streams` starts, then keepalives round-robin; paths make payloads ~120 bytes like the
    baseline's rows."""
    rng = random.Random(3)
    lines: list[dict[str, Any]] = [
        {"command": "start", "session_id": f"b-{i}", "project": f"p{i % 10}"}
        for i in range(min(streams, total))
    ]
    i = 0
    while len(lines) < total:
        lines.append(
            {
                "command": "keepalive",
                "session_id": f"b-{i % streams}",
                "visible": True,
                "path": f"/projects/p{i % 10}/runs/r-{rng.randrange(10**6):06d}/tests/"
                f"test_case_{rng.randrange(10**4):04d}?tab=logs&page={i % 7}",
            }
        )
        i += 1
    return [ndjson(lines[k : k + per_body]) for k in range(0, total, per_body)]


def bench_bulk(cfg: dict[str, Any], figs: Figures, work: Path) -> dict[str, Any]:
    say("\n[2] bulk ingest through POST /v1/events:batch (2 keep-alive client threads)")
    total, per = cfg["bulk_events"], cfg["bulk_lines"]
    bodies = bulk_bodies(total, per)
    res: dict[str, Any] = {}

    def raw(sync: str) -> dict[str, Any]:
        r = measure_raw_sqlite_executemany(
            total, per, synchronous=sync, max_duration_s=120, db_dir=str(work)
        )
        say(f"  raw sqlite3 executemany sync={sync}: {r['rate']:,.0f} rows/s ({r['rows']} rows)")
        return r

    # The FULL baseline brackets the ledger's run, as the no-op brackets the keepalive one:
    # this machine's speed drifts within a minute, and one side measured alone would carry it.
    full_before = raw("FULL")
    db = work / "bulk.db"
    with ledger_server(work, db) as srv:
        pids = [srv.proc.pid, *srv.descendants()]
        p0, cpu0 = srv.position(), [cpu_seconds(pid) for pid in pids]
        wall = post_all(srv, bodies)
        rise, cpu1 = srv.position() - p0, [cpu_seconds(pid) for pid in pids]
    payload_avg = float(scalar(db, "SELECT avg(length(payload)) FROM events") or 0)
    eps = rise / wall
    server_cpu, others_cpu = cpu1[0] - cpu0[0], sum(cpu1[1:]) - sum(cpu0[1:])
    say(
        f"  ledger: {rise} events in {wall:.2f}s = {eps:,.0f} events/s"
        f" (avg payload {payload_avg:.0f} B)"
    )
    # Steadier than the rate on a shared machine: the CPU the API process spent per event.
    say(
        f"  API process: {server_cpu / rise * 1e6:.1f} us of CPU per event"
        f" ({server_cpu / wall:.2f} cores); projection worker: {others_cpu / wall:.2f} cores"
    )
    res.update(events=rise, seconds=wall, eps=eps, payload_bytes=payload_avg)
    res.update(server_cpu_us=server_cpu / rise * 1e6, worker_cores=others_cpu / wall)
    full_after = raw("FULL")
    res["sqlite_full"] = {
        **full_after,
        "rate": (full_before["rate"] + full_after["rate"]) / 2,
        "before": full_before,
        "after": full_after,
    }
    res["sqlite_normal"] = raw("NORMAL")
    d = (
        f"{rise} events, bodies of {per} lines, payload ~{payload_avg:.0f} B; FULL before "
        f"{full_before['rate']:,.0f}, after {full_after['rate']:,.0f} rows/s"
    )
    _add_figures(figs, eps, res, d)
    return res


def post_all(srv: Server, bodies: list[bytes]) -> float:
    """Post every body, the first alone and the rest from two threads; the wall time."""
    todo = list(reversed(bodies))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client() -> None:
        c = srv.conn(timeout=300)
        try:
            while True:
                with lock:
                    if not todo or errors:
                        return
                    body = todo.pop()
                post_batch(c, body)
        except BaseException as exc:
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=client) for _ in range(2)]
    t0 = time.perf_counter()
    # The first body starts the sessions the others keep alive: it lands before them.
    first = srv.conn(timeout=300)
    post_batch(first, todo.pop())
    first.close()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return wall


def _add_figures(figs: Figures, eps: float, res: dict[str, Any], detail: str) -> None:
    figs.add(
        "bulk_vs_sqlite_full",
        eps,
        "ev/s",
        res["sqlite_full"]["rate"],
        "sqlite FULL rows/s, mean of before and after",
        0.5,
        detail=detail,
    )
    figs.add(
        "bulk_vs_sqlite_normal",
        eps,
        "ev/s",
        res["sqlite_normal"]["rate"],
        "sqlite NORMAL rows/s",
        None,
        detail=detail,
    )
