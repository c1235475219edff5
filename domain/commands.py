"""Commands: small imperative dataclasses, one per thing a caller can ask of a session
(or of an execution context, which has a stream of its own).

Every command may carry `by` (the actor), an `idempotency_key` (a retry with the same key
returns the first answer and appends nothing), an `expected_version` (optimistic check) and
`at`, the time its event happened in epoch seconds (domain/eventtime.py; absent: when the
ledger records it).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import orjson

from domain.context import CONTEXT_PREFIX


@dataclass(frozen=True, kw_only=True)
class Command:
    session_id: str
    by: str | None = None
    idempotency_key: str | None = None
    expected_version: int | None = None
    at: float | None = None

    def fingerprint(self) -> str:
        """What a retry under the same Idempotency-Key must repeat: a SHA-256 of the command,
        so the stored fingerprint holds none of its (possibly personal) values."""
        d = asdict(self)
        d.pop("idempotency_key", None)
        if d["at"] is None:  # as before `at` existed: a retry across an upgrade still matches
            del d["at"]
        d["command"] = type(self).__name__
        return hashlib.sha256(orjson.dumps(d, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, kw_only=True)
class StartSession(Command):
    source: str = "native"
    name: str | None = None
    project: str | None = None
    build: str | None = None
    user: str | None = None
    type: str | None = None
    status: str = "running"
    started_at: float | None = None
    remarks: str | None = None
    scm_ref: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    participants: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class KeepAlive(Command):
    visible: bool = True
    path: str | None = None


@dataclass(frozen=True, kw_only=True)
class Hide(Command):
    path: str | None = None


@dataclass(frozen=True, kw_only=True)
class ChangeStatus(Command):
    status: str
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class UpdateDetails(Command):
    """Change descriptive fields and, optionally, the status, as one decision."""

    changes: dict[str, Any] = field(default_factory=dict)
    status: str | None = None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class UploadLog(Command):
    kind: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True, kw_only=True)
class AttachArtifact(Command):
    kind: str
    title: str | None = None
    url: str | None = None
    content_type: str | None = None
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True, kw_only=True)
class RecordMetric(Command):
    item: str
    context: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RecordResult(Command):
    status: str
    test: str | None = None


@dataclass(frozen=True, kw_only=True)
class Annotate(Command):
    annotation_id: str | None = None
    kind: str | None = None
    text: str | None = None
    context: str | None = None
    occurred_at: float | None = None
    retracted: bool = False


@dataclass(frozen=True, kw_only=True)
class StopSession(Command):
    reason: str | None = None
    ended_at: float | None = None


@dataclass(frozen=True, kw_only=True)
class ExpireSession(Command):
    timeout: float


@dataclass(frozen=True, kw_only=True)
class DeleteSession(Command):
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class EraseSession(Command):
    """Erase a session's personal values (domain/personal.py): the tags and attributes of
    `personal_keys` besides the fixed personal fields. The store destroys the sealed values
    and the blobs; the `Erased` event records that it happened and what the state became."""

    personal_keys: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RecordContext(Command):
    """Record an execution context (build with `RecordContext.of(h, attributes)`).

    Its `session_id` is the context's stream id `context:<h>`: the command base names the
    stream it targets `session_id`, and the ledger routes, caches and locks by that name.
    """

    h: str
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, h: str, attributes: dict[str, Any], **kw: Any) -> RecordContext:
        return cls(session_id=CONTEXT_PREFIX + h, h=h, attributes=attributes, **kw)


class CommandResult(NamedTuple):
    """What a command did: the stream's version and the log position after it. (A tuple: the
    writer makes one per command, and a frozen dataclass's init cost more than deciding a
    keepalive when measured.)"""

    session_id: str
    version: int
    position: int
    appended: int
    number: int | None

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()
