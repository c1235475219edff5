"""Opaque list cursors: where a page ended, for keyset pagination.

A cursor is base64url (unpadded) of the JSON array `[1, bound, sort value, number]`:
`bound` fingerprints the list, its sort, order and filters, so a cursor is only good for the
list that made it; the sort value and the session number are where the next page starts
(`projections.queries.list_sessions` `after`). A cursor is not signed, and need not be: it
only chooses where to start inside the filters the request itself names (a project-limited
key's filter included, api/scoping.py), so a forged one can show nothing the same request
without it could not. Anything that does not decode to a cursor of this list is 422.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import math
from typing import Any

import orjson

from domain.errors import InvalidCommandError

VERSION = 1
MAX_LENGTH = 2048  # a cursor's characters (a sort value is at most a name's length)


def bound(*parts: Any) -> str:
    """The fingerprint of a list's parameters (dataclasses included): 64 bits of sha256."""
    plain = [
        dataclasses.asdict(p) if dataclasses.is_dataclass(p) and not isinstance(p, type) else p
        for p in parts
    ]
    return hashlib.sha256(orjson.dumps(plain)).hexdigest()[:16]


def encode(fingerprint: str, value: Any, number: int) -> str:
    raw = orjson.dumps([VERSION, fingerprint, value, number])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _refused(detail: str) -> InvalidCommandError:
    return InvalidCommandError(f"cursor: {detail}", field="cursor")


def decode(cursor: str, fingerprint: str, kind: type[float] | type[str], nullable: bool) -> Any:
    """(sort value, number) of a cursor this list made, or a 422 naming the cursor. `kind` is
    the sort value's type; `nullable` whether a session may lack one (it then sorts last)."""
    if len(cursor) > MAX_LENGTH:
        raise _refused(f"longer than {MAX_LENGTH} characters")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise _refused("not a cursor this server made") from None
    if type(data) is not list or len(data) != 4 or data[0] != VERSION:
        raise _refused("not a cursor this server made")
    if data[1] != fingerprint:
        raise _refused("made for another list (sort, order or filters differ): start again")
    _, _, value, number = data
    if type(number) is not int or not 0 <= number < 2**63:
        raise _refused("not a cursor this server made")
    if kind is float and type(value) is int and not isinstance(value, bool):
        value = float(value)
    if value is None and nullable:
        return value, number
    if type(value) is not kind or (isinstance(value, float) and not math.isfinite(value)):
        raise _refused("not a cursor this server made")
    return value, number
