"""`ledger replay report`: one self-contained HTML page (inline CSS and SVG, no external
assets, no script) with the main stats and charts, read from the views as of a point of the
log, saying when, from which log head and by which command it was made. Every string from
the log or the command line is escaped: none becomes markup."""

from __future__ import annotations

import base64
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from html import escape
from typing import Any

from sqlalchemy import Connection, func, select

from domain.state import STATUSES
from projections import queries
from projections.cells import ALL_DAYS, ALL_STATUSES, bucket_value
from projections.present import iso
from projections.tables import ViewTables
from replay.source import LogHead, Point

COLORS = {
    "queued": "#9aa5b1",
    "running": "#3b82f6",
    "completed": "#14b8a6",
    "passed": "#22c55e",
    "failed": "#ef4444",
    "error": "#b91c1c",
    "timeout": "#f59e0b",
    "cancelled": "#6b7280",
}
DURATION_BINS = (
    (1, "<1s"),
    (5, "1-5s"),
    (15, "5-15s"),
    (60, "15s-1m"),
    (300, "1-5m"),
    (900, "5-15m"),
    (3600, "15m-1h"),
    (14400, "1-4h"),
    (float("inf"), ">4h"),
)
CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f2933;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.muted{color:#616e7c}.cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:16px}
.card{border:1px solid #d9e2ec;border-radius:8px;padding:10px 14px;min-width:110px}
.card b{display:block;font-size:22px}table{border-collapse:collapse}
td,th{padding:3px 10px;border-bottom:1px solid #e4e7eb;text-align:right}
th:first-child,td:first-child{text-align:left}.legend span{margin-right:12px}
.sw{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.made{margin-top:6px;font-size:12px}.made code{overflow-wrap:anywhere}
"""
# About how wide a character of the charts' 11-12 px labels is, to space them (digits and
# most letters of the system sans-serif fonts are narrower).
CHAR_PX = 7.0
LABEL_GAP_PX = 10.0


@dataclass(frozen=True)
class Provenance:
    """What made a report: the command line, the log head when it ran, and the root of the
    tree of the events the report covers (the first `point.position` leaves)."""

    command: str
    head: LogHead
    covered_root: bytes
    generated_at: float | None = None  # default: now


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{s / 60:.1f}m"
    return f"{s / 3600:.1f}h"


def _count(v: float) -> str:
    return f"{v:,.0f}" if v >= 1000 else f"{v:g}"


def label_every(n_labels: int, slot_px: float, longest: int) -> int:
    """Label every k-th of `n_labels` slots `slot_px` wide, k the smallest that keeps labels
    of `longest` characters from touching."""
    need = longest * CHAR_PX + LABEL_GAP_PX
    return max(1, math.ceil(need / max(slot_px, 1e-9)))


def _ticks(top: float) -> list[float]:
    step = max(1.0, float(10 ** max(0, len(str(int(top))) - 1)))
    while top / step > 5:
        step *= 2
    return [i * step for i in range(int(top // step) + 1)]


def day_status_chart(rows: dict[str, dict[str, int]]) -> str:
    """Stacked bars: sessions started per day, split by status."""
    days = sorted(rows)
    if not days:
        return '<p class="muted">No sessions.</p>'
    top = max(sum(v.values()) for v in rows.values()) or 1
    ticks = _ticks(top)
    w, h, bottom = 1000, 260, 40
    left = 12 + CHAR_PX * max(len(_count(t)) for t in ticks)
    bw = (w - left - 10) / len(days)
    parts = [f'<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">']
    for t in ticks:
        y = h - bottom - (h - bottom - 10) * t / top
        parts.append(f'<line x1="{left}" x2="{w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e7eb"/>')
        parts.append(
            f'<text class="y-tick" x="{left - 4}" y="{y + 4:.1f}" font-size="11" '
            f'text-anchor="end">{_count(t)}</text>'
        )
    every = label_every(len(days), bw, max(len(d or "unstarted") for d in days))
    for i, day in enumerate(days):
        x, y0 = left + i * bw, float(h - bottom)
        width = max(min(bw - 2, 60.0), 1.0)
        for status in STATUSES:
            n = rows[day].get(status, 0)
            if n:
                bh = (h - bottom - 10) * n / top
                y0 -= bh
                parts.append(
                    f'<rect x="{x + (bw - width) / 2:.1f}" y="{y0:.1f}" width="{width:.1f}" '
                    f'height="{bh:.1f}" fill="{COLORS[status]}"><title>{escape(day)} '
                    f"{status}: {n}</title></rect>"
                )
        if i % every == 0:
            parts.append(
                f'<text class="x-tick" x="{x + bw / 2:.1f}" y="{h - bottom + 16}" '
                f'font-size="11" text-anchor="middle">{escape(day or "unstarted")}</text>'
            )
    parts.append("</svg>")
    legend = "".join(
        f'<span><i class="sw" style="background:{COLORS[s]}"></i>{s}</span>' for s in STATUSES
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def bar_chart(items: list[tuple[str, float]], label: Any = str, color: str = "#3b82f6") -> str:
    """Horizontal bars, one per (name, value)."""
    if not items or not any(v for _, v in items):
        return '<p class="muted">Nothing recorded.</p>'
    w, row, left = 1000, 24, 220
    h = row * len(items) + 10
    top = max(v for _, v in items) or 1
    parts = [f'<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">']
    for i, (name, v) in enumerate(items):
        y = 5 + i * row
        bw = (w - left - 120) * v / top
        parts.append(
            f'<text class="y-tick" x="{left - 8}" y="{y + 16}" font-size="12" '
            f'text-anchor="end">{escape(_fit(name, left - 12) or "(no path)")}</text>'
        )
        if v > 0:
            parts.append(
                f'<rect x="{left}" y="{y + 3}" width="{max(bw, 1):.1f}" height="{row - 6}" '
                f'fill="{color}" rx="2"/>'
            )
        parts.append(
            f'<text x="{left + bw + 6:.1f}" y="{y + 16}" font-size="12">{escape(label(v))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _fit(name: str, px: float) -> str:
    """`name` cut to what fits in `px` (with an ellipsis), so it cannot run past the edge."""
    most = int(px // CHAR_PX)
    return name if len(name) <= most else name[: most - 1] + "\u2026"


def provenance_html(point: Point, made: Provenance) -> str:
    """When, from which log head and by which command the report was made (all escaped)."""
    at = iso(time.time() if made.generated_at is None else made.generated_at)
    head = made.head
    covers = (
        "the whole log"
        if point.position == head.size
        else f"the first {point.position:,} events (tree size {point.position:,}, root "
        f"{escape(base64.b64encode(made.covered_root).decode())})"
    )
    return (
        f'<div class="made muted">Generated {escape(str(at))} by <code>{escape(made.command)}'
        f"</code>.<br>Log head: tree size {head.size:,}, root "
        f"<code>{escape(head.root_base64)}</code> (hex <code>{escape(head.root_hex)}</code>), "
        f"as <code>ledger replay checkpoint</code> signs it. This report covers {covers}.</div>"
    )


def duration_bins(conn: Connection, t: ViewTables) -> list[tuple[str, float]]:
    """Ended sessions per duration range, from the stats view's duration histogram."""
    rows = conn.execute(
        select(t.histogram.c.bucket, func.sum(t.histogram.c.n))
        .select_from(t.cells.join(t.histogram, t.histogram.c.cell_id == t.cells.c.cell_id))
        .where(
            t.cells.c.dim == "",  # the all-sessions cell: every other cell repeats sessions
            t.cells.c.day == ALL_DAYS,
            t.cells.c.status == ALL_STATUSES,
        )
        .group_by(t.histogram.c.bucket)
    )
    counts: dict[str, float] = {label: 0 for _, label in DURATION_BINS}
    for bucket, n in rows:
        v = bucket_value(int(bucket))
        label = next(lb for edge, lb in DURATION_BINS if v <= edge)
        counts[label] += int(n or 0)
    return list(counts.items())


def render_report(
    conn: Connection,
    t: ViewTables,
    point: Point,
    title: str,
    made: Provenance,
    clock: str = "recorded",
) -> str:
    overall = queries.stats(conn, t, queries.StatsQuery())
    total = overall["groups"][0] if overall["groups"] else None
    by_status = queries.stats(conn, t, queries.StatsQuery(group_by=("status",)))["groups"]
    per_day: dict[str, dict[str, int]] = defaultdict(dict)
    for g in queries.stats(conn, t, queries.StatsQuery(group_by=("day", "status")))["groups"]:
        per_day[g["key"]["day"]][g["key"]["status"]] = g["count"]
    d = total["duration"] if total else {}
    cards = [
        ("sessions", str(total["count"] if total else 0)),
        ("active now", str(overall["active_now"])),
        ("ended", str(total["ended"] if total else 0)),
        ("mean duration", _fmt_seconds(d.get("mean"))),
        ("p50", _fmt_seconds(d.get("p50"))),
        ("p95", _fmt_seconds(d.get("p95"))),
        ("max", _fmt_seconds(d.get("max"))),
    ]
    paths = sorted((total or {}).get("visible_time", {}).items(), key=lambda kv: -kv[1])[:12]
    status_rows = "".join(
        f'<tr><td><i class="sw" style="background:{COLORS.get(g["key"]["status"], "#000")}">'
        f"</i>{escape(g['key']['status'])}</td><td>{g['count']}</td><td>{g['ended']}</td>"
        f"<td>{_fmt_seconds(g['duration']['mean'])}</td>"
        f"<td>{_fmt_seconds(g['duration']['p95'])}</td></tr>"
        for g in by_status
    )
    results = (total or {}).get("results", {})
    when = f" at {iso(point.time)}" if point.time is not None else ""
    as_of = f"As of log position {point.position}{when}."
    if clock == "event":
        as_of = f"As of event time {iso(point.time)}: every event that happened by then, as "
        as_of += f"known at log position {point.position}."
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{CSS}</style></head><body>
<h1>{escape(title)}</h1>
<div class="muted">{escape(as_of)}</div>
{provenance_html(point, made)}
<div class="cards">{
        "".join(f"<div class='card'><b>{v}</b>{escape(k)}</div>" for k, v in cards)
    }</div>
<h2>Sessions per day by status</h2>{day_status_chart(per_day)}
<h2>Duration distribution (ended sessions)</h2>{
        bar_chart(duration_bins(conn, t), lambda v: f"{v:g}", "#14b8a6")
    }
<h2>Top paths by visible time</h2>{bar_chart(paths, _fmt_seconds, "#8b5cf6")}
<h2>By status</h2><table><tr><th>status</th><th>sessions</th><th>ended</th>
<th>mean</th><th>p95</th></tr>{status_rows}</table>
<h2>Results</h2><p>{", ".join(f"{escape(k)}: {v}" for k, v in results.items()) or "none"}</p>
</body></html>
"""
