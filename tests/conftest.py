"""Shared fixtures: a ledger on a fresh SQLite file with a controllable clock, an app
client, and a real uvicorn server on loopback for tests that drive real clients."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api import keys
from api.app import create_app
from api.bootstrap import Container, bootstrap
from persistence.settings import Settings
from tests.pg import PgCluster, find_bindir

PG_BINDIR = find_bindir()

ROOT = Path(__file__).resolve().parent.parent


class FakeClock:
    """A clock the test moves: the domain never reads the wall clock."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 0.001  # every reading moves on, as a real clock would
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path}/ledger.db",
        blob_dir=tmp_path / "blobs",
        expiry_interval=3600,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def container(settings: Settings, clock: FakeClock) -> Iterator[Container]:
    c = bootstrap(settings, clock=clock)
    yield c
    c.close()


@pytest.fixture
def admin_key(container: Container) -> str:
    """An admin API key on the container's ledger (every request needs a key)."""
    keys.create_schema(container.store.write_engine)
    return keys.create(container.store.write_engine, "admin", ["admin"])


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(container: Container, admin_key: str) -> Iterator[TestClient]:
    """The app, sending the admin key on every request unless a request says otherwise."""
    with TestClient(create_app(container=container), headers=bearer(admin_key)) as cl:
        yield cl


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(self, url: str, proc: subprocess.Popen[bytes], db: Path, key: str) -> None:
        self.url = url
        self.proc = proc
        self.db = db
        self.key = key  # an admin key, made with `ledger keys create` before the start


def make_key(env: dict[str, str], name: str, *scopes: str, projects: tuple[str, ...] = ()) -> str:
    """`ledger keys create` against the database `env` names; returns the printed key."""
    args = [a for s in scopes for a in ("--scope", s)]
    args += [a for p in projects for a in ("--project", p)]
    out = subprocess.run(
        [sys.executable, "-m", "api.cli", "keys", "create", name, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def ledger_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a ledger on `tmp_path`'s SQLite file and blob folder."""
    return dict(
        os.environ,
        LEDGER_DATABASE_URL=f"sqlite:///{tmp_path}/ledger.db",
        LEDGER_BLOB_DIR=str(tmp_path / "blobs"),
    )


def start_server(
    env: dict[str, str], log_path: Path, *options: str, probe: str = "/healthz", wait: float = 30
) -> tuple[subprocess.Popen[bytes], str]:
    """`ledger serve [options]` in its own process on a free loopback port, once `probe`
    answers 200."""
    port = free_port()
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--log-level", "warning",
         *options],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait
    while True:
        try:
            if httpx.get(url + probe, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(log_path.read_text())
        time.sleep(0.1)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """`ledger serve` in its own process on a free loopback port."""
    env = ledger_env(tmp_path)
    key = make_key(env, "admin", "admin")
    proc, url = start_server(env, tmp_path / "server.log")
    yield LiveServer(url, proc, tmp_path / "ledger.db", key)
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL server for the whole run (each test takes a fresh database)."""
    if PG_BINDIR is None:
        pytest.skip("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
    cluster = PgCluster(PG_BINDIR).start()
    yield cluster
    cluster.stop()
