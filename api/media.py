"""Which media types the native API's bodies may have, and the 415 answer for any other.

A JSON-body route takes `application/json` or any `application/*+json`. A body without a
Content-Type is not JSON (RFC 9110 §8.3 lets a recipient take it as
`application/octet-stream`, and FastAPI's strict default does the same): it is refused with
the rest, so a browser's `text/plain` or a form post never passes as a command. An empty
body is no body, whatever its Content-Type: optional-body routes take it. The batch route
takes NDJSON (`application/x-ndjson`, `application/ndjson`, `application/jsonl`,
`application/json`) or no Content-Type at all (NDJSON has no registered type that every
client sends). Uploads take any media type: a log is stored as sent.
"""

from __future__ import annotations

from fastapi import Depends, Request

from domain.errors import LedgerError

JSON_ACCEPTED = "application/json (or application/*+json)"
NDJSON_TYPES = frozenset(
    {b"application/x-ndjson", b"application/ndjson", b"application/jsonl", b"application/json"}
)
NDJSON_ACCEPTED = "application/x-ndjson (or application/ndjson, application/jsonl)"


class UnsupportedMediaTypeError(LedgerError):
    """A body of a media type the route does not take (415; names what it accepts)."""

    code = "unsupported-media-type"


_JSON_TYPES: dict[bytes, bool] = {}


def media_type(content_type: bytes) -> bytes:
    """The media type of a Content-Type value, without parameters, lower case."""
    return content_type.split(b";", 1)[0].strip().lower()


def is_json(content_type: bytes) -> bool:
    """application/json or application/*+json, as FastAPI decides whether to parse a body."""
    known = _JSON_TYPES.get(content_type)
    if known is None:
        media = media_type(content_type)
        known = media == b"application/json" or (
            media.startswith(b"application/") and media.endswith(b"+json")
        )
        if len(_JSON_TYPES) < 256:  # a few distinct values in practice; never unbounded
            _JSON_TYPES[content_type] = known
    return known


def unsupported(content_type: bytes | None, accepted: str) -> UnsupportedMediaTypeError:
    given = "no Content-Type" if content_type is None else repr(content_type.decode("latin-1"))
    return UnsupportedMediaTypeError(
        f"this route takes {accepted}, not {given}", field="Content-Type"
    )


def check_json(raw: bytes, content_type: bytes | None) -> None:
    """Refuse a non-empty body that is not declared JSON."""
    if raw and (content_type is None or not is_json(content_type)):
        raise unsupported(content_type, JSON_ACCEPTED)


async def json_body(request: Request) -> None:
    """Dependency of the router's JSON-body routes: 415 before the body is validated
    (FastAPI has read the body by then; `request.body()` returns it again)."""
    content_type = request.headers.get("content-type")
    check_json(await request.body(), None if content_type is None else content_type.encode())


def check_ndjson(content_type: bytes | None) -> None:
    """Refuse a batch body declared as anything but NDJSON (no Content-Type passes)."""
    if content_type is not None and media_type(content_type) not in NDJSON_TYPES:
        raise unsupported(content_type, NDJSON_ACCEPTED)


# The router's JSON-body routes declare `dependencies=JSON_BODY`.
JSON_BODY = [Depends(json_body)]
