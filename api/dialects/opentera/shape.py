"""OpenTera's translation tables and shapes: status integers, the request bodies, the session
and session type objects (TeraSession.to_json, teraserver/python/opentera/db/models/
TeraSession.py lines 58-120), times and parameters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from api.dialects.common import time_param
from domain.errors import InvalidCommandError

# OpenTera TeraSessionStatus -> the ledger status a client's integer moves a session to.
STATUS_IN = {0: "queued", 1: "running", 2: "completed", 3: "cancelled", 4: "error"}
# Ledger status -> OpenTera integer. Verdicts given after a run are still "completed", and a
# session that timed out (no keepalive) was ended by the ledger, i.e. "terminated".
STATUS_OUT = {
    "queued": 0,
    "running": 1,
    "completed": 2,
    "passed": 2,
    "failed": 2,
    "cancelled": 3,
    "error": 4,
    "timeout": 4,
}
FINAL = frozenset({"completed", "cancelled", "error"})
CREATORS = ("user", "device", "participant", "service")
MEMBERS = (("participants", "participant"), ("users", "user"), ("devices", "device"))
# What OpenTera's to_json adds to each member beyond its id and uuid: names the ledger does
# not know (it knows members by id or uuid only), so they are null.
MEMBER_EXTRAS = {
    "participant": ("participant_name", "id_project", "project_name"),
    "user": ("user_name",),
    "device": ("device_name",),
}
# session_duration is a column OpenTera keeps as the client posted it (default 0); the ledger
# keeps a posted value as this attribute of the session, and never derives one from a clock.
DURATION = "opentera.session_duration"
INT_MAX = 2**31 - 1  # OpenTera's Integer columns

# OpenTera answers a delete with an empty 200: documented as such, not as JSON.
EMPTY_200: dict[int | str, dict[str, Any]] = {200: {"description": "Deleted", "content": {}}}


class Body(BaseModel):
    # OpenTera clients send the objects they fetched, with read-only fields: ignore extras.
    model_config = ConfigDict(extra="ignore")


class SessionIn(Body):
    id_session: int
    session_uuid: str | None = None
    session_name: str | None = None
    session_start_datetime: str | None = None
    session_duration: int | None = Field(None, ge=0, le=INT_MAX)
    session_status: int | None = None
    session_comments: str | None = None
    session_parameters: str | dict[str, Any] | None = None
    id_session_type: int | None = None
    id_creator_user: int | None = None
    id_creator_device: int | None = None
    id_creator_participant: int | None = None
    id_creator_service: int | None = None
    session_participants: list[str] | None = None
    session_users: list[str] | None = None
    session_devices: list[str] | None = None
    session_participants_ids: list[int] | None = None
    session_users_ids: list[int] | None = None
    session_devices_ids: list[int] | None = None
    # The service API names members by uuid (ServiceQuerySessions.py lines 162-185).
    session_participants_uuids: list[str] | None = None
    session_users_uuids: list[str] | None = None
    session_devices_uuids: list[str] | None = None


class SessionBody(Body):
    session: SessionIn


def status_in(value: int) -> str:
    if value not in STATUS_IN:
        raise InvalidCommandError("session_status must be 0, 1, 2, 3 or 4", field="session_status")
    return STATUS_IN[value]


def ot_time(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def time_in(value: str | None, field: str) -> float | None:
    return time_param(value, field, "is not a date/time: {value!r}")


def params_in(value: str | dict[str, Any] | None) -> dict[str, Any]:
    """OpenTera parameters are a string: a JSON object is kept as such, anything else as raw."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"raw": value}


def params_out(params: dict[str, Any]) -> str | dict[str, Any] | None:
    if not params:
        return None
    if set(params) == {"raw"} and isinstance(params["raw"], str):
        return params["raw"]
    return params


def creator(s: Any) -> str | None:
    """The first id_creator_* given, as the ledger's actor string (e.g. "user:3")."""
    for kind in CREATORS:
        value = getattr(s, f"id_creator_{kind}")
        if value is not None:
            return f"{kind}:{value}"
    return None


def members(s: SessionIn, plural: str) -> list[str] | None:
    """uuids and integer ids of one kind of member, as the ledger's strings (None: not given)."""
    uuids = getattr(s, f"session_{plural}")
    ids = getattr(s, f"session_{plural}_ids")
    by_uuid = getattr(s, f"session_{plural}_uuids")
    if uuids is None and ids is None and by_uuid is None:
        return None
    values = [*(uuids or []), *(by_uuid or []), *(str(i) for i in ids or [])]
    return list(dict.fromkeys(values))


def _member_out(kind: str, value: str) -> dict[str, Any]:
    numeric = value.isascii() and value.isdigit()
    out: dict[str, Any] = {
        f"id_{kind}": int(value) if numeric else None,
        f"{kind}_uuid": None if numeric else value,
    }
    return out | dict.fromkeys(MEMBER_EXTRAS[kind])


def type_out(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def duration_out(doc: dict[str, Any]) -> int:
    """The duration a client posted, else the ledger's measured one once the session has
    ended, else 0 (OpenTera's default): never a running session's time so far."""
    kept = doc["attributes"].get(DURATION)
    if kept is not None and kept.isascii() and kept.isdigit():
        return int(kept)
    return round(doc["duration"]) if doc["duration"] is not None else 0


def session_json(
    doc: dict[str, Any], minimal: bool = False, with_type: str | None = None
) -> dict[str, Any]:
    """A detail document as an OpenTera session object (TeraSession.to_json field names).
    `with_type`: "flat" adds session_type_name and session_type_color (the user API,
    UserQuerySessions.py lines 93-95), "nested" a session_type object (the service API,
    ServiceQuerySessions.py lines 112-114)."""
    by = doc["created_by"] or ""
    kind, _, ident = by.partition(":")
    out: dict[str, Any] = {
        "id_session": doc["number"],
        "session_uuid": doc["id"],
        "session_name": doc["name"],
        "session_start_datetime": ot_time(doc["started_at"]),
        "session_duration": duration_out(doc),
        "session_status": STATUS_OUT[doc["status"]],
        "id_session_type": type_out(doc["type"]),
    }
    for k in CREATORS:
        out[f"id_creator_{k}"] = int(ident) if kind == k and type_out(ident) is not None else None
    out["session_assets_count"] = len(doc["logs"]) + len(doc["artifacts"])
    out["session_tests_count"] = sum(doc["result_counts"].values())
    if not minimal:
        out["session_comments"] = doc["remarks"]
        out["session_parameters"] = params_out(doc["parameters"])
        for plural, member in MEMBERS:
            out[f"session_{plural}"] = [_member_out(member, v) for v in doc[plural]]
    if with_type == "flat":
        out["session_type_name"] = doc["type"]
        out["session_type_color"] = None
    elif with_type == "nested":
        out["session_type"] = session_type_json(doc["type"])
    return out


def session_type_json(value: str | None) -> dict[str, Any] | None:
    """A session type known only by its id: the ledger does not manage types."""
    ident = type_out(value)
    if ident is None:
        return None
    return {
        "id_session_type": ident,
        "session_type_name": value,
        "id_service": None,
        "session_type_category": None,
        "session_type_color": None,
        "session_type_config": None,
        "session_type_online": None,
    }
