"""A ledger session as Canopsis lists it: the document its session manager stores and
`GET /api/v2/sessions` returns (capensis/canopsis, sources/canopsis/canopsis/session/
manager.py): `_id`, `id_beaker_session`, `username`, times in whole epoch seconds,
`visible_duration` and `tab_duration` in whole seconds."""

from __future__ import annotations

import base64
from typing import Any


def path_parts(path: str | None) -> list[str]:
    """A recorded path as Canopsis's list of parts: "[view,tab]" (the seed's form, and how
    the dialect records the UI's [view, tab]) is [view, tab]; a path of another way in is
    one view; no path is none."""
    if not path:
        return []
    if path.startswith("[") and path.endswith("]"):
        return [p for p in path[1:-1].split(",", 1) if p]
    return [path]


def tab_duration(visible_time: dict[str, float]) -> dict[str, Any]:
    """Seconds visible per view, or per tab of a view: {view: seconds} or {view: {tab:
    seconds}}, as Canopsis counts them. A view with time both on its own and on its tabs
    is one number (Canopsis adds a tab's time to a view that already holds a number); time
    with no path counts in `visible_duration` only."""
    per_view: dict[str, dict[str | None, float]] = {}
    for path, seconds in visible_time.items():
        parts = path_parts(path)
        if parts:
            tabs = per_view.setdefault(parts[0], {})
            tab = parts[1] if len(parts) > 1 else None
            tabs[tab] = tabs.get(tab, 0.0) + seconds
    out: dict[str, Any] = {}
    for view, tabs in per_view.items():
        if None in tabs:
            out[view] = round(sum(tabs.values()))
        else:
            out[view] = {tab: round(s) for tab, s in tabs.items() if tab is not None}
    return out


def beaker_id(username: str, start: int) -> str:
    """Canopsis's `id_beaker_session`: base64 of "<username>_<login time>" (its
    get_id_beaker_session); the session's start stands for the login."""
    return base64.b64encode(f"{username}_{start}".encode()).decode()


def _seconds(value: float | None) -> int:
    return int(value or 0)


def _last_visible(doc: dict[str, Any], start: int) -> tuple[int, list[str]]:
    """When and where the session was last visible: its last visible keepalive, kept while
    it is hidden, as Canopsis keeps them; before any, the start and no path."""
    if "last_visible_at" not in doc:  # a document folded before the fold kept it
        since = doc["visible_since"]
        at = since if since is not None else doc["last_seen_at"] if doc["visible_time"] else None
        return (start if at is None else _seconds(at)), path_parts(doc["visible_path"])
    at = doc["last_visible_at"]
    return (start if at is None else _seconds(at)), path_parts(doc["last_visible_path"])


def session_item(doc: dict[str, Any]) -> dict[str, Any]:
    """The Canopsis session document of one ledger session (its detail document)."""
    user = doc["user"] or ""
    start = _seconds(doc["started_at"])
    last_ping = _seconds(doc["last_seen_at"] or doc["started_at"])
    visible = doc["visible_time"]
    last_visible_ping, last_visible_path = _last_visible(doc, start)
    return {
        "_id": doc["id"],
        "id_beaker_session": beaker_id(user, start),
        "username": user,
        "start": start,
        "last_ping": last_ping,
        "last_visible_ping": last_visible_ping,
        "last_visible_path": last_visible_path,
        "visible_duration": round(sum(visible.values())),
        "tab_duration": tab_duration(visible),
    }
