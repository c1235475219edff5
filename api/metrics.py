"""`GET /metrics`: the Prometheus text exposition (format 0.0.4), written by hand.

Two kinds of figures. This process's own, kept in memory by api/observe.py: answers by
route template, method and status, and their latency histograms (a counter starts again
at 0 when the process restarts: `process_start_time_seconds` says when). And the ledger's,
read from the databases at scrape time, so every process answers the same: events
appended to the log (its head position), each view's position, lag, skipped events and last
skipped position, and the last `ledger replay verify` run (persistence/verify_runs.py).
The route needs a key with the `metrics` scope (or `admin`; api/auth.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.bootstrap import Container
from api.observe import BUCKETS, RequestMetrics
from persistence import verify_runs
from projections.failures import ViewHealth, describe

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Lines = list[str]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(out: Lines, name: str, kind: str, text: str) -> None:
    out.append(f"# HELP {name} {text}")
    out.append(f"# TYPE {name} {kind}")


def requests(out: Lines, metrics: RequestMetrics) -> None:
    """This process's answers: counts by status, latency histograms by route and method."""
    answers = metrics.snapshot()
    _family(out, "process_start_time_seconds", "gauge", "When this process started (epoch s).")
    out.append(f"process_start_time_seconds {metrics.started:.3f}")
    name = "ledger_http_requests_total"
    _family(out, name, "counter", "Answers of this process by route template, method, status.")
    latency: dict[tuple[str, str], list[float]] = {}
    for (route, method, status), hist in sorted(answers.items()):
        labels = f'route="{_label(route)}",method="{method}"'
        out.append(f'{name}{{{labels},status="{status}"}} {sum(hist[:-1]):.0f}')
        into = latency.setdefault((route, method), [0.0] * len(hist))
        for i, value in enumerate(hist):
            into[i] += value
    name = "ledger_http_request_duration_seconds"
    _family(out, name, "histogram", "Time to the answer's first byte, this process.")
    for (route, method), hist in sorted(latency.items()):
        labels = f'route="{_label(route)}",method="{method}"'
        running = 0.0
        for bound, count in zip((*BUCKETS, float("inf")), hist[:-1], strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f'{name}_bucket{{{labels},le="{le}"}} {running:.0f}')
        out.append(f"{name}_sum{{{labels}}} {hist[-1]:.6f}")
        out.append(f"{name}_count{{{labels}}} {running:.0f}")


def ledger(out: Lines, container: Container) -> None:
    """The ledger's figures, read from the databases now (a failing read is left out and
    counted in `ledger_metrics_read_errors`, its reason logged)."""
    errors = 0
    try:
        health = container.runner.health()
        head = container.store.head_digest()[0]
    except Exception as exc:
        log.warning("metrics: the log or the views cannot be read: %s", describe(exc))
        errors += 1
    else:
        _views(out, head, health)
    try:
        run = verify_runs.last(container.runner.engine)
    except Exception as exc:
        log.warning("metrics: the last verify run cannot be read: %s", describe(exc))
        errors += 1
    else:
        _verify(out, run)
    _family(out, "ledger_metrics_read_errors", "gauge", "Parts of this scrape left out.")
    out.append(f"ledger_metrics_read_errors {errors}")


# (name, type, help, ViewHealth key) of each per-view family.
VIEW_FAMILIES = (
    ("ledger_projection_position", "gauge", "The last log position the view includes.", "position"),
    ("ledger_projection_lag_events", "gauge", "Events in the log not yet in the view.", "lag"),
    ("ledger_projection_skipped_events_total", "counter", "Events the view skipped.", "skipped"),
    (
        "ledger_projection_last_error_position",
        "gauge",
        "Position of the last event the view skipped (0: none).",
        "last_error_position",
    ),
)
VERIFY_FAMILIES = {
    "run_timestamp_seconds": "When the last `ledger replay verify` finished (epoch s).",
    "ok": "1 when the last verify found the log intact, else 0.",
    "position": "The log head the last verify checked up to.",
    "problems": "Kinds of problem the last verify named.",
    "checkpoints": "1 when the last verify checked saved checkpoints, else 0.",
}


def _views(out: Lines, head: int, health: Mapping[str, ViewHealth]) -> None:
    name = "ledger_events_appended_total"
    _family(out, name, "counter", "Events in the log, by every process (its head position).")
    out.append(f"{name} {head}")
    for metric, kind, text, key in VIEW_FAMILIES:
        _family(out, metric, kind, text)
        for view, h in health.items():
            value = h[key]  # type: ignore[literal-required]
            out.append(f'{metric}{{view="{_label(view)}"}} {int(value or 0)}')


def _verify(out: Lines, run: verify_runs.VerifyRun | None) -> None:
    if run is None:
        return  # never run on this ledger: no samples, rather than a false "failed"
    values = {
        "run_timestamp_seconds": f"{run.finished_at:.3f}",
        "ok": str(int(run.ok)),
        "position": str(run.position),
        "problems": str(run.problems),
        "checkpoints": str(int(run.checkpoints)),
    }
    for suffix, text in VERIFY_FAMILIES.items():
        _family(out, f"ledger_verify_last_{suffix}", "gauge", text)
        out.append(f"ledger_verify_last_{suffix} {values[suffix]}")


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus metrics: this process's answers and latencies, the log, the views' lag and
    the last verify run. Needs a key with the `metrics` scope."""
    out: Lines = []
    requests(out, request.app.observer.metrics)  # on the loop: a consistent copy
    await run_in_threadpool(ledger, out, request.app.state.container)
    out.append("")
    return Response("\n".join(out), media_type=CONTENT_TYPE)
