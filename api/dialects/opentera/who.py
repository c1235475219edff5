"""Who calls the OpenTera routes: the key the gate accepted and the OpenTera device or
participant it is bound to (`ledger keys create --opentera-device/--opentera-participant`).

OpenTera gives each kind of caller its own API (teraserver/python/modules/FlaskModule/API/
{user,service,device,participant}); a bound key is that device or participant, so it may use
its own namespace only, and there its rules apply (api/dialects/opentera/own.py). An unbound
key is a user or a service: it reads and writes as before, within its scopes and projects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from api import auth
from api.dialects.common import gate_principal
from domain.errors import ForbiddenError

PLURAL = {"device": "devices", "participant": "participants"}


@dataclass(frozen=True)
class Caller:
    """The key's name (None: an anonymous reader) and its OpenTera identity, if bound."""

    name: str | None
    kind: str | None = None  # "device" | "participant"
    ident: int | None = None

    @property
    def actor(self) -> str | None:
        """Who writes: the bound identity as the ledger's actor ("device:5"), which OpenTera
        forces as the session's creator ("avoid identity thief"), else the key's name."""
        return f"{self.kind}:{self.ident}" if self.kind else self.name

    def created(self, doc: dict[str, Any]) -> bool:
        return self.kind is not None and doc["created_by"] == self.actor

    def takes_part(self, doc: dict[str, Any]) -> bool:
        """Created the session or is one of its members (OpenTera's query_session rule)."""
        if self.kind is None:
            return True
        return self.created(doc) or str(self.ident) in doc[PLURAL[self.kind]]


def caller(
    token: Annotated[str | None, Query(description="Secret token (an API key)")] = None,
) -> Caller:
    """The caller: the key the request gate (api/auth.py) accepted, from `token` or
    `Authorization: OpenTera <key>` (anonymous reads name no one)."""
    who = gate_principal("Missing token")
    if who is auth.ANONYMOUS:
        return Caller(None)
    kind, _, ident = (who.binding or "").partition(":")
    if kind.startswith("opentera-") and ident.isdigit():
        return Caller(who.name, kind.removeprefix("opentera-"), int(ident))
    return Caller(who.name)


CallerDep = Annotated[Caller, Depends(caller)]


def own_namespace(request: Request, who: CallerDep) -> None:
    """A bound key uses its own API only: a device is no user, service or participant."""
    if who.kind is None:
        return
    # The matched route's path: "/device/sessions" as declared, or with the dialect's prefix
    # ("/compat/opentera/api/device/sessions"), depending on how FastAPI copied the route.
    route = request.scope.get("route")
    path: str = getattr(route, "path", "")
    own = f"/{who.kind}/"
    if not (path.startswith(own) or f"/api{own}" in path):
        raise ForbiddenError(
            f"this key is OpenTera {who.kind} {who.ident}: it may use the {who.kind} API only"
        )
