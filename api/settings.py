"""Settings: one validated object read from the environment (LEDGER_*)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _default_views_url(database_url: str) -> str:
    # Views live in their own SQLite file so projection writes never wait on the event
    # table's write lock; on PostgreSQL they share the database.
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        return f"sqlite:///{path.with_name(path.stem + '-views' + path.suffix)}"
    return database_url


def parse_tokens(text: str) -> dict[str, str]:
    """`token=user,token2=user2` -> {token: user} (LEDGER_API_TOKENS)."""
    out = {}
    for part in text.split(","):
        token, sep, user = part.strip().partition("=")
        if part.strip():
            if not sep or not token or not user:
                raise ValueError("LEDGER_API_TOKENS must look like token=user,token2=user2")
            out[token] = user
    return out


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
    # the views never competes with request handling for the GIL.
    projection_worker: str = "thread"
    # Adds `Server-Timing: app;dur=<ms>` to every answer (the benchmark reads it).
    server_timing: bool = False
    api_tokens: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.views_url:
            object.__setattr__(self, "views_url", _default_views_url(self.database_url))
        if self.projection_worker not in ("thread", "process"):
            raise ValueError("LEDGER_PROJECTION_WORKER must be thread or process")
        if self.session_timeout <= 0:
            raise ValueError("LEDGER_SESSION_TIMEOUT must be positive")

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
            "api_tokens": parse_tokens(env.get("LEDGER_API_TOKENS", "")),
        }
        kw.update(overrides)
        return cls(**kw)  # type: ignore[arg-type]
