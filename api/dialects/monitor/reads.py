"""What the pytest-monitor dialect reads from the log, never from a table: one session's
metrics, every monitor session's metrics (all, or one context's) in the order recorded, and
the contexts whose hash starts with a prefix, in the order recorded."""

from __future__ import annotations

from typing import Any

from api import auth
from api.bootstrap import Container
from api.dialects.monitor.shape import CONTEXT_FIELDS, FLOAT_FIELDS, INT_FIELDS, METRIC_FIELDS
from domain.context import CONTEXT_PREFIX, context_stream
from domain.session import upcast
from persistence.store import StoredEvent

CHUNK = 10_000  # events per read of the log


def metric_view(session_h: str, p: dict[str, Any]) -> dict[str, Any]:
    """A MetricRecorded payload as the reference shows a metric (its numbers as floats)."""
    full = {"session_h": session_h, "context_h": p["context"], "item": p["item"], **p["values"]}
    out = {k: full.get(k) for k in METRIC_FIELDS}
    for k in FLOAT_FIELDS:
        v = out[k]
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[k] = float(v)
    return out


def _readable(events: list[StoredEvent], monitor_only: bool) -> bool:
    """Whether a session stream is there for the caller: started (through this dialect when
    `monitor_only`), not deleted, and of a project the calling key may see."""
    if not events or events[0].type != "Started" or any(e.type == "Deleted" for e in events):
        return False
    started = events[0].data()
    projects = auth.projects()
    if projects is not None and started.get("project") not in projects:
        return False
    return not monitor_only or started.get("source") == "monitor"


def session_metrics(container: Container, session_h: str) -> list[dict[str, Any]]:
    """The metrics of one session in the order recorded; none for a session that is not
    there for the caller, as the reference answers for a hash it does not know."""
    events = container.store.load_stream(session_h)
    if not _readable(events, monitor_only=False):
        return []
    return [
        metric_view(session_h, upcast(e.type, e.schema_version, e.data()))
        for e in events
        if e.type == "MetricRecorded"
    ]


def all_metrics(container: Container, context: str | None = None) -> list[dict[str, Any]]:
    """Every metric of a monitor session (one not deleted), in log order, as the reference
    lists its table; only those of `context` when given. A walk of the log's metrics."""
    keep: dict[str, bool] = {}
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        batch = container.store.read(after, CHUNK, ("MetricRecorded",))
        for e in batch:
            p = upcast(e.type, e.schema_version, e.data())
            if context is not None and p.get("context") != context:
                continue
            if e.stream_id not in keep:
                keep[e.stream_id] = _readable(container.store.load_stream(e.stream_id), True)
            if keep[e.stream_id]:
                out.append(metric_view(e.stream_id, p))
        if len(batch) < CHUNK:
            return out
        after = batch[-1].position


def context_view(payload: dict[str, Any]) -> dict[str, Any]:
    """A context's Recorded payload as the reference shows it (its integer fields as ints)."""
    doc = {"h": payload["h"], **payload["attributes"]}
    out = {k: doc.get(k) for k in CONTEXT_FIELDS}
    for k in INT_FIELDS:
        v = out[k]
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[k] = int(v)
    return out


def context_exists(container: Container, h: str) -> bool:
    # Its exact stream, not a prefix count: `context:ab` must not be found by `context:a`.
    return bool(container.store.load_stream(context_stream(h)))


def contexts(container: Container, prefix: str) -> list[dict[str, Any]]:
    """The contexts whose h starts with `prefix`, in the order they were recorded (as the
    reference lists them), found through the index of their streams' ids."""
    stream_prefix = CONTEXT_PREFIX + prefix
    ids = container.store.stream_ids(stream_prefix, container.store.count_streams(stream_prefix))
    firsts = [container.store.load_stream(sid)[0] for sid in ids]
    return [context_view(e.data()) for e in sorted(firsts, key=lambda e: e.position)]
