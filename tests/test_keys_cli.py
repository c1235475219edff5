"""`ledger keys create|list|revoke`, hash-only storage, the first `ledger serve`'s admin key,
and keys kept out of a real server's access log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine

from api import keys
from api.cli import main
from tests.conftest import ROOT, free_port
from tests.pg import PgCluster

KEY = re.compile(r"sl_[A-Za-z0-9_\-]{43}")


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.db"
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{path}")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def stored_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def test_create_list_revoke_round_trip_and_only_the_hash_is_stored(db: Path, capsys) -> None:
    code, out, _ = run(capsys, "keys", "create", "ci", "--scope", "ingest", "--scope", "read",
                       "--project", "web")  # fmt: skip
    assert code == 0 and KEY.fullmatch(out.strip())
    secret = out.strip()
    code, out, _ = run(capsys, "keys", "create", "auditor", "--scope", "audit")
    assert code == 0
    other = out.strip()
    assert other != secret

    code, listing, _ = run(capsys, "keys", "list")
    rows = {line.split()[0]: line.split() for line in listing.splitlines()[1:]}
    assert rows["ci"][1:3] == ["ingest,read", "web"]
    assert rows["auditor"][1:3] == ["audit", "*"] and rows["auditor"][-1] == "-"
    assert secret not in listing and keys.hash_key(secret) not in listing

    data = stored_bytes(db)
    assert secret.encode() not in data and other.encode() not in data
    assert keys.hash_key(secret).encode() in data  # what is kept: the SHA-256

    assert run(capsys, "keys", "revoke", "ci")[0] == 0
    code, listing, _ = run(capsys, "keys", "list")
    revoked = next(line for line in listing.splitlines() if line.startswith("ci "))
    assert revoked.split()[-1].endswith("Z")  # its revocation time
    assert run(capsys, "keys", "revoke", "ci")[0] == 2  # already revoked
    code, _, err = run(capsys, "keys", "create", "auditor", "--scope", "read")
    assert code == 2 and "exists" in err


def test_a_key_bound_to_an_opentera_identity_is_listed_and_resolves_with_it(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "keys", "create", "dev5", "--scope", "ingest",
                       "--opentera-device", "5")  # fmt: skip
    assert code == 0 and KEY.fullmatch(out.strip())
    secret = out.strip()
    assert run(capsys, "keys", "create", "p7", "--scope", "ingest", "--scope", "read",
               "--opentera-participant", "007")[0] == 0  # fmt: skip
    _, listing, _ = run(capsys, "keys", "list")
    rows = {line.split()[0]: line.split() for line in listing.splitlines()[1:]}
    assert rows["dev5"][1:4] == ["ingest", "*", "opentera-device:5"]
    assert rows["p7"][1:4] == ["ingest,read", "*", "opentera-participant:7"]
    assert "bound to" in listing.splitlines()[0]
    engine = create_engine(f"sqlite:///{db}")
    try:
        who = keys.KeyRing(engine).lookup(secret)
        assert who is not None and who.binding == "opentera-device:5"
        assert who.scopes == frozenset({"ingest"}) and who.projects is None
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "argv",
    [
        ["--opentera-device", "abc"],
        ["--opentera-device", "-1"],
        ["--opentera-device", "0"],
        ["--opentera-device", "1e3"],
        ["--opentera-device", "\u0663"],  # an Arabic-Indic three: a digit, not an OpenTera id
        ["--opentera-device", "9" * 40],
        ["--opentera-participant", ""],
        ["--opentera-participant", "5", "--scope", "admin"],
    ],
)
def test_a_bad_binding_is_refused_and_stores_nothing(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    argv = [a.encode().decode("unicode_escape") for a in argv]
    code, out, err = run(capsys, "keys", "create", "bad", "--scope", "ingest", *argv)
    assert code == 2 and out == "" and err.startswith("ledger keys: "), (out, err)
    assert [k.name for k in keys.list_keys(create_engine(f"sqlite:///{db}"))] == []


def test_both_bindings_at_once_are_refused(db: Path) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "create", "x", "--scope", "ingest", "--opentera-device", "1",
              "--opentera-participant", "2"])  # fmt: skip


def old_keys_table(engine: Engine) -> str:
    """The api_keys table as versions before the binding made it, holding one key."""
    secret = keys.new_secret()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE api_keys (name VARCHAR(200) PRIMARY KEY, key_hash VARCHAR(64) NOT "
            "NULL UNIQUE, scopes VARCHAR NOT NULL, projects VARCHAR, created_at FLOAT NOT NULL, "
            "revoked_at FLOAT)"
        )
        conn.exec_driver_sql(
            "INSERT INTO api_keys (name, key_hash, scopes, created_at) VALUES "
            f"('old', '{keys.hash_key(secret)}', 'ingest,read', 1.0)"
        )
    return secret


def upgrade_keeps_old_keys(engine: Engine) -> None:
    secret = old_keys_table(engine)
    keys.create_schema(engine)
    keys.create_schema(engine)  # idempotent, as every process runs it at start
    who = keys.KeyRing(engine).lookup(secret)
    assert who is not None and who.name == "old" and who.binding is None
    keys.create(engine, "dev", ["ingest"], binding="opentera-device:3")
    assert [(k.name, k.binding) for k in keys.list_keys(engine)] == [
        ("dev", "opentera-device:3"),
        ("old", None),
    ]


def test_an_older_keys_table_gets_the_binding_column_sqlite(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        upgrade_keeps_old_keys(engine)
    finally:
        engine.dispose()


def test_an_older_keys_table_gets_the_binding_column_postgresql(pg: PgCluster) -> None:
    engine = create_engine(pg.create_database("keys"))
    try:
        upgrade_keeps_old_keys(engine)
    finally:
        engine.dispose()


def test_a_bad_scope_is_refused(db: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "create", "x", "--scope", "everything"])
    assert keys.SCOPES == ("ingest", "read", "audit", "metrics", "admin")


def serve(db: Path, port: int, out: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, LEDGER_DATABASE_URL=f"sqlite:///{db}",
               LEDGER_BLOB_DIR=str(db.parent / "blobs"))  # fmt: skip
    cmd = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--access-log",
           "--log-level", "info"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(out.read_text())
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)


@pytest.mark.integration
def test_first_serve_prints_an_admin_key_once_and_logs_never_show_keys(tmp_path: Path) -> None:
    db, port = tmp_path / "ledger.db", free_port()
    first = serve(db, port, tmp_path / "first.log")
    url = f"http://127.0.0.1:{port}"
    try:
        printed = KEY.findall((tmp_path / "first.log").read_text())
        assert len(printed) == 1
        key = printed[0]
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.post(f"{url}/v1/sessions", json={"id": "s1"}, headers=auth).is_success
        # Keys in each place a client may put one: none must reach the access log.
        for path in (
            f"/compat/opentera/api/user/sessiontypes?token={key}",
            f"/compat/canopsis/api/v2/sessions?authkey={key}&limit=5",
            f"/compat/monitor/k/{key}/api/v1/sessions/count",
            "/v1/sessions",
        ):
            assert httpx.get(url + path, headers=auth).status_code == 200, path
        bad = "sl_" + "x" * 43
        for path in (f"/compat/monitor/k/{bad}/api/v1/sessions/", f"/v1/sessions?token={bad}"):
            assert httpx.get(url + path).status_code == 401
    finally:
        stop(first)
    text = (tmp_path / "first.log").read_text()
    assert text.count(key) == 1, text  # the one line that showed it
    assert bad not in text
    assert "GET /compat/opentera/api/user/sessiontypes?token=*** HTTP" in text, text
    assert "authkey=***&limit=5" in text
    assert " 401" in text  # the refusals are logged, without their keys

    second = serve(db, port, tmp_path / "second.log")
    stop(second)
    again = (tmp_path / "second.log").read_text()
    assert not KEY.search(again) and "admin" not in again, again


def test_serve_never_prints_the_database_password(tmp_path: Path) -> None:
    """The startup line names the databases with the password masked, and a failure to
    connect does not print it either."""
    env = dict(
        os.environ,
        LEDGER_DATABASE_URL="postgresql+psycopg://ledger:s3cret-pw@127.0.0.1:1/ledger",
        LEDGER_BLOB_DIR=str(tmp_path / "blobs"),
    )
    out = subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", "--port", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert "ledger:***@127.0.0.1:1/ledger" in text
    assert "s3cret-pw" not in text
