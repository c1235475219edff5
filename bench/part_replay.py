"""Parts 3 and 4 of the service benchmark, over one activity log: rebuilding the four views
(in a fresh process, `--child-rebuild`) against raw SELECT + orjson, with peak RSS at a
quarter of the log and all of it; then `ledger replay stats` against SELECT + orjson and
`ledger replay verify` against SELECT + sha256."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench import seed
from bench.baseline_sqlite import measure_raw_select
from bench.event_rows import scalar
from bench.figures import Figures, say
from bench.procs import ROOT
from bench.server import ledger_cli


def child_rebuild(db: str, views: str, until: int | None) -> None:
    """In a fresh process: `ledger replay rebuild`'s code path on a fresh views DB (to the
    head: load, swap, indexes), or its load alone to `until`; print time and peak RSS."""
    from persistence.schema import make_engine
    from persistence.store import EventStore
    from projections.runner import ProjectionRunner
    from projections.tables import ViewTables
    from replay.rebuild import rebuild

    store = EventStore(f"sqlite:///{db}")
    engine = make_engine(f"sqlite:///{views}", immediate=True, durable=False, cache_mb=64)
    t0 = time.perf_counter()
    if until is None:
        pos = rebuild(store, engine, progress=False).position
    else:
        runner = ProjectionRunner(store, engine, ViewTables(bulk=True))
        runner.create_schema()
        pos = runner.load(until=until)
    secs = time.perf_counter() - t0
    # A large load runs a second loader process beside this one (ProjectionRunner.load):
    # count its peak too, as if both peaks coincided (an upper bound on the pair's RSS).
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "events": pos,
                "seconds": secs,
                "maxrss_mb": (rss_kb + child_kb) / 1024,
                "parent_rss_mb": rss_kb / 1024,
                "child_rss_mb": child_kb / 1024,
            }
        )
    )


def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[str, float]:
    t0 = time.perf_counter()
    out = subprocess.run(
        cmd,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    secs = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out.stdout, secs


def rebuild_in_child(db: Path, work: Path, until: int | None) -> dict[str, Any]:
    views = work / f"views-{until or 'all'}.db"
    args = [sys.executable, "-m", "bench.run", "--child-rebuild", str(db), str(views)]
    stdout, wall = _run([*args, str(until or 0)])
    r: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    r["wall_s"] = wall
    for p in work.glob(views.name + "*"):
        p.unlink()
    return r


def bench_replay(cfg: dict[str, Any], figs: Figures, work: Path) -> dict[str, Any]:
    n = cfg["log_events"]
    say(f"\n[3] rebuild of the four views from a log of {n:,} events")
    db = seed.activity_log(n, log=say)
    head = int(scalar(db, "SELECT max(position) FROM events") or 0)
    res: dict[str, Any] = {"log_events": head}
    for mode in ("orjson", "sha256"):
        r = measure_raw_select(db, mode, duration_s=cfg["select_s"])
        say(
            f"  raw SELECT + {mode}: {r['rate']:,.0f} rows/s ({r['passes']} passes,"
            f" mismatches {r['mismatches']})"
        )
        res[f"select_{mode}"] = r
    _rebuilds(db, work, head, res)
    # The orjson baseline again, right after: with the one before it, it brackets the rebuild
    # (this machine's speed drifts within a minute).
    after = measure_raw_select(db, "orjson", duration_s=cfg["select_s"])
    say(f"  raw SELECT + orjson, after the rebuild: {after['rate']:,.0f} rows/s")
    res["select_orjson_after"] = after
    before = res["select_orjson"]["rate"]
    orj, sha = (before + after["rate"]) / 2, res["select_sha256"]["rate"]
    _rebuild_figures(figs, res, orj)
    _replay_cli(db, work, head, res)
    _replay_figures(figs, res, orj, sha)
    return res


def _rebuilds(db: Path, work: Path, head: int, res: dict[str, Any]) -> None:
    """The load alone to a quarter of the log and to all of it, then the whole rebuild."""
    # Memory flat: the same load (no index building) to a quarter of the log and to all of it.
    quarter = rebuild_in_child(db, work, head // 4)
    whole = rebuild_in_child(db, work, head)
    for r in (quarter, whole):
        say(
            f"  load to {r['events']:,}: {r['seconds']:.1f}s, peak RSS {r['maxrss_mb']:.0f} MB"
            f" ({r['parent_rss_mb']:.0f} + second loader {r['child_rss_mb']:.0f})"
        )
    full = rebuild_in_child(db, work, None)
    rate = full["events"] / full["seconds"]
    say(
        f"  rebuild to {full['events']:,}: {full['seconds']:.1f}s = {rate:,.0f} events/s,"
        f" peak RSS {full['maxrss_mb']:.0f} MB"
    )
    res.update(rebuild_quarter=quarter, load_all=whole, rebuild_all=full, rebuild_eps=rate)


def _rebuild_figures(figs: Figures, res: dict[str, Any], orj: float) -> None:
    full, quarter, whole = res["rebuild_all"], res["rebuild_quarter"], res["load_all"]
    figs.add(
        "rebuild_views",
        res["rebuild_eps"],
        "ev/s",
        orj,
        "SELECT+orjson rows/s, mean of before and after",
        0.25,
        detail=f"{full['events']:,} events in {full['seconds']:.1f}s; SELECT+orjson before "
        f"{res['select_orjson']['rate']:,.0f}, after {res['select_orjson_after']['rate']:,.0f}"
        " rows/s",
    )
    figs.add(
        "rebuild_peak_rss",
        whole["maxrss_mb"],
        "MB",
        quarter["maxrss_mb"],
        f"RSS at {quarter['events']:,} events MB",
        1.25,
        op="<=",
        detail="memory flat: peak RSS of the load at the whole log vs at a quarter",
    )


def _replay_cli(db: Path, work: Path, head: int, res: dict[str, Any]) -> None:
    """`ledger replay stats` and `ledger replay verify`, each a whole CLI run, timed."""
    say("\n[4] ledger replay stats / verify over the same log (CLI in a subprocess)")
    env = {
        "LEDGER_DATABASE_URL": f"sqlite:///{db}",
        "LEDGER_VIEWS_URL": f"sqlite:///{work / 'none-views.db'}",
        "LEDGER_BLOB_DIR": str(work / "blobs"),
        "TMPDIR": str(work),
    }
    out, secs = _run(ledger_cli("replay", "stats", "--by", "status", "--format", "json"), env)
    groups = orjson.loads(out)["groups"]
    stats_rate = head / secs
    say(f"  replay stats: {secs:.1f}s = {stats_rate:,.0f} events/s ({len(groups)} groups)")
    out, vsecs = _run(ledger_cli("replay", "verify", "--json"), env)
    verdict = orjson.loads(out)
    if not verdict["ok"]:
        raise RuntimeError(f"replay verify found problems: {verdict['problems']}")
    verify_rate = head / vsecs
    say(f"  replay verify: {vsecs:.1f}s = {verify_rate:,.0f} events/s (ok)")
    res.update(stats_s=secs, stats_eps=stats_rate, verify_s=vsecs, verify_eps=verify_rate)


def _replay_figures(figs: Figures, res: dict[str, Any], orj: float, sha: float) -> None:
    figs.add(
        "replay_stats",
        res["stats_eps"],
        "ev/s",
        orj,
        "SELECT+orjson rows/s",
        0.25,
        detail=f"whole CLI run {res['stats_s']:.1f}s",
    )
    figs.add(
        "replay_verify",
        res["verify_eps"],
        "ev/s",
        sha,
        "SELECT+sha256 rows/s",
        0.5,
        detail=f"whole CLI run {res['verify_s']:.1f}s",
    )
