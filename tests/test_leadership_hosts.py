"""Leadership between hosts: two `ledger project` workers under different host names (each
in a UTS namespace of its own) on one PostgreSQL database. Neither can see whether the
other's process lives, so the lease is waited out: when the leading host freezes (SIGSTOP,
as a hung machine or a long GC pause would), the other takes over only after LEASE_S and
within a few polls more, the views keep moving while the old leader is frozen, and when it
wakes it steps down without applying an event twice."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from api.bootstrap import bootstrap
from persistence.schema import make_engine
from persistence.settings import Settings
from persistence.store import EventStore
from projections import leadership
from projections.runner import ProjectionRunner
from tests.conftest import PG_BINDIR, FakeClock
from tests.pg import PgCluster
from tests.test_projection_exactly_once import (
    append_while_running,
    assert_views_match_rebuild,
    rebuilt_from_zero,
)
from tests.workers import can_rename_host, start_project_process, wait_for_leader


def holder(url: str) -> str:
    engine = make_engine(url)
    try:
        lease = leadership.current(engine)
    finally:
        engine.dispose()
    assert lease is not None
    return lease.holder


def wait_views(views: ProjectionRunner, head: int, within: float) -> None:
    deadline = time.monotonic() + within
    while views.read_position() < head and time.monotonic() < deadline:
        time.sleep(0.05)
    assert views.read_position() == head


@pytest.mark.integration
@pytest.mark.skipif(PG_BINDIR is None, reason="no PostgreSQL server binaries")
@pytest.mark.skipif(not can_rename_host(), reason="no UTS namespaces here (unshare --uts)")
def test_a_frozen_leader_on_another_host_is_replaced_after_its_lease(
    pg: PgCluster, tmp_path: Path
) -> None:
    url = pg.create_database("hosts")
    box = bootstrap(Settings(database_url=url), clock=FakeClock())
    store = EventStore(url)
    views = ProjectionRunner.for_url(store, url)
    a = start_project_process(url, tmp_path / "host-a.log", host="host-a")
    b = None
    try:
        assert wait_for_leader(url, None, within=30) == a.pid
        assert holder(url) == f"host-a:{a.pid}"
        b = start_project_process(url, tmp_path / "host-b.log", host="host-b")
        time.sleep(2)  # host-b is up and watching the lease
        heads: list[int] = []
        ingest = threading.Thread(target=lambda: heads.append(append_while_running(store, 600)))
        ingest.start()
        time.sleep(0.3)  # mid-ingest: host-a may be inside a batch when it freezes
        os.kill(a.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        assert wait_for_leader(url, a.pid, within=15) == b.pid
        waited = time.monotonic() - frozen_at
        # Another host's process cannot be looked up: only the silent lease hands over.
        assert waited >= leadership.LEASE_S - leadership.HEARTBEAT_S, waited
        assert holder(url) == f"host-b:{b.pid}"
        ingest.join(timeout=120)
        # The views reach the head while host-a is still frozen.
        wait_views(views, heads[0], within=30)
        os.kill(a.pid, signal.SIGCONT)
        time.sleep(3 * leadership.HEARTBEAT_S)  # host-a has woken and looked at its lease
        head = append_while_running(store, 200)
        wait_views(views, head, within=30)
        assert holder(url) == f"host-b:{b.pid}"
        assert a.poll() is None  # stepped down, still running as a follower
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.terminate()
                p.wait(timeout=20)
    rebuilt = rebuilt_from_zero(store, f"sqlite:///{tmp_path}/rebuilt.db")
    assert_views_match_rebuild(views, rebuilt)
    for r in (views, rebuilt):
        r.engine.dispose()
    store.dispose()
    box.close()
