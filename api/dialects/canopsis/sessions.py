"""Canopsis's session list (`GET /sessions`): the callers' sessions as Canopsis stores them,
oldest first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import PAGE_BOUND, FreshDep
from api.dialects.canopsis.shape import Caller, session_item
from api.dialects.common import read_views, scoped, time_param
from projections import queries as qs

router = APIRouter()


def _time(value: str | None, field: str) -> float | None:
    return time_param(value, field, "is not a timestamp: {value!r}")


@router.get("/sessions")
def list_sessions(
    user: Caller,
    container: FreshDep,
    usernames_brackets: Annotated[list[str] | None, Query(alias="usernames[]")] = None,
    # Canopsis documents `usernames[]` only; the bare name is accepted, not advertised (a
    # client generator would give both parameters one name and drop the operation).
    usernames: Annotated[list[str] | None, Query(include_in_schema=False)] = None,
    active: bool | None = None,
    started_after: str | None = None,
    stopped_before: str | None = None,
    limit: int = Query(1000, ge=1, le=10000),
    offset: int = Query(0, ge=0, le=PAGE_BOUND),
) -> dict[str, Any]:
    """Canopsis sessions, oldest first (Canopsis's stored order), with the time spent visible
    on each view and tab."""
    f = qs.SessionFilter(
        user=tuple((usernames_brackets or []) + (usernames or [])),
        source="canopsis",
        active=active,
        started_after=_time(started_after, "started_after"),
        stopped_before=_time(stopped_before, "stopped_before"),
    )
    page = read_views(container, qs.list_details, scoped(f), "started_at", False, limit, offset)
    return {"description": "Sessions", "sessions": [session_item(d) for d in page.items]}
