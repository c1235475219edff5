"""The Canopsis session statistics (`/api/v2`), answered as the real Canopsis answers them.

Followed from the real code, where it differs from the seed text (002): the webcore routes
(capensis/canopsis, sources/canopsis/canopsis/webcore/services/session.py and
session/manager.py) and the UI that calls them (canopsis-next: `GET sessionstart` at login,
`POST keepalive` every two minutes with `{"visible", "path": [view] or [view, tab]}`,
`POST session_tracepath`, earlier `session_hide`, on each route change). The seed's
spellings (`POST sessionstart`, `POST session-hide`) are served too.

Who calls: the user named by an API key (api/keys.py); the request gate (api/auth.py) takes
it from `x-canopsis-authkey`, `?authkey=` or Basic `user:key`, the user being the key's name.

One active Canopsis session per user, as Canopsis keeps one per login: `sessionstart` reuses
the caller's active session, else starts one (source "canopsis", user = caller). A keepalive
or a trace-path with no active session starts one first, as Canopsis does. A trace-path is
a visible keepalive on the new path (Canopsis's own implementation); visible time per path
follows domain/state.py. Silence longer than `settings.session_timeout` makes the expiry
sweeper append Expired. The list's shape is `shape.session_item`.

Modules: `shape` (the error shape, who calls, the bodies and their checks, the session as
Canopsis lists it), `pings` (sessionstart, keepalive, trace-path) and `sessions` (the list),
whose routers are joined here in that order.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.dialects.canopsis import pings, sessions
from api.dialects.canopsis.shape import PREFIX

router = APIRouter(prefix=PREFIX, tags=["compat: Canopsis"])
for part in (pings, sessions):
    router.include_router(part.router)

__all__ = ["router"]
