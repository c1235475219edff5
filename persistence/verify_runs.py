"""The record of `ledger replay verify` runs, which a server reads for its metrics.

`verify` runs as its own short-lived process (often from cron), so its outcome is written
where every server of the ledger can read it: the `verify_runs` table in the views
database, one row per run (when it finished, whether the log was intact, the head position
it checked up to, how many problems it named, whether saved checkpoints were checked).
The views database is the one the replay tools may write (`rebuild` does), and the table
sits beside the views but outside them: a rebuild swaps the views' tables, not this record,
and its presence does not make a views database look like an older schema. Only the last
`KEEP` runs are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Boolean, Column, Engine, Float, Integer, MetaData, Table, delete, select

from persistence.schema import Position, serialise_ddl

metadata = MetaData()
verify_runs = Table(
    "verify_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("finished_at", Float, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("position", Position, nullable=False),
    Column("problems", Integer, nullable=False),
    Column("checkpoints", Boolean, nullable=False),
)
KEEP = 100


@dataclass(frozen=True)
class VerifyRun:
    finished_at: float  # epoch seconds
    ok: bool
    position: int  # the log's head as verified
    problems: int  # problems named (0 when ok)
    checkpoints: bool  # checked against saved checkpoints (else: self-consistency only)


def record(engine: Engine, run: VerifyRun) -> None:
    """Append `run` (creating the table on first use) and forget runs older than `KEEP`."""
    with engine.begin() as conn:
        serialise_ddl(conn)
        metadata.create_all(conn)
        conn.execute(
            verify_runs.insert().values(
                finished_at=run.finished_at,
                ok=run.ok,
                position=run.position,
                problems=run.problems,
                checkpoints=run.checkpoints,
            )
        )
        newest = conn.execute(select(verify_runs.c.id).order_by(verify_runs.c.id.desc())).all()
        if len(newest) > KEEP:
            conn.execute(delete(verify_runs).where(verify_runs.c.id <= newest[KEEP][0]))


def last(engine: Engine) -> VerifyRun | None:
    """The latest run, or None when verify never recorded one on this views database."""
    with engine.connect() as conn:
        if not conn.dialect.has_table(conn, verify_runs.name):
            return None
        row = conn.execute(select(verify_runs).order_by(verify_runs.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    return VerifyRun(row.finished_at, bool(row.ok), row.position, row.problems, row.checkpoints)
