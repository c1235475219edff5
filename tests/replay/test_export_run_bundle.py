"""Exports for pandas/DuckDB/spreadsheets, analysts' own projections, and evidence bundles
checked by the standard-library verifier."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from api.cli import main
from tests.replay import make_history, point_cli_at

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = ROOT / "examples" / "verify_bundle.py"


@pytest.fixture
def marks(container: Any, clock: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    out = make_history(container, clock)
    container.runner.catch_up()
    point_cli_at(container, monkeypatch)
    return out


def test_events_export_as_ndjson_from_a_position(marks, tmp_path):
    out = tmp_path / "events.ndjson"
    assert main(["replay", "export", "--from-position", "21", "--out", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["position"], r["stream_id"], r["type"]) for r in rows] == [
        (21, "s6", "Started"),
        (22, "s5", "Deleted"),
        (23, "s6", "DetailsUpdated"),
    ]
    assert rows[2]["payload"]["changes"] == {"name": "renamed", "tags": {"team": "qa"}}
    assert rows[0]["recorded_at"].endswith("Z") and len(rows[0]["hash"]) == 64


def test_sessions_export_as_csv_now_and_as_of_a_point(marks, tmp_path):
    now, then = tmp_path / "now.csv", tmp_path / "then.csv"
    assert (
        main(["replay", "export", "--what", "sessions", "--format", "csv", "--out", str(now)]) == 0
    )
    rows = list(csv.DictReader(now.open()))
    assert [r["id"] for r in rows] == ["s1", "s2", "s3", "s4", "s6"]  # s5 was deleted
    s1 = rows[0]
    assert (s1["status"], s1["browser"], s1["active"], s1["duration"]) == (
        "passed",
        "chrome",
        "false",
        "102.006999",
    )
    assert json.loads(rows[4]["tags"]) == {"team": "qa"}
    until = str(marks["day1_position"])
    assert (
        main(
            [
                "replay",
                "export",
                "--what",
                "sessions",
                "--format",
                "csv",
                "--until",
                until,
                "--out",
                str(then),
            ]
        )
        == 0
    )
    old = list(csv.DictReader(then.open()))
    assert [(r["id"], r["status"], r["active"]) for r in old] == [
        ("s1", "passed", "false"),
        ("s2", "running", "true"),
    ]


def test_parquet_export_reads_back_in_pyarrow(marks, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow (the parquet extra) not installed")
    out = tmp_path / "events.parquet"
    assert main(["replay", "export", "--format", "parquet", "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 23
    assert table.column("position").to_pylist() == list(range(1, 24))
    assert str(table.schema.field("recorded_at").type) == "timestamp[us, tz=UTC]"
    sessions = tmp_path / "sessions.parquet"
    assert (
        main(
            [
                "replay",
                "export",
                "--what",
                "sessions",
                "--format",
                "parquet",
                "--out",
                str(sessions),
            ]
        )
        == 0
    )
    assert pq.read_table(sessions).column("id").to_pylist() == ["s1", "s2", "s3", "s4", "s6"]


def test_parquet_without_pyarrow_says_how_to_install_it(marks, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if the extra were not installed
    assert (
        main(["replay", "export", "--format", "parquet", "--out", str(tmp_path / "x.parquet")]) == 2
    )
    assert "pip install 'session-ledger[parquet]'" in capsys.readouterr().err


def test_own_projection_runs_over_the_log_without_touching_views(
    container, marks, tmp_path, capsys
):
    views = Path(str(container.settings.views_url).removeprefix("sqlite:///"))
    before = views.stat().st_mtime_ns, views.stat().st_size
    assert main(["replay", "run", str(ROOT / "examples" / "my_projection.py")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {
        "chrome": {"sessions": 3, "mean_keepalives": 0.667},
        "firefox": {"sessions": 1, "mean_keepalives": 1.0},
        "unknown": {"sessions": 1, "mean_keepalives": 0.0},
    }
    out = tmp_path / "early.json"
    until = str(marks["day1_position"])
    assert (
        main(
            [
                "replay",
                "run",
                str(ROOT / "examples" / "my_projection.py"),
                "--until",
                until,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text()) == {
        "chrome": {"sessions": 1, "mean_keepalives": 2.0},
        "firefox": {"sessions": 1, "mean_keepalives": 0.0},
    }
    assert (views.stat().st_mtime_ns, views.stat().st_size) == before


def test_projection_file_must_define_the_interface(marks, tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("def initial():\n    return 0\n")
    assert main(["replay", "run", str(bad)]) == 2
    assert "must define apply()" in capsys.readouterr().err


def check_bundle(path: Path) -> subprocess.CompletedProcess[str]:
    # The verifier runs as a plain script in a bare interpreter: standard library only.
    return subprocess.run(
        [sys.executable, "-I", "-S", str(VERIFIER), str(path)], capture_output=True, text=True
    )


def test_bundle_verifies_with_the_standard_library(marks, tmp_path):
    out = tmp_path / "s2.jsonl"
    assert main(["replay", "bundle", "s2", "--out", str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[0]["format"] == "session-ledger-bundle/1" and lines[0]["events"] == 5
    assert lines[0]["digest"]["position"] == 23
    done = check_bundle(out)
    assert done.returncode == 0, done.stdout
    assert done.stdout.startswith("OK: 5 events of session s2 verify")


@pytest.mark.parametrize(
    ("field", "value", "complaint"),
    [
        ("payload", {"to_status": "passed"}, "readable payload differs"),
        ("payload_hex", "7b7d", "is not its hash"),
        ("recorded_at", 1.0, "readable fields differ"),
        ("prev_hash", "00" * 32, "is not its hash"),
    ],
)
def test_tampered_bundle_line_fails(marks, tmp_path, field, value, complaint):
    out = tmp_path / "s2.jsonl"
    main(["replay", "bundle", "s2", "--out", str(out)])
    lines = out.read_text().splitlines()
    doc = json.loads(lines[4])
    doc[field] = value
    lines[4] = json.dumps(doc)
    out.write_text("\n".join(lines) + "\n")
    done = check_bundle(out)
    assert done.returncode == 1
    assert "line 5" in done.stdout and complaint in done.stdout


def test_bundle_with_a_line_removed_fails(marks, tmp_path):
    out = tmp_path / "s1.jsonl"
    main(["replay", "bundle", "s1", "--out", str(out)])
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    done = check_bundle(out)
    assert done.returncode == 1 and "version 4, expected 3" in done.stdout
