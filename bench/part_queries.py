"""Part 5 of the service benchmark: query latency (the server's own Server-Timing) over a
views DB of many sessions, and the server's and worker's RSS; both against absolute limits."""

from __future__ import annotations

import http.client
import math
import random
import time
from pathlib import Path
from typing import Any

from bench import seed
from bench.figures import Figures, say
from bench.server import get_ok, ledger_server, proc_mem_mb

LIMITS_MS = {"list": 20.0, "detail": 5.0, "count": 10.0, "stats": 50.0}
RSS_LIMIT_MB = 250.0


def query_paths(kind: str, n_sessions: int, rng: random.Random) -> list[str]:
    """The request mix of one kind; cycled through in order."""
    from urllib.parse import urlencode

    if kind == "detail":
        return [f"/v1/sessions/s-{rng.randrange(n_sessions)}" for _ in range(50)]
    day = 86400
    week_ago = seed.T_END - 7 * day
    if kind == "list":
        mixes: list[dict[str, Any]] = [
            {},
            {"status": "passed"},
            {"project": "project-3", "sort": "duration"},
            {"user": "user-42", "sort": "ended_at", "order": "asc"},
            {"build": "build-117"},
            {"tag": "suite:nightly"},
            {"started_after": week_ago, "sort": "started_at"},
            {"type": "api", "sort": "last_seen_at"},
            # A keepalive-moved sort under a filter of ~1% of the sessions.
            {"user": "user-42", "sort": "last_seen_at"},
            {"active": "true"},
            {"status": "failed", "project": "project-5", "sort": "number"},
        ]
        # Every question at every depth (a page of 50 at offsets 0, 50, 500 and 2000).
        return [
            "/v1/sessions?" + urlencode({**m, "limit": 50, "offset": off}, doseq=True)
            for off in (0, 50, 500, 2000)
            for m in mixes
        ]
    if kind == "count":
        mixes = [{}, {"status": "failed"}, {}, {"project": "project-7"}, {"user": "user-13"}]
        return ["/v1/sessions/count" + (f"?{urlencode(m)}" if m else "") for m in mixes]
    if kind == "stats":
        d0 = seed.T_END - 7 * day
        frm = time.strftime("%Y-%m-%d", time.gmtime(d0))
        to = time.strftime("%Y-%m-%d", time.gmtime(seed.T_END - 1))
        return [
            "/v1/stats?by=status",
            f"/v1/stats?by=day&from={frm}&to={to}",
            "/v1/stats?by=project",
        ]
    raise ValueError(kind)


def timed_get(c: http.client.HTTPConnection, path: str) -> float:
    """The server's own time for `path` (its Server-Timing header), in ms."""
    r, _ = get_ok(c, path)
    st = r.getheader("server-timing") or ""
    return float(st.split("dur=", 1)[1].split(",")[0].split(";")[0])


def pct(vals: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(vals)
    return s[max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))]


def bench_queries(cfg: dict[str, Any], figs: Figures, work: Path) -> dict[str, Any]:
    n = cfg["sessions"]
    say(f"\n[5] queries at {n:,} sessions (server-side time from Server-Timing)")
    db = seed.sessions_log(n, log=say)
    views = seed.views_for(db, log=say)
    env = {
        "LEDGER_SERVER_TIMING": "1",
        "LEDGER_SESSION_TIMEOUT": "1e12",
        "LEDGER_VIEWS_URL": f"sqlite:///{views}",
    }
    res: dict[str, Any] = {"sessions": n}
    rng = random.Random(5)
    with ledger_server(work, db, env) as srv:
        srv.wait_views()
        c = srv.conn(timeout=300)
        for kind in ("list", "detail", "count", "stats"):
            res[kind] = _one_kind(c, kind, query_paths(kind, n, rng), cfg, figs)
        # Groupings with many values (100 users, 200 builds): reported, outside the target mix.
        for p in ("/v1/stats?by=user", "/v1/stats?by=build"):
            timed_get(c, p)
            vs = [timed_get(c, p) for _ in range(cfg["wide_stats_n"])]
            res.setdefault("wide_stats", {})[p] = {"p50_ms": pct(vs, 0.5), "p95_ms": pct(vs, 0.95)}
            say(f"      {p:<90} p50 {pct(vs, 0.5):8.2f}  p95 {pct(vs, 0.95):8.2f}  (outside)")
        c.close()
        mem = proc_mem_mb(srv.proc.pid)
        wpid = srv.worker_pid()
        wmem = proc_mem_mb(wpid) if wpid else {"VmRSS": 0.0, "VmHWM": 0.0}
    say(
        f"  server RSS {mem['VmRSS']:.0f} MB (peak {mem['VmHWM']:.0f}),"
        f" worker RSS {wmem['VmRSS']:.0f} MB (peak {wmem['VmHWM']:.0f})"
    )
    res.update(server_mem=mem, worker_mem=wmem)
    _memory_figures(figs, mem, wmem)
    return res


def _one_kind(
    c: http.client.HTTPConnection,
    kind: str,
    paths: list[str],
    cfg: dict[str, Any],
    figs: Figures,
) -> dict[str, Any]:
    """A few discarded warm-up requests, then the paths in turn until both the count and the
    whole mix are done or the time budget is spent; percentiles overall and per path."""
    warm_end = time.monotonic() + cfg["query_budget_s"] / 4
    for p in paths[:20]:  # warm the page cache; discarded
        timed_get(c, p)
        if time.monotonic() > warm_end:
            break
    per: dict[str, list[float]] = {}
    t_end = time.monotonic() + cfg["query_budget_s"]
    i = 0
    while i < cfg["queries"] and (i < len(paths) or time.monotonic() < t_end):
        p = paths[i % len(paths)]
        per.setdefault(p, []).append(timed_get(c, p))
        i += 1
    allv = [v for vs in per.values() for v in vs]
    p50, p95 = pct(allv, 0.5), pct(allv, 0.95)
    say(
        f"  {kind:<6} n={len(allv):<4} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms"
        f"  (target p95 <= {LIMITS_MS[kind]:g} ms)"
    )
    if kind != "detail":
        for p, vs in per.items():
            say(f"      {p[:90]:<90} p50 {pct(vs, 0.5):8.2f}  p95 {pct(vs, 0.95):8.2f}")
    figs.add(
        f"{kind}_p95",
        p95,
        "ms",
        LIMITS_MS[kind],
        "limit ms",
        1.0,
        op="<=",
        detail=f"p50 {p50:.2f} ms, n={len(allv)}",
    )
    return {
        "n": len(allv),
        "p50_ms": p50,
        "p95_ms": p95,
        "per_path": {
            p: {"p50_ms": pct(v, 0.5), "p95_ms": pct(v, 0.95), "n": len(v)} for p, v in per.items()
        },
    }


def _memory_figures(figs: Figures, mem: dict[str, float], wmem: dict[str, float]) -> None:
    figs.add(
        "server_rss",
        mem["VmRSS"],
        "MB",
        RSS_LIMIT_MB,
        "limit MB",
        1.0,
        op="<=",
        detail=f"peak {mem['VmHWM']:.0f} MB",
    )
    figs.add(
        "worker_rss",
        wmem["VmRSS"],
        "MB",
        RSS_LIMIT_MB,
        "limit MB",
        None,
        op="<=",
        detail=f"peak {wmem['VmHWM']:.0f} MB (reported separately)",
    )
