"""LambdaTest's shapes: the error shape (`{"status": "fail", "message", "code"}`, 400 for bad
input, 404 for a deleted session), a ledger session as LambdaTest lists it, the account a
LambdaTest session belongs to (`with_account`), the list's parameters, and the routes that
execute one command and answer a message (`command_route`)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse

from api.bootstrap import Container
from api.deps import ContainerDep, execute, require_detail
from api.dialects.common import actor
from api.problems import register_renderer, text_fields
from domain import commands as c
from domain.errors import InvalidCommandError
from projections.present import iso

PREFIX = "/compat/lambdatest/automation/api/v1"
STATUS_KEY = re.compile(r"status(\[\d*\])?")
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]
# The seed's sort keys (and the real client's variants) onto the ledger's sort columns.
SORT_KEYS = {
    "start_time": "started_at", "start_timestamp": "started_at", "create_timestamp": "started_at",
    "end_time": "ended_at", "end_timestamp": "ended_at", "duration": "duration", "name": "name",
}  # fmt: skip
LOGS = {"command": "command", "selenium": "selenium", "network": "network", "console": "console",
        "network.har": "har", "full-har": "har"}  # fmt: skip
LOG_URL_FIELDS = ("console", "network", "command", "selenium")
HAR_MESSAGE = "Downloaded network.har file successfully"
# The tag a LambdaTest session's start records: the name of the key that started it, its
# account (LambdaTest's Basic user name is the key's name). The list shows an account's own.
ACCOUNT_TAG = "lambdatest.account"


# LambdaTest's answers (selenium-automation.yaml): a refused Basic credential is the JSON
# string AccessDenied; a missing session SessionNotFound; an upload over 2 MB a 400.
ACCESS_DENIED = "HTTP Basic: Access denied."
NOT_FOUND = "Either resource not found or already deleted"
UPLOAD_CAP = 2 * 1024 * 1024
TOO_LARGE = "Oops ! file size too large (> 2MB)"
ALREADY_STOPPED = "Oops! Looks like session is already stopped"


def _render_error(status: int, code: str, detail: str, field: str | None) -> Response:
    # LambdaTest documents 400 for bad input and 404 for a missing session: a deleted
    # session is not found, and invalid input is a bad request.
    if status == 401:
        return JSONResponse(ACCESS_DENIED, status_code=401)
    status = {422: 400, 410: 404}.get(status, status)
    if status == 404:  # SessionNotFound's message, then what was not found
        detail = f"{NOT_FOUND}: {detail}"
    return JSONResponse({"status": "fail", "message": detail, "code": code}, status_code=status)


register_renderer(PREFIX, _render_error, 400, text_fields("message", "status", "code"))


def missing(session_id: str) -> str:
    return f"Session {session_id} not found"


def detail_of(container: Container, session_id: str) -> dict[str, Any]:
    return require_detail(container, session_id, missing(session_id))


def tag_list(tags: dict[str, str] | None) -> list[str]:
    """A session's tags as LambdaTest's list of strings (`k:v`, or `k` alone), without the
    account tag."""
    items = sorted((tags or {}).items())
    return [f"{k}:{v}" if v else k for k, v in items if k != ACCOUNT_TAG]


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """A ledger session as a list item: the seed's fields and selenium-automation.yaml's
    names for them (`build_name`, `create_timestamp`, `platform`, `remark`, `tag`)."""
    attrs = doc.get("attributes") or {}
    duration = doc.get("duration")
    return {
        "session_id": doc["id"],
        "build_id": doc.get("build"),
        "build_name": doc.get("build"),
        "name": doc.get("name"),
        "status": doc["status"],
        "status_ind": doc["status"],
        "username": doc.get("user"),
        **{
            k: attrs.get(k)
            for k in ("browser", "browser_version", "os", "os_version", "resolution")
        },
        "platform": attrs.get("os"),
        "create_timestamp": iso(doc.get("started_at")),
        "start_timestamp": iso(doc.get("started_at")),
        "end_timestamp": iso(doc.get("ended_at")),
        "duration": None if duration is None else int(duration),
        "remarks": doc.get("remarks"),
        "remark": doc.get("remarks"),
        "tag": tag_list(doc.get("tags")),
        "test_type": "selenium",
    }


def with_account(cmd: c.Command) -> c.Command:
    """`cmd`, and when it starts a LambdaTest session, with its account: the calling key's
    name as the tag ACCOUNT_TAG (a client's own value for it is replaced, so no key can file
    a session under another's account). Native starts and batch start lines come through
    here; anything else is returned as it is."""
    if type(cmd) is not c.StartSession or cmd.source != "lambdatest":
        return cmd
    if not isinstance(cmd.tags, dict):
        return cmd  # the input rules refuse it, naming `tags`
    tags = {k: v for k, v in cmd.tags.items() if k != ACCOUNT_TAG}
    who = actor()
    if who is not None:
        tags[ACCOUNT_TAG] = who
    return dataclasses.replace(cmd, tags=tags)


def day_bound(value: str | None, field: str, end: bool) -> float | None:
    if not value:
        return None
    try:
        d = date.fromisoformat(value)
    except ValueError:
        raise InvalidCommandError(
            f"{field} must be YYYY-MM-DD, not {value!r}", field=field
        ) from None
    # The list filters are strict; the seed's day bounds are inclusive.
    if end:
        return datetime.combine(d + timedelta(days=1), time(), tzinfo=UTC).timestamp()
    return datetime.combine(d, time(), tzinfo=UTC).timestamp() - 1e-6


def sort_of(value: str | None) -> tuple[str, bool]:
    """`asc.start_time`, `desc.duration` (several keys: the first decides; number breaks ties)."""
    if not value:
        return "started_at", True
    first = value.split(",")[0].strip()
    direction, _, key = first.partition(".")
    if direction not in ("asc", "desc") or key not in SORT_KEYS:
        raise InvalidCommandError(
            f"sort must be asc.<key> or desc.<key> with key in {', '.join(SORT_KEYS)}", field="sort"
        )
    return SORT_KEYS[key], direction == "desc"


# What a command route builds from its request: (request, container, session id, key).
MakeCommand = Callable[[Request, Container, str, str | None], Awaitable[c.Command]]


def command_route(
    router: APIRouter,
    method: str,
    path: str,
    name: str,
    doc: str,
    make: MakeCommand,
    message: str,
) -> None:
    """Declare on `router` the route `name` (`doc` its OpenAPI text): it executes the command
    `make` builds for one session and answers the seed's `message`, nothing more."""

    async def endpoint(
        session_id: str, request: Request, container: ContainerDep, idem: IdemKey = None
    ) -> dict[str, Any]:
        await execute(container, await make(request, container, session_id, idem))
        return {"success": True, "message": message, "status": "success"}

    router.add_api_route(path, endpoint, methods=[method], name=name, description=doc)


def plain(kind: type[c.DeleteSession | c.StopSession]) -> MakeCommand:
    """A command that names nothing but its session (and who asks, once)."""

    async def make(request: Request, container: Container, sid: str, idem: str | None) -> c.Command:
        return kind(session_id=sid, by=actor(), idempotency_key=idem)

    return make
