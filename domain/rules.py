"""The command boundary: the one set of input rules every way in goes through.

`validate(cmd, limits)` checks a command's field types, ranges, lengths and allowed keys
before the writer ever sees it, and raises `InvalidCommandError` (422, naming the field) or
`LimitExceededError` (413, naming the limit). HTTP routes, batch lines, dialects and the CLI
all build commands and submit them to the ledger, which calls this first; so nothing the
domain would reject reaches the log, and nothing reaches a projection that it cannot apply.
The state rules (legal status moves, no keepalive after stop) stay in the aggregate.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain import commands as c
from domain.errors import ForbiddenError, InvalidCommandError, LimitExceededError
from domain.state import DETAIL_FIELDS

# Ids travel in URL paths and headers (Location, ETag): the characters RFC 3986 allows in a
# path segment unescaped (unreserved, sub-delims, ':' and '@'), so an id never needs escaping
# and cannot carry a NUL, a slash, a space or a non-Latin-1 character.
ID_PATTERN = re.compile(r"[A-Za-z0-9._~:@!$&'()*+,;=-]+")
ID_CHARACTERS = "A-Z a-z 0-9 and . _ ~ : @ ! $ & ' ( ) * + , ; = -"
# Text is any Unicode except C0/C1 controls (tab, newline, return kept) and lone surrogates:
# a NUL breaks PostgreSQL text columns, a surrogate breaks UTF-8 encoding of the payload.
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+( *;[ -~]*)?")
# Epoch seconds a session's times may take: 1970 to 2100.
MAX_TIME = 4_102_444_800.0
# Fields `UpdateDetails` may change: the descriptive ones (the fold's DETAIL_FIELDS). Number,
# status, times, logs and the other fields that have their own events never change by update.
UPDATABLE = frozenset(DETAIL_FIELDS)
_SOURCES = frozenset({"native", "lambdatest", "testmo", "canopsis", "monitor", "opentera"})


@dataclass(frozen=True)
class Limits:
    """Sizes a command may have (configurable; the defaults are documented in the README)."""

    id_length: int = 200
    text_length: int = 1_000  # names, projects, paths, reasons, tag values
    long_text_length: int = 65_536  # remarks, annotation text
    entries: int = 256  # keys of tags/attributes/parameters/values, items of a list
    json_bytes: int = 65_536  # parameters and metric values, as JSON


DEFAULT_LIMITS = Limits()


def invalid(field: str, message: str) -> InvalidCommandError:
    return InvalidCommandError(f"{field}: {message}", field=field)


_ID_MATCH = ID_PATTERN.fullmatch
_BAD_TEXT_SEARCH = _BAD_TEXT.search


def check_id(value: Any, field: str, limits: Limits) -> None:
    if type(value) is not str or not _ID_MATCH(value):
        raise invalid(field, f"must be 1 or more of the characters {ID_CHARACTERS}")
    if len(value) > limits.id_length:
        raise LimitExceededError(
            f"{field}: longer than {limits.id_length} characters", field=field, limit="id_length"
        )


def check_text(value: Any, field: str, max_length: int, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if type(value) is not str:
        raise invalid(field, "must be a string" + (" or null" if optional else ""))
    if len(value) > max_length:
        raise LimitExceededError(
            f"{field}: longer than {max_length} characters", field=field, limit="text_length"
        )
    # isprintable() (C, no regex) is true for most text and then no bad character can be in
    # it; only text with tabs, newlines or other non-printables pays for the search.
    if not value.isprintable() and _BAD_TEXT_SEARCH(value):
        raise invalid(field, "contains a control character")


def check_time(value: Any, field: str) -> None:
    if value is None:
        return
    if type(value) not in (int, float) or not math.isfinite(value):
        raise invalid(field, "must be a time in epoch seconds")
    if not 0 <= value <= MAX_TIME:
        raise invalid(field, "must lie between 1970 and 2100")


def check_int(value: Any, field: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if type(value) is not int or not 0 <= value < 2**63:
        raise invalid(field, "must be a non-negative integer")


def check_bool(value: Any, field: str) -> None:
    if type(value) is not bool:
        raise invalid(field, "must be true or false")


def _check_entries(value: Any, field: str, limits: Limits) -> None:
    if len(value) > limits.entries:
        raise LimitExceededError(
            f"{field}: more than {limits.entries} entries", field=field, limit="entries"
        )


def check_strings(value: Any, field: str, limits: Limits, *, nullable: bool = False) -> None:
    """A flat str -> str mapping (tags, attributes); `nullable` allows None (an update's
    way of removing a key)."""
    if type(value) is not dict:
        raise invalid(field, "must be an object of strings")
    _check_entries(value, field, limits)
    for k, v in value.items():
        check_key(k, field, limits)
        if v is None and nullable:
            continue
        check_text(v, f"{field}.{k}"[:200], limits.text_length, optional=False)


def check_key(key: Any, field: str, limits: Limits) -> None:
    """A key of a client's object. `$sealed` is the store's mark of a sealed personal value
    (persistence/sealing.py): an object holding it would read as one."""
    check_text(key, f"{field} key", limits.text_length, optional=False)
    if key == "$sealed":
        raise invalid(field, "the key '$sealed' is reserved")


def check_list(value: Any, field: str, limits: Limits) -> None:
    if type(value) is not list:
        raise invalid(field, "must be a list of strings")
    _check_entries(value, field, limits)
    for item in value:
        check_text(item, field, limits.text_length, optional=False)


def check_json(value: Any, field: str, limits: Limits, *, flat: bool = False) -> None:
    """A JSON object of bounded size whose strings are clean text (parameters, metric
    values); `flat` allows only scalar values."""
    if type(value) is not dict:
        raise invalid(field, "must be an object")
    _check_entries(value, field, limits)
    budget = [limits.json_bytes]

    def walk(v: Any, depth: int) -> None:
        budget[0] -= 8
        if budget[0] < 0:
            raise LimitExceededError(
                f"{field}: larger than {limits.json_bytes} bytes", field=field, limit="json_bytes"
            )
        t = type(v)
        if v is None or t is bool or t is int:
            return
        if t is float:
            if not math.isfinite(v):
                raise invalid(field, "numbers must be finite")
            return
        if t is str:
            budget[0] -= len(v)
            check_text(v, field, limits.long_text_length, optional=False)
            return
        if flat or depth > 8 or t not in (list, dict):
            raise invalid(field, "holds a value of an unsupported type or depth")
        if t is list:
            for item in v:
                walk(item, depth + 1)
            return
        for k, item in v.items():
            check_key(k, field, limits)
            budget[0] -= len(k)
            walk(item, depth + 1)

    for k, v in value.items():
        check_key(k, field, limits)
        walk(v, 1)


# -- per command ------------------------------------------------------------------------------


def _common(cmd: c.Command, limits: Limits) -> None:
    # Every command of a bulk batch passes here: the checks of absent fields are skipped
    # inline (a keepalive is validated in well under a microsecond; batch ingest counts it).
    sid = cmd.session_id
    if type(sid) is not str or len(sid) > limits.id_length or not _ID_MATCH(sid):
        check_id(sid, "id", limits)
    if cmd.by is not None:
        check_text(cmd.by, "by", limits.text_length)
    key = cmd.idempotency_key
    if key is not None:
        if type(key) is not str or not key or len(key) > 200 or not key.isascii():
            raise invalid("Idempotency-Key", "must be 1 to 200 ASCII characters")
        check_text(key, "Idempotency-Key", 200)
    if cmd.expected_version is not None:
        check_int(cmd.expected_version, "expected_version")
    if cmd.at is not None:
        check_time(cmd.at, "at")


def _start(cmd: c.StartSession, lim: Limits) -> None:
    if cmd.source not in _SOURCES:
        raise invalid("source", f"must be one of {', '.join(sorted(_SOURCES))}")
    for f in ("name", "project", "build", "user", "type", "scm_ref", "status"):
        check_text(getattr(cmd, f), f, lim.text_length)
    check_text(cmd.remarks, "remarks", lim.long_text_length)
    check_time(cmd.started_at, "started_at")
    check_strings(cmd.tags, "tags", lim)
    check_strings(cmd.attributes, "attributes", lim)
    check_json(cmd.parameters, "parameters", lim)
    for f in ("participants", "users", "devices"):
        check_list(getattr(cmd, f), f, lim)


def check_change(field: str, value: Any, lim: Limits) -> None:
    """One field of an update (None clears a scalar field)."""
    if field not in UPDATABLE:
        raise invalid(field, f"cannot be updated; updatable: {', '.join(sorted(UPDATABLE))}")
    if field in ("tags", "attributes"):
        check_strings(value, field, lim, nullable=True)
    elif field == "parameters":
        check_json(value, field, lim)
    elif field in ("participants", "users", "devices"):
        check_list(value, field, lim)
    else:
        check_text(value, field, lim.long_text_length if field == "remarks" else lim.text_length)


def _update(cmd: c.UpdateDetails, lim: Limits) -> None:
    if type(cmd.changes) is not dict:
        raise invalid("changes", "must be an object")
    for field, value in cmd.changes.items():
        check_change(field, value, lim)
    check_text(cmd.status, "status", lim.text_length)
    check_text(cmd.reason, "reason", lim.text_length)


def _keep_alive(cmd: c.KeepAlive, lim: Limits) -> None:
    if type(cmd.visible) is not bool:
        check_bool(cmd.visible, "visible")
    if cmd.path is not None:
        check_text(cmd.path, "path", lim.text_length)


def _hide(cmd: c.Hide, lim: Limits) -> None:
    check_text(cmd.path, "path", lim.text_length)


def _status(cmd: c.ChangeStatus, lim: Limits) -> None:
    check_text(cmd.status, "status", lim.text_length, optional=False)
    check_text(cmd.reason, "reason", lim.text_length)


def check_blob_name(value: Any, field: str = "sha256") -> None:
    if type(value) is not str or not _HEX64.fullmatch(value):
        raise invalid(field, "must be 64 lowercase hexadecimal characters")


def _upload(cmd: c.UploadLog, lim: Limits) -> None:
    check_text(cmd.kind, "kind", 64, optional=False)
    check_media_type(cmd.content_type)
    check_int(cmd.size, "size")
    check_blob_name(cmd.sha256)


def check_media_type(value: Any, field: str = "content_type") -> None:
    if type(value) is not str or len(value) > 200 or not _MEDIA_TYPE.fullmatch(value):
        raise invalid(field, "must be a media type such as text/plain")


def _artifact(cmd: c.AttachArtifact, lim: Limits) -> None:
    check_text(cmd.kind, "kind", 64, optional=False)
    check_text(cmd.title, "title", lim.text_length)
    check_text(cmd.url, "url", 4096)
    if cmd.url is not None and not cmd.url.lower().startswith(("http://", "https://")):
        raise invalid("url", "must be an http or https URL")
    if cmd.content_type is not None:
        check_media_type(cmd.content_type)
    check_int(cmd.size, "size", optional=True)
    if cmd.sha256 is not None:
        check_blob_name(cmd.sha256)
    if (cmd.sha256 is None) != (cmd.size is None):
        raise invalid("sha256", "content needs both its sha256 and its size")


def _metric(cmd: c.RecordMetric, lim: Limits) -> None:
    check_text(cmd.item, "item", lim.text_length, optional=False)
    if cmd.context is not None:
        check_id(cmd.context, "context", lim)
    check_json(cmd.values, "values", lim, flat=True)


def _result(cmd: c.RecordResult, lim: Limits) -> None:
    check_text(cmd.status, "status", 64, optional=False)
    check_text(cmd.test, "test", lim.text_length)


def _annotate(cmd: c.Annotate, lim: Limits) -> None:
    check_text(cmd.annotation_id, "annotation_id", lim.id_length)
    check_text(cmd.kind, "kind", lim.text_length)
    check_text(cmd.text, "text", lim.long_text_length)
    check_text(cmd.context, "context", lim.long_text_length)
    check_time(cmd.occurred_at, "occurred_at")
    check_bool(cmd.retracted, "retracted")


def _stop(cmd: c.StopSession, lim: Limits) -> None:
    check_text(cmd.reason, "reason", lim.text_length)
    if cmd.reason == "expired":
        # The server's own end reason: erasing a client's reason must not be able to turn
        # it into the server's (domain/personal.py, `scrubbed`).
        raise invalid("reason", "'expired' is the server's end reason; a stop may not claim it")
    check_time(cmd.ended_at, "ended_at")


def _expire(cmd: c.ExpireSession, lim: Limits) -> None:
    t = cmd.timeout
    if type(t) not in (int, float) or not math.isfinite(t) or t <= 0:
        raise invalid("timeout", "must be a positive number of seconds")


def _delete(cmd: c.DeleteSession, lim: Limits) -> None:
    check_text(cmd.reason, "reason", lim.text_length)


def _erase(cmd: c.EraseSession, lim: Limits) -> None:
    keys = cmd.personal_keys
    if type(keys) is not tuple or len(keys) > lim.entries:
        raise invalid("personal_keys", f"must be a list of at most {lim.entries} keys")
    for key in keys:
        check_text(key, "personal_keys", lim.id_length, optional=False)


def _context(cmd: c.RecordContext, lim: Limits) -> None:
    if cmd.at is not None:
        # A context is a description recorded once, not something that happened at a time.
        raise invalid("at", "an execution context takes no event time")
    check_id(cmd.h, "h", lim)
    check_json(cmd.attributes, "attributes", lim, flat=True)


_RULES: dict[type[c.Command], Callable[[Any, Limits], None]] = {
    c.StartSession: _start,
    c.KeepAlive: _keep_alive,
    c.Hide: _hide,
    c.ChangeStatus: _status,
    c.UpdateDetails: _update,
    c.UploadLog: _upload,
    c.AttachArtifact: _artifact,
    c.RecordMetric: _metric,
    c.RecordResult: _result,
    c.Annotate: _annotate,
    c.StopSession: _stop,
    c.ExpireSession: _expire,
    c.DeleteSession: _delete,
    c.EraseSession: _erase,
    c.RecordContext: _context,
}


def check_projects(cmd: c.Command, state: dict[str, Any] | None, projects: frozenset[str]) -> None:
    """Refuse a command of a project-limited key on a session outside its projects (`state`:
    the session's, None when there is none): a start there, or an update that would move a
    session there, included. Contexts belong to no project."""
    if isinstance(cmd, c.RecordContext):
        return
    if isinstance(cmd, c.StartSession):
        project = cmd.project
    elif state is not None:
        project = state["project"]
    else:
        return  # no session: deciding answers not found
    if project not in projects:
        raise ForbiddenError(f"this key may not act on sessions of project {project!r}")
    if isinstance(cmd, c.UpdateDetails) and cmd.changes.get("project", project) not in projects:
        raise ForbiddenError("this key may not move a session to another project")


def validate(cmd: c.Command, limits: Limits = DEFAULT_LIMITS) -> None:
    """Raise the named error of the first rule `cmd` breaks; return None when it is valid."""
    rule = _RULES.get(type(cmd))
    if rule is None:
        raise InvalidCommandError(f"unknown command {type(cmd).__name__}")
    _common(cmd, limits)
    rule(cmd, limits)
