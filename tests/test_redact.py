"""Keys stay out of the server's log lines: the access log's path and query (pytest-monitor's
`/k/<key>/`, followed page links included, `?token=`, `?authkey=`), a message that quotes a
key, and a traceback whose exception names one."""

from __future__ import annotations

import logging
import sys

from uvicorn.logging import AccessFormatter, DefaultFormatter

from api.redact import RedactKeys

KEY = "sl_" + "K3y-" * 11


def formatted(record: logging.LogRecord, formatter: logging.Formatter) -> str:
    assert RedactKeys().filter(record)
    return formatter.format(record)


def access(path: str) -> logging.LogRecord:
    """The record uvicorn's access logger writes for one request."""
    args = ("127.0.0.1:5000", "GET", path, "1.1", 200)
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None
    )


def test_the_access_log_never_shows_a_key() -> None:
    fmt = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False)
    for path, shown in (
        (f"/compat/monitor/k/{KEY}/api/v1/sessions/?page=2&per_page=2", "/k/***/api/v1/sessions/"),
        (f"/compat/monitor/k/{KEY}/api/v1//sessions/?page=-1", "/k/***/api/v1//sessions/"),
        (f"/compat/opentera/api/user/sessions?id_session=1&token={KEY}", "&token=***"),
        (f"/compat/canopsis/api/v2/sessions?authkey={KEY}&limit=5", "?authkey=***&limit=5"),
    ):
        line = formatted(access(path), fmt)
        assert KEY not in line and KEY[:12] not in line, line
        assert shown in line, line


def test_a_traceback_never_shows_a_key() -> None:
    try:
        raise ValueError(f"cannot follow /compat/monitor/k/{KEY}/api/v1/sessions/?page=2")
    except ValueError:
        record = logging.LogRecord(
            "uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", (),
            sys.exc_info(),
        )  # fmt: skip
    line = formatted(record, DefaultFormatter("%(levelname)s %(message)s", use_colors=False))
    assert "ValueError" in line and "/k/***/" in line
    assert KEY not in line, line


def test_a_message_quoting_a_key_is_redacted() -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.WARNING, __file__, 1, "bad key %s", (KEY,), None
    )
    line = formatted(record, DefaultFormatter("%(message)s", use_colors=False))
    assert line == "bad key sl_***"
