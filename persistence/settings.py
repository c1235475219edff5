"""Settings: one validated object read from the environment (LEDGER_*), for every process
(server, projection worker, replay tools), with the request body caps it holds."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from domain.personal import DEFAULT_PERSONAL_KEYS
from domain.rules import Limits
from persistence.note import valid_key_name


def _default_views_url(database_url: str) -> str:
    # Views live in their own SQLite file so projection writes never wait on the event
    # table's write lock; on PostgreSQL they share the database.
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        return f"sqlite:///{path.with_name(path.stem + '-views' + path.suffix)}"
    return database_url


@dataclass(frozen=True)
class BodyLimits:
    """The byte caps (settings: LEDGER_MAX_BODY_BYTES, _UPLOAD_BYTES, _BATCH_BYTES)."""

    max_body_bytes: int = 1 << 20
    max_upload_bytes: int = 100 << 20
    max_batch_bytes: int = 16 << 20
    max_batch_lines: int = 100_000


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///var/ledger.db"
    views_url: str = ""
    blob_dir: Path = Path("var/blobs")
    session_timeout: float = 900.0
    expiry_interval: float = 5.0
    read_wait: float = 2.0
    cache_size: int = 20000
    # "thread": the projection worker runs inside the API process (tests, tools);
    # "process": `ledger serve` starts `ledger project` beside it, so applying events to
    # the views never competes with request handling for the GIL; "external": this process
    # applies nothing, `ledger project` workers elsewhere do (`ledger serve --workers N`).
    projection_worker: str = "thread"
    # Adds `Server-Timing: app;dur=<ms>` to every answer (the benchmark reads it).
    server_timing: bool = False
    # Serves `POST /noop`, the benchmark's framework baseline (LEDGER_BENCH_NOOP=1; bench only).
    bench_noop: bool = False
    # "read": requests without a key get the read scope; "" (default): every request needs a
    # key (api/auth.py).
    allow_anonymous: str = ""
    # How stale the API keys cached in a process may be: a key revoked by another process
    # stops working within this many seconds (api/keys.py KeyRing).
    key_refresh: float = 5.0
    # Request body caps (api/limits.py) and command sizes (domain/rules.py): LEDGER_MAX_*.
    body_limits: BodyLimits = field(default_factory=BodyLimits)
    command_limits: Limits = field(default_factory=Limits)
    # Host header values served ("*": any); a DNS-rebinding page then cannot reach a ledger
    # on loopback (LEDGER_ALLOWED_HOSTS, comma-separated).
    allowed_hosts: tuple[str, ...] = ("*",)
    # The log's Ed25519 signing key file (persistence/signing.py). Path() means `log.key`
    # beside the blob folder, in the ledger's data directory (var/log.key by default).
    log_key: Path = Path()
    # The origin of signed checkpoints and the signing key's name; "": the existing key's
    # name, or `<host name>/session-ledger` when the key is created.
    log_origin: str = ""
    # Tag and attribute keys whose values are personal: sealed in the log, erasable
    # (domain/personal.py; LEDGER_PERSONAL_KEYS, comma-separated).
    personal_keys: tuple[str, ...] = DEFAULT_PERSONAL_KEYS

    def __post_init__(self) -> None:
        if not self.views_url:
            object.__setattr__(self, "views_url", _default_views_url(self.database_url))
        if self.log_key == Path():
            object.__setattr__(self, "log_key", self.blob_dir.parent / "log.key")
        if self.log_origin and not valid_key_name(self.log_origin):
            raise ValueError("LEDGER_LOG_ORIGIN must be non-empty, without spaces or '+'")
        if self.projection_worker not in ("thread", "process", "external"):
            raise ValueError("LEDGER_PROJECTION_WORKER must be thread, process or external")
        if self.session_timeout <= 0:
            raise ValueError("LEDGER_SESSION_TIMEOUT must be positive")
        if self.allow_anonymous not in ("", "read"):
            raise ValueError("LEDGER_ALLOW_ANONYMOUS must be read or empty")

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        db = env.get("LEDGER_DATABASE_URL", "sqlite:///var/ledger.db")
        kw: dict[str, object] = {
            "database_url": db,
            "views_url": env.get("LEDGER_VIEWS_URL", ""),
            "blob_dir": Path(env.get("LEDGER_BLOB_DIR", "var/blobs")),
            "session_timeout": float(env.get("LEDGER_SESSION_TIMEOUT", "900")),
            "expiry_interval": float(env.get("LEDGER_EXPIRY_INTERVAL", "5")),
            "read_wait": float(env.get("LEDGER_READ_WAIT", "2")),
            "projection_worker": env.get("LEDGER_PROJECTION_WORKER", "thread"),
            "server_timing": env.get("LEDGER_SERVER_TIMING", "") in ("1", "true", "yes"),
            "bench_noop": env.get("LEDGER_BENCH_NOOP", "") in ("1", "true", "yes"),
            "allow_anonymous": env.get("LEDGER_ALLOW_ANONYMOUS", ""),
            "key_refresh": float(env.get("LEDGER_KEY_REFRESH", "5")),
            "body_limits": _from_env(BodyLimits, "LEDGER_"),
            "command_limits": _from_env(Limits, "LEDGER_MAX_"),
            "allowed_hosts": tuple(
                h.strip() for h in env.get("LEDGER_ALLOWED_HOSTS", "*").split(",") if h.strip()
            ),
            "log_key": Path(env.get("LEDGER_LOG_KEY", "")),
            "log_origin": env.get("LEDGER_LOG_ORIGIN", ""),
            "personal_keys": tuple(
                k.strip()
                for k in env.get("LEDGER_PERSONAL_KEYS", ",".join(DEFAULT_PERSONAL_KEYS)).split(",")
                if k.strip()
            ),
        }
        kw.update(overrides)
        return cls(**kw)  # type: ignore[arg-type]


def _from_env(cls: Any, prefix: str) -> Any:
    """A limits object whose fields come from LEDGER_* variables (a field `max_body_bytes`
    reads LEDGER_MAX_BODY_BYTES; Limits' `id_length` reads LEDGER_MAX_ID_LENGTH)."""
    kw = {}
    for f in fields(cls):
        name = prefix + f.name.upper()
        if name in os.environ:
            try:
                kw[f.name] = int(os.environ[name])
            except ValueError:
                raise ValueError(f"{name} must be an integer") from None
            if kw[f.name] <= 0:
                raise ValueError(f"{name} must be positive")
    return cls(**kw)
