"""OpenTera's translation tables and shapes: status integers, the request bodies, the session
and session type objects, times and parameters, and who calls (the token the gate accepted)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict

from api import auth
from api.dialects.common import gate_principal, time_param
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
    session_duration: int | None = None
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


class SessionBody(Body):
    session: SessionIn


def require_token(
    token: Annotated[str | None, Query(description="Secret token (an API key)")] = None,
) -> str | None:
    """The caller's name: the key the request gate (api/auth.py) accepted, from `token` or
    `Authorization: OpenTera <key>` (anonymous reads name no one)."""
    who = gate_principal("Missing token")
    return None if who is auth.ANONYMOUS else who.name


Principal = Annotated[str | None, Depends(require_token)]


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
    if uuids is None and ids is None:
        return None
    values = [*(uuids or []), *(str(i) for i in ids or [])]
    return list(dict.fromkeys(values))


def _member_out(kind: str, value: str) -> dict[str, Any]:
    numeric = value.isdigit()
    return {
        f"id_{kind}": int(value) if numeric else None,
        f"{kind}_uuid": None if numeric else value,
    }


def type_out(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def session_json(
    doc: dict[str, Any], now: float, minimal: bool = False, with_type: bool = False
) -> dict[str, Any]:
    """A detail document as an OpenTera session object (TeraSession.to_json field names)."""
    started = doc["started_at"]
    if doc["duration"] is not None:
        duration = doc["duration"]
    else:
        duration = max(0.0, now - started) if started is not None else 0.0
    by = doc["created_by"] or ""
    kind, _, ident = by.partition(":")
    out: dict[str, Any] = {
        "id_session": doc["number"],
        "session_uuid": doc["id"],
        "session_name": doc["name"],
        "session_start_datetime": ot_time(started),
        "session_duration": round(duration),
        "session_status": STATUS_OUT[doc["status"]],
        "id_session_type": type_out(doc["type"]),
    }
    for k in CREATORS:
        out[f"id_creator_{k}"] = int(ident) if kind == k and ident.isdigit() else None
    out["session_assets_count"] = len(doc["logs"]) + len(doc["artifacts"])
    out["session_tests_count"] = sum(doc["result_counts"].values())
    if not minimal:
        out["session_comments"] = doc["remarks"]
        out["session_parameters"] = params_out(doc["parameters"])
        for plural, kind in MEMBERS:
            out[f"session_{plural}"] = [_member_out(kind, v) for v in doc[plural]]
    if with_type:
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
