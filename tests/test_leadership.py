"""Leadership among `ledger project` workers: one leads, the others follow and take over a
silent lease; a `kill -9` of the leader under ingest hands the lead to another worker within
seconds, and the views afterwards read exactly as a rebuild from zero (nothing lost, nothing
applied twice). /readyz names the leader."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import bootstrap
from persistence.schema import make_engine
from persistence.settings import Settings
from persistence.store import EventStore
from projections import leadership
from projections.leadership import Leadership
from projections.present import iso
from projections.runner import ProjectionRunner
from tests.conftest import PG_BINDIR, FakeClock
from tests.pg import PgCluster
from tests.test_projection_exactly_once import (
    append_while_running,
    assert_views_match_rebuild,
    rebuilt_from_zero,
)
from tests.workers import start_project_process, wait_for_leader


def test_one_worker_leads_and_a_follower_takes_over_a_silent_lease(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/views.db", immediate=True)
    leadership.create_schema(engine)
    # No pause between looks and a lease of no time: each poll is one step of the protocol.
    a, b, c = (Leadership(engine, name, lease_s=0, heartbeat_s=0) for name in "abc")
    assert a.poll() is True
    assert (b.poll(), c.poll()) == (False, False)  # they note a's beat
    assert a.poll() is True  # a beats
    assert (b.poll(), c.poll()) == (False, False)  # a new beat: still alive
    # a falls silent: the next follower to look again takes over, the other one does not.
    assert b.poll() is True
    assert c.poll() is False
    assert a.poll() is False  # its renewal matches no row: it steps down at once
    lease = leadership.current(engine)
    assert lease is not None and lease.holder == "b"
    assert leadership.shown(engine, 3) == {
        "worker": "b",
        "since": iso(lease.since),
        "renewed_at": iso(lease.renewed_at),
        "lag": 3,
    }
    b.step_down()  # a clean stop frees the lease: the next look takes it
    assert leadership.current(engine) is None
    assert c.poll() is True
    engine.dispose()


@pytest.mark.skipif(PG_BINDIR is None, reason="no PostgreSQL server binaries")
def test_killing_the_leading_worker_hands_over_without_losing_or_repeating(
    pg: PgCluster, tmp_path: Path
) -> None:
    url = pg.create_database("lead")
    box = bootstrap(Settings(database_url=url), clock=FakeClock())
    procs = [start_project_process(url, tmp_path / f"worker{i}.log") for i in range(3)]
    try:
        first = wait_for_leader(url, None, within=30)
        assert first in {p.pid for p in procs}
        with TestClient(create_app(container=box)) as probes:
            assert probes.get("/readyz").json()["leader"]["worker"].endswith(f":{first}")
        store = EventStore(url)
        heads: list[int] = []
        ingest = threading.Thread(target=lambda: heads.append(append_while_running(store, 900)))
        ingest.start()
        time.sleep(0.3)  # mid-ingest
        os.kill(first, signal.SIGKILL)
        # The lease is four seconds, looked at every second: well inside ten.
        second = wait_for_leader(url, first, within=10)
        assert second in {p.pid for p in procs}
        ingest.join(timeout=120)
        head = heads[0]
        views = ProjectionRunner.for_url(store, url)
        deadline = time.monotonic() + 60
        while views.read_position() < head and time.monotonic() < deadline:
            time.sleep(0.05)
        assert views.read_position() == head
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=20)
    rebuilt = rebuilt_from_zero(store, f"sqlite:///{tmp_path}/rebuilt.db")
    assert rebuilt.read_position() == head
    assert_views_match_rebuild(views, rebuilt)
    for r in (views, rebuilt):
        r.engine.dispose()
    store.dispose()
    box.close()


def test_a_dead_leader_on_this_host_is_replaced_without_waiting_out_its_lease(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/views.db", immediate=True)
    leadership.create_schema(engine)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = f"{socket.gethostname()}:{gone.stdout.strip()}"
    assert Leadership(engine, dead, heartbeat_s=0).poll() is True
    # A lease of an hour: only the dead process's absence lets the next worker lead at once.
    assert Leadership(engine, heartbeat_s=0, lease_s=3600).poll() is True
    lease = leadership.current(engine)
    assert lease is not None and lease.holder == leadership.worker_id()
    # A live holder on this host (this very test process) keeps its lease.
    assert Leadership(engine, "other:1", heartbeat_s=0, lease_s=3600).poll() is False
    assert not leadership.gone_from_this_host(leadership.worker_id())
    assert not leadership.gone_from_this_host(f"another-host:{gone.stdout.strip()}")
    engine.dispose()
