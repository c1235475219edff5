"""`GET /`: where a caller at the root goes next (the API documents, the probes, the API).

Open like the probes (api/auth.py `OPEN_PATHS`), so it shows nothing of the ledger's
contents: only the paths, under the proxy's root path when there is one.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api import openapi as a

router = APIRouter(tags=["health"])

LINKS = {
    "docs": "/docs",
    "redoc": "/redoc",
    "openapi": "/openapi.json",
    "health": "/healthz",
    "ready": "/readyz",
    "sessions": "/v1/sessions",
}


@router.get("/", responses=a.documented(a.Index))
def index(request: Request) -> dict[str, Any]:
    """Links to the API documents, the probes and the sessions (no key needed)."""
    root = request.scope.get("root_path", "")
    return {
        "name": "Session Ledger",
        "links": {name: root + path for name, path in LINKS.items()},
    }
