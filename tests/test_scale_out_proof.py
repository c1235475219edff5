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

import itertools
import os
import random
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

CLIENTS = 32
GROUPS = 8  # clients c, c + 8, c + 16 and c + 24 share the sessions of group c % 8
SESSIONS_PER_GROUP = 12
REQUESTS = 56  # per client; a batch request carries 3 to 8 commands
DROP_SHARE = 0.08  # requests first sent with a read timeout too short for their answer
RESEND_SHARE = 0.05  # acknowledged commands sent once more, to another process
ATTEMPTS = 40
PAUSE = 0.3  # s before some resends of a dropped try
TINY = httpx.Timeout(30.0, read=0.001)
PATIENT = httpx.Timeout(60.0)  # two cores shared with the rest of a run: slow is not wrong
SINGLE = ("keepalive", "hide", "status")
SINGLE_WEIGHTS = (6, 2, 2)
NDJSON = "application/x-ndjson"
CONFLICT = "concurrency-conflict"
MARKED = ("Started", "KeptAlive", "Hidden", "StatusChanged", "Stopped")

Line = dict[str, Any]  # one command, as a line of a batch


@dataclass
class Tally:
    """What the clients saw, shared between their threads."""

    final: dict[str, tuple[int, Any]] = field(default_factory=dict)  # key: status, answer
    server_errors: list[str] = field(default_factory=list)
    unequal_resends: list[str] = field(default_factory=list)
    retried_at: dict[str, float] = field(default_factory=dict)  # a dropped try's key: when resent
    seen: Counter[str] = field(default_factory=Counter)  # drops, retries, resends
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, what: str) -> None:
        with self.lock:
            self.seen[what] += 1


def command(kind: str, sid: str, key: str, rng: random.Random) -> Line:
    """A command whose event will carry its own key (`path`, `reason` or `build`)."""
    line: Line = {"command": kind, "session_id": sid, "idempotency_key": key}
    if kind == "start":
        line.update(build=key, project=f"p{rng.randrange(3)}")
    elif kind in ("keepalive", "hide"):
        line.update(path=f"/{key}")
        if kind == "keepalive":
            line.update(visible=rng.random() < 0.8)
    else:  # status, stop: a reason, which the log keeps sealed (personal)
        line.update(reason=key)
        if kind == "status":
            line.update(status=rng.choice(("passed", "failed")))
    return line


