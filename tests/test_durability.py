"""Nothing lost: every event a real server acknowledged is in the database after the server
is killed without warning (SIGKILL, no shutdown)."""

from __future__ import annotations

import signal
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import httpx


def test_acknowledged_events_survive_a_killed_server(live_server) -> None:
    url = live_server.url
    auth = {"Authorization": f"Bearer {live_server.key}"}
    assert httpx.post(f"{url}/v1/sessions", json={"id": "s1"}, headers=auth).status_code == 201
    acked: list[int] = []

    def keepalive(i: int) -> None:
        body = {"path": f"/{i % 5}"}
        r = httpx.post(f"{url}/v1/sessions/s1/keepalive", json=body, headers=auth, timeout=10)
        if r.status_code == 200:
            acked.append(r.json()["position"])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(keepalive, range(300)))
    live_server.proc.send_signal(signal.SIGKILL)
    live_server.proc.wait(timeout=10)

    assert len(acked) == 300
    con = sqlite3.connect(live_server.db)
    stored = {p for (p,) in con.execute("SELECT position FROM events")}
    assert set(acked) <= stored
    versions = [v for (v,) in con.execute("SELECT version FROM events ORDER BY position")]
    assert versions == list(range(1, 302))
