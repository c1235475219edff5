"""Read scaling on PostgreSQL: the views live in a database of their own (LEDGER_VIEWS_URL),
filled by a `ledger project` running apart, while two API processes (`ledger serve --workers
2 --worker external`) write the log in another, and a client
that writes through one connection and reads through a fresh one (either process) always
reads its own write when it sends the write's position as X-Min-Position."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect

from persistence.schema import make_engine
from tests.conftest import PG_BINDIR, ROOT, bearer, ledger_env, make_key, start_server
from tests.pg import PgCluster


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.integration
@pytest.mark.skipif(PG_BINDIR is None, reason="no PostgreSQL server binaries")
def test_reads_from_a_separate_views_database_see_the_readers_own_writes(
    pg: PgCluster, tmp_path: Path
) -> None:
    events_url, views_url = pg.create_database("log"), pg.create_database("views")
    env = dict(ledger_env(tmp_path), LEDGER_DATABASE_URL=events_url, LEDGER_VIEWS_URL=views_url)
    h = bearer(make_key(env, "rw", "admin"))
    # The views' worker runs apart and looks for new events only every 0.3 s: a read that
    # did not wait for its write's position would find the view behind it.
    worker = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "project", "--poll-interval", "0.3"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    serve = ("--workers", "2", "--worker", "external")
    proc, url = start_server(env, tmp_path / "serve.log", *serve, probe="/readyz", wait=60)
    rng = random.Random(7)
    try:
        for i in range(60):
            sid = f"r{i % 6}"
            with httpx.Client(base_url=url, headers=h, timeout=30) as writer:
                if i < 6:
                    w = writer.post("/v1/sessions", json={"id": sid, "project": "web"})
                else:
                    w = writer.post(
                        f"/v1/sessions/{sid}/keepalive", json={"path": f"/p{rng.randrange(9)}"}
                    )
            assert w.status_code in (200, 201), w.text
            seen = {"X-Min-Position": str(w.json()["position"])}
            with httpx.Client(base_url=url, headers={**h, **seen}, timeout=30) as reader:
                r = reader.get(f"/v1/sessions/{sid}")
            assert r.status_code == 200, r.text
            assert r.json()["version"] == w.json()["version"]  # the write itself, not an older view
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        worker.terminate()
        worker.wait(timeout=30)
    assert "events" in tables(events_url) and "events" not in tables(views_url)
    view_tables = tables(views_url)
    assert "projection_leader" in view_tables and not view_tables & {"api_keys", "log_nodes"}
