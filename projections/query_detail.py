"""Detail reads: one session's document, many at once, and the session of a number. Deleted
sessions read as absent. (A list page's documents: `queries.list_details`.)"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, select

from projections.tables import ViewTables


def get_detail(conn: Connection, t: ViewTables, session_id: str) -> dict[str, Any] | None:
    raw = conn.execute(select(t.detail.c.doc).where(t.detail.c.session_id == session_id)).scalar()
    if raw is None:
        return None
    doc: dict[str, Any] = orjson.loads(raw)
    return None if doc["deleted"] else doc


def get_details(conn: Connection, t: ViewTables, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Many detail documents at once (deleted ones left out)."""
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        rows = conn.execute(
            select(t.detail.c.session_id, t.detail.c.doc).where(
                t.detail.c.session_id.in_(ids[i : i + 500])
            )
        )
        for sid, raw in rows:
            doc = orjson.loads(raw)
            if not doc["deleted"]:
                out[sid] = doc
    return out


def id_for_number(conn: Connection, t: ViewTables, number: int) -> str | None:
    sid = conn.execute(select(t.list.c.session_id).where(t.list.c.number == number)).scalar()
    return None if sid is None else str(sid)
