"""Shaping views for the native API: epoch seconds become ISO-8601 UTC strings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

# Uploaded content is the clients', not ours: never sniffed, rendered or scripted on the
# API's origin (stored XSS), whatever type it was uploaded as.
UPLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}

TIME_FIELDS = frozenset(
    {"started_at", "ended_at", "last_seen_at", "updated_at", "at", "occurred_at", "recorded_at"}
)


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


def session_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A detail document as the native API shows it (internal fold fields left out)."""
    out = {k: v for k, v in doc.items() if k not in ("visible_path", "visible_since", "deleted")}
    out["active"] = doc["ended_at"] is None and not doc["deleted"]
    return with_iso_times(out)


def uploaded_content(data: bytes, media_type: str, name: str) -> Response:
    """An uploaded blob served back as a download, with its recorded type."""
    headers = {**UPLOAD_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(data, media_type=media_type, headers=headers)
