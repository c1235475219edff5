"""`ledger replay copy`: a SQLite ledger (uploads, an erasure, keys) moved to PostgreSQL
verifies to the same head digest, serves the same views and accepts the same keys; an
interrupted copy resumes and drops a value erased meanwhile; a target holding another log,
the source itself or a URL that is none are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api import keys
from api.cli import main
from domain import commands as c
from persistence.erasure import erase
from persistence.ledger import Ledger
from persistence.store import EventStore
from projections.runner import ProjectionRunner
from replay import copy_log
from replay.source import open_store
from tests.conftest import PG_BINDIR, FakeClock
from tests.pg import PgCluster
from tests.replay import make_history, point_cli_at
from tests.test_projection_exactly_once import raw_sums
from tests.test_views_property import dump


class Interrupted(Exception):
    pass


@pytest.fixture
def source(container: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Any:
    container.marks = make_history(container, clock)
    keys.create_schema(container.store.write_engine)
    container.admin = keys.create(container.store.write_engine, "admin", ["admin"])
    keys.create(container.store.write_engine, "reader", ["read"], ["web"])
    keys.revoke(container.store.write_engine, "reader")
    point_cli_at(container, monkeypatch)
    return container


def verified(capsys: pytest.CaptureFixture[str], monkeypatch: Any, url: str, blobs: Path) -> Any:
    monkeypatch.setenv("LEDGER_DATABASE_URL", url)
    monkeypatch.setenv("LEDGER_BLOB_DIR", str(blobs))
    code = main(["replay", "verify", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc
    return doc


def sealed_rows(store: EventStore) -> list[tuple[Any, ...]]:
    with store.read_engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT position, slot, salt, value FROM sealed_values")
        return sorted(tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows)


def interrupted_copy(source: Any, url: str) -> None:
    """A copy stopped after its first batch of five events (committed on the target)."""

    def stop(position: int) -> None:
        raise Interrupted(position)

    reader = open_store(source.settings)
    target = EventStore(url)
    with pytest.raises(Interrupted):
        copy_log.copy_events(reader, target, stop, chunk=5)
    assert target.head_digest()[0] == 5
    reader.dispose()
    target.dispose()


@pytest.mark.skipif(PG_BINDIR is None, reason="no PostgreSQL server binaries")
def test_a_sqlite_ledger_copied_to_postgres_resumes_and_verifies_to_the_same_head(
    source: Any, pg: PgCluster, tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    url = pg.create_database("copy")
    interrupted_copy(source, url)
    # Erased on the source after the first batch (s1's start, sealed, is in it) was copied.
    erase(source.store, source.blobs, "s1", FakeClock(1_800_000_000.0))
    blobs = tmp_path / "pg-blobs"
    assert main(["replay", "copy", "--to", url, "--to-blobs", str(blobs)]) == 0
    out = capsys.readouterr().out
    assert "copied after position 5 up to" in out
    source.runner.catch_up()
    settings = source.settings
    here = verified(capsys, monkeypatch, settings.database_url, settings.blob_dir)
    there = verified(capsys, monkeypatch, url, blobs)
    assert there["head"] == here["head"] and there["events"] == here["events"]
    assert there["blobs"] == here["blobs"]
    log_sha, shot = source.marks["sha"], source.marks["shot"]
    assert (blobs / shot[:2] / shot).read_bytes() == source.blobs.get(shot)
    assert not (blobs / log_sha[:2] / log_sha).exists()  # s1's log went with its erasure
    target = EventStore(url)
    assert sealed_rows(target) == sealed_rows(source.store)
    assert target.tree.latest() == source.store.tree.latest()
    copied = ProjectionRunner.for_url(target, url)
    assert copied.read_position() == here["head"]["position"]
    assert dump(copied) == dump(source.runner)
    assert raw_sums(copied) == raw_sums(source.runner)
    ring = keys.KeyRing(target.read_engine, 60)
    admin = ring.lookup(source.admin)
    assert admin is not None and admin.allows("admin")
    assert [(k.name, k.revoked_at is not None) for k in keys.list_keys(target.write_engine)] == [
        ("admin", False),
        ("reader", True),
    ]
    # Once more: nothing left to copy, nothing copied twice.
    point_cli_at(source, monkeypatch)
    assert main(["replay", "copy", "--to", url, "--to-blobs", str(blobs), "--no-views"]) == 0
    assert f"up to {here['head']['position']}:" in capsys.readouterr().out
    assert target.head_digest()[0] == here["head"]["position"]
    copied.engine.dispose()
    target.dispose()


@pytest.mark.skipif(PG_BINDIR is None, reason="no PostgreSQL server binaries")
def test_a_copy_into_an_empty_postgres_database_creates_the_tables_it_needs(
    source: Any, pg: PgCluster, capsys: Any
) -> None:
    url = pg.create_database("empty")  # no table at all: nothing was ever copied here
    assert main(["replay", "copy", "--to", url, "--no-views"]) == 0
    head = source.store.head_digest()
    assert f"up to {head[0]}:" in capsys.readouterr().out
    target = EventStore(url)
    assert target.head_digest() == head
    target.dispose()


def test_copy_refuses_another_log_the_source_itself_and_a_bad_url(
    source: Any, tmp_path: Path, capsys: Any
) -> None:
    other = EventStore(f"sqlite:///{tmp_path}/other.db")
    other.create_schema()
    Ledger(other, FakeClock(1_600_000_000.0)).execute(c.StartSession(session_id="elsewhere"))
    other.dispose()
    for to, says in [
        (f"sqlite:///{tmp_path}/other.db", "holds a different log"),
        (source.settings.database_url, "the source database itself"),
        ("not a url; DROP TABLE events", "not a database URL"),
        ("nosuchdb+driver://x/y", "not a database URL"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", "a database cannot be used"),
    ]:
        assert main(["replay", "copy", "--to", to, "--no-views"]) == 2
        assert says in capsys.readouterr().err
    fresh = f"sqlite:///{tmp_path}/fresh.db"
    for more, says in [
        (["--from", "'; DROP TABLE events; --"], "--from is not a database URL"),
        (["--from", f"sqlite:///{tmp_path}/absent.db"], "no ledger database"),
        (["--to-views", "views?"], "--to-views is not a database URL"),
    ]:
        assert main(["replay", "copy", "--to", fresh, *more]) == 2
        assert says in capsys.readouterr().err
    assert source.store.head_digest()[0] > 20  # the source is untouched
    reread = EventStore(f"sqlite:///{tmp_path}/other.db")
    assert reread.head_digest()[0] == 1  # and so is the refused target
    reread.dispose()
