"""Settings: one validated object read from the environment (LEDGER_*), for every process
(server, projection worker, replay tools), with the request body caps it holds."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from domain.eventtime import EventTimeWindow
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


# An exact browser origin, as a browser sends it in `Origin` (LEDGER_CORS_ORIGINS).
_ORIGIN = re.compile(r"^https?://(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:\d{1,5})?$")


def check_origins(origins: tuple[str, ...]) -> None:
    """Raise SettingsError naming the first value that is not `*` or an exact origin."""
    for origin in origins:
        if origin == "*":
            if len(origins) > 1:
                raise SettingsError("LEDGER_CORS_ORIGINS", "'*' allows every origin; list no other")
        elif not _ORIGIN.match(origin):
            raise SettingsError(
                "LEDGER_CORS_ORIGINS",
                f"{origin!r} is not an origin (scheme://host[:port], lower case, no path)",
            )


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
    # Where the API reads the views (a PostgreSQL streaming replica of the views database);
    # "": `views_url`. Workers always write through `views_url`.
    views_read_url: str = ""
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
    # How far a command's `at` may lie before / after the ledger's clock (domain/eventtime.py;
    # LEDGER_EVENT_TIME_PAST, LEDGER_EVENT_TIME_FUTURE, seconds).
    event_time_window: EventTimeWindow = field(default_factory=EventTimeWindow)
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
    # Browser origins allowed by CORS (api/cors.py; LEDGER_CORS_ORIGINS, comma-separated
    # exact origins, or "*"); empty: CORS off.
    cors_origins: tuple[str, ...] = ()
    # Log lines: "text" (human) or "json" (one object a line, with the request id; api/logs.py).
    log_format: str = "text"

    def __post_init__(self) -> None:
        if not self.views_url:
            object.__setattr__(self, "views_url", _default_views_url(self.database_url))
        if not self.views_read_url:
            object.__setattr__(self, "views_read_url", self.views_url)
        if self.log_key == Path():
            object.__setattr__(self, "log_key", self.blob_dir.parent / "log.key")
        if self.log_origin and not valid_key_name(self.log_origin):
            raise SettingsError("LEDGER_LOG_ORIGIN", "must be non-empty, without spaces or '+'")
        if self.projection_worker not in ("thread", "process", "external"):
            raise SettingsError("LEDGER_PROJECTION_WORKER", "must be thread, process or external")
        if self.session_timeout <= 0:
            raise SettingsError("LEDGER_SESSION_TIMEOUT", "must be positive")
        if self.allow_anonymous not in ("", "read"):
            raise SettingsError("LEDGER_ALLOW_ANONYMOUS", "must be read or empty")
        if self.log_format not in ("text", "json"):
            raise SettingsError("LEDGER_LOG_FORMAT", "must be text or json")
        check_origins(self.cors_origins)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from the LEDGER_* variables; a value no setting takes raises SettingsError
        naming the variable (the CLI prints that one line and exits 2)."""
        env = os.environ
        db = _database_url("LEDGER_DATABASE_URL", "sqlite:///var/ledger.db")
        kw: dict[str, object] = {
            "database_url": db,
            "views_url": _database_url("LEDGER_VIEWS_URL", ""),
            "views_read_url": _database_url("LEDGER_VIEWS_READ_URL", ""),
            "blob_dir": Path(_text("LEDGER_BLOB_DIR", "var/blobs")),
            "session_timeout": _seconds("LEDGER_SESSION_TIMEOUT", 900, zero=False),
            "expiry_interval": _seconds("LEDGER_EXPIRY_INTERVAL", 5, zero=False),
            "read_wait": _seconds("LEDGER_READ_WAIT", 2),
            "projection_worker": _choice(
                "LEDGER_PROJECTION_WORKER", "thread", "thread", "process", "external"
            ),
            "server_timing": _flag("LEDGER_SERVER_TIMING"),
            "bench_noop": _flag("LEDGER_BENCH_NOOP"),
            "allow_anonymous": _choice("LEDGER_ALLOW_ANONYMOUS", "", "", "read"),
            "key_refresh": _seconds("LEDGER_KEY_REFRESH", 5),
            "body_limits": _from_env(BodyLimits, "LEDGER_"),
            "command_limits": _from_env(Limits, "LEDGER_MAX_"),
            "event_time_window": EventTimeWindow(
                past=_seconds("LEDGER_EVENT_TIME_PAST", EventTimeWindow.past),
                future=_seconds("LEDGER_EVENT_TIME_FUTURE", EventTimeWindow.future),
            ),
            "allowed_hosts": _names("LEDGER_ALLOWED_HOSTS", "*"),
            "log_key": Path(env.get("LEDGER_LOG_KEY", "")),
            "log_origin": env.get("LEDGER_LOG_ORIGIN", ""),
            "personal_keys": _names("LEDGER_PERSONAL_KEYS", ",".join(DEFAULT_PERSONAL_KEYS), True),
            "log_format": _choice("LEDGER_LOG_FORMAT", "text", "text", "json"),
            "cors_origins": tuple(
                o.strip() for o in env.get("LEDGER_CORS_ORIGINS", "").split(",") if o.strip()
            ),
        }
        kw.update(overrides)
        return cls(**kw)  # type: ignore[arg-type]


class SettingsError(ValueError):
    """A LEDGER_* variable whose value no setting takes; `name` is the variable."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name} {problem}")
        self.name = name


def _text(name: str, default: str) -> str:
    value = os.environ.get(name, default)
    if not value.strip():
        raise SettingsError(name, "must not be empty")
    return value


def _seconds(name: str, default: float, zero: bool = True) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        kind = "a number of seconds, 0 or more" if zero else "a positive number of seconds"
        raise SettingsError(name, f"must be {kind} (got {raw[:40]!r})")
    return value


def _choice(name: str, default: str, *allowed: str) -> str:
    value = os.environ.get(name, default)
    if value not in allowed:
        shown = " or ".join(repr(a) if a else "empty" for a in allowed)
        raise SettingsError(name, f"must be {shown} (got {value[:40]!r})")
    return value


_FLAGS = {"1": True, "true": True, "yes": True, "on": True,
          "": False, "0": False, "false": False, "no": False, "off": False}  # fmt: skip


def _flag(name: str) -> bool:
    value = os.environ.get(name, "")
    if value.lower() not in _FLAGS:
        raise SettingsError(
            name, f"must be 1, true, yes, on, or 0, false, no, off (got {value[:40]!r})"
        )
    return _FLAGS[value.lower()]


def _names(name: str, default: str, empty: bool = False) -> tuple[str, ...]:
    names = tuple(n.strip() for n in os.environ.get(name, default).split(",") if n.strip())
    if not names and not empty:
        raise SettingsError(name, "must name at least one (comma-separated)")
    return names


def _database_url(name: str, default: str) -> str:
    """A SQLAlchemy URL of a database the ledger runs on; never echoed in an error, since it
    may hold a password."""
    url = os.environ.get(name, default)
    if url == default == "":
        return url
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise SettingsError(
            name, "is not a database URL (sqlite:///path or postgresql+psycopg://user@host/db)"
        ) from None
    if backend not in ("sqlite", "postgresql"):
        raise SettingsError(name, f"names the database {backend[:40]!r}: sqlite or postgresql")
    return url


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
                raise SettingsError(name, "must be a positive integer") from None
            if kw[f.name] <= 0:
                raise SettingsError(name, "must be a positive integer")
    return cls(**kw)
