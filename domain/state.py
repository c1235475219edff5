"""The session state and its pure fold: `evolve(state, type, payload, at)`.

This is the single definition of what a session *is* after a sequence of events. The
aggregate, every projection, the replay tools and the property tests all fold events through
`evolve`, so live views, rebuilt views and as-of replays cannot disagree.

State is a plain dict (JSON-ready, cheap to copy and store). Times are epoch seconds (float),
on event time: an event's `at` when its payload has one, else its recorded time
(domain/eventtime.py). `last_seen_recorded_at` is the one recorded time kept: when the last
sign of life reached the ledger, which the expiry rule needs besides `last_seen_at`.

Status state machine (the only legal moves; a move to the current status is a no-op):

    queued    -> running | cancelled
    running   -> completed | passed | failed | error | timeout | cancelled
    completed -> passed | failed | error        (a verdict given after the run)
    passed    -> failed                         (a verdict corrected)
    failed    -> passed
    timeout   -> passed | failed
    error, cancelled: final

`Stopped` ends a session: a queued one becomes cancelled, a running one completed, any other
status stays. `Expired` ends it at its last keepalive and sets status timeout when running.

Visible time per path (Canopsis semantics): time between a visible keepalive and the next
keepalive, hide, stop or expiry is credited to the path of that visible keepalive.
`last_visible_at` and `last_visible_path` are the time and path of the last visible keepalive;
they stay while the session is hidden (Canopsis's last_visible_ping and last_visible_path).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from domain.personal import ERASABLE

STATUSES = ("queued", "running", "completed", "passed", "failed", "error", "timeout", "cancelled")
LEGAL_MOVES: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "cancelled"}),
    "running": frozenset({"completed", "passed", "failed", "error", "timeout", "cancelled"}),
    "completed": frozenset({"passed", "failed", "error"}),
    "passed": frozenset({"failed"}),
    "failed": frozenset({"passed"}),
    "timeout": frozenset({"passed", "failed"}),
    "error": frozenset(),
    "cancelled": frozenset(),
}
# Fields a DetailsUpdated event may carry; each has a home in the state under the same name.
DETAIL_FIELDS = (
    "name",
    "project",
    "build",
    "user",
    "type",
    "remarks",
    "scm_ref",
    "tags",
    "attributes",
    "parameters",
    "participants",
    "users",
    "devices",
)
MAPPING_FIELDS = frozenset({"tags", "attributes", "parameters"})

State = dict[str, Any]


def new_state(session_id: str) -> State:
    return {
        "id": session_id,
        "number": None,
        "version": 0,
        "source": "native",
        "name": None,
        "project": None,
        "build": None,
        "user": None,
        "type": None,
        "status": "running",
        "remarks": None,
        "scm_ref": None,
        "tags": {},
        "attributes": {},
        "parameters": {},
        "participants": [],
        "users": [],
        "devices": [],
        "started_at": None,
        "ended_at": None,
        "last_seen_at": None,
        "last_seen_recorded_at": None,
        "duration": None,
        "end_reason": None,
        "deleted": False,
        "created_by": None,
        "updated_by": None,
        "updated_at": None,
        "closed_by": None,
        "visible_path": None,
        "visible_since": None,
        "visible_time": {},
        "last_visible_at": None,
        "last_visible_path": None,
        "keepalives": 0,
        "result_counts": {},
        "logs": [],
        "artifacts": [],
        "metrics": 0,
        "annotations": [],
    }


def is_active(state: State) -> bool:
    return state["ended_at"] is None and not state["deleted"]


def _credit_visible(state: State, until: float) -> None:
    since = state["visible_since"]
    if since is not None:
        path = state["visible_path"] or ""
        spent = until - since
        vt = state["visible_time"]
        # `spent if spent > 0.0 else 0.0` is max(0.0, spent), without the builtin call; the
        # sum is kept to the microsecond (see `_kept_alive`).
        vt[path] = round((vt.get(path, 0.0) + (spent if spent > 0.0 else 0.0)) * 1e6) / 1e6
    state["visible_path"] = None
    state["visible_since"] = None


def _end(state: State, at: float, reason: str) -> None:
    _credit_visible(state, at)
    state["ended_at"] = at
    state["end_reason"] = reason
    if state["started_at"] is not None:
        state["duration"] = round(max(0.0, at - state["started_at"]), 6)


def _started(s: State, p: dict[str, Any], at: float) -> None:
    # (`last_seen_recorded_at` is set by `evolve`, which knows the recorded time.)
    s["source"] = p.get("source") or "native"
    s["status"] = p.get("status") or "running"
    for f in DETAIL_FIELDS:
        if p.get(f) is not None:
            s[f] = p[f]
    s["started_at"] = p["started_at"] if p.get("started_at") is not None else at
    s["last_seen_at"] = at
    s["created_by"] = p.get("by") or p.get("user")


def _kept_alive(s: State, p: dict[str, Any], at: float) -> None:
    # `_credit_visible` inlined: keepalives are most of a log, and a bulk fold calls this
    # directly (`fold_kept_alive`), so its nested calls cost more than its work.
    since = s["visible_since"]
    if since is not None:
        path = s["visible_path"] or ""
        spent = at - since
        vt = s["visible_time"]
        # To the microsecond as round(x * 1e6) / 1e6: round(x, 6) goes through decimal
        # digits and cost a third of this step when measured (no value of 10^6 random
        # times came out different).
        vt[path] = round((vt.get(path, 0.0) + (spent if spent > 0.0 else 0.0)) * 1e6) / 1e6
    if p.get("visible", True):
        s["visible_path"] = s["last_visible_path"] = p.get("path") or ""
        s["visible_since"] = s["last_visible_at"] = at
    else:
        s["visible_path"] = None
        s["visible_since"] = None
    s["last_seen_at"] = at
    s["keepalives"] += 1


def _hidden(s: State, p: dict[str, Any], at: float) -> None:
    _credit_visible(s, at)
    s["last_seen_at"] = at


def _status_changed(s: State, p: dict[str, Any], at: float) -> None:
    s["status"] = p["to_status"]


def _details_updated(s: State, p: dict[str, Any], at: float) -> None:
    for f, v in p["changes"].items():
        if f in MAPPING_FIELDS and isinstance(v, dict) and isinstance(s[f], dict):
            merged = {**s[f], **v}
            s[f] = {k: val for k, val in merged.items() if val is not None}
        else:
            s[f] = v


def _log_uploaded(s: State, p: dict[str, Any], at: float) -> None:
    s["logs"].append(
        {
            "kind": p["kind"],
            "content_type": p["content_type"],
            "size": p["size"],
            "sha256": p["sha256"],
            "at": at,
        }
    )


def _artifact_attached(s: State, p: dict[str, Any], at: float) -> None:
    s["artifacts"].append(
        {
            "kind": p["kind"],
            "title": p.get("title"),
            "url": p.get("url"),
            "content_type": p.get("content_type"),
            "size": p.get("size"),
            "sha256": p.get("sha256"),
            "at": at,
        }
    )


def _metric_recorded(s: State, p: dict[str, Any], at: float) -> None:
    s["metrics"] += 1


def _result_recorded(s: State, p: dict[str, Any], at: float) -> None:
    rc = s["result_counts"]
    rc[p["status"]] = rc.get(p["status"], 0) + 1


def _annotated(s: State, p: dict[str, Any], at: float) -> None:
    anns = s["annotations"]
    kept = [a for a in anns if a["id"] != p["annotation_id"]]
    if not p.get("retracted"):
        kept.append(
            {
                "id": p["annotation_id"],
                "kind": p.get("kind"),
                "text": p.get("text"),
                "context": p.get("context"),
                "occurred_at": p["occurred_at"] if p.get("occurred_at") is not None else at,
            }
        )
    s["annotations"] = kept


def _stopped(s: State, p: dict[str, Any], at: float) -> None:
    if s["status"] == "queued":
        s["status"] = "cancelled"
    elif s["status"] == "running":
        s["status"] = "completed"
    ended_at = p.get("ended_at")
    _end(s, float(ended_at) if ended_at is not None else at, p.get("reason") or "stopped")
    s["closed_by"] = p.get("by")


def _expired(s: State, p: dict[str, Any], at: float) -> None:
    if s["status"] == "running":
        s["status"] = "timeout"
    elif s["status"] == "queued":
        s["status"] = "cancelled"
    _end(s, p["last_seen_at"], "expired")


def _deleted(s: State, p: dict[str, Any], at: float) -> None:
    s["deleted"] = True
    _credit_visible(s, at)


def _erased(s: State, p: dict[str, Any], at: float) -> None:
    # Only the fields erasure may touch (domain/personal.py `scrubbed` names them).
    s.update({k: v for k, v in p["state"].items() if k in ERASABLE})


EVOLVERS: dict[str, Callable[[State, dict[str, Any], float], None]] = {
    "Started": _started,
    "KeptAlive": _kept_alive,
    "Hidden": _hidden,
    "StatusChanged": _status_changed,
    "DetailsUpdated": _details_updated,
    "LogUploaded": _log_uploaded,
    "ArtifactAttached": _artifact_attached,
    "MetricRecorded": _metric_recorded,
    "ResultRecorded": _result_recorded,
    "Annotated": _annotated,
    "Stopped": _stopped,
    "Expired": _expired,
    "Deleted": _deleted,
    "Erased": _erased,
}
# What a client sends while its session runs; any of them keeps it from expiring.
SIGNS_OF_LIFE = frozenset(
    {"KeptAlive", "Hidden", "LogUploaded", "ArtifactAttached", "MetricRecorded", "ResultRecorded"}
)


def evolve(
    state: State, event_type: str, payload: dict[str, Any], at: float, position: int | None = None
) -> State:
    """Apply one event recorded at `at` to `state` in place and return it (the fold step)."""
    recorded = at
    event_at = payload.get("at")
    if event_at is not None:
        at = event_at
    EVOLVERS[event_type](state, payload, at)
    state["version"] += 1
    if event_type == "Started" and position is not None:
        # The stable integer id that Testmo and OpenTera clients see: the global position of
        # the stream's first event, unique in the ledger and the same after any rebuild.
        state["number"] = position
    if event_type in SIGNS_OF_LIFE and state["ended_at"] is None:
        state["last_seen_at"] = at
        state["last_seen_recorded_at"] = recorded
    elif event_type in ("Started", "KeptAlive"):  # as their own steps set last_seen_at
        state["last_seen_recorded_at"] = recorded
    if event_type not in ("KeptAlive", "Hidden"):
        state["updated_at"] = at
        if payload.get("by"):
            state["updated_by"] = payload["by"]
    return state


def fold_kept_alive(s: State, p: dict[str, Any], at: float) -> None:
    """`evolve(s, "KeptAlive", p, at)` in one call, for bulk folds (evolve's other steps
    do nothing for a keepalive but count the version and keep the recorded time)."""
    s["last_seen_recorded_at"] = at
    event_at = p.get("at")
    _kept_alive(s, p, at if event_at is None else event_at)
    s["version"] += 1
