"""The request gate: who is calling and whether they may do what they ask.

`LedgerAPI.__call__` (api/app.py) runs `Gate.check` on every HTTP request before the lean
lane and the router, so no route can be reached around it. It finds the key in the surface's
own credential form (`SURFACES`), looks it up in the `KeyRing` (api/keys.py), takes the scope
the request needs from `required_scope` and, for a project-limited key's reads, applies
api/scoping.py. The principal is then `current` (a ContextVar: the request's task and the
threads its sync routes run in see it) and `scope["state"]["principal"]`.

Credential forms (every surface also takes the native `Authorization: Bearer <key>`):
native and Testmo Bearer; LambdaTest and Canopsis Basic `name:key`, where the name must be
the key's own; Canopsis also `x-canopsis-authkey: <key>` or `?authkey=`; OpenTera
`Authorization: OpenTera <key>` or `?token=`; pytest-monitor, whose client sends nothing,
the key as a path segment: `/compat/monitor/k/<key>/api/v1/...` is served as
`/compat/monitor/api/v1/...` (`client_path` puts the key back into the links of an answer).
Anonymous reads (LEDGER_ALLOW_ANONYMOUS=read) open the native API and pytest-monitor's (whose
server has no keys), not LambdaTest, Testmo, Canopsis or OpenTera, which refuse any request
without credentials.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

from api import scoping
from api.bootstrap import Container
from api.keys import KeyRing, Principal
from api.routes.docs import ASSET_PATHS
from domain.errors import ForbiddenError, LedgerError, UnauthorizedError

current: ContextVar[Principal | None] = ContextVar("principal", default=None)

OPEN_PATHS = frozenset(
    # /noop is the benchmark's framework baseline: it does nothing and shows nothing; / shows
    # only links (api/routes/index.py).
    (
        "/",
        "/healthz",
        "/readyz",
        "/docs",
        "/docs/oauth2-redirect",
        "/openapi.json",
        "/redoc",
        "/noop",
        *ASSET_PATHS,  # the documents' scripts and styles (api/routes/docs.py)
    )
)
READ_METHODS = frozenset(("GET", "HEAD"))
# The scope table (`required_scope`): key management needs `admin`; `/metrics` `metrics`; the
# audit reads (the global log, the digest, the transparency log, a session's stream) `audit`;
# any other GET/HEAD `read`; every other method, which changes state, `ingest`.
AUDIT_PATHS = frozenset(("/v1/events", "/v1/ledger/digest"))
AUDIT_PREFIX = "/v1/log/"  # the transparency log: checkpoint, key, leaves, proofs
AUDIT_SUFFIX = "/events"  # /v1/sessions/{id}/events: a session's stream
ADMIN_PREFIX = "/v1/keys"
METRICS_PATH = (
    "/metrics"  # Prometheus (api/metrics.py): its own scope, so a scraper reads nothing else
)
# GETs that write, and so need `ingest`: Canopsis's UI starts its session with a GET.
WRITING_GETS = frozenset(("/compat/canopsis/api/v2/sessionstart",))
MONITOR_KEYED = "/compat/monitor/k/"
MONITOR = "/compat/monitor/"
# scope["state"] entry of a pytest-monitor request whose path carried its key: (the path's
# prefix as served, the same prefix as the client sent it), for `client_path`.
KEYED_PREFIX = "keyed_prefix"
ANONYMOUS = Principal("anonymous", frozenset(("read",)))


def required_scope(method: str, path: str) -> str:
    if path.startswith(ADMIN_PREFIX):
        return "admin"
    if path == METRICS_PATH:
        return "metrics"
    if method not in READ_METHODS or path in WRITING_GETS:
        return "ingest"
    if path in AUDIT_PATHS or path.startswith(AUDIT_PREFIX):
        return "audit"
    if path.startswith("/v1/sessions/") and path.endswith(AUDIT_SUFFIX):
        return "audit"
    return "read"


def projects() -> frozenset[str] | None:
    """The calling key's projects (None: any project, or no key in this context)."""
    who = current.get()
    return None if who is None else who.projects


@dataclass(frozen=True)
class Surface:
    """How one API's clients send their key."""

    prefix: str
    basic: bool = False  # Basic name:key, the name being the key's
    scheme: bytes = b"bearer"  # the Authorization scheme whose value is the key
    headers: tuple[bytes, ...] = ()  # other headers that carry the key
    params: tuple[str, ...] = ()  # query parameters that carry the key
    # Whether LEDGER_ALLOW_ANONYMOUS=read opens it: not where the original always wants a key.
    keyless: bool = True

    @property
    def challenge(self) -> str:
        realm = 'realm="session-ledger"'
        return f"Basic {realm}" if self.basic else f"Bearer {realm}"


NATIVE = Surface("")
SURFACES = (
    # keyless=False: the original refuses every request without credentials, so
    # LEDGER_ALLOW_ANONYMOUS=read does not open it (pytest-monitor's server has no keys).
    Surface("/compat/lambdatest/", basic=True, keyless=False),
    Surface("/compat/testmo/", keyless=False),
    Surface(
        "/compat/canopsis/",
        basic=True,
        headers=(b"x-canopsis-authkey",),
        params=("authkey",),
        keyless=False,
    ),
    Surface("/compat/opentera/", scheme=b"opentera", params=("token",), keyless=False),
    Surface(MONITOR),
)


