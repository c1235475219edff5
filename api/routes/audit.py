"""Audit queries under /v1: a session's stream, the global log, and the ledger digest."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from api import openapi as a
from api.conditional import conditional, link_next, next_page
from api.deps import ContainerDep
from domain.errors import InvalidCommandError, SessionNotFoundError
from domain.session import ALL_EVENT_CLASSES
from persistence.store import StoredEvent
from projections.present import iso

router = APIRouter(prefix="/v1", tags=["audit"])


def event_view(e: StoredEvent) -> dict[str, Any]:
    """The event as the API shows it: `recorded_at` readable (ISO-8601, milliseconds), and
    what a verifier needs exactly: `recorded_at_seconds` (the stored value, full precision,
    as its leaf holds it) and `leaf_index` (its leaf in the transparency log, /v1/log)."""
    d = e.as_dict()
    d["recorded_at"] = iso(e.recorded_at)
    d["recorded_at_seconds"] = e.recorded_at
    d["leaf_index"] = e.position - 1
    if e.opened is not None:
        # Sealed personal values (docs/log-format.md): the payload as its leaf holds it.
        d["logged_payload"] = orjson.loads(e.payload)
    return d


@router.get("/sessions/{session_id}/events", responses=a.cached(a.SessionEvents, *a.READ, 404))
def session_events(session_id: str, request: Request, container: ContainerDep) -> Response:
    """The session's stream: every event with position, version, time, payload and hash."""
    events = container.store.load_stream(session_id)
    if not events:
        raise SessionNotFoundError(f"no session {session_id}")
    return conditional(request, {"id": session_id, "events": [event_view(e) for e in events]})


@router.get("/events", responses=a.cached(a.GlobalLog, *a.READ, paged=True))
def global_log(
    request: Request,
    container: ContainerDep,
    after: int = Query(0, ge=0, le=2**63 - 1, description="position to read after"),
    limit: int = Query(100, ge=1, le=10000),
    type: Annotated[list[str] | None, Query(description="event types")] = None,
) -> Response:
    """The global log in position order; page with `after` = the last position you saw
    (`next_after`), or follow `next` (also the `Link: rel="next"` header): a position is
    already a cursor that appends never shift."""
    for t in type or []:
        if t not in ALL_EVENT_CLASSES:
            raise InvalidCommandError(
                f"type must be among {', '.join(ALL_EVENT_CLASSES)}", field="type"
            )
    events = container.store.read(after, limit + 1, type or None)  # one more: is there a next?
    more, events = len(events) > limit, events[:limit]
    last = events[-1].position if events else after
    link = next_page(request, (), after=last) if more else None
    body = {
        "after": after,
        "next_after": last,
        "next": link,
        "events": [event_view(e) for e in events],
    }
    return conditional(request, body, headers=link_next(link))


@router.get("/ledger/digest", responses=a.documented(a.Digest, 401, 403, 503))
def digest(container: ContainerDep) -> dict[str, Any]:
    """The head of the hash chain: save it, and later prove the log only grew."""
    position, head = container.store.head_digest()
    return {"position": position, "hash": head.hex()}
