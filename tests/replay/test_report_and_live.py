"""The HTML report renders in headless Chromium, and the replay tools read a running server's
database without blocking its writes."""

from __future__ import annotations

import json
import shutil
import sqlite3
import struct
import subprocess
import time
import zlib
from pathlib import Path

import httpx
import pytest

from api.cli import main
from tests.replay import make_history, point_cli_at

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


def png_facts(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the decoded scanlines) of a PNG file."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", (0, 0)
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return size[0], size[1], len(set(zlib.decompress(idat)))


def test_report_is_self_contained_and_renders_in_chromium(
    container, clock, monkeypatch, tmp_path, capsys
):
    make_history(container, clock)
    point_cli_at(container, monkeypatch)
    page = tmp_path / "report.html"
    assert main(["replay", "report", "--out", str(page)]) == 0
    html = page.read_text()
    assert "http" not in html and "<script" not in html and "<link" not in html
    assert html.count("<svg") == 3
    assert "Sessions per day by status" in html and "/home" in html and "2023-11-15" in html
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): render check skipped")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,900",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert shot.exists(), "chromium wrote no screenshot"
    width, height, distinct = png_facts(shot)
    assert (width, height) == (1200, 900)
    assert distinct > 40  # text, bars and legend colours; a blank page has a handful


@pytest.mark.integration
def test_report_duration_bins_add_up_to_the_ended_sessions(container, clock) -> None:
    """Each ended session is counted once in the duration chart (the cells repeat sessions
    across dimensions and days; the chart reads the all-sessions cell)."""
    from projections import queries as qs
    from replay.report import duration_bins

    make_history(container, clock)
    container.runner.catch_up()
    with container.runner.engine.connect() as conn:
        bins = duration_bins(conn, container.runner.tables)
        out = qs.stats(conn, container.runner.tables, qs.StatsQuery())
    ended = out["groups"][0]["ended"]
    assert ended > 0
    assert sum(n for _, n in bins) == ended


def test_replay_reads_a_running_server_without_blocking_it(live_server, monkeypatch, capsys):
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{live_server.db}")
    monkeypatch.setenv("LEDGER_BLOB_DIR", str(live_server.db.parent / "blobs"))
    auth = {"Authorization": f"Bearer {live_server.key}"}
    with httpx.Client(base_url=live_server.url, timeout=10, headers=auth) as http:
        for i in range(3):
            assert (
                http.post("/v1/sessions", json={"id": f"live{i}", "project": "web"}).status_code
                == 201
            )
        # A reader holding a snapshot open does not stop the server from writing.
        reader = sqlite3.connect(f"file:{live_server.db}?mode=ro", uri=True)
        reader.execute("BEGIN")
        assert reader.execute("SELECT COUNT(*) FROM events").fetchone() == (3,)
        t0 = time.monotonic()
        assert http.post("/v1/sessions/live0/stop").status_code == 200
        assert time.monotonic() - t0 < 2
        assert main(["replay", "verify"]) == 0
        assert main(["replay", "stats", "--by", "status", "--format", "json"]) == 0
        reader.close()
        out = capsys.readouterr().out
        stats = json.loads(out[out.index("{") :])
        assert {g["key"]["status"]: g["count"] for g in stats["groups"]} == {
            "completed": 1,
            "running": 2,
        }
        assert http.post("/v1/sessions", json={"id": "after", "project": "web"}).status_code == 201
