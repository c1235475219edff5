"""Conditional reads (RFC 9110 §8.8.3, §13.1.2): a query's JSON answer with its strong
ETag, or 304 Not Modified, without a body, when the request's If-None-Match names it.

If-None-Match compares weakly: `W/"x"` matches `"x"`; `*` matches any answer (a route that
has none answers 404 first). A session's detail is tagged with its stream version, the
tag its commands answer and If-Match takes; every other answer with a hash of its bytes.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

# One entity tag of a list: optional weakness, then the quoted opaque part.
_TAG = re.compile(r'\s*(?:W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')


def body_tag(body: bytes) -> str:
    """A strong tag that changes whenever the bytes do (128 bits of their sha256)."""
    return '"' + base64.urlsafe_b64encode(hashlib.sha256(body).digest()[:16]).decode()[:22] + '"'


def none_match(header: str, etag: str) -> bool:
    """Whether If-None-Match `header` names `etag` (weak comparison); a value that is not a
    list of entity tags names nothing, so the full answer goes out."""
    value = header.strip()
    if value == "*":
        return True
    opaque = etag.removeprefix("W/")
    pos = 0
    while pos < len(value):
        m = _TAG.match(value, pos)
        if m is None or m.end() == pos:
            return False
        if m.group(1) == opaque:
            return True
        pos = m.end()
    return False


def conditional(
    request: Request, data: Any, etag: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    """`data` as JSON with its ETag (`etag`, else a hash of the bytes), or a 304 carrying
    the ETag (and `headers`) when If-None-Match already names it."""
    body = orjson.dumps(data)
    tag = etag or body_tag(body)
    out = {"ETag": tag, **(headers or {})}
    header = request.headers.get("if-none-match")
    if header is not None and none_match(header, tag):
        return Response(status_code=304, headers=out)
    return Response(body, media_type="application/json", headers=out)


def next_page(request: Request, drop: tuple[str, ...], **params: Any) -> str:
    """This request's path and query with `params` in place of `drop`: the next page's
    link, relative, so it holds behind a proxy."""
    url = request.url.remove_query_params(list(drop)).include_query_params(**params)
    return f"{url.path}?{url.query}"


def link_next(link: str | None) -> dict[str, str] | None:
    """The `Link` header of a page that has a next one (RFC 8288)."""
    return {"Link": f'<{link}>; rel="next"'} if link else None
