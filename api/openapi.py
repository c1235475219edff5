"""What the native API answers, as the OpenAPI document describes it: the success models and
the problem+json refusals each route declares in its `responses`.

These models document; they never validate. The routes keep answering with their own bytes
(the lean lane's `answer`, the queries' dicts), so a document model costs a request nothing.
`documented` builds a route's `responses`; `tidy` finishes the document (the `Problem`
component, a documented model wins over FastAPI's inferred `dict[str, Any]`, and bad input
is documented as each API answers it: problem+json 422 natively, a dialect's own status and
error shape under its prefix).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from api import problems
from api.schemas import Status

PROBLEM = "application/problem+json"
REF = "#/components/schemas/{model}"


class Answer(BaseModel):
    # An answer may grow fields; a client must not break on one it does not know.
    model_config = ConfigDict(extra="allow")


class Problem(Answer):
    """An RFC 9457 problem: every refusal of the native API."""

    type: str = Field(description="URI naming the kind of problem")
    title: str
    status: int
    detail: str
    field: str | None = Field(None, description="the input the refusal is about, when one is")


class CommandAnswer(Answer):
    """What a command appended: the session, its stream version and the log position."""

    id: str
    number: int | None = Field(None, description="the session's number in the ledger")
    version: int = Field(description="the stream's version after the command (also the ETag)")
    position: int = Field(description="the log position (also X-Ledger-Position)")
    appended: int = Field(description="events appended: 0 when nothing changed (a retry)")


class LogEntry(Answer):
    kind: str
    content_type: str | None = None
    size: int | None = None
    sha256: str | None = None
    at: str | None = None


class ArtifactEntry(Answer):
    kind: str
    title: str | None = None
    url: str | None = None
    content_type: str | None = None
    size: int | None = None
    sha256: str | None = None
    at: str | None = None


class AnnotationEntry(Answer):
    id: str
    kind: str | None = None
    text: str | None = None
    context: str | None = None
    occurred_at: str | None = None


class SessionSummary(Answer):
    """One session in a list page (times in ISO-8601 UTC)."""

    id: str
    number: int | None = None
    name: str | None = None
    source: str | None = None
    project: str | None = None
    build: str | None = None
    user: str | None = None
    type: str | None = None
    status: Status
    tags: dict[str, str] = Field(default_factory=dict)
    started_at: str | None = None
    ended_at: str | None = None
    duration: float | None = None


class SessionDetail(SessionSummary):
    """Everything known about one session (times in ISO-8601 UTC, durations in seconds)."""

    version: int
    active: bool
    remarks: str | None = None
    scm_ref: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    participants: list[str] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)
    devices: list[str] = Field(default_factory=list)
    last_seen_at: str | None = None
    end_reason: str | None = None
    updated_at: str | None = None
    visible_time: dict[str, float] = Field(default_factory=dict, description="seconds per path")
    last_visible_at: str | None = None
    last_visible_path: str | None = None
    keepalives: int = 0
    result_counts: dict[str, int] = Field(default_factory=dict)
    logs: list[LogEntry] = Field(default_factory=list)
    artifacts: list[ArtifactEntry] = Field(default_factory=list)
    metrics: int = 0
    annotations: list[AnnotationEntry] = Field(default_factory=list)


class SessionPage(Answer):
    total: int
    limit: int
    offset: int
    items: list[SessionSummary]


class SessionCount(Answer):
    total: int
    by_status: dict[str, int]


class Durations(Answer):
    count: int
    sum: float | None = None
    mean: float | None = None
    max: float | None = None
    p50: float | None = None
    p95: float | None = None


class StatsGroup(Answer):
    key: dict[str, Any] = Field(description="the group's value of each `by` dimension")
    count: int
    ended: int
    duration: Durations
    visible_time: dict[str, float]
    results: dict[str, int]


class Stats(Answer):
    group_by: list[str]
    groups: list[StatsGroup]
    active_now: int


class LoggedEvent(Answer):
    """An event as stored: its place in the log and the chain, and its payload."""

    position: int
    stream_id: str
    version: int
    type: str
    schema_version: int
    recorded_at: str
    recorded_at_seconds: float
    payload: dict[str, Any]
    hash: str
    leaf_index: int


class SessionEvents(Answer):
    id: str
    events: list[LoggedEvent]


class GlobalLog(Answer):
    after: int
    next_after: int
    events: list[LoggedEvent]


class Digest(Answer):
    position: int
    hash: str


class Leaves(Answer):
    start: int
    leaves: list[str] = Field(description="each leaf's bytes, standard base64")


class InclusionProof(Answer):
    leaf_index: int
    tree_size: int
    hashes: list[str]


class ConsistencyProof(Answer):
    first: int
    second: int
    hashes: list[str]


class RejectedLine(Answer):
    line: int
    status: int
    code: str
    detail: str


class BatchAnswer(Answer):
    accepted: int
    rejected: list[RejectedLine]
    appended: int
    position: int


class Index(Answer):
    """Where to go from the root: the API documents, the probes and the sessions."""

    name: str
    links: dict[str, str] = Field(
        description="docs, redoc, openapi, health, ready, sessions: paths on this server"
    )


WHY = {
    400: "The batch is malformed (nothing appended).",
    401: "No key, or a key the ledger does not know.",
    403: "The key lacks the scope, or the session is another project's.",
    404: "No such session (or nothing of that kind in it).",
    409: "The session's state refuses it (stopped, exists, stale If-Match, illegal status).",
    410: "The session was deleted, or the content was erased.",
    413: "The body is larger than the route's cap.",
    422: "The input breaks a rule (the `field` names it).",
    503: "The store cannot take the write or the read now (see Retry-After).",
}
# Statuses most routes may answer: no or a weak key, bad input, the store unavailable.
READ = (401, 403, 422, 503)
COMMAND = (401, 403, 404, 409, 410, 413, 422, 503)


def documented(
    model: type[BaseModel] | None, *refusals: int, status: int = 200
) -> dict[int | str, dict[str, Any]]:
    """A route's `responses`: its success `model` (documented, not validated) and its
    problem+json `refusals`."""
    out: dict[int | str, dict[str, Any]] = {}
    if model is not None:
        out[status] = {"model": model, "description": (model.__doc__ or "OK").strip()}
    ref = {"$ref": REF.format(model="Problem")}
    for code in sorted(refusals):
        out[code] = {"description": WHY[code], "content": {PROBLEM: {"schema": ref}}}
    return out


def tidy(doc: dict[str, Any]) -> dict[str, Any]:
    """The finished document: `Problem` among the components; where a route documents a
    model, FastAPI's `dict[str, Any]` inferred from its annotation left out of it; and
    FastAPI's generic 422 replaced by what the route's API really answers bad input with."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Problem", Problem.model_json_schema(ref_template=REF))
    for path, methods in doc.get("paths", {}).items():
        for op in methods.values():
            responses = op.get("responses", {})
            for response in responses.values():
                for content in response.get("content", {}).values():
                    schema = content.get("schema", {})
                    if "$ref" in schema and len(schema) > 1:
                        content["schema"] = {"$ref": schema["$ref"]}
            _bad_input(path, responses)
    if "HTTPValidationError" not in orjson.dumps(doc.get("paths", {})).decode():
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return doc


def _bad_input(path: str, responses: dict[str, Any]) -> None:
    """FastAPI documents every route's bad input as its own 422 body; the ledger answers it
    with problem+json, and each dialect with its system's status and error shape."""
    generic = responses.get("422", {}).get("content", {}).get("application/json", {})
    if not generic.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
        return  # no input to be bad, or documented by the route itself
    del responses["422"]
    status, schema = 422, {"$ref": REF.format(model="Problem")}
    for prefix, (bad_input, error_schema) in problems.error_docs.items():
        if path.startswith(prefix):
            status, schema = bad_input, error_schema
    media = PROBLEM if schema.get("$ref", "").endswith("/Problem") else "application/json"
    responses[str(status)] = {"description": WHY[422], "content": {media: {"schema": schema}}}
