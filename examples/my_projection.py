"""An analyst's projection for `ledger replay run examples/my_projection.py`: sessions per
browser, and the mean number of keepalives per session for each browser.

The interface: `initial()` gives the starting state, `apply(state, event)` folds one event
(a dict: position, stream_id, version, type, schema_version, recorded_at, payload) and
returns the new state (or None after changing it in place), `result(state)` shapes the
answer (printed as JSON, or written with --out). `TYPES` (optional) limits the events.
"""

from __future__ import annotations

from typing import Any

TYPES = {"Started", "DetailsUpdated", "KeptAlive", "Deleted"}


def initial() -> dict[str, Any]:
    return {"browser": {}, "keepalives": {}, "deleted": set()}


def apply(state: dict[str, Any], event: dict[str, Any]) -> None:
    sid, p = event["stream_id"], event["payload"]
    if event["type"] == "Started":
        state["browser"][sid] = (p.get("attributes") or {}).get("browser") or "unknown"
        state["keepalives"][sid] = 0
    elif event["type"] == "DetailsUpdated":
        browser = (p["changes"].get("attributes") or {}).get("browser")
        if browser:
            state["browser"][sid] = browser
    elif event["type"] == "KeptAlive":
        state["keepalives"][sid] = state["keepalives"].get(sid, 0) + 1
    elif event["type"] == "Deleted":
        state["deleted"].add(sid)


def result(state: dict[str, Any]) -> dict[str, Any]:
    per: dict[str, list[int]] = {}
    for sid, browser in state["browser"].items():
        if sid not in state["deleted"]:
            per.setdefault(browser, []).append(state["keepalives"].get(sid, 0))
    return {
        browser: {"sessions": len(ks), "mean_keepalives": round(sum(ks) / len(ks), 3)}
        for browser, ks in sorted(per.items())
    }
