"""OpenTera session types (derived from sessions), per-session assets and session stats."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException

from api.bootstrap import Container
from api.deps import FreshDep
from api.dialects.common import read_views, scoped, scoped_stats
from api.dialects.opentera.read import member_sessions, missing, require_number
from api.dialects.opentera.shape import STATUS_OUT, ot_time, session_type_json
from api.dialects.opentera.who import CallerDep
from domain.errors import SessionNotFoundError
from projections import queries as qs

router = APIRouter()
ASSET_EVENTS = ("LogUploaded", "ArtifactAttached")
ALL = qs.SessionFilter()


def _types(container: Container) -> list[dict[str, Any]]:
    # Session types are managed entities in OpenTera; the ledger only knows the type ids
    # its sessions carry, so the list is what the sessions show.
    by_type = scoped_stats(qs.StatsQuery(group_by=("type",)))
    groups = read_views(container, qs.stats, by_type)
    found = (session_type_json(g["key"]["type"]) for g in groups["groups"])
    return sorted((t for t in found if t), key=lambda t: t["id_session_type"])


@router.get("/user/sessiontypes")
@router.get("/service/sessiontypes")
def session_types(
    container: FreshDep,
    id_session_type: int | None = None,
    id_project: int | None = None,
    id_site: int | None = None,
    id_participant: int | None = None,
) -> list[dict[str, Any]]:
    """Session types seen on sessions (project/site/participant ids do not narrow them)."""
    types = _types(container)
    if id_session_type is not None:
        types = [t for t in types if t["id_session_type"] == id_session_type]
    return types


def asset_json(e: Any, number: int, with_urls: bool) -> dict[str, Any]:
    p = e.data()
    out = {
        "id_asset": e.position,
        "id_session": number,
        "id_device": None,
        "id_participant": None,
        "id_user": None,
        "id_service": None,
        "asset_name": p.get("title") or p["kind"],
        # Stable: derived from the stream and the event's position, never stored.
        "asset_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{e.stream_id}/{e.position}")),
        "asset_service_uuid": None,
        "asset_type": p.get("content_type"),
        "asset_datetime": ot_time(e.recorded_at),
    }
    if with_urls:
        if e.type == "LogUploaded":
            out["asset_url"] = f"/v1/sessions/{e.stream_id}/logs/{p['kind']}"
        else:
            out["asset_url"] = p.get("url")
    return out


@router.get("/user/assets")
@router.get("/device/assets")
@router.get("/service/assets")
def assets(
    container: FreshDep,
    who: CallerDep,
    id_session: int | None = None,
    id_asset: int | None = None,
    with_urls: bool = False,
) -> list[dict[str, Any]]:
    """The session's logs and artifacts as OpenTera assets (id_asset = log position)."""
    if id_session is None:
        raise missing("Required parameter is missing: id_session")
    doc = require_number(container, id_session)
    if not who.takes_part(doc):
        # A device's assets are those of its sessions: another session answers as none.
        raise SessionNotFoundError(f"no session {id_session}", field="id_session")
    out = [
        asset_json(e, doc["number"], with_urls)
        for e in container.store.load_stream(doc["id"])
        if e.type in ASSET_EVENTS
    ]
    return [a for a in out if id_asset is None or a["id_asset"] == id_asset]


def _session_stats(doc: dict[str, Any]) -> dict[str, int]:
    return {
        "users_total_count": len(doc["users"]),
        "participants_total_count": len(doc["participants"]),
        "devices_total_count": len(doc["devices"]),
        "assets_total_count": len(doc["logs"]) + len(doc["artifacts"]),
        "events_total_count": len(doc["annotations"]),
        "tests_total_count": sum(doc["result_counts"].values()),
    }


def _status_stats(docs: list[dict[str, Any]]) -> dict[str, Any]:
    # Counted from the documents already read, not by a second read of the same sessions.
    by_int = dict.fromkeys(range(5), 0)
    for d in docs:
        by_int[STATUS_OUT[d["status"]]] += 1
    ended = [d["duration"] for d in docs if d["duration"] is not None]
    return {
        "sessions_total_count": sum(by_int.values()),
        "sessions_total_time": round(sum(ended), 3),
        "sessions_mean_time": round(sum(ended) / len(ended), 3) if ended else 0,
        "sessions_planned_count": by_int[0],
        "sessions_inprogress_count": by_int[1],
        "sessions_completed_count": by_int[2],
        "sessions_cancelled_count": by_int[3],
        "sessions_terminated_count": by_int[4],
    }


def _member_stats(container: Container, plural: str, value: str) -> dict[str, Any]:
    return _status_stats(member_sessions(container, plural, value, ALL))


def _user_stats(container: Container, value: str) -> dict[str, Any]:
    by_user = dataclasses.replace(ALL, created_by=f"user:{value}")
    created = read_views(container, qs.count_sessions, scoped(by_user))["total"]
    return {
        "sessions_created_total_count": created,
        "sessions_total_count": _member_stats(container, "users", value)["sessions_total_count"],
    }


@router.get("/user/stats")
def stats(
    container: FreshDep,
    id_user_group: int | None = None,
    id_user: int | None = None,
    id_site: int | None = None,
    id_project: int | None = None,
    id_group: int | None = None,
    id_session: int | None = None,
    id_participant: int | None = None,
    id_device: int | None = None,
) -> dict[str, Any]:
    """The session part of OpenTera's stats (the first given id wins, in OpenTera's order)."""
    ids = (
        ("user_group", id_user_group),
        ("user", id_user),
        ("site", id_site),
        ("project", id_project),
        ("group", id_group),
        ("session", id_session),
        ("participant", id_participant),
        ("device", id_device),
    )
    kind, value = next(((k, v) for k, v in ids if v is not None), ("", None))
    if value is None:
        raise missing("Missing id argument")
    if kind == "session":
        return _session_stats(require_number(container, value))
    if kind == "user":
        return _user_stats(container, str(value))
    if kind in ("participant", "device"):
        return _member_stats(container, f"{kind}s", str(value))
    raise HTTPException(501, f"Not implemented: {kind} stats (the ledger does not manage {kind}s)")
