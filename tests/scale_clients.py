"""The clients of the scale-out proof (tests/test_scale_out_proof.py): each one's plan of
commands, every command with its own Idempotency-Key carried into its event too; sending them
to the API processes in turn, some dropped before their answer and resent, some resent after
it; and the tally of every final answer."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

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
