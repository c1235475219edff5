"""Upgrades: a ledger written by earlier commits (98fbd59 of 2026-12-02, before keys, the
Merkle tree and sealing; 2d1a672, the last landed before the migration history), on SQLite and
PostgreSQL, is brought up by `ledger migrate` (persistence/migrations.py): every step is
recorded, the old chain verifies with its tree built, old keys still open the API, the views
are refilled from the log, and new commands append after the old ones. A database migrated by
newer code is refused. The old databases are dumps made by tests/fixtures/old_ledgers/make.py
from those commits."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.cli import main
from persistence.migrations import LATEST, STEPS, applied
from persistence.schema import make_engine
from persistence.settings import Settings
from tests.conftest import bearer, ledger_env, make_key
from tests.pg import PgCluster

FIXTURES = Path(__file__).parent / "fixtures" / "old_ledgers"
COMMITS = ("98fbd59", "2d1a672")


def restore(commit: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database holding the commit's dump; its URL."""
    sql = (FIXTURES / f"{commit}.{backend}.sql").read_text()
    if backend == "sqlite":
        db = tmp_path / "ledger.db"
        with sqlite3.connect(db) as conn:
            conn.executescript(sql)
        return f"sqlite:///{db}"
    import psycopg

    pg: PgCluster = request.getfixturevalue("pg")
    url = pg.create_database("upgrade")
    # psql's own meta-commands (`\restrict` and the like) are not SQL: left out.
    script = "\n".join(line for line in sql.splitlines() if not line.startswith("\\"))
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute(script.encode())
    return url


def old_key(commit: str, backend: str) -> str | None:
    facts: dict[str, Any] = json.loads((FIXTURES / f"{commit}.json").read_text())
    key: str | None = facts[backend]["key"]
    return key


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("commit", COMMITS)
def test_an_old_ledger_is_migrated_and_keeps_its_evidence(
    commit: str,
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = restore(commit, backend, tmp_path, request)
    env = {**ledger_env(tmp_path), "LEDGER_DATABASE_URL": url}
    monkeypatch.setenv("LEDGER_DATABASE_URL", url)
    monkeypatch.setenv("LEDGER_BLOB_DIR", env["LEDGER_BLOB_DIR"])
    engine = make_engine(url)
    assert applied(engine) == []  # made before the history was kept
    assert main(["migrate", "--check"]) == 1
    assert f"{len(STEPS)} step(s) pending" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert [a.number for a in applied(engine)] == [s.number for s in STEPS]
    assert main(["migrate", "--check"]) == 0
    assert main(["replay", "verify", "-q"]) == 0  # the old chain, and the tree built over it
    assert "checked 10 events" in capsys.readouterr().out
    key = old_key(commit, backend) or make_key(env, "after-upgrade", "admin")
    with TestClient(create_app(Settings.from_env())) as client:
        h = bearer(key)
        listed = client.get("/v1/sessions", headers={**h, "X-Min-Position": "10"})
        assert listed.status_code == 200, listed.text
        by_id = {s["id"]: s["status"] for s in listed.json()["items"]}
        assert by_id == {"old-1": "passed", "old-2": "running", "old-3": "completed"}
        assert client.get("/v1/sessions/old-1", headers=h).json()["user"] == "alice"
        kept = client.post("/v1/sessions/old-2/keepalive", json={"path": "/next"}, headers=h)
        assert kept.status_code == 200 and kept.json()["position"] == 11
    assert main(["replay", "verify", "-q"]) == 0
    assert "checked 11 events" in capsys.readouterr().out
    engine.dispose()


def test_a_database_migrated_by_newer_code_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    monkeypatch.setenv("LEDGER_DATABASE_URL", url)
    assert main(["migrate"]) == 0
    assert "(now)" in capsys.readouterr().out
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO schema_migrations (step, name, applied_at) VALUES (?, 'future', 0)",
            (LATEST + 1,),
        )
    for argv in (["migrate"], ["migrate", "--check"], ["replay", "verify"], ["keys", "list"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"migration step {LATEST + 1}, newer than this code's {LATEST}" in err, argv
        assert "Traceback" not in err
    engine.dispose()
