"""Creating and updating an OpenTera session: the body's fields become ledger commands
(StartSession, UpdateDetails, StopSession) submitted through api.deps.execute, so the domain's
rules, the key's scopes and its projects apply as on the native API. `Way` holds what differs
between OpenTera's four session APIs once the route has checked its own required fields."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from api.bootstrap import Container
from api.deps import execute
from api.dialects.common import fresh_detail
from api.dialects.opentera.read import require_number
from api.dialects.opentera.shape import (
    DURATION,
    FINAL,
    STATUS_OUT,
    SessionIn,
    creator,
    members,
    params_in,
    session_json,
    status_in,
    time_in,
)
from domain import commands as c
from domain.commands import CommandResult

PLURALS = ("participants", "users", "devices")


@dataclass(frozen=True)
class Way:
    """How one namespace's POST treats a body."""

    by: str | None  # the actor: the key's name, or the device or participant it is bound to
    forced: bool = (
        False  # the caller is the creator whatever id_creator_* says (device, participant)
    )
    extend: frozenset[str] = frozenset()  # member kinds an update adds to (service: users, devices)
    kept: frozenset[str] = frozenset()  # member kinds an update ignores (device, participant)


async def _finish(
    container: Container,
    sid: str,
    target: str,
    changes: dict[str, Any],
    ended_at: float | None,
    by: str | None,
) -> CommandResult:
    """Apply changes and a status move as one decision; a final status also stops it."""
    res = await execute(
        container, c.UpdateDetails(session_id=sid, changes=changes, status=target, by=by)
    )
    if target in FINAL:
        res = await execute(container, c.StopSession(session_id=sid, ended_at=ended_at, by=by))
    return res


async def _create(container: Container, s: SessionIn, way: Way) -> CommandResult:
    # TeraSession.insert (TeraSession.py lines 450-464) starts a session without a status
    # in progress.
    target = status_in(s.session_status if s.session_status is not None else 1)
    started = time_in(s.session_start_datetime, "session_start_datetime")
    if started is None and s.session_duration is not None:
        started = container.ledger.clock()
    by = way.by if way.forced else creator(s) or way.by
    cmd = c.StartSession(
        session_id=s.session_uuid or str(uuid.uuid4()),
        source="opentera",
        name=s.session_name,
        type=None if s.id_session_type is None else str(s.id_session_type),
        # The ledger starts sessions queued or running; a session reported as already over
        # starts running and is moved on at once.
        status="running" if target in FINAL else target,
        started_at=started,
        remarks=s.session_comments,
        attributes={} if s.session_duration is None else {DURATION: str(s.session_duration)},
        parameters=params_in(s.session_parameters),
        participants=members(s, "participants") or [],
        users=members(s, "users") or [],
        devices=members(s, "devices") or [],
        by=by,
    )
    res = await execute(container, cmd)
    if target in FINAL:
        ended = (
            None if started is None or s.session_duration is None else started + s.session_duration
        )
        res = await _finish(container, res.session_id, target, {}, ended, by)
    return res


def _members(s: SessionIn, doc: dict[str, Any], way: Way) -> dict[str, list[str]]:
    out = {}
    for plural in PLURALS:
        listed = members(s, plural)
        if listed is None or plural in way.kept:
            continue
        if plural in way.extend:
            listed = list(dict.fromkeys([*doc[plural], *listed]))
        out[plural] = listed
    return out


def _changes(s: SessionIn, doc: dict[str, Any], way: Way) -> dict[str, Any]:
    given = s.model_fields_set
    new: dict[str, Any] = {}
    for field, name in (("session_name", "name"), ("session_comments", "remarks")):
        if field in given:
            new[name] = getattr(s, field)
    if "id_session_type" in given:
        new["type"] = None if s.id_session_type is None else str(s.id_session_type)
    if "session_parameters" in given:
        params = params_in(s.session_parameters)
        # Parameters merge in the ledger: clear the old keys so the new value replaces them.
        new["parameters"] = {**{k: None for k in doc["parameters"] if k not in params}, **params}
        if params == doc["parameters"]:
            del new["parameters"]
    new.update(_members(s, doc, way))
    new = {k: v for k, v in new.items() if doc.get(k) != v}
    if s.session_duration is not None:
        kept = str(s.session_duration)
        if doc["attributes"].get(DURATION) != kept:
            new["attributes"] = {DURATION: kept}
    return new


async def _update(
    container: Container, s: SessionIn, doc: dict[str, Any], way: Way
) -> CommandResult:
    target = None
    if s.session_status is not None:
        wanted = status_in(s.session_status)
        if s.session_status != STATUS_OUT[doc["status"]]:
            target = wanted
    changes = _changes(s, doc, way)
    if target is None:
        return await execute(
            container, c.UpdateDetails(session_id=doc["id"], changes=changes, by=way.by)
        )
    ended = None
    if s.session_duration is not None and doc["started_at"] is not None:
        ended = doc["started_at"] + s.session_duration
    return await _finish(container, doc["id"], target, changes, ended, way.by)


async def save(
    container: Container, s: SessionIn, way: Way, doc: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Create (id_session 0) or update a session (`doc`: its detail, when the route has
    read it already); answer the session as OpenTera's to_json does."""
    if s.id_session == 0:
        res = await _create(container, s, way)
    else:
        if doc is None:
            doc = await asyncio.to_thread(require_number, container, s.id_session)
        res = await _update(container, s, doc, way)
    fresh = await fresh_detail(container, res.session_id, res.position)
    return session_json(fresh)
