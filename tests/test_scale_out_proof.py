"""The proof of scale-out on PostgreSQL (issue #19): four API processes on one database
(`ledger serve --workers 2` and two single `ledger serve`), 32 clients sending thousands of
commands, each with its own Idempotency-Key, on sessions the clients share; some requests
are dropped before their answer and resent to another process, some acknowledged ones are
resent; midway the leading `ledger project` is killed with SIGKILL and another started.
Afterwards every acknowledged command's effect is in the log exactly once, `ledger replay
verify` passes, each view equals its rebuild from zero, and no process answered a 5xx other
than 503.

How "exactly once" is checked: every command carries its key in a field of its event
(`path`, `reason` or `build`), so each event in the log names the command it came from. The
`idempotency_keys` row of a key holds that command's answer (its last position and how many
events it appended), so the log must hold exactly those events for it, at those positions."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from persistence.schema import make_engine
from persistence.store import EventStore
from projections.runner import ProjectionRunner
from tests.conftest import PG_BINDIR, ROOT, ledger_env, make_key, start_server
from tests.pg import PgCluster
from tests.scale_clients import CLIENTS, Client, Tally, plan
from tests.test_projection_exactly_once import assert_views_match_rebuild, rebuilt_from_zero
from tests.workers import (
    cmdline,
    descendants,
    leader_pid,
    start_project_process,
    wait_for_leader,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(PG_BINDIR is None, reason="no PostgreSQL server binaries"),
]

MARKED = ("Started", "KeptAlive", "Hidden", "StatusChanged", "Stopped")  # events that carry a key


@dataclass
class Cluster:
    """The processes on one database: API servers and `ledger project` workers."""

    url: str
    env: dict[str, str]
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api_urls: list[str] = field(default_factory=list)

    def start(self, logs: Path) -> None:
        """`ledger serve --workers 2` (two API processes and the `ledger project` it starts),
        two `ledger serve` with no worker of their own, and one more `ledger project`."""
        proc, many = start_server(
            self.env, logs / "serve-2.log", "--workers", "2", probe="/readyz", wait=60
        )
        self.servers.append(proc)
        below = processes_below(proc.pid)
        assert sum("spawn_main" in c for c in below) == 2, below  # uvicorn's API processes
        assert sum("api.cli project" in c for c in below) == 1, below
        for n in range(2):
            proc, url = start_server(self.env, logs / f"serve-{n}.log", "--worker", "external")
            self.servers.append(proc)
            assert not descendants(proc.pid)  # no worker of its own
            # Each turn moves to another port, so the next process is always another one.
            self.api_urls += [many, url]
        self.workers.append(start_project_process(self.url, logs / "project-0.log"))

    def stop(self) -> None:
        for p in (*self.servers, *self.workers):
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)


def processes_below(pid: int) -> list[str]:
    """The command lines below `ledger serve --workers 2` once both API processes are up
    (its /readyz may answer before the second one is)."""
    deadline = time.monotonic() + 20
    while True:
        below = [cmdline(p) for p in descendants(pid)]
        if sum("spawn_main" in c for c in below) == 2 or time.monotonic() > deadline:
            return below
        time.sleep(0.1)


def kill_the_leader_midway(
    cluster: Cluster, tally: Tally, total: int, logs: Path, out: dict[str, Any]
) -> None:
    """Once 40% of the commands have their answer: `kill -9` the leading `ledger project`,
    start a replacement, and time the hand-over to another leader."""
    try:
        while len(tally.final) < total * 0.4:
            time.sleep(0.01)
        killed = leader_pid(cluster.url)
        assert killed is not None
        ours = [p for p in cluster.workers if p.pid == killed]
        out["killed"] = "the separate ledger project" if ours else "serve --workers' own worker"
        out["answered at the kill"] = len(tally.final)
        os.kill(killed, signal.SIGKILL)
        began = time.monotonic()
        for p in ours:
            p.wait()  # reaped, so the workers on this host see it is gone
        cluster.workers.append(start_project_process(cluster.url, logs / "project-1.log"))
        wait_for_leader(cluster.url, other_than=killed, within=15)
        out["hand-over s"] = round(time.monotonic() - began, 2)
    except BaseException as err:  # seen by the test's thread
        out["error"] = err


def run_clients(cluster: Cluster, key: str, tally: Tally, logs: Path) -> dict[str, Any]:
    total = sum(len(lines) for c in range(CLIENTS) for lines in plan(c))
    kill: dict[str, Any] = {"commands": total}
    threads = [
        threading.Thread(target=kill_the_leader_midway, args=(cluster, tally, total, logs, kill))
    ]
    threads += [
        threading.Thread(target=Client(c, cluster.api_urls, key, tally).run) for c in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert "error" not in kill and "hand-over s" in kill, kill
    assert kill["answered at the kill"] < total, "the kill came after the last command"
    return kill


def answers_by_process(urls: list[str], key: str) -> dict[str, Counter[str]]:
    """The POST answers of each API process by status, from its own `/metrics` (which count
    the answers to dropped tries too). A new connection to the port of `--workers 2` reaches
    either of its processes: it is asked until both have answered."""
    out: dict[str, Counter[str]] = {}
    for url in [*dict.fromkeys(urls)] + [urls[0]] * 60:
        if len(out) == 4:
            break
        page = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"}).text
        started = re.search(r"^process_start_time_seconds (\S+)$", page, re.M)
        assert started is not None, page
        posts = re.findall(
            r'^ledger_http_requests_total{.*method="POST",status="(\d+)"} (\d+)$', page, re.M
        )
        by_status = out[f"{url} {started[1]}"] = Counter()
        for status, n in posts:  # summed over the routes
            by_status[status] += int(n)
    return out


def effects(store: EventStore) -> tuple[dict[int, tuple[str, float]], list[str]]:
    """Each event's command key and recorded time, by position (and the events of none)."""
    at: dict[int, tuple[str, float]] = {}
    orphans = []
    for e in store.iter_all():
        data = e.data()
        key = data.get(
            {"Started": "build", "StatusChanged": "reason", "Stopped": "reason"}.get(e.type, "path")
        )
        if e.type not in MARKED or not isinstance(key, str):
            orphans.append(f"{e.position} {e.type} {data}")
        else:
            at[e.position] = (key.lstrip("/"), e.recorded_at)
    return at, orphans


