"""Exports for pandas/DuckDB/spreadsheets, analysts' own projections, and evidence bundles
checked by the standard-library verifier."""

from __future__ import annotations

import base64
import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from api.cli import main
from persistence.note import Signer, sign_note
from persistence.signing import Checkpoint
from tests.replay import make_history, point_cli_at

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = ROOT / "examples" / "verify_bundle.py"


@pytest.fixture
def marks(container: Any, clock: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    out = make_history(container, clock)
    container.runner.catch_up()
    container.log_keys.keys()  # the key the server makes on its first start
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


def check_bundle(path: Path, verifier: str) -> subprocess.CompletedProcess[str]:
    # The verifier runs as a plain script (-I: no user site, nothing of this project's path);
    # it needs the standard library and the `cryptography` package only.
    return subprocess.run(
        [sys.executable, "-I", str(VERIFIER), str(path), verifier], capture_output=True, text=True
    )


@pytest.fixture
def verifier(marks: dict[str, Any], container: Any) -> str:
    return str(container.log_keys.keys().verifier_key)


def make_bundle(tmp_path: Path, session: str) -> tuple[Path, list[str]]:
    out = tmp_path / f"{session}.jsonl"
    assert main(["replay", "bundle", session, "--out", str(out)]) == 0
    return out, out.read_text().splitlines()


def rewrite(out: Path, lines: list[str]) -> None:
    out.write_text("\n".join(lines) + "\n")


def test_bundle_verifies_with_the_log_key(marks, tmp_path, verifier):
    out, lines = make_bundle(tmp_path, "s2")
    docs = [json.loads(x) for x in lines]
    assert docs[0]["format"] == "session-ledger-bundle/2" and docs[0]["events"] == 5
    assert docs[0]["checkpoint"].splitlines()[1] == "23"
    done = check_bundle(out, verifier)
    assert done.returncode == 0, done.stdout
    assert done.stdout.startswith("OK: 5 events of session s2 are leaves of the log's signed tree")


def _changed_payload(lines: list[str], _: Any) -> None:
    doc = json.loads(lines[4])
    leaf = json.loads(base64.b64decode(doc["leaf"]))
    leaf[7]["to_status"] = "passed"
    doc["leaf"] = base64.b64encode(json.dumps(leaf, separators=(",", ":")).encode()).decode()
    doc["payload"] = leaf[7]
    lines[4] = json.dumps(doc)


def _dropped_event(lines: list[str], _: Any) -> None:
    header = json.loads(lines[0])
    header["events"] -= 1
    lines[:] = [json.dumps(header), *lines[1:3], *lines[4:]]


def _reordered(lines: list[str], _: Any) -> None:
    lines[2], lines[3] = lines[3], lines[2]


def _foreign_checkpoint(lines: list[str], container: Any) -> None:
    header = json.loads(lines[0])
    other = Signer.generate(container.log_keys.keys().origin)
    size, root = container.store.tree.latest()
    header["checkpoint"] = sign_note(Checkpoint(other.name, size, root).body(), [other])
    header["verifier_key"] = other.verifier.key
    lines[0] = json.dumps(header)


def _bad_signature(lines: list[str], _: Any) -> None:
    header = json.loads(lines[0])
    text, _sep, signature = header["checkpoint"].rpartition(" ")
    raw = bytearray(base64.b64decode(signature))
    raw[-1] ^= 1
    header["checkpoint"] = f"{text} {base64.b64encode(bytes(raw)).decode()}\n"
    lines[0] = json.dumps(header)


@pytest.mark.parametrize(
    ("forge", "complaint"),
    [
        (_changed_payload, "line 5 (leaf 14): the leaf is not in the signed tree"),
        (_dropped_event, "version 4, expected 3"),
        (_reordered, "out of log order"),
        (_foreign_checkpoint, "the checkpoint carries no signature by"),
        (_bad_signature, "the checkpoint's signature does not verify"),
    ],
)
def test_forged_bundles_are_refused(marks, container, tmp_path, verifier, forge, complaint):
    out, lines = make_bundle(tmp_path, "s2")
    forge(lines, container)
    rewrite(out, lines)
    done = check_bundle(out, verifier)
    assert done.returncode == 1 and complaint in done.stdout, done.stdout + done.stderr


def test_readable_fields_must_match_the_leaf(marks, tmp_path, verifier):
    out, lines = make_bundle(tmp_path, "s2")
    doc = json.loads(lines[4])
    doc["payload"] = {"to_status": "passed"}
    lines[4] = json.dumps(doc)
    rewrite(out, lines)
    done = check_bundle(out, verifier)
    assert done.returncode == 1 and "readable fields differ from the leaf" in done.stdout


def test_prove_prints_the_same_bundle(marks, tmp_path, verifier, capsys):
    assert main(["replay", "prove", "s2"]) == 0
    proved = tmp_path / "proved.jsonl"
    proved.write_text(capsys.readouterr().out)
    assert check_bundle(proved, verifier).returncode == 0
