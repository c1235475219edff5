"""`python -m bench.run [--smoke] [--json PATH]`: the service benchmark, every figure beside
its baseline measured in the same run (bench.baselines), with the ratio and the target.

1. keepalive ingest over HTTP (64 connections, wrk) vs the same server's POST /noop, and vs
   the eventsourcing library's one-save-per-event rate (bench.part_keepalive);
2. bulk ingest through POST /v1/events:batch vs raw sqlite3 executemany (FULL and NORMAL;
   bench.part_bulk);
3. rebuilding the four views from the activity log vs raw SELECT + orjson, with peak RSS at
   a quarter of the log and all of it (bench.part_replay);
4. `ledger replay stats` vs SELECT + orjson and `ledger replay verify` vs SELECT + sha256
   (bench.part_replay);
5. query latency (Server-Timing) and server RSS over a views DB of many sessions
   (bench.part_queries);
6. the transparency log over the activity log of 3 and 4: inclusion and consistency proof
   latency over HTTP beside the same server's no-op, and the tree part of a verify pass vs
   raw sha256 of the same leaf bytes (bench.part_log);
7. the PostgreSQL scale-out, `ledger serve --workers 2` on a throwaway loopback cluster:
   keepalive ingest vs the eventsourcing library's PostgreSQL recorder, bulk ingest vs raw
   psycopg COPY, and `ledger project`'s catch-up of a backlog vs raw SELECT + orjson
   (bench.part_pg; skipped without PostgreSQL server binaries).

Latency and RSS figures have absolute limits: their "baseline" column is the limit and the
ratio is value / limit. Seeds are cached in bench/out/ (bench.seed). This module owns the
command line, the sizes of a full and a smoke run, and the order of the parts.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.figures import Figures, say
from bench.load import default_tool
from bench.part_bulk import bench_bulk
from bench.part_keepalive import bench_keepalive
from bench.part_log import bench_log
from bench.part_pg import PG_STEPS, bench_pg
from bench.part_queries import bench_queries
from bench.part_replay import bench_replay, child_rebuild

FULL = {
    "http_s": 15.0,
    "warmup_s": 2.0,
    "http_sessions": 10_000,
    "es_events": 20_000,
    "es_s": 20.0,
    "bulk_events": 300_000,
    "bulk_lines": 5000,
    "log_events": 1_000_000,
    "select_s": 10.0,
    "sessions": 1_000_000,
    "queries": 200,
    "query_budget_s": 90.0,
    "wide_stats_n": 20,
    "log_proofs": 2000,
    "log_verify_rounds": 3,
}
SMOKE = {
    "http_s": 2.0,
    "warmup_s": 1.0,
    "http_sessions": 500,
    "es_events": 500,
    "es_s": 2.0,
    "bulk_events": 20_000,
    "bulk_lines": 5000,
    "log_events": 20_000,
    "select_s": 1.0,
    "sessions": 10_000,
    "queries": 200,
    "query_budget_s": 20.0,
    "wide_stats_n": 3,
    "log_proofs": 100,
    "log_verify_rounds": 2,
}
PARTS = {
    "keepalive": bench_keepalive,
    "bulk": bench_bulk,
    "replay": bench_replay,
    "queries": bench_queries,
    "log": bench_log,
    "pg": bench_pg,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, short runs (< 3 min)")
    ap.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    ap.add_argument("--only", nargs="+", choices=tuple(PARTS))
    ap.add_argument(
        "--pg-steps",
        nargs="+",
        choices=PG_STEPS,
        default=list(PG_STEPS),
        help="which of part pg's figures to take (default: all)",
    )
    ap.add_argument(
        "--child-rebuild", nargs=3, metavar=("DB", "VIEWS", "UNTIL"), help=argparse.SUPPRESS
    )
    a = ap.parse_args(argv)
    if a.child_rebuild:
        db, views, until = a.child_rebuild
        child_rebuild(db, views, int(until) or None)
        return 0
    cfg = {**(SMOKE if a.smoke else FULL), "pg_steps": a.pg_steps}
    figs = Figures()
    raw: dict[str, Any] = {}
    t0 = time.perf_counter()
    say(
        f"bench.run ({'smoke' if a.smoke else 'full'}), {os.cpu_count()} cpus, "
        f"load tool {default_tool()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-run-") as d:
        for name, fn in PARTS.items():
            if a.only and name not in a.only:
                continue
            w = Path(d) / name
            w.mkdir()
            raw[name] = fn(cfg, figs, w)
    total = time.perf_counter() - t0
    say("\n" + figs.table())
    say(f"({'smoke' if a.smoke else 'full'} run, {total:.0f}s)")
    if a.json:
        doc = {"smoke": a.smoke, "total_s": total, "config": cfg, "figures": figs.rows, "raw": raw}
        _write_json(Path(a.json), doc)
    return 0


def _write_json(out: Path, doc: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(
        orjson.dumps(
            doc,
            option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY,
            default=str,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
