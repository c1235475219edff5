"""How the `ledger` processes write their log lines: `LEDGER_LOG_FORMAT=text` (the default,
for people) or `json` (one JSON object a line, for a log pipeline).

A JSON line has `time` (ISO-8601 UTC), `level`, `logger`, `message` and `request_id` (the
answer's X-Request-ID, api/observe.py, or null outside a request), an `exception` when there
is one, and on an access line (`ledger serve --access-log`) `method`, `path`, `route` (the
template), `status`, `duration_ms` and `client`. uvicorn's loggers write through the same
handler (`uvicorn_config`). Keys are redacted from the message, the path and the traceback
(api/redact.py) whatever the logger; passwords never reach a line (URLs are printed masked).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from api import observe
from api.redact import RedactKeys, redact

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonLines(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        rid = observe.request_id.get()
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": rid.decode("ascii") if rid is not None else None,
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            line.update(_access(record.args))
        if record.exc_info:
            line["exception"] = redact(record.exc_text or self.formatException(record.exc_info))
        return orjson.dumps(line).decode()


def _access(args: tuple[Any, ...]) -> dict[str, Any]:
    """The fields of uvicorn's access record (client, method, path, http version, status),
    with the route and duration the app noted for this answer (api/observe.py)."""
    client, method, path, _version, status = (*args, None, None, None, None, None)[:5]
    route, duration = observe.access.get() or (None, None)
    return {
        "method": method,
        "path": redact(str(path)),
        "route": route,
        "status": status,
        "duration_ms": round(duration, 3) if duration is not None else None,
        "client": client,
    }


def configure(log_format: str) -> None:
    """The root handler on stderr, in `log_format`; keys redacted from every record."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactKeys())
    if log_format == "json":
        handler.setFormatter(JsonLines())
        logging.captureWarnings(True)  # a warning is a line too, not free text on stderr
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def uvicorn_config(log_format: str) -> dict[str, Any] | None:
    """uvicorn's `log_config`: its own (text) configuration, or, for json, its loggers
    without handlers of their own, passing their records to the root's JSON handler."""
    if log_format != "json":
        from uvicorn.config import LOGGING_CONFIG

        return LOGGING_CONFIG
    passing = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {name: dict(passing) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }


def emit(log_format: str, message: str, **fields: Any) -> None:
    """A line of the CLI's own on stderr, written directly (not through logging: the first
    admin key must reach no handler), in the process's format."""
    if log_format == "json":
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        doc: dict[str, Any] = {"time": now, "level": "INFO", "logger": "ledger", "message": message}
        doc.update(request_id=None, **fields)
        print(orjson.dumps(doc).decode(), file=sys.stderr, flush=True)
    else:
        print(message, file=sys.stderr, flush=True)
