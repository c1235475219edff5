"""The OpenTera session API (seed document in shared/seeds), translated onto the ledger: `router`.

Mapping (differences from OpenTera are noted on the routes and in `shape`):
- `id_session` is the session's ledger `number`; `session_uuid` is the ledger id.
- `session_status` 0 not started=queued, 1 in progress=running, 2 completed=completed,
  3 cancelled=cancelled, 4 terminated=error; moves follow the ledger's legal moves, and 2/3/4
  also stop the session (ended at start + session_duration when given).
- `session_parameters` is stored as the JSON object it holds, else as {"raw": "<string>"}.
- `token` (query) or `Authorization: OpenTera <token>` is required: an API key (api/keys.py),
  checked by the request gate (api/auth.py); the key's name is the actor of the writes.

Modules: `shape` (translation tables, bodies, objects, who calls), `read` (finding sessions in
the views), `sessions`, `events` (session events and the session manager), `extras` (session
types, assets, stats); each has its own router, joined here in that order.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.dialects.opentera import events, extras, sessions
from api.dialects.opentera.shape import require_token

router = APIRouter(
    prefix="/compat/opentera/api",
    tags=["compat: OpenTera"],
    dependencies=[Depends(require_token)],
)
for part in (sessions, events, extras):
    router.include_router(part.router)

__all__ = ["router"]