def plan(client: int) -> list[list[Line]]:
    """A client's requests, each a list of commands (one: its own route; more: a batch).
    It starts its share of its group's sessions and one more of them (whose second start is
    refused), then works on all of the group's sessions, and stops two of them last."""
    rng = random.Random(client)
    sessions = [f"g{client % GROUPS}-s{i:02d}" for i in range(SESSIONS_PER_GROUP)]
    numbers = itertools.count()

    def make(kind: str, sid: str) -> Line:
        return command(kind, sid, f"c{client:02d}-{next(numbers):04d}", rng)

    out = [[make("start", s)] for s in sessions[client // GROUPS :: CLIENTS // GROUPS]]
    out.append([make("start", rng.choice(sessions))])
    while len(out) < REQUESTS - 2:
        if rng.random() < 0.12:
            out.append(
                [make(rng.choice(SINGLE), rng.choice(sessions)) for _ in range(rng.randint(3, 8))]
            )
        else:
            out.append([make(rng.choices(SINGLE, SINGLE_WEIGHTS)[0], rng.choice(sessions))])
    out += [[make("stop", rng.choice(sessions))] for _ in range(2)]
    return out


def request_of(lines: list[Line]) -> tuple[str, dict[str, Any]]:
    """The route and body of a request: one command on its own route, more as a batch."""
    if len(lines) > 1:
        body = b"\n".join(orjson.dumps(line) for line in lines)
        return "events:batch", {"content": body, "headers": {"Content-Type": NDJSON}}
    line = dict(lines[0])
    kind, sid, key = line.pop("command"), line.pop("session_id"), line.pop("idempotency_key")
    headers = {"Idempotency-Key": key}
    if kind == "start":
        return "sessions", {"json": {"id": sid, **line}, "headers": headers}
    return f"sessions/{sid}/{kind}", {"json": line, "headers": headers}


def retryable(r: httpx.Response) -> bool:
    """A refusal that asks for the same request again: 503, or a 409 that is a write conflict
    (a 409 the session's rules gave, such as a stopped session, is the final answer)."""
    if r.status_code not in (200, 409, 503):
        return False
    body = r.json()
    refusals = body.get("rejected", []) if r.status_code == 200 else [body]
    return r.status_code == 503 or any(
        x.get("status") == 503 or str(x.get("type", x.get("code"))).endswith(CONFLICT)
        for x in refusals
    )


class Client:
    """One client thread: sends its plan to the API processes in turn, every command with
    its own key, and keeps every final answer in the tally."""

    def __init__(self, number: int, urls: list[str], key: str, tally: Tally) -> None:
        self.number, self.urls, self.tally = number, urls, tally
        self.rng = random.Random(1000 + number)
        self.http = httpx.Client(headers={"Authorization": f"Bearer {key}"})

    def run(self) -> None:
        try:
            for i, lines in enumerate(plan(self.number)):
                r = self.exchange(lines, self.number + i, tiny=self.rng.random() < DROP_SHARE)
                if r is not None:
                    self.keep(lines, r)
                again = self.rng.random() < RESEND_SHARE
                if r is not None and len(lines) == 1 and r.is_success and again:
                    self.resend(lines, self.number + i + 1, r)
        finally:
            self.http.close()

    def exchange(self, lines: list[Line], first: int, tiny: bool) -> httpx.Response | None:
        """Send one request until it has a final answer: after a dropped connection, a write
        conflict or a 503, again with the same keys to the next process."""
        for attempt in range(ATTEMPTS):
            url = self.urls[(first + attempt) % len(self.urls)]
            drop = tiny and attempt == 0
            if tiny and attempt == 1:
                # Half the drops are resent at once (the two tries race on two processes), half
                # after a pause (the dropped try is applied first, the resend gets its answer).
                time.sleep(self.rng.choice((0.0, PAUSE)))
                with self.tally.lock:
                    self.tally.retried_at.update((x["idempotency_key"], time.time()) for x in lines)
            route, request = request_of(lines)
            try:
                r = self.http.post(
                    f"{url}/v1/{route}", **request, timeout=TINY if drop else PATIENT
                )
            except httpx.TransportError as err:  # a timeout included: the connection is closed
                self.tally.note("dropped on purpose" if drop else f"failed: {type(err).__name__}")
                continue
            if r.status_code >= 500 and r.status_code != 503:
                with self.tally.lock:
                    self.tally.server_errors.append(f"{r.status_code} from {url}: {r.text}")
                return None
            if not retryable(r):
                return r
            self.tally.note(f"retried after {r.status_code}")
            time.sleep(0.01 * attempt)
        with self.tally.lock:
            self.tally.server_errors.append(f"no final answer after {ATTEMPTS} tries: {lines}")
        return None

    def resend(self, lines: list[Line], first: int, answered: httpx.Response) -> None:
        """An acknowledged command again, with its key: the same answer, nothing appended."""
        again = self.exchange(lines, first, tiny=False)
        self.tally.note("resent after its answer")
        said = (answered.status_code, answered.json())
        if again is None or (again.status_code, again.json()) != said:
            seen = "nothing" if again is None else f"{again.status_code} {again.text}"
            with self.tally.lock:
                self.tally.unequal_resends.append(f"{lines[0]}: {said}, then {seen}")

    def keep(self, lines: list[Line], r: httpx.Response) -> None:
        answer = r.json()
        with self.tally.lock:
            if len(lines) == 1 or r.status_code != 200:
                for line in lines:
                    self.tally.final[line["idempotency_key"]] = (r.status_code, answer)
                return
            refused = {x["line"]: x for x in answer["rejected"]}
            for n, line in enumerate(lines, 1):
                x = refused.get(n)
                self.tally.final[line["idempotency_key"]] = (x["status"], x) if x else (200, None)


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
        deadline = time.monotonic() + 20  # /readyz may answer before the second one is up
        while (
            below := [cmdline(p) for p in descendants(proc.pid)]
        ) and time.monotonic() < deadline:
            if sum("spawn_main" in c for c in below) == 2:  # uvicorn's API processes
                break
            time.sleep(0.1)
        assert sum("spawn_main" in c for c in below) == 2, below
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
        assert [at.get(p, ("",))[0] for p in range(last - n + 1, last + 1)] == [key] * n, (
            key,
            result,
        )
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
    finally:
        cluster.stop()
    assert not tally.server_errors, tally.server_errors[:5]
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
    print(f"load {load:.1f} s, whole test {whole:.1f} s")
