"""The event database's schema and engines: the `events`, `log_nodes` (the Merkle tree's
stored nodes, persistence/tree.py), `idempotency_keys`, `api_keys` and `schema_migrations`
tables (their history: persistence/migrations.py), the triggers that make the
database itself refuse UPDATE and DELETE on events and tree nodes, and `make_engine` (SQLite
pragmas and `BEGIN IMMEDIATE` for writers; PostgreSQL as configured)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url

# Positions outgrow 32 bits on a busy PostgreSQL log; SQLite keeps INTEGER (its rowid alias).
Position = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()
events_table = Table(
    "events",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=False),
    Column("stream_id", String, nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String, nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("recorded_at", Float, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    UniqueConstraint("stream_id", "version", name="events_stream_version"),
)
# The hash of the perfect subtree over leaves [idx * 2**level, (idx + 1) * 2**level), for
# levels from persistence.tree.STORED_LEVEL up. Found by its key alone, so no rowid on SQLite.
log_nodes_table = Table(
    "log_nodes",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", Position, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)
idempotency_table = Table(
    "idempotency_keys",
    metadata,
    Column("key", String, primary_key=True),
    Column("fingerprint", String, nullable=False),
    Column("result", LargeBinary, nullable=False),
    Column("position", Position, nullable=False),
)
# API keys (api/keys.py): only a hash of each key is stored.
api_keys_table = Table(
    "api_keys",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", String, nullable=False),  # comma-separated
    Column("projects", String, nullable=True),  # comma-separated; NULL: every project
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    # "opentera-device:<id>" or "opentera-participant:<id>"; NULL: bound to no one. Added
    # after the first keys were made (persistence/migrations.py, step 6).
    Column("binding", String, nullable=True),
)
# The migration steps applied to this database (persistence/migrations.py).
schema_migrations_table = Table(
    "schema_migrations",
    metadata,
    Column("step", Integer, primary_key=True, autoincrement=False),
    Column("name", String, nullable=False),
    Column("applied_at", Float, nullable=False),
)

SQLITE_GUARDS = (
    "CREATE TRIGGER IF NOT EXISTS events_refuse_update BEFORE UPDATE ON events "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END",
    "CREATE TRIGGER IF NOT EXISTS events_refuse_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE refused'); END",
)
# SQLite keeps the tree's nodes in a file of their own (`tree_path`), with these guards.
SQLITE_TREE_GUARDS = (
    "CREATE TRIGGER IF NOT EXISTS log_nodes_refuse_update BEFORE UPDATE ON log_nodes "
    "BEGIN SELECT RAISE(ABORT, 'log_nodes are append-only: UPDATE refused'); END",
    "CREATE TRIGGER IF NOT EXISTS log_nodes_refuse_delete BEFORE DELETE ON log_nodes "
    "BEGIN SELECT RAISE(ABORT, 'log_nodes are append-only: DELETE refused'); END",
)
POSTGRES_GUARDS = (
    # No '%' format here: the driver (psycopg, pyformat) would read it as a placeholder.
    "CREATE OR REPLACE FUNCTION events_refuse_change() RETURNS trigger AS $$ BEGIN "
    "RAISE EXCEPTION USING MESSAGE = 'events are append-only: ' || TG_OP || ' refused'; "
    "END $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS events_refuse_change ON events",
    "CREATE TRIGGER events_refuse_change BEFORE UPDATE OR DELETE ON events "
    "FOR EACH ROW EXECUTE FUNCTION events_refuse_change()",
    "DROP TRIGGER IF EXISTS events_refuse_truncate ON events",
    "CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events "
    "FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change()",
    "CREATE OR REPLACE FUNCTION log_nodes_refuse_change() RETURNS trigger AS $$ BEGIN "
    "RAISE EXCEPTION USING MESSAGE = 'log_nodes are append-only: ' || TG_OP || ' refused'; "
    "END $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS log_nodes_refuse_change ON log_nodes",
    "CREATE TRIGGER log_nodes_refuse_change BEFORE UPDATE OR DELETE ON log_nodes "
    "FOR EACH ROW EXECUTE FUNCTION log_nodes_refuse_change()",
    "DROP TRIGGER IF EXISTS log_nodes_refuse_truncate ON log_nodes",
    "CREATE TRIGGER log_nodes_refuse_truncate BEFORE TRUNCATE ON log_nodes "
    "FOR EACH STATEMENT EXECUTE FUNCTION log_nodes_refuse_change()",
)


def sqlite_path(url: str) -> Path | None:
    """The file behind an SQLite URL (a `file:` URI's path too); None for other databases."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    if u.query.get("uri") == "true" and u.database.startswith("file:"):
        return Path(u.database.removeprefix("file:").split("?")[0])
    return Path(u.database)


def tree_path(events: Path) -> Path:
    """The SQLite file of the Merkle tree's stored nodes beside an events file: `ledger.db`'s
    is `ledger-tree.db` (as its views' is `ledger-views.db`). Only integrators write it, so
    they never wait on the events' writer (persistence/tree.py)."""
    return events.with_name(f"{events.stem}-tree{events.suffix}")


def process_name() -> str:
    """This process among all that use the database: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def application_name(process: str) -> str:
    """What PostgreSQL's `pg_stat_activity` shows for `process`'s connections: the process id
    first, since PostgreSQL keeps 63 bytes of it and a long host name is cut at the end."""
    host, _, pid = process.rpartition(":")
    return f"ledger {pid} {host}".encode()[:63].decode(errors="ignore")


def make_engine(
    url: str,
    *,
    immediate: bool = False,
    durable: bool = True,
    cache_mb: int = 16,
    autocheckpoint: int | None = None,
) -> Engine:
    """An engine for `url`; `immediate=True` gives SQLite writers `BEGIN IMMEDIATE`.
    `durable=False` (views, which can always be rebuilt from the log) skips the per-commit
    fsync (SQLite `synchronous=NORMAL`, PostgreSQL `synchronous_commit=off`): a crash can
    lose the last view batches, and their tracking position with them.
    `autocheckpoint` (WAL pages) replaces SQLite's 1,000 where a `Checkpointer` does the
    checkpoints."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        pg = create_engine(url, pool_pre_ping=True)

        @event.listens_for(pg, "do_connect")
        def _name(_dialect: Any, _rec: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
            # Looked up at each connect: a forked API process names its own connections.
            cparams.setdefault("application_name", application_name(process_name()))
            if not durable:  # as SQLite's NORMAL: a crash may lose the last commits, whole
                extra = cparams.get("options", "")
                cparams["options"] = f"{extra} -c synchronous_commit=off".strip()

        return pg
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours to issue.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is fsynced before it is acknowledged (group commit pays for it).
        cur.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        cur.execute(f"PRAGMA cache_size=-{cache_mb * 1024}")
        cur.execute("PRAGMA busy_timeout=30000")
        # Deleted rows are overwritten, not left in free pages: erasure relies on it
        # (persistence/erasure.py). Many builds default to it; the figures were taken so.
        cur.execute("PRAGMA secure_delete=ON")
        if autocheckpoint is not None:
            cur.execute(f"PRAGMA wal_autocheckpoint={autocheckpoint}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = immediate and not conn.get_execution_options().get(READ_ONLY)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


# An execution option: this connection only reads. On a writer's engine its transactions
# begin deferred, so in WAL mode they read a snapshot without taking the write lock (an
# IMMEDIATE read would queue behind the projection worker's writes and every other reader).
READ_ONLY = "ledger_read_only"


# pg_advisory_xact_lock's key for schema changes: any constant no other lock of ours uses.
DDL_LOCK = 0x5E55_1ED6


def serialise_ddl(conn: Connection) -> None:
    """Hold the schema lock until `conn`'s transaction ends. PostgreSQL's `CREATE TABLE`
    is not safe against itself: two processes creating one table both pass the check and one
    fails on the catalogue's unique index. SQLite writers already hold `BEGIN IMMEDIATE`."""
    if conn.dialect.name != "sqlite":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({DDL_LOCK})")


def reading(engine: Engine) -> Connection:
    """A connection of `engine` for reads only (see READ_ONLY)."""
    return engine.connect().execution_options(**{READ_ONLY: True})
