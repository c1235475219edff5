"""Bulk ingest: `POST /v1/events:batch` takes NDJSON commands, one per line.

Each line is `{"command": "<name>", "session_id": "...", ...fields}`. A malformed line
rejects the whole request (400, naming the line) and nothing is appended; a line the
domain rejects (its rules in domain/rules.py, the same as every route's, or the session's
state) is reported with its problem while the other lines are appended: its status is
the one the single command's route would answer (412 for a stale `expected_version`, as a
stale If-Match). A body declared as anything but NDJSON is refused whole (415). A body is capped in
bytes and lines (api/limits.py) and goes to the writer in turns, so it never starves the
keepalives that arrive while it is appended.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api import auth
from api import openapi as a
from api.deps import ContainerDep
from api.dialects.lambdatest import with_account
from api.media import check_ndjson
from api.problems import problem, status_of
from domain import commands as c
from domain.errors import LedgerError, LimitExceededError
from persistence.runtime import paused_gc

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


def _builder(cls: type[c.Command]) -> Callable[[dict[str, Any]], c.Command]:
    """What `cls(**fields)` does, for fields already checked against the class: the generated
    frozen-dataclass __init__ (one object.__setattr__ per field) cost more per line than
    parsing it, so the instance dict is filled directly. Missing required fields go through
    the real constructor for its exact TypeError; a class that validates in __post_init__
    always does."""
    fields = dataclasses.fields(cls)
    slotted = any("__slots__" in vars(k) for k in cls.__mro__[:-1])
    if slotted or hasattr(cls, "__post_init__") or any(not f.init for f in fields):
        return lambda obj: cls(**obj)
    MISSING = dataclasses.MISSING
    defaults = {f.name: f.default for f in fields if f.default is not MISSING}
    factories = tuple(
        (f.name, f.default_factory) for f in fields if f.default_factory is not MISSING
    )
    required = frozenset(
        f.name for f in fields if f.default is MISSING and f.default_factory is MISSING
    )
    new, set_attr = object.__new__, object.__setattr__

    def build(obj: dict[str, Any]) -> c.Command:
        if not required.issubset(obj):
            return cls(**obj)  # raises the constructor's TypeError
        cmd = new(cls)
        d = defaults | obj
        for name, factory in factories:
            if name not in obj:
                d[name] = factory()
        set_attr(cmd, "__dict__", d)
        return cmd

    return build


class BatchLineError(ValueError):
    """A malformed line: the whole request is refused, naming it (counting every line)."""

    def __init__(self, line: int, detail: str) -> None:
        super().__init__(f"line {line}: {detail}")
        self.line = line


_BUILD = {name: _builder(cls) for name, cls in COMMANDS.items()}
_ALLOWED = {name: frozenset(fields) for name, fields in _FIELDS.items()}
# The keys a line may have: a command's fields and the `command` key itself.
_LINE_KEYS = {name: fields | {"command"} for name, fields in _ALLOWED.items()}


def parse_line(n: int, raw: bytes) -> c.Command:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise BatchLineError(n, f"not JSON ({err})") from None
    if not isinstance(obj, dict):
        raise BatchLineError(n, "expected a JSON object")
    name = obj.pop("command", None)
    if not isinstance(name, str) or name not in COMMANDS:
        raise BatchLineError(n, f"command must be one of {', '.join(COMMANDS)}")
    if not _ALLOWED[name].issuperset(obj):
        unknown = set(obj) - _ALLOWED[name]
        raise BatchLineError(n, f"unknown field(s) {', '.join(sorted(unknown))}")
    sid = obj.get("session_id")
    if not sid or not isinstance(sid, str):
        raise BatchLineError(n, "session_id is required")
    try:
        return _BUILD[name](obj)
    except TypeError as err:
        raise BatchLineError(n, str(err)) from None


def parse_body(body: bytes) -> list[c.Command]:
    """The commands of an NDJSON body (blank lines skipped); BatchLineError names the first
    malformed line. Well-formed bodies take a fast path; any other goes line by line, and
    `parse_line` finds what is wrong with the first bad line."""
    objs = _as_array(body)
    if objs is not None:
        cmds = [_command(obj) for obj in objs]
        if None not in cmds:
            return cmds  # type: ignore[return-value]
    cmds = []
    for n, raw in enumerate(body.splitlines(), 1):
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            if raw.strip():
                parse_line(n, raw)  # raises
            continue
        cmds.append(_command(obj) or parse_line(n, raw))
    return cmds  # type: ignore[return-value]


def _as_array(body: bytes) -> list[Any] | None:
    """Every line's value, parsed as one JSON array (one call instead of one per line);
    None unless that gives exactly one value per line. A blank line, a line that is not
    JSON or holds two values all come out None, and the line-by-line parse deals with them."""
    lines = body.rstrip(b"\r\n")
    if not lines:
        return None
    try:
        objs = orjson.loads(b"[" + lines.replace(b"\n", b",") + b"]")
    except orjson.JSONDecodeError:
        return None
    return objs if len(objs) == lines.count(b"\n") + 1 else None


def _command(obj: Any) -> c.Command | None:
    """The command of a well-formed line's value; None for anything else."""
    if type(obj) is dict:
        name = obj.get("command")
        keys = _LINE_KEYS.get(name) if isinstance(name, str) else None
        if keys is not None and isinstance(name, str):
            sid = obj.get("session_id")
            if type(sid) is str and sid and keys.issuperset(obj):
                del obj["command"]
                try:
                    return _BUILD[name](obj)
                except TypeError:
                    pass
    return None


