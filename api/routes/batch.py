"""Bulk ingest: `POST /v1/events:batch` takes NDJSON commands, one per line.

Each line is `{"command": "<name>", "session_id": "...", ...fields}`. A malformed line
rejects the whole request (400, naming the line) and nothing is appended; a line the
domain rejects is reported with its problem while the other lines are appended.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import ContainerDep
from api.problems import problem, status_of
from domain import commands as c
from domain.errors import LedgerError

router = APIRouter(prefix="/v1", tags=["bulk"])

COMMANDS: dict[str, type[c.Command]] = {
    "start": c.StartSession,
    "keepalive": c.KeepAlive,
    "hide": c.Hide,
    "status": c.ChangeStatus,
    "update": c.UpdateDetails,
    "metric": c.RecordMetric,
    "result": c.RecordResult,
    "annotate": c.Annotate,
    "stop": c.StopSession,
    "delete": c.DeleteSession,
}
_FIELDS = {
    name: {f.name: f.type for f in dataclasses.fields(cls)} for name, cls in COMMANDS.items()
}


def parse_line(n: int, raw: bytes) -> c.Command:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise ValueError(f"line {n}: not JSON ({err})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"line {n}: expected a JSON object")
    name = obj.pop("command", None)
    if name not in COMMANDS:
        raise ValueError(f"line {n}: command must be one of {', '.join(COMMANDS)}")
    unknown = set(obj) - set(_FIELDS[name])
    if unknown:
        raise ValueError(f"line {n}: unknown field(s) {', '.join(sorted(unknown))}")
    if not isinstance(obj.get("session_id"), str) or not obj["session_id"]:
        raise ValueError(f"line {n}: session_id is required")
    try:
        return COMMANDS[name](**obj)
    except TypeError as err:
        raise ValueError(f"line {n}: {err}") from None


@router.post("/events:batch")
async def batch(request: Request, container: ContainerDep) -> Any:
    """Append many commands (NDJSON); answers per-line outcomes and the last position."""
    body = await request.body()
    cmds: list[c.Command] = []
    for n, raw in enumerate(body.splitlines(), 1):
        if raw.strip():
            try:
                cmds.append(parse_line(n, raw))
            except ValueError as err:
                return problem(400, "invalid-batch", str(err), field=f"line {n}")
    if not cmds:
        return problem(400, "invalid-batch", "the body has no commands")
    outcomes = await asyncio.wrap_future(container.ledger.submit(cmds))
    rejected = [
        {"line": i + 1, "status": status_of(o), "code": o.code, "detail": o.message}
        for i, o in enumerate(outcomes)
        if isinstance(o, LedgerError)
    ]
    appended = sum(o.appended for o in outcomes if not isinstance(o, LedgerError))
    position = max((o.position for o in outcomes if not isinstance(o, LedgerError)), default=0)
    return JSONResponse(
        {
            "accepted": len(cmds) - len(rejected),
            "rejected": rejected,
            "appended": appended,
            "position": position,
        }
    )
