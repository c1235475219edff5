"""API keys: the `api_keys` table, minting, listing and revoking keys, and `KeyRing`, the
per-process cache the request gate (api/auth.py) looks keys up in.

A key is `sl_` + 32 random bytes in URL-safe base64 (no padding). Only its SHA-256 is stored,
so the database cannot give a key back: `create` shows it once. The table lives in the event
database, so every API process on one PostgreSQL store shares the same keys.

Scopes: `ingest` (commands), `read` (queries), `audit` (the log, streams, digest), `metrics`
(`GET /metrics`, for a Prometheus scraper), `admin` (implies all). A key may be limited to a
set of projects, and bound to one OpenTera device or participant (`binding`, e.g.
"opentera-device:5"): the OpenTera routes then apply that identity's rules
(api/dialects/opentera/who.py); nothing else reads the binding.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, RowMapping, select, update

from persistence.migrations import migrate
from persistence.schema import api_keys_table

SCOPES = ("ingest", "read", "audit", "metrics", "admin")
KEY_PREFIX = "sl_"
ADMIN_NAME = "admin"

api_keys = api_keys_table  # persistence/schema.py: the table; this module: what it means
BINDING_KINDS = ("opentera-device", "opentera-participant")


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a key's name, scopes, projects (None: any project) and the
    identity it is bound to (None: none)."""

    name: str
    scopes: frozenset[str]
    projects: frozenset[str] | None = None
    binding: str | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


@dataclass(frozen=True)
class KeyInfo:
    """A key as `ledger keys list` shows it (never its hash)."""

    name: str
    scopes: tuple[str, ...]
    projects: tuple[str, ...] | None
    created_at: float
    revoked_at: float | None
    binding: str | None = None


class KeyRefused(ValueError):
    """A key operation refused: bad name or scope, a duplicate, or an unknown name."""


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_schema(engine: Engine) -> None:
    """The event database's schema, keys table included (persistence/migrations.py)."""
    migrate(engine)


def binding_of(kind: str, ident: str) -> str:
    """The stored binding for an OpenTera identity, or KeyRefused for a bad kind or id."""
    if kind not in BINDING_KINDS:
        raise KeyRefused(f"a key can be bound to {' or '.join(BINDING_KINDS)}")
    if not ident.isascii() or not ident.isdigit() or not 0 < int(ident) < 2**31:
        raise KeyRefused(f"an OpenTera id is a positive integer, not {ident!r}")
    return f"{kind}:{int(ident)}"


def _split(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(p for p in text.split(",") if p)


def _check(
    name: str, scopes: Iterable[str], projects: Iterable[str] | None, binding: str | None
) -> None:
    if not name or len(name) > 200 or ":" in name or name != name.strip():
        raise KeyRefused("a key name must be 1-200 characters, no ':' and no outer spaces")
    scopes = list(scopes)
    if not scopes or any(s not in SCOPES for s in scopes):
        raise KeyRefused(f"scopes must be among {', '.join(SCOPES)}")
    if projects is not None and any(not p or "," in p for p in projects):
        raise KeyRefused("project names must be non-empty and hold no ','")
    if binding is not None:
        kind, _, ident = binding.partition(":")
        if binding_of(kind, ident) != binding:
            raise KeyRefused(f"not a binding: {binding!r}")
        if "admin" in scopes:
            # admin implies every scope and manages keys: a device's key must not.
            raise KeyRefused("a key bound to an OpenTera identity cannot have the admin scope")


def create(
    engine: Engine,
    name: str,
    scopes: Iterable[str],
    projects: Iterable[str] | None = None,
    clock: Callable[[], float] = time.time,
    binding: str | None = None,
) -> str:
    """Store a new key and return its secret (the only time it is ever seen)."""
    scopes, projects = sorted(set(scopes)), None if projects is None else sorted(set(projects))
    _check(name, scopes, projects, binding)
    secret = new_secret()
    with engine.begin() as conn:
        if conn.execute(select(api_keys.c.name).where(api_keys.c.name == name)).first():
            raise KeyRefused(f"a key named {name!r} exists (revoke it or pick another name)")
        conn.execute(
            api_keys.insert().values(
                name=name,
                key_hash=hash_key(secret),
                scopes=",".join(scopes),
                projects=None if projects is None else ",".join(projects),
                created_at=clock(),
                binding=binding,
            )
        )
    return secret


def revoke(engine: Engine, name: str, clock: Callable[[], float] = time.time) -> None:
    with engine.begin() as conn:
        done = conn.execute(
            update(api_keys)
            .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=clock())
        )
        if done.rowcount == 0:
            raise KeyRefused(f"no active key named {name!r}")


def list_keys(engine: Engine) -> list[KeyInfo]:
    cols = api_keys.c
    query = select(
        cols.name, cols.scopes, cols.projects, cols.created_at, cols.revoked_at, cols.binding
    )
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(cols.name)).all()
    return [KeyInfo(r[0], _split(r[1]) or (), _split(r[2]), r[3], r[4], r[5]) for r in rows]


def is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(api_keys.c.name).limit(1)).first() is None


def ensure_admin(engine: Engine) -> str | None:
    """On a ledger with no key at all, create the `admin` key and return its secret."""
    if not is_empty(engine):
        return None
    try:
        return create(engine, ADMIN_NAME, ["admin"])
    except KeyRefused:
        return None  # another process made it first


@dataclass(frozen=True)
class _Entry:
    key_hash: str
    principal: Principal


class KeyRing:
    """Active keys by hash, in memory. The whole table is read again at most every
    `refresh` seconds (so a key revoked by another process stops working within that bound)
    and a hash not in memory is looked up in the table at once (so a key created a moment
    ago works on its first request). Unknown keys are not remembered: each costs one
    indexed SELECT."""

    def __init__(
        self, engine: Engine, refresh: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.engine = engine
        self.refresh = refresh
        self.clock = clock
        self._by_hash: dict[str, _Entry] = {}
        self._loaded = float("-inf")

    def lookup(self, secret: str) -> Principal | None:
        digest = hash_key(secret)
        if self.clock() - self._loaded > self.refresh:
            self._reload()
        entry = self._by_hash.get(digest)
        if entry is None:
            entry = self._fetch(digest)
        if entry is None or not hmac.compare_digest(entry.key_hash, digest):
            return None
        return entry.principal

    def _reload(self) -> None:
        query = select(api_keys).where(api_keys.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        self._by_hash = {r["key_hash"]: _entry(r) for r in rows}
        self._loaded = self.clock()

    def _fetch(self, digest: str) -> _Entry | None:
        query = select(api_keys).where(
            api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        entry = _entry(row)
        self._by_hash[digest] = entry
        return entry


def _entry(r: RowMapping) -> _Entry:
    projects = _split(r["projects"])
    principal = Principal(
        r["name"],
        frozenset(_split(r["scopes"]) or ()),
        None if projects is None else frozenset(projects),
        r["binding"],
    )
    return _Entry(r["key_hash"], principal)
