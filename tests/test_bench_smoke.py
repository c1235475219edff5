"""The benchmark's smoke run (CI): every figure is produced, positive, and set against a
baseline measured in the same run (the PostgreSQL part's too where PostgreSQL's server
binaries are installed; without them the part says it was skipped). Speed itself is measured
by `python -m bench.run`, not asserted here. The writer-alone tool appends what it times."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import part_pg, writer_alone
from bench.figures import Figures
from bench.part_bulk import bulk_bodies
from bench.pgcluster import find_bindir
from bench.run import SMOKE

ROOT = Path(__file__).resolve().parent.parent
FIGURES = {
    "keepalive_vs_noop",
    "keepalive_vs_eventsourcing",
    "keepalive_vs_raw_asgi",
    "bulk_vs_sqlite_full",
    "bulk_vs_sqlite_normal",
    "rebuild_views",
    "rebuild_peak_rss",
    "replay_stats",
    "replay_verify",
    "list_p95",
    "detail_p95",
    "count_p95",
    "stats_p95",
    "server_rss",
    "worker_rss",
    "log_inclusion_p95",
    "log_inclusion_client_p95",
    "log_inclusion_vs_noop",
    "log_consistency_p95",
    "log_consistency_client_p95",
    "log_consistency_vs_noop",
    "log_tree_verify",
    "log_tree_verify_1proc",
}
PG_FIGURES = {
    "pg_keepalive_vs_eventsourcing",
    "pg_keepalive_vs_noop",
    "pg_bulk_vs_copy",
    "pg_catch_up_vs_select",
    "pg_rebuild_vs_select",
}
HAVE_PG = find_bindir() is not None


@pytest.mark.integration
def test_smoke_run_reports_every_figure_against_a_baseline(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["smoke"] is True
    rows = {r["name"]: r for r in doc["figures"]}
    assert set(rows) == FIGURES | (PG_FIGURES if HAVE_PG else set())
    for name, r in rows.items():
        assert r["value"] > 0, name
        assert r["baseline"] > 0, name
        assert math.isclose(r["ratio"], r["value"] / r["baseline"], rel_tol=1e-9), name
        assert r["met"] in (True, False, None), name
        if r["target"] is not None:
            op_met = r["ratio"] >= r["target"] if r["op"] == ">=" else r["ratio"] <= r["target"]
            assert r["met"] == op_met, name
    # The final table is printed, one line per figure.
    for name in rows:
        assert any(line.startswith(name + " ") for line in proc.stdout.splitlines()), name
    # Ingest figures count only acknowledged appends: the load saw no errors.
    ka = doc["raw"]["keepalive"]["runs"]["keepalive"]
    assert ka["errors"] == 0 and ka["rise"] > 0
    # Bulk ingest says what the API process spent per event, beside its rate.
    bulk = doc["raw"]["bulk"]
    assert bulk["server_cpu_us"] > 0 and bulk["worker_cores"] >= 0
    assert "us of CPU per event" in proc.stdout
    assert doc["raw"]["replay"]["select_sha256"]["mismatches"] == 0
    # The log part timed proofs of the whole tree and scanned every leaf of it.
    log = doc["raw"]["log"]
    assert log["tree_size"] == log["verify"]["leaves"] == doc["raw"]["replay"]["log_events"]
    if HAVE_PG:
        check_pg_part(doc["raw"]["pg"])


def check_pg_part(pg: dict[str, Any]) -> None:
    """The PostgreSQL part ran as an operator would: durable defaults, two API processes'
    keepalives all acknowledged and in the log, every bulk event in it, and the catch-up
    timed to the backlog's head."""
    assert pg["settings"]["fsync"] == "on" and pg["settings"]["synchronous_commit"] == "on"
    ka = pg["keepalive"]["runs"]["keepalive"]
    assert ka["errors"] == 0 and ka["rise"] >= pg["keepalive"]["acked"] > 0
    assert pg["bulk"]["events"] == SMOKE["bulk_events"]
    assert pg["catch_up"]["events"] == SMOKE["log_events"]
    assert 0 < pg["catch_up"]["first_s"] <= pg["catch_up"]["wall_s"]
    assert pg["catch_up"]["rebuild_s"] > 0


def test_the_postgres_part_without_server_binaries_is_skipped_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(part_pg, "find_bindir", lambda: None)
    figs = Figures()
    out = part_pg.bench_pg(SMOKE, figs, tmp_path)
    assert out == {"skipped": "no PostgreSQL server binaries"}
    assert figs.rows == []
    assert "part skipped" in capsys.readouterr().out


def test_the_writer_alone_appends_every_event_it_times(tmp_path: Path) -> None:
    eps, us, head = writer_alone.run_ledger(bulk_bodies(3000, 500, streams=100), tmp_path)
    assert head == 3000 and eps > 0 and us > 0
