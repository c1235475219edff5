"""Views as callers read them: epoch seconds become ISO-8601 UTC strings, and a detail
document loses the fold's internal fields. Pure functions, shared by the API and replay."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

TIME_FIELDS = frozenset(
    {"started_at", "ended_at", "last_seen_at", "updated_at", "at", "occurred_at", "recorded_at",
     "last_visible_at"}
)  # fmt: skip


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str | float | None) -> float | None:
    """Accept epoch seconds or ISO-8601 (a bare date means its midnight UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except ValueError:
        pass
    text = value.strip().replace("Z", "+00:00").replace(" ", "T", 1)
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def with_iso_times(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {
            k: iso(v) if k in TIME_FIELDS and isinstance(v, int | float) else with_iso_times(v)
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [with_iso_times(x) for x in doc]
    return doc


# The fold's own bookkeeping, not part of a session as callers see it.
_INTERNAL = frozenset({"visible_path", "visible_since", "deleted", "last_seen_recorded_at"})


def session_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A detail document as the native API shows it (internal fold fields left out)."""
    out = {k: v for k, v in doc.items() if k not in _INTERNAL}
    out["active"] = doc["ended_at"] is None and not doc["deleted"]
    shaped: dict[str, Any] = with_iso_times(out)
    return shaped
