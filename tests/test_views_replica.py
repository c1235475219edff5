"""Reads from a PostgreSQL streaming replica (LEDGER_VIEWS_READ_URL): the projection worker
writes the views on the primary, every query reads them on a hot standby, and read-your-writes
waits for the standby to replay the write (bounded by LEDGER_READ_WAIT). With the standby's
replay paused, a read answers from the standby as it stands, which shows that reads really go
there; `/readyz` shows the standby's lag, and once replay resumes the write is read."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_BINDIR, bearer, ledger_env, make_key, start_server
from tests.pg import PgCluster

# The standby replays a commit within ~0.5 s here (the test cluster's WAL writer flushes
# every 0.2 s); a shared machine can take longer.
READ_WAIT = 3.0


@pytest.fixture
def primary_and_standby() -> Iterator[tuple[PgCluster, PgCluster]]:
    if PG_BINDIR is None:
        pytest.skip("no PostgreSQL server binaries")
    primary = PgCluster(PG_BINDIR).start()
    try:
        primary.create_database("log")
        standby = primary.standby()
        try:
            yield primary, standby
        finally:
            standby.stop()
    finally:
        primary.stop()


def replay(standby: PgCluster, database: str, paused: bool) -> None:
    fn = "pg_wal_replay_pause" if paused else "pg_wal_replay_resume"
    with psycopg.connect(standby.dsn(database), autocommit=True) as conn:
        conn.execute(f"SELECT {fn}()")  # one of two names of this test's own


def primary_view_has(primary: PgCluster, database: str, session: str, within: float) -> bool:
    deadline = time.monotonic() + within
    with psycopg.connect(primary.dsn(database), autocommit=True) as conn:
        while time.monotonic() < deadline:
            q = "SELECT 1 FROM session_list WHERE session_id = %s"
            row = conn.execute(q, (session,)).fetchone()
            if row is not None:
                return True
            time.sleep(0.05)
    return False


@pytest.mark.integration
def test_queries_read_a_streaming_replica_and_wait_for_it_to_replay_the_write(
    primary_and_standby: tuple[PgCluster, PgCluster], tmp_path: Path
) -> None:
    primary, standby = primary_and_standby
    url = primary.url("log1")
    database = str(make_url(url).database)
    env = dict(
        ledger_env(tmp_path),
        LEDGER_DATABASE_URL=url,
        LEDGER_VIEWS_READ_URL=standby.url(database),
        LEDGER_READ_WAIT=str(READ_WAIT),
    )
    h = bearer(make_key(env, "rw", "admin"))
    proc, base = start_server(env, tmp_path / "serve.log", probe="/readyz", wait=60)
    try:
        with httpx.Client(base_url=base, headers=h, timeout=30) as c:
            w = c.post("/v1/sessions", json={"id": "a", "project": "web"})
            assert w.status_code == 201, w.text
            seen = {"X-Min-Position": str(w.json()["position"])}
            assert c.get("/v1/sessions/a", headers=seen).status_code == 200
            ready = c.get("/readyz").json()
            assert ready["replica"]["error"] is None
            assert ready["replica"]["position"] >= w.json()["position"]

            replay(standby, database, paused=True)
            w = c.post("/v1/sessions", json={"id": "b", "project": "web"})
            assert w.status_code == 201, w.text
            seen = {"X-Min-Position": str(w.json()["position"])}
            assert primary_view_has(primary, database, "b", within=10)
            # The primary's views have it, the paused standby does not: reads go there.
            t0 = time.monotonic()
            assert c.get("/v1/sessions/b", headers=seen).status_code == 404
            assert time.monotonic() - t0 >= READ_WAIT - 0.1  # it waited LEDGER_READ_WAIT first
            assert c.get("/readyz").json()["replica"]["lag"] >= 1

            replay(standby, database, paused=False)
            got = c.get("/v1/sessions/b", headers=seen)
            assert got.status_code == 200, got.text
            assert got.json()["project"] == "web"
            listed = c.get("/v1/sessions", headers=seen).json()
            assert {s["id"] for s in listed["items"]} == {"a", "b"}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
