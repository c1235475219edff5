"""The probes, asked without a key as an orchestrator asks them: /healthz says the process
serves whatever the database does; /readyz says 503 (problem+json, Retry-After, per-view
detail) when the log cannot take a write or a view is stopped, and 200 once it is well."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from api.app import create_app
from api.bootstrap import Container
from domain import commands as c
from persistence.schema import make_engine, sqlite_path
from projections.projection import Change
from projections.runner import ProjectionRunner
from projections.tables import ViewTables
from projections.views import all_views

SECRET = "s3cret-pw"


def probe(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container=container)) as cl:  # no key: probes carry none
        yield cl


@pytest.fixture
def probes(container: Container) -> Iterator[TestClient]:
    yield from probe(container)


def eventually(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (out := check()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return out


def test_ready_service_answers_200_with_each_views_position_and_lag(
    container: Container, probes: TestClient
) -> None:
    container.ledger.execute_many([c.StartSession(session_id="a"), c.KeepAlive(session_id="a")])
    container.runner.wake()
    assert eventually(lambda: probes.get("/readyz").json()["views"]["list"]["position"] == 2)
    r = probes.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    assert r.json()["database"]["log"] == {"writable": True, "error": None}
    for view in ("detail", "list", "count", "stats"):
        got = r.json()["views"][view]
        assert got["lag"] == 0 and got["state"] == "ok" and got["last_error"] is None
    live = probes.get("/healthz")
    assert live.status_code == 200
    assert live.json() == {
        "status": "ok",
        "log_position": 2,
        "views_position": 2,
        "tree_integrated": 0,  # fewer events than a block: recomputed from the events
        "projection_error": None,
    }


def test_the_tree_is_integrated_in_thread_mode_too(
    container: Container, probes: TestClient
) -> None:
    """With the projection worker a thread of the API process, the tree's integrator runs
    there too: the first block's nodes are stored without the writer's backstop."""
    container.ledger.execute(c.StartSession(session_id="s1", project="p"))
    for _ in range(17):
        container.ledger.execute(c.KeepAlive(session_id="s1"))
    assert eventually(lambda: probes.get("/healthz").json()["tree_integrated"] == 16)


def test_read_only_log_is_not_ready_but_the_process_is_alive(
    container: Container, probes: TestClient
) -> None:
    # The log's file as a read-only mount leaves it: readable, every write refused. (chmod
    # does not stop root; SQLite's read-only open is refused a write by SQLite itself.)
    path = sqlite_path(container.settings.database_url)
    container.store.write_engine.dispose()
    container.store.write_engine = make_engine(
        f"sqlite:///file:{path}?mode=ro&uri=true", immediate=True
    )
    r = probes.get("/readyz")
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["retry-after"]) > 0
    body = r.json()
    assert body["status"] == 503 and "the log database is not writable" in body["detail"]
    assert body["database"]["log"]["writable"] is False
    assert body["database"]["views"]["writable"] is True
    assert set(body["views"]) == {"detail", "list", "count", "stats"}
    assert str(path) not in r.text  # where the files are is the server log's business
    assert probes.get("/healthz").status_code == 200
    assert probes.get("/healthz").json()["status"] == "ok"


class FailingStore:
    """A view standing in for the views database failing (what a full disk or a dropped
    connection raise), with a connection string in its message as drivers sometimes do."""

    name = "flaky"

    def __init__(self) -> None:
        self.down = True

    def apply(self, conn: Connection, t: ViewTables, changes: list[Change]) -> None:
        if self.down:
            orig = sqlite3.OperationalError(
                f"could not write via postgresql://ledger:{SECRET}@db:5432/views password={SECRET}"
            )
            raise OperationalError("INSERT INTO session_list ...", {}, orig)


@pytest.fixture
def stopped(container: Container) -> Iterator[tuple[FailingStore, TestClient]]:
    flaky = FailingStore()
    container.runner.engine.dispose()
    container.runner = ProjectionRunner.for_url(
        container.store, container.settings.views_url, views=[*all_views(), flaky]
    )
    container.runner.create_schema()
    container.ledger.listeners.append(container.runner.wake)
    container.ledger.execute_many([c.StartSession(session_id="a")])
    for cl in probe(container):
        yield flaky, cl


def test_stopped_views_are_not_ready_and_say_why_without_secrets(
    stopped: tuple[FailingStore, TestClient], container: Container
) -> None:
    flaky, probes = stopped
    assert eventually(lambda: container.runner.last_error is not None)
    r = probes.get("/readyz")
    assert r.status_code == 503 and r.headers["retry-after"]
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert "stopped views: count, detail, flaky, list, stats" in body["detail"]
    assert body["database"]["log"]["writable"] is True
    detail = body["views"]["detail"]
    assert detail["state"] == "stopped" and detail["position"] == 0 and detail["lag"] == 1
    assert detail["last_error"].startswith("flaky: OperationalError: could not write via")
    assert SECRET not in r.text
    live = probes.get("/healthz")
    assert live.status_code == 200 and SECRET not in live.text
    assert live.json()["projection_error"] == detail["last_error"]
    flaky.down = False  # the database is back: the same batch goes through, nothing skipped
    assert eventually(lambda: probes.get("/readyz").status_code == 200)
    assert probes.get("/readyz").json()["views"]["detail"] == {
        "position": 1,
        "lag": 0,
        "state": "ok",
        "last_error": None,
        "last_error_position": None,
        "skipped": 0,
    }


@pytest.mark.integration
def test_a_dead_projection_worker_makes_the_server_not_ready(live_server: Any) -> None:
    """`ledger serve` runs its projection worker as a child process: /readyz says so when
    it has died (the views would silently fall behind), /healthz stays 200."""
    import os
    import signal

    import httpx

    assert httpx.get(f"{live_server.url}/readyz").status_code == 200
    children = [
        int(pid)
        for pid in os.listdir("/proc")
        if pid.isdigit() and _parent_of(int(pid)) == live_server.proc.pid
    ]
    assert children, "the server runs no worker process"
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (r := httpx.get(f"{live_server.url}/readyz")).status_code == 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert r.status_code == 503 and "projection worker process exited" in r.json()["detail"]
    assert httpx.get(f"{live_server.url}/healthz").status_code == 200


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_the_root_links_to_the_documents_the_probes_and_the_api_without_a_key(
    probes: TestClient,
) -> None:
    r = probes.get("/")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {
        "name": "Session Ledger",
        "links": {
            "docs": "/docs",
            "redoc": "/redoc",
            "openapi": "/openapi.json",
            "health": "/healthz",
            "ready": "/readyz",
            "sessions": "/v1/sessions",
        },
    }
    # Every link but the API itself answers without a key; the API asks for one.
    for name, path in r.json()["links"].items():
        assert probes.get(path).status_code == (401 if name == "sessions" else 200), path
    # Open, so it shows nothing of the ledger: no positions, databases, errors or keys.
    assert not {"log_position", "views_position", "database", "key"} & set(r.text.split('"'))
    assert probes.post("/").status_code == 405  # a write to the root is not a way in
