"""The HTML report renders in headless Chromium, and the replay tools read a running server's
database without blocking its writes."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import struct
import time
import zlib
from html import unescape as html_unescape
from pathlib import Path

import httpx
import pytest

from api.cli import main
from domain import commands as c
from tests.browser import chromium, need_chromium
from tests.replay import make_history, point_cli_at


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
    shot = tmp_path / "report.png"
    chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,900", page.as_uri())
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


def test_report_says_when_from_which_log_head_and_by_which_command(
    container, clock, monkeypatch, tmp_path
):
    make_history(container, clock)
    point_cli_at(container, monkeypatch)
    page = tmp_path / "report.html"
    assert main(["replay", "report", "--quiet", "--out", str(page), "--as-of", "9"]) == 0
    html = page.read_text()
    size, root = container.store.tree.latest()
    assert f"tree size {size:,}, root <code>{base64.b64encode(root).decode()}</code>" in html
    assert f"(hex <code>{root.hex()}</code>)" in html
    covered = base64.b64encode(container.store.tree.root(9)).decode()
    assert f"the first 9 events (tree size 9, root {covered})" in html
    assert f"<code>ledger replay report --quiet --out {page} --as-of 9</code>" in html
    assert re.search(r"Generated \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z by", html)


def test_report_turns_no_hostile_string_into_markup(container, clock, monkeypatch, tmp_path):
    evil = "<script>alert(1)</script>"
    run = container.ledger.execute
    run(c.StartSession(session_id="x1", name=evil, project=evil, build=evil))
    run(c.KeepAlive(session_id="x1", visible=True, path="/" + evil))
    clock.advance(5)
    run(c.StopSession(session_id="x1"))
    point_cli_at(container, monkeypatch)
    page = tmp_path / "report.html"
    assert main(["replay", "report", "-q", "--out", str(page), "--title", evil]) == 0
    html = page.read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the title, the command, the path


# Collects every chart label's box as the browser lays it out and names any two labels of
# one axis that overlap, or a label cut off by its chart's edge.
OVERLAP_PROBE = """<pre id="probe"></pre><script>
const bad = [];
for (const svg of document.querySelectorAll("svg")) {
  const edge = svg.getBoundingClientRect();
  for (const cls of ["x-tick", "y-tick"]) {
    const boxes = [...svg.querySelectorAll("text." + cls)].map(
      (t) => [t.textContent, t.getBoundingClientRect()]);
    for (const [name, b] of boxes) {
      if (b.left < edge.left - 0.5 || b.right > edge.right + 0.5) bad.push("cut: " + name);
    }
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const [p, a] = boxes[i], [q, b] = boxes[j];
      if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom)
        bad.push(p + " overlaps " + q);
    }
  }
}
document.getElementById("probe").textContent = "labels:" + JSON.stringify(bad);
</script>"""


def test_chart_axis_labels_do_not_overlap_in_chromium(tmp_path):
    from replay.report import bar_chart, day_status_chart

    need_chromium()
    days = [f"2026-{m:02d}-{d:02d}" for m in (10, 11, 12) for d in range(1, 29)]
    rows = {day: {"passed": 1_000_000 + 5_000 * i, "failed": 20_000} for i, day in enumerate(days)}
    paths = [("/a/very/long/path/" + "segment/" * 8 + str(i), 100.0 * i) for i in range(1, 9)]
    page = tmp_path / "charts.html"
    page.write_text(
        "<!doctype html><html><body style='margin:24px;font:14px system-ui,sans-serif'>"
        + day_status_chart(rows)
        + bar_chart(paths)
        + OVERLAP_PROBE
        + "</body></html>"
    )
    dom = chromium(tmp_path / "profile", "--window-size=1200,900", "--dump-dom", page.as_uri())
    found = re.search(r"labels:(\[.*?\])</pre>", dom)
    assert found, "the probe did not run"
    assert json.loads(html_unescape(found.group(1))) == []
    assert dom.count('class="x-tick"') >= 6  # thinned, not dropped