def remembered_keys(url: str) -> dict[str, dict[str, Any]]:
    """The answer each idempotency record keeps, by key."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT key, result FROM idempotency_keys")).all()
    finally:
        engine.dispose()
    return {str(k): orjson.loads(bytes(r)) for k, r in rows}


def check_exactly_once(
    at: dict[int, tuple[str, float]],
    orphans: list[str],
    rows: dict[str, dict[str, Any]],
    tally: Tally,
) -> Counter[str]:
    """Every event comes from one command, none twice; each key's record names exactly its
    events; every acknowledged command has its record and its events, and a refused one has
    none unless an earlier, dropped try of it was applied (then its record says so)."""
    assert not orphans, f"{len(orphans)} events of no command: {orphans[:5]}"
    carried = Counter(key for key, _ in at.values())
    twice = {key: n for key, n in carried.items() if n > 1}
    assert not twice, (
        f"{sum(twice.values()) - len(twice)} duplicate events: {list(twice.items())[:5]}"
    )
    assert set(rows) <= set(tally.final), sorted(set(rows) - set(tally.final))[:5]
    for key, result in rows.items():
        last, n = result["position"], result["appended"]
        carriers = [at.get(p, ("",))[0] for p in range(last - n + 1, last + 1)]
        assert carriers == [key] * n, (key, result)
    # With the ranges above (each event carries one key), every event is one record's.
    assert sum(r["appended"] for r in rows.values()) == len(at)
    figures: Counter[str] = Counter()
    for key, (status, answer) in tally.final.items():
        row = rows.get(key)
        acked = 200 <= status < 300
        figures["acknowledged" if acked else f"refused {status}"] += 1
        assert carried[key] == (row["appended"] if row else 0), (key, status, row)
        assert row is not None or not acked, f"{key} was acknowledged but the ledger kept no record"
        if row is None:
            continue
        figures["refused on retry, applied by its dropped try"] += not acked
        if answer is not None and acked:  # a single command's own answer: the one remembered
            said = (answer["id"], answer["version"], answer["position"], answer["appended"])
            assert said == (row["session_id"], row["version"], row["position"], row["appended"])
        if row["appended"] and at[row["position"]][1] < tally.retried_at.get(key, 0.0):
            figures["applied by its dropped try, answered from its record on the retry"] += 1
    return figures


def verify(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "replay", "verify"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def wait_for_views(store: EventStore, url: str) -> ProjectionRunner:
    head = store.head_digest()[0]
    views = ProjectionRunner.for_url(store, url)
    deadline = time.monotonic() + 60
    while views.read_position() < head and time.monotonic() < deadline:
        time.sleep(0.05)
    assert views.read_position() == head
    return views


def test_four_api_processes_and_a_killed_leader_keep_every_command_exactly_once(
    pg: PgCluster, tmp_path: Path
) -> None:
    began = time.monotonic()
    url = pg.create_database("proof")
    cluster = Cluster(url, dict(ledger_env(tmp_path), LEDGER_DATABASE_URL=url))
    key = make_key(cluster.env, "admin", "admin")
    tally, store = Tally(), EventStore(url)
    try:
        cluster.start(tmp_path)
        load = time.monotonic()
        kill = run_clients(cluster, key, tally, tmp_path)
        load = time.monotonic() - load
        views = wait_for_views(store, url)
        answers = answers_by_process(cluster.api_urls, key)
    finally:
        cluster.stop()
    assert not tally.server_errors, tally.server_errors[:5]
    assert len(answers) == 4 and all(sum(a.values()) > 100 for a in answers.values()), answers
    failed = {p: a for p, a in answers.items() if any(s[0] == "5" and s != "503" for s in a)}
    assert not failed, failed
    at, orphans = effects(store)
    figures = check_exactly_once(at, orphans, remembered_keys(url), tally)
    resent = tally.unequal_resends
    assert not resent, f"{len(resent)} resent commands answered otherwise: {resent[:3]}"
    checked = verify(cluster.env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rebuilt = rebuilt_from_zero(store, f"sqlite:///{tmp_path}/rebuilt.db")
    assert_views_match_rebuild(views, rebuilt)
    logged = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))
    assert "Traceback" not in logged, logged[-3000:]  # a 5xx no client saw (its try dropped)
    assert len(tally.final) == kill["commands"] >= 2000
    assert figures["acknowledged"] >= 0.9 * len(tally.final), figures
    assert tally.seen["dropped on purpose"] >= 50 and tally.seen["resent after its answer"] >= 50
    assert figures["applied by its dropped try, answered from its record on the retry"] >= 10
    for r in (views, rebuilt):
        r.engine.dispose()
    store.dispose()
    whole = time.monotonic() - began
    print(f"\nscale-out proof: {len(at)} events, {dict(figures)}, {dict(tally.seen)}, kill: {kill}")
    print(f"POST answers by process: {answers}")
    print(f"load {load:.1f} s, whole test {whole:.1f} s")
