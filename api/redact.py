"""Keeps API keys out of the server's logs.

uvicorn's access log prints each request's path and query string, and keys can travel in
both: pytest-monitor's `/compat/monitor/k/<key>/...` path (rewritten by the gate before the
line is written, but an error can still name it) and OpenTera's `?token=` and Canopsis's
`?authkey=` parameters. A filter on uvicorn's loggers replaces them (and any `sl_` key, e.g.
quoted in an error or its traceback) with `***` before a line is formatted. No log line
carries headers.
"""

from __future__ import annotations

import logging
import re

from api.keys import KEY_PREFIX

_PATTERNS = (
    (re.compile(r"(/k/)[^/?#\s\"']+"), r"\1***"),
    (re.compile(r"((?:^|[?&\s])(?:token|authkey)=)[^&#\s\"']*", re.I), r"\1***"),
    (re.compile(re.escape(KEY_PREFIX) + r"[A-Za-z0-9_\-]{20,}"), KEY_PREFIX + "***"),
)
LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn")


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactKeys(logging.Filter):
    """Redacts the message, its string arguments and its traceback in place (uvicorn's
    access formatter unpacks the arguments, so they stay a tuple of the same length)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if record.exc_info and not record.exc_text:
            # A formatter prints the cached exc_text as it stands: an exception's message
            # (a URL, a query string) could carry a key.
            record.exc_text = redact(_TRACEBACKS.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactKeys()
_TRACEBACKS = logging.Formatter()


def install() -> None:
    """Put the filter on uvicorn's loggers (idempotent; after uvicorn configured them)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
