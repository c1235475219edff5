"""The OpenTera session API (seed document in shared/seeds), translated onto the ledger: `router`.

Mapping (differences from OpenTera are noted on the routes and in `shape`):
- `id_session` is the session's ledger `number`; `session_uuid` is the ledger id.
- `session_status` 0 not started=queued, 1 in progress=running, 2 completed=completed,
  3 cancelled=cancelled, 4 terminated=error; moves follow the ledger's legal moves, and 2/3/4
  also stop the session (ended at start + session_duration when given).
- `session_parameters` is stored as the JSON object it holds, else as {"raw": "<string>"}.
- `token` (query) or `Authorization: OpenTera <token>` is required: an API key (api/keys.py),
  checked by the request gate (api/auth.py); the key's name is the actor of the writes, or
  the device or participant the key is bound to (`who`).
- Bad input is 400, as OpenTera answers it (flask-restx's parsers and its routes' own
  checks); the body stays problem+json.

Modules: `shape` (translation tables, bodies, objects), `who` (the caller and its OpenTera
identity), `read` (finding sessions in the views), `save` (create and update), `sessions`
(user and service namespaces), `own` (device and participant namespaces), `events` (session
events and the session manager), `extras` (session types, assets, stats); each route module
has its own router, joined here.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.responses import Response

from api.dialects.opentera import events, extras, own, sessions
from api.dialects.opentera.who import caller, own_namespace
from api.problems import problem, register_renderer

PREFIX = "/compat/opentera/api"


def _render_error(status: int, code: str, detail: str, field: str | None) -> Response:
    # OpenTera has no 422: a body or parameter it cannot use is a 400 (e.g.
    # UserQuerySessions.py lines 123-130, and reqparse's type errors).
    return problem(400 if status == 422 else status, code, detail, field)


register_renderer(PREFIX, _render_error, 400)

router = APIRouter(
    prefix=PREFIX,
    tags=["compat: OpenTera"],
    dependencies=[Depends(caller), Depends(own_namespace)],
)
for part in (sessions, own, events, extras):
    router.include_router(part.router)

__all__ = ["router"]
