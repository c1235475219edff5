"""The event store on a SQLite file, beyond the contract both stores keep
(tests/test_store_contract.py): the WAL checkpoints run beside the writer."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from domain import commands as c
from persistence.ledger import Ledger
from persistence.store import EventStore


def test_checkpoints_run_beside_the_writer_and_lose_nothing(tmp_path: Path) -> None:
    """The writer's commits do not checkpoint (a background thread does); everything
    acknowledged is in the database file after the WAL is copied, and dispose stops it."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    store = EventStore(url)
    store.create_schema()
    ledger = Ledger(store, lambda: 1.0)
    ledger.start()
    try:
        ledger.execute_many([c.StartSession(session_id=f"s{i}") for i in range(200)])
        for _ in range(20):
            ledger.execute_many([c.KeepAlive(session_id=f"s{i}", path="/p") for i in range(200)])
    finally:
        ledger.close()
    checkpointer = store.checkpointer
    assert checkpointer is not None
    deadline = threading.Event()
    for _ in range(50):
        if checkpointer.runs:
            break
        deadline.wait(0.1)
    assert checkpointer.runs >= 1
    with store.write_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 16000
    store.dispose()
    assert checkpointer._thread is None
    con = sqlite3.connect(tmp_path / "log.db")
    assert con.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 200 * 21
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_file_uri_names_its_file_not_a_folder_called_file(tmp_path, monkeypatch) -> None:
    """`sqlite:///file:/x/y.db?mode=ro&uri=true` is the file /x/y.db: opening it made a
    folder `file:/x` in the working directory before."""
    from persistence.schema import make_engine, sqlite_path

    monkeypatch.chdir(tmp_path)
    db = tmp_path / "d" / "ledger.db"
    assert sqlite_path(f"sqlite:///file:{db}?mode=ro&uri=true") == db
    assert sqlite_path(f"sqlite:///{db}") == db
    make_engine(f"sqlite:///file:{db}?mode=rwc&uri=true").dispose()
    assert not (tmp_path / "file:").exists()
