"""Request bodies of the native API (pydantic), each mapped onto one domain command."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.state import STATUSES

Status = Literal[
    "queued", "running", "completed", "passed", "failed", "error", "timeout", "cancelled"
]
assert set(Status.__args__) == set(STATUSES)  # type: ignore[attr-defined]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: float | str | None = Field(
        default=None,
        description="When this happened (epoch seconds or ISO-8601 UTC), if not now: kept "
        "beside the time the ledger records (docs/architecture.md, event time).",
    )


class StartBody(Body):
    id: str | None = Field(None, min_length=1, max_length=200, description="Client's own id")
    name: str | None = None
    source: str = "native"
    project: str | None = None
    build: str | None = None
    user: str | None = None
    type: str | None = None
    status: Literal["queued", "running"] = "running"
    started_at: float | str | None = None
    remarks: str | None = None
    scm_ref: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    attributes: dict[str, str] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    participants: list[str] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)
    devices: list[str] = Field(default_factory=list)


class KeepAliveBody(Body):
    visible: bool = True
    path: str | None = None


class HideBody(Body):
    path: str | None = None


class StatusBody(Body):
    status: Status
    reason: str | None = None


class StopBody(Body):
    reason: str | None = None


class DeleteBody(Body):
    reason: str | None = None


class UpdateBody(Body):
    name: str | None = None
    project: str | None = None
    build: str | None = None
    user: str | None = None
    type: str | None = None
    remarks: str | None = None
    scm_ref: str | None = None
    tags: dict[str, str | None] | None = None
    attributes: dict[str, str | None] | None = None
    parameters: dict[str, Any] | None = None
    participants: list[str] | None = None
    users: list[str] | None = None
    devices: list[str] | None = None
    status: Status | None = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, exclude={"status", "at"})


class ArtifactBody(Body):
    kind: Literal["screenshot", "video", "file"]
    title: str | None = None
    url: str | None = None
    content_base64: str | None = None
    content_type: str | None = None


class MetricBody(Body):
    item: str = Field(min_length=1)
    context: str | None = None
    values: dict[str, float | int | str | bool | None] = Field(default_factory=dict)


class ResultBody(Body):
    status: str = Field(min_length=1, max_length=64)
    test: str | None = None


class AnnotationBody(Body):
    id: str | None = None
    kind: str | None = None
    text: str | None = None
    context: str | None = None
    occurred_at: float | str | None = None
    retracted: bool = False

    @field_validator("kind", mode="before")
    @classmethod
    def _kind_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v
