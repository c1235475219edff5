"""The benchmark's smoke run (CI): every figure is produced, positive, and set against a
baseline measured in the same run. Speed itself is measured by `python -m bench.run`, not
asserted here."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert set(rows) == FIGURES
    for name, r in rows.items():
        assert r["value"] > 0, name
        assert r["baseline"] > 0, name
        assert math.isclose(r["ratio"], r["value"] / r["baseline"], rel_tol=1e-9), name
        assert r["met"] in (True, False, None), name
        if r["target"] is not None:
            op_met = r["ratio"] >= r["target"] if r["op"] == ">=" else r["ratio"] <= r["target"]
            assert r["met"] == op_met, name
    # The final table is printed, one line per figure.
    for name in FIGURES:
        assert any(line.startswith(name + " ") for line in proc.stdout.splitlines()), name
    # Ingest figures count only acknowledged appends: the load saw no errors.
    ka = doc["raw"]["keepalive"]["runs"]["keepalive"]
    assert ka["errors"] == 0 and ka["rise"] > 0
    assert doc["raw"]["replay"]["select_sha256"]["mismatches"] == 0
    # The log part timed proofs of the whole tree and scanned every leaf of it.
    log = doc["raw"]["log"]
    assert log["tree_size"] == log["verify"]["leaves"] == doc["raw"]["replay"]["log_events"]
