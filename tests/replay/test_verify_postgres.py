"""`ledger replay verify` against a real PostgreSQL log: the driver-level keyset scan reads
every row, and tampering done behind the store's back is named by its first bad position."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from api.bootstrap import bootstrap
from api.cli import main
from persistence.settings import Settings
from replay.source import open_blobs, open_store
from replay.verify import verify
from tests.conftest import PG_BINDIR, FakeClock
from tests.pg import PgCluster
from tests.replay import make_history, point_cli_at

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
pytestmark = pytest.mark.skipif(
    PG_BINDIR is None, reason="no PostgreSQL server binaries in /usr/lib/postgresql/*/bin"
)


@pytest.fixture
def ledger(pg: PgCluster, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    settings = Settings(database_url=pg.create_database(), blob_dir=tmp_path / "blobs")
    box = bootstrap(settings, clock=FakeClock())
    make_history(box, FakeClock())
    point_cli_at(box, monkeypatch)
    yield box
    box.close()


def tamper(box: Any, *statements: str) -> None:
    url = box.store.write_engine.url
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database, autocommit=True
    ) as conn:
        conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        for sql in statements:
            conn.execute(sql)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["replay", "verify", "--json", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_intact_postgres_log_verifies_in_any_chunk_size(ledger, capsys):
    code, doc = run(capsys)
    head = ledger.store.head_digest()
    assert code == 0 and doc["ok"] and doc["events"] == head[0] > 20 and doc["streams"] == 6
    assert doc["blobs"] == 2 and doc["head"] == {"position": head[0], "hash": head[1].hex()}
    store = open_store(Settings.from_env())
    try:
        for chunk in (1, 4, head[0], 1000):
            v = verify(store, open_blobs(Settings.from_env()), (9, b""), chunk=chunk)
            # Only the deliberately wrong digest hash is flagged; the chain itself is intact.
            assert [f.kind for f in v.findings.values()] == ["digest"]
            assert (v.events, v.head, v.digest_checked) == (head[0], head, True)
    finally:
        store.dispose()


def test_tampered_postgres_log_names_each_first_bad_position(ledger, capsys):
    tamper(
        ledger,
        'UPDATE events SET payload = \'{"status":"failed"}\'::bytea WHERE position = 5',
        "DELETE FROM events WHERE position = 12",
    )
    code, doc = run(capsys)
    problems = {p["kind"]: p["first_position"] for p in doc["problems"]}
    assert code == 1
    assert problems == {"link": 5, "gap": 12, "version": 13, "tree": 1}