def surface_of(path: str) -> Surface:
    if path.startswith("/compat/"):
        for s in SURFACES:
            if path.startswith(s.prefix):
                return s
    return NATIVE


class Refusal(Exception):
    """The gate's answer instead of the route's: an error and the headers to add."""

    def __init__(self, error: LedgerError, headers: dict[str, str]) -> None:
        super().__init__(error.message)
        self.error = error
        self.headers = headers


class Gate:
    """Authenticates and authorises one request (see the module docstring)."""

    def __init__(self, anonymous: str = "") -> None:
        self.anonymous = ANONYMOUS if anonymous == "read" else None
        self.ring: KeyRing | None = None
        self.container: Container | None = None

    def attach(self, ring: KeyRing, container: Container) -> None:
        self.ring, self.container = ring, container

    async def check(self, scope: dict[str, Any]) -> None:
        """Set `current` for this request or raise Refusal; may rewrite a monitor path."""
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]  # behind a proxy's prefix: the app's own path
        if path in OPEN_PATHS:
            return
        surface = surface_of(path)
        secret: str | None = None
        if surface.prefix == MONITOR and path.startswith(MONITOR_KEYED):
            secret, path = _unkey_path(scope, root, path)
        who = self._principal(scope, surface, secret)
        scope.setdefault("state", {})["principal"] = who
        current.set(who)
        need = required_scope(scope["method"], path)
        if not who.allows(need):
            if who is ANONYMOUS:  # anonymous reads are allowed: anything else needs a key
                raise self._unauthorized(surface, f"a key with the {need} scope is required")
            raise Refusal(ForbiddenError(f"this key has no {need} scope"), {})
        if who.projects is not None and need in ("read", "audit"):
            if self.container is None:
                raise RuntimeError("the gate serves requests only once the app has started")
            try:
                await scoping.check_read(scope, path, who, self.container)
            except LedgerError as err:  # 403, or 404 for another project's session
                raise Refusal(err, {}) from None

    def _principal(self, scope: dict[str, Any], surface: Surface, secret: str | None) -> Principal:
        claimed: str | None = None
        if secret is None:
            secret, claimed = credential(scope, surface)
        if secret is None:
            if self.anonymous is not None and surface.keyless:
                return self.anonymous
            raise self._unauthorized(surface, "a key is required")
        who = self.ring.lookup(secret) if secret and self.ring is not None else None
        if who is None or (claimed is not None and claimed != who.name):
            raise self._unauthorized(surface, "unknown or revoked key")
        return who

    @staticmethod
    def _unauthorized(surface: Surface, detail: str) -> Refusal:
        return Refusal(UnauthorizedError(detail), {"WWW-Authenticate": surface.challenge})


def credential(scope: dict[str, Any], surface: Surface) -> tuple[str | None, str | None]:
    """(the key, the name a Basic credential claims) as this surface's clients send them."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, rest = value.partition(b" ")
            scheme = scheme.lower()
            if scheme == b"bearer" or scheme == surface.scheme:
                return rest.strip().decode("latin-1"), None
            if scheme == b"basic" and surface.basic:
                return _basic(rest.strip())
        elif name in surface.headers:
            return value.decode("latin-1").strip(), None
    if surface.params and scope["query_string"]:
        for key, value in parse_qsl(scope["query_string"].decode("latin-1")):
            if key in surface.params:
                return value, None
    return None, None


def _basic(encoded: bytes) -> tuple[str | None, str | None]:
    try:
        name, sep, key = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", None  # presented but unreadable: unknown, not absent
    return (key, name) if sep else ("", None)


def _unkey_path(scope: dict[str, Any], root: str, path: str) -> tuple[str, str]:
    """Take the key out of `/compat/monitor/k/<key>/rest`, leaving `/compat/monitor/rest`
    (the proxy's root path kept in front); returns the key and the app's new path."""
    secret, _, tail = path[len(MONITOR_KEYED) :].partition("/")
    path = MONITOR + tail
    scope["path"] = root + path
    keyed = root + MONITOR_KEYED + quote(secret, safe="") + "/"
    scope.setdefault("state", {})[KEYED_PREFIX] = (root + MONITOR, keyed)
    raw = scope.get("raw_path")
    if raw:
        at = raw.find(MONITOR_KEYED.encode())
        if at >= 0:
            tail_raw = raw[at + len(MONITOR_KEYED) :].partition(b"/")[2]
            scope["raw_path"] = raw[:at] + MONITOR.encode() + tail_raw
    return secret, path


def client_path(scope: Mapping[str, Any], path: str) -> str:
    """`path` (this request's, as the app sees it) as the client addressed it: a
    pytest-monitor path gets back the `/k/<key>/` the gate took out, so that a link built
    from it keeps the client authenticated (its client sends no credentials). Any other
    path comes back as it is."""
    prefixes = scope.get("state", {}).get(KEYED_PREFIX)
    if prefixes is None:
        return path
    served, sent = prefixes
    return sent + path[len(served) :] if path.startswith(served) else path
