"""Part 1 of the service benchmark: keepalive ingest over HTTP (64 connections, wrk or
pyload in its own process) against the same server's POST /noop, a bare ASGI no-op, and the
eventsourcing library's one-save-per-event rate."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.baseline_library import measure_eventsourcing_lib
from bench.baseline_noop import NOOP_BODY, measure_noop_http
from bench.figures import Figures, say
from bench.load import http_load
from bench.lua import body_lua, keepalive_lua
from bench.server import Server, ledger_server, ndjson, post_batch

CONNECTIONS = 64


def bench_keepalive(cfg: dict[str, Any], figs: Figures, work: Path) -> dict[str, Any]:
    say("\n[1] HTTP keepalive ingest (64 connections, separate load process)")
    n, secs = cfg["http_sessions"], cfg["http_s"]
    res: dict[str, Any] = {}
    # The library's rate brackets the HTTP runs (before and after, mean used), as the no-op
    # brackets the keepalive run: this machine's speed drifts within a minute.
    es_before = measure_library(cfg)
    with ledger_server(work, work / "keepalive.db") as srv:
        start_sessions(srv, n)
        runs = noop_keepalive_noop(srv, cfg, n, secs)
        say(
            "  the views had caught up "
            f"{runs['keepalive']['views_behind_s']:.1f} s after the keepalive load stopped"
        )
        ka = runs["keepalive"]
        acked, durable = durable_rate(ka)
        noop = (runs["noop1"]["rps"] + runs["noop2"]["rps"]) / 2
        res.update(runs=runs, durable_eps=durable, noop_rps=noop, acked=acked)
    # The ceiling of any endpoint on this machine: the same uvicorn serving a bare ASGI
    # no-op (no framework, no work), under the same load.
    raw = measure_noop_http(secs, CONNECTIONS, warmup_s=cfg["warmup_s"], app="bench.noop_app:raw")
    say(f"  raw ASGI no-op (uvicorn, no framework, separate process) {raw['rps']:,.0f} req/s")
    res["raw_asgi_rps"] = raw["rps"]
    es_after = measure_library(cfg)
    es = {
        "rate": (es_before["rate"] + es_after["rate"]) / 2,
        "before": es_before,
        "after": es_after,
    }
    res["eventsourcing"] = es
    _add_figures(figs, ka, durable, noop, es, raw["rps"])
    return res


def measure_library(cfg: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """The eventsourcing library's rate, on SQLite or on the persistence `env` it is given."""
    where = (env or {}).get("PERSISTENCE_MODULE", "eventsourcing.sqlite")
    say(f"  eventsourcing library ({where}), one save per event ...")
    r = measure_eventsourcing_lib(cfg["es_events"], max_duration_s=cfg["es_s"], env=env)
    say(f"  eventsourcing lib {r['rate']:,.0f} events/s ({r['events']} events)")
    return r


def durable_rate(ka: dict[str, Any]) -> tuple[int, float]:
    """A keepalive run's acknowledged requests, and its events/s that were both acknowledged
    and in the log (the log's rise over the run, capped at the acknowledged)."""
    acked = ka["requests"] - int(ka.get("error_detail", {}).get("status", 0))
    return acked, min(ka["rise"], acked) / ka["wall_s"]


def start_sessions(srv: Server, n: int) -> None:
    """Sessions s-0 .. s-(n-1), started in batches of 5000, for the keepalives to land on."""
    c = srv.conn()
    for i in range(0, n, 5000):
        starts = [
            {"command": "start", "session_id": f"s-{k}", "project": "bench"}
            for k in range(i, min(n, i + 5000))
        ]
        post_batch(c, ndjson(starts))
    c.close()


def noop_keepalive_noop(
    srv: Server, cfg: dict[str, Any], n: int, secs: float
) -> dict[str, dict[str, Any]]:
    """Warm-ups, then the no-op, the keepalives and the no-op again, each on caught-up views;
    per run the load's result, its wall time, the log's rise and the views' lag after."""
    # Both loads send the key (the no-op is open, but gets the same request bytes).
    script = keepalive_lua(n, headers=srv.auth)
    noop_script = body_lua("POST", NOOP_BODY, srv.auth)
    ka_url, noop_url = srv.base + "/v1/sessions/{id}/keepalive", srv.base + "/noop"
    srv.wait_views()
    http_load(ka_url, "POST", script, CONNECTIONS, cfg["warmup_s"])
    http_load(noop_url, "POST", noop_script, CONNECTIONS, cfg["warmup_s"])
    runs: dict[str, Any] = {}
    for label in ("noop1", "keepalive", "noop2"):
        srv.wait_views()  # a catching-up worker would slow whichever run came next
        p0 = srv.position()
        t0 = time.perf_counter()
        if label == "keepalive":
            r = http_load(ka_url, "POST", script, CONNECTIONS, secs)
        else:
            r = http_load(noop_url, "POST", noop_script, CONNECTIONS, secs)
        r["wall_s"] = time.perf_counter() - t0
        r["rise"] = srv.position() - p0
        t1 = time.perf_counter()
        srv.wait_views()
        r["views_behind_s"] = time.perf_counter() - t1
        runs[label] = r
        say(
            f"  {label:<9} {r['rps']:>9,.0f} req/s  p50 {r['p50_ms']:.1f} ms  p99 "
            f"{r['p99_ms']:.1f} ms  errors {r['errors']}  requests {r['requests']}"
            f"  log +{r['rise']}  ({r['tool']})"
        )
    return runs


def _add_figures(
    figs: Figures,
    ka: dict[str, Any],
    durable: float,
    noop: float,
    es: dict[str, Any],
    raw_rps: float,
) -> None:
    detail = (
        f"errors={ka['errors']} rps={ka['rps']:,.0f} p99={ka['p99_ms']:.1f}ms "
        f"views caught up {ka['views_behind_s']:.1f}s after"
    )
    # 0.9: keys checked and commands validated on every request (the trust issue).
    figs.add("keepalive_vs_noop", durable, "ev/s", noop, "noop rps", 0.9, detail=detail)
    figs.add(
        "keepalive_vs_eventsourcing",
        durable,
        "ev/s",
        es["rate"],
        "es lib ev/s, mean of before and after",
        2.0,
        detail=f"{detail}; library before {es['before']['rate']:,.0f}, after "
        f"{es['after']['rate']:,.0f} ev/s",
    )
    figs.add(
        "keepalive_vs_raw_asgi",
        durable,
        "ev/s",
        raw_rps,
        "raw ASGI no-op rps",
        None,
        detail="2x the library's rate is "
        f"{2 * es['rate']:,.0f} ev/s; a bare uvicorn no-op serves {raw_rps:,.0f} req/s",
    )