# Commands per submission to the writer: a large batch goes in turns of this size, so the
# keepalives that arrive meanwhile join the next commit group instead of waiting for all of it
# (a turn is ~0.1 s of the writer's time). Turns of 2,000 cost bulk ingest a fifth of its rate
# when measured (a commit and a wait for each); 10,000 kept it.
TURN = 10000


@router.post("/events:batch", responses=a.documented(a.BatchAnswer, 400, *a.READ, 413, 415))
async def batch(request: Request, container: ContainerDep) -> Any:
    """Append many commands (NDJSON); answers per-line outcomes and the last position."""
    content_type = request.headers.get("content-type")
    check_ndjson(None if content_type is None else content_type.encode("latin-1"))
    body = await request.body()  # bounded by the edge's max_batch_bytes (api/limits.py)
    max_lines = container.settings.body_limits.max_batch_lines
    if body.count(b"\n") >= max_lines and len(body.splitlines()) > max_lines:
        raise LimitExceededError(
            f"the batch has more than {max_lines} lines (max_batch_lines)", limit="max_batch_lines"
        )
    try:
        with paused_gc():
            cmds = parse_body(body)
    except BatchLineError as err:
        return problem(400, "invalid-batch", str(err), field=f"line {err.line}")
    if not cmds:
        return problem(400, "invalid-batch", "the body has no commands")
    del body
    # A LambdaTest session records its account (the key), which that dialect's list shows.
    cmds = [with_account(cmd) if type(cmd) is c.StartSession else cmd for cmd in cmds]
    outcomes: list[Any] = []
    projects = auth.projects()
    for i in range(0, len(cmds), TURN):
        outcomes += await container.ledger.submit_async(cmds[i : i + TURN], projects=projects)
    rejected = []
    appended = position = 0
    for i, o in enumerate(outcomes):
        if isinstance(o, LedgerError):
            rejected.append(
                {"line": i + 1, "status": status_of(o), "code": o.code, "detail": o.message}
            )
        else:
            appended += o.appended
            if o.position > position:
                position = o.position
    return JSONResponse(
        {
            "accepted": len(cmds) - len(rejected),
            "rejected": rejected,
            "appended": appended,
            "position": position,
        }
    )
