"""The baselines of Session Ledger's performance targets, and `python -m bench.baselines`,
which measures them alone.

Every target is reported as a *ratio* to a baseline measured in the same run on the same
machine (2 shared, noisy cores), so a slow or busy machine moves both sides together.
Run `python -m bench.baselines` (full, ~1-2 min) or `python -m bench.baselines --smoke`
(tiny sizes, < 20 s). `--json PATH` also writes the results; `--only NAME ...` picks some.

The baselines
-------------

``noop_http`` (`bench.baseline_noop`) -- requests/s of the thinnest server we could ship.
    A uvicorn process (127.0.0.1, free port, 1 worker, ``--loop uvloop --http httptools
    --log-level warning --no-access-log``) serves a FastAPI app with one ``async def
    POST /noop`` that ignores its body and returns ``{"ok": true}`` (`bench.noop_app`).
    A separate load process drives it (`bench.load`): ``wrk`` (1 thread, 64 keep-alive
    connections, a Lua script from `bench.lua` that POSTs a small JSON body) or, if ``wrk``
    is absent, `bench.pyload` (raw asyncio protocols, HTTP/1.1 keep-alive, 64 connections).
    A short warm-up run is discarded.
    The server's keepalive endpoint is compared against this: ratio = service rps / noop rps.

``raw_sqlite_executemany`` (`bench.baseline_sqlite`) -- rows/s stdlib ``sqlite3`` can append.
    A temp-file DB in WAL mode with ``synchronous=NORMAL`` and the ledger's ``events`` table
    (INTEGER PRIMARY KEY position, UNIQUE(stream_id, version)); realistic rows (~120-byte
    orjson payload, 32-byte sha256 chain hash, 1000 streams; `bench.event_rows`);
    ``executemany`` of ``batch`` rows, ``BEGIN``/``COMMIT`` per batch. Only executemany +
    commit is timed (rows are built between timed sections). This is the ceiling for the
    store's append path. It is for a fixed row count into an empty table (default 300 000):
    the rate falls as the table grows, because each batch dirties about one unique-index page
    per stream it touches and every commit writes them to the WAL. Note the service itself
    runs ``synchronous=FULL``.

``eventsourcing_lib`` (`bench.baseline_library`) -- events/s of the `eventsourcing`
library's one-save-per-event path.
    ``eventsourcing.application.Application`` with ``PERSISTENCE_MODULE=eventsourcing.sqlite``
    and ``SQLITE_DBNAME`` a temp file (the library turns on WAL; synchronous stays at SQLite's
    default FULL); one aggregate with an ``@event`` method ``keep_alive(path)``; loop: call it,
    ``app.save(agg)``. This is the "just use the library" alternative the ledger must beat.

``raw_select_fetch`` / ``raw_select_orjson`` / ``raw_select_sha256`` (`bench.baseline_sqlite`)
-- rows/s of a replay.
    ``SELECT`` all columns of every row in position order (``fetchmany`` chunks of 10 000),
    doing nothing (fetch), ``orjson.loads`` of each payload (orjson), or recomputing the
    hash chain ``sha256(prev_hash + orjson([position, stream_id, version, type,
    schema_version, recorded_at]) + payload)`` and comparing with the stored hash (sha256) --
    ``persistence.store.chain_hash`` inlined in the loop, as ``verify`` inlines it. These are
    the ceilings for replay and ``verify``. The DB comes from `bench.event_rows.make_event_db`;
    scans repeat until the time budget is spent and report the median pass.

All rates use ``time.perf_counter`` and each measurement is bounded in time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.baseline_library import measure_eventsourcing_lib
from bench.baseline_noop import measure_noop_http
from bench.baseline_sqlite import measure_raw_select, measure_raw_sqlite_executemany
from bench.event_rows import make_event_db

FULL = {
    "http_s": 15.0,
    "warmup_s": 2.0,
    "sqlite_rows": 300_000,
    "sqlite_s": 30.0,
    "es_events": 20_000,
    "es_s": 20.0,
    "select_rows": 1_000_000,
    "select_s": 10.0,
}
SMOKE = {
    "http_s": 2.0,
    "warmup_s": 1.0,
    "sqlite_rows": 20_000,
    "sqlite_s": 5.0,
    "es_events": 500,
    "es_s": 2.0,
    "select_rows": 50_000,
    "select_s": 1.0,
}
NAMES = (
    "noop_http",
    "raw_sqlite_executemany",
    "eventsourcing_lib",
    "raw_select_fetch",
    "raw_select_orjson",
    "raw_select_sha256",
)


def run_baselines(
    smoke: bool = False, only: Sequence[str] | None = None, connections: int = 64
) -> dict[str, dict[str, Any]]:
    """Run the chosen baselines; {name: {"rate", "unit", "detail"...}}."""
    cfg = SMOKE if smoke else FULL
    names = list(only or NAMES)
    res: dict[str, dict[str, Any]] = {}
    if "noop_http" in names:
        res["noop_http"] = _noop_http(cfg, connections)
    if "raw_sqlite_executemany" in names:
        res["raw_sqlite_executemany"] = _raw_sqlite_executemany(cfg)
    if "eventsourcing_lib" in names:
        res["eventsourcing_lib"] = _eventsourcing_lib(cfg)
    scans = [n for n in names if n.startswith("raw_select_")]
    if scans:
        res.update(_raw_selects(cfg, scans))
    return res


def _noop_http(cfg: dict[str, Any], connections: int) -> dict[str, Any]:
    r = measure_noop_http(cfg["http_s"], connections, warmup_s=cfg["warmup_s"])
    return {
        "rate": r["rps"],
        "unit": "req/s",
        "detail": (
            f"{r['tool']} c={connections} p50={r['p50_ms']:.2f}ms "
            f"p99={r['p99_ms']:.2f}ms errors={r['errors']} n={r['requests']}"
        ),
        "raw": r,
    }


def _raw_sqlite_executemany(cfg: dict[str, Any]) -> dict[str, Any]:
    r = measure_raw_sqlite_executemany(cfg["sqlite_rows"], 1000, max_duration_s=cfg["sqlite_s"])
    return {
        "rate": r["rate"],
        "unit": "rows/s",
        "detail": (
            f"batch={r['batch']} sync={r['synchronous']} rows={r['rows']} "
            f"streams={r['n_streams']} db={r['db_bytes'] / 1e6:.0f}MB "
            f"(incl. rowgen {r['wall_rate_incl_rowgen']:,.0f}/s)"
            + (" CAPPED" if r["capped"] else "")
        ),
        "raw": r,
    }


def _eventsourcing_lib(cfg: dict[str, Any]) -> dict[str, Any]:
    r = measure_eventsourcing_lib(cfg["es_events"], max_duration_s=cfg["es_s"])
    return {
        "rate": r["rate"],
        "unit": "events/s",
        "detail": f"one save per event, events={r['events']}",
        "raw": r,
    }


def _raw_selects(cfg: dict[str, Any], scans: list[str]) -> dict[str, dict[str, Any]]:
    """The chosen scans over one DB of `select_rows` rows, built first (not timed)."""
    res: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-select-") as d:
        db = Path(d) / "events.db"
        t = time.perf_counter()
        make_event_db(db, cfg["select_rows"])
        build_s = time.perf_counter() - t
        for name in scans:
            mode = name.removeprefix("raw_select_")
            r = measure_raw_select(db, mode, duration_s=cfg["select_s"])
            res[name] = {
                "rate": r["rate"],
                "unit": "rows/s",
                "detail": (
                    f"median of {r['passes']} pass(es), best {r['best']:,.0f}/s, "
                    f"rows={r['rows']}"
                    + (f" mismatches={r['mismatches']}" if mode == "sha256" else "")
                    + (f" (db built in {build_s:.1f}s)" if name == scans[0] else "")
                ),
                "raw": r,
            }
    return res


def format_table(res: dict[str, dict[str, Any]]) -> str:
    w = max([len(n) for n in res] + [8])
    lines = [f"{'baseline':<{w}}  {'rate':>14}  {'unit':<8}  detail", "-" * (w + 60)]
    for name, r in res.items():
        lines.append(f"{name:<{w}}  {r['rate']:>14,.0f}  {r['unit']:<8}  {r['detail']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.baselines", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, < 20 s in total")
    ap.add_argument("--only", nargs="+", choices=NAMES, help="run only these baselines")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--json", metavar="PATH", help="also write results as JSON")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = run_baselines(smoke=a.smoke, only=a.only, connections=a.connections)
    total = time.perf_counter() - t0
    print(format_table(res))
    print(f"({'smoke' if a.smoke else 'full'} run, {total:.1f}s, {os.cpu_count()} cpus)")
    if a.json:
        out = Path(a.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"smoke": a.smoke, "total_s": total, "baselines": res}
        out.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
