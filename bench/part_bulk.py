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
from bench.server import Server, ledger_server, ndjson, post_batch


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
        p0 = srv.position()
        wall = post_all(srv, bodies)
        rise = srv.position() - p0
    payload_avg = float(scalar(db, "SELECT avg(length(payload)) FROM events") or 0)
    eps = rise / wall
    say(
        f"  ledger: {rise} events in {wall:.2f}s = {eps:,.0f} events/s"
        f" (avg payload {payload_avg:.0f} B)"
    )
    res.update(events=rise, seconds=wall, eps=eps, payload_bytes=payload_avg)
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
