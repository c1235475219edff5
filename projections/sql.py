"""Portable upsert for SQLite and PostgreSQL on SQLAlchemy Core."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: list[str]) -> None:
    if not rows:
        return
    mod = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = mod.insert(table)
    cols = [c for c in rows[0] if c not in keys]
    if cols:
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in cols}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    conn.execute(stmt, list(rows))
