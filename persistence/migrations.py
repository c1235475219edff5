"""The event database's schema history: every step that ever changed it, in order, applied
by whichever process opens the database first and recorded in `schema_migrations` (what
Alembic's revision table does, kept small enough to read here).

A database made before this history was kept has no record: every step is written so that
it is a no-op where its change is already there, so such a database is brought up and
stamped in one pass. A database whose record runs past this code's last step was upgraded by
newer code, and is refused: an older process must not write to a schema it does not know.
Steps run in one transaction, serialised between processes (SQLite: the writer's `BEGIN
IMMEDIATE`; PostgreSQL: a transaction-scoped advisory lock), so many API processes and
projection workers may start at once. The append-only triggers are asserted at every open,
after the steps: a dropped trigger comes back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Table, inspect, select

from persistence.schema import (
    POSTGRES_GUARDS,
    SQLITE_GUARDS,
    SQLITE_TREE_GUARDS,
    api_keys_table,
    events_table,
    idempotency_table,
    log_nodes_table,
    make_engine,
    schema_migrations_table,
    serialise_ddl,
    sqlite_path,
    tree_path,
)
from persistence.sealing import sealed_values_table
from persistence.settings import SettingsError


@dataclass(frozen=True)
class Step:
    number: int
    name: str
    apply: Callable[[Connection], None]


def _create(*tables: Table) -> Callable[[Connection], None]:
    def apply(conn: Connection) -> None:
        for table in tables:
            table.create(conn, checkfirst=True)

    return apply


def _drop_time_index(conn: Connection) -> None:
    # position_at became a binary search over positions (recorded times never go backwards).
    conn.exec_driver_sql("DROP INDEX IF EXISTS events_recorded_at")


def _key_binding(conn: Connection) -> None:
    have = {col["name"] for col in inspect(conn).get_columns("api_keys")}
    if "binding" not in have:
        conn.exec_driver_sql("ALTER TABLE api_keys ADD COLUMN binding VARCHAR")


def _nodes_to_own_file(conn: Connection) -> None:
    # SQLite: the nodes move to the tree's own file (schema.tree_path), which only integrators
    # write. They are derived from the events: the store's catch-up rebuilds them there.
    if conn.dialect.name == "sqlite" and inspect(conn).has_table("log_nodes"):
        conn.exec_driver_sql("DROP TABLE log_nodes")


def create_tree_schema(nodes: Engine) -> None:
    """The tree file's `log_nodes` and its append-only guards (SQLite; PostgreSQL keeps the
    nodes beside the events, made by `migrate`)."""
    with nodes.begin() as conn:
        log_nodes_table.create(conn, checkfirst=True)
        for ddl in SQLITE_TREE_GUARDS:
            conn.exec_driver_sql(ddl)


STEPS = (
    Step(1, "events and idempotency keys", _create(events_table, idempotency_table)),
    Step(2, "no index on events.recorded_at", _drop_time_index),
    Step(3, "API keys, stored hashed (api_keys)", _create(api_keys_table)),
    Step(4, "the Merkle tree's stored nodes (log_nodes)", _create(log_nodes_table)),
    Step(5, "sealed personal values (sealed_values)", _create(sealed_values_table)),
    Step(6, "a key's OpenTera binding (api_keys.binding)", _key_binding),
    Step(7, "SQLite: the Merkle tree's nodes in a file of their own", _nodes_to_own_file),
)
LATEST = STEPS[-1].number
_TABLES = (events_table, idempotency_table, api_keys_table, log_nodes_table, sealed_values_table)


@dataclass(frozen=True)
class Applied:
    number: int
    name: str
    applied_at: float


def applied(engine: Engine) -> list[Applied]:
    """The steps recorded in the database, in order (empty before the first migration)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("schema_migrations"):
            return []
        t = schema_migrations_table
        rows = conn.execute(select(t.c.step, t.c.name, t.c.applied_at).order_by(t.c.step))
        return [Applied(int(r[0]), str(r[1]), float(r[2])) for r in rows]


def pending(engine: Engine) -> list[Step]:
    """This code's steps the database has not recorded; SettingsError when it is newer."""
    done = {a.number for a in applied(engine)}
    _refuse_newer(max(done, default=0))
    return [s for s in STEPS if s.number not in done]


def migrate(engine: Engine, clock: Callable[[], float] = time.time) -> list[Step]:
    """Apply the missing steps and assert the triggers; the steps it applied."""
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as conn:
        serialise_ddl(conn)
        schema_migrations_table.create(conn, checkfirst=True)
        t = schema_migrations_table
        done = {int(n) for n in conn.execute(select(t.c.step)).scalars()}
        _refuse_newer(max(done, default=0))
        todo = [s for s in STEPS if s.number not in done]
        for step in todo:
            step.apply(conn)
            conn.execute(t.insert().values(step=step.number, name=step.name, applied_at=clock()))
        for table in _TABLES:  # a table dropped by hand comes back (empty), as the triggers do
            if not (sqlite and table is log_nodes_table):
                table.create(conn, checkfirst=True)
        for ddl in SQLITE_GUARDS if sqlite else POSTGRES_GUARDS:
            conn.exec_driver_sql(ddl)
    events = sqlite_path(engine.url.render_as_string(hide_password=False)) if sqlite else None
    if events is not None:  # the tree's nodes, in their own file (step 7)
        nodes = make_engine(f"sqlite:///{tree_path(events)}")
        try:
            create_tree_schema(nodes)
        finally:
            nodes.dispose()
    return todo


def _refuse_newer(recorded: int) -> None:
    if recorded > LATEST:
        raise SettingsError(
            "LEDGER_DATABASE_URL",
            f"holds a schema at migration step {recorded}, newer than this code's {LATEST}: "
            "run the newer code (see docs/operations.md, Upgrades)",
        )
