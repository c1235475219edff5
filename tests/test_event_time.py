"""Event time beside record time (domain/eventtime.py): a week of history imported through the
batch with `at` comes out as the same sessions, visible time, durations and stats as the
same week ingested live; `at` outside the window or out of order is refused and appends
nothing; replay can cut by either clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api.bootstrap import Container, bootstrap
from api.cli import main
from api.expiry import ExpirySweeper
from domain import commands as c
from domain.errors import LedgerError
from persistence.settings import Settings
from projections import queries as qs
from projections.present import iso
from tests.conftest import bearer
from tests.replay import point_cli_at

DAY = 86_400.0
TIMEOUT = 900.0  # the default session timeout
WEEK_START = 1_700_000_000.0 - 8 * DAY  # a week ending a day before the import runs
PATHS = ["/home", "/cart", "/pay"]
# What a session is, as readers see it (the Expired event's own time, `updated_at`, is when
# the sweeper came by live and when the gap showed in the import: not compared).
COMPARED = (
    "status", "started_at", "ended_at", "duration", "end_reason", "visible_time",
    "last_seen_at", "last_visible_at", "last_visible_path", "keepalives", "version",
)  # fmt: skip


def week() -> list[tuple[float, dict[str, Any]]]:
    """Two sessions a day for seven days: visible keepalives over three paths, a hide, an
    invisible keepalive, a stop. On day 3 session b falls silent for longer than the timeout
    and then keeps sending (live, the sweeper ended it in the gap); on day 6 it is never
    stopped (the sweeper ends it after the week)."""
    lines: list[tuple[float, dict[str, Any]]] = []
    for d in range(7):
        for k, (offset, step) in enumerate([(3600.0, 45.0), (3620.0, 50.0)]):
            sid, t = f"d{d}-{'ab'[k]}", WEEK_START + d * DAY + offset
            lines.append((t, {"command": "start", "session_id": sid, "project": "web"}))
            for i in range(10):
                t += step
                if d == 3 and k == 1 and i == 6:
                    t += TIMEOUT + 100  # the gap
                ka = {"command": "keepalive", "session_id": sid, "path": PATHS[i % 3]}
                lines.append((t, ka))
            lines.append((t + 5, {"command": "hide", "session_id": sid, "path": "/pay"}))
            lines.append((t + 9, {"command": "keepalive", "session_id": sid, "visible": False}))
            lines.append((t + 12, {"command": "keepalive", "session_id": sid, "path": "/home"}))
            if not (d == 6 and k == 1):
                lines.append((t + 30, {"command": "stop", "session_id": sid}))
    return sorted(lines, key=lambda line: line[0])


class SetClock:
    """The recording clock, set by the test to each live command's moment."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def command(line: dict[str, Any], at: float | None = None) -> c.Command:
    from api.routes.batch import COMMANDS

    fields = {k: v for k, v in line.items() if k != "command"}
    return COMMANDS[line["command"]](**fields, at=at)


def code_of(r: Any) -> str:
    """A problem+json answer's code (the last segment of its type)."""
    code: str = r.json()["type"].rsplit("/", 1)[1]
    return code


def sweep(container: Container) -> int:
    container.runner.catch_up()
    return ExpirySweeper(container).sweep()


def ingest_live(tmp: Path) -> tuple[Container, list[int]]:
    """The week as it happened: each command recorded at its moment, the sweeper running
    every minute while a session is open."""
    settings = Settings(database_url=f"sqlite:///{tmp}/live.db", blob_dir=tmp / "live-blobs")
    clock = SetClock(WEEK_START)
    ct = bootstrap(settings, clock=clock)
    refused: list[int] = []
    open_sids: set[str] = set()
    last_sweep = WEEK_START
    for n, (t, line) in enumerate(week(), 1):
        last_sweep = max(last_sweep, t - 2 * TIMEOUT)  # nothing changes in a longer silence
        while open_sids and last_sweep + 60 <= t:
            last_sweep += 60
            clock.now = last_sweep
            if sweep(ct):
                open_sids = {s for s in open_sids if ct.ledger.load(s)["ended_at"] is None}
        clock.now = t
        try:
            ct.ledger.execute(command(line))
        except LedgerError:
            refused.append(n)
            continue
        if line["command"] == "start":
            open_sids.add(line["session_id"])
        elif line["command"] == "stop":
            open_sids.discard(line["session_id"])
    clock.now = week()[-1][0] + 2 * TIMEOUT
    assert sweep(ct) == 1  # d6-b, silent since its last keepalive
    ct.runner.catch_up()
    return ct, refused


def import_batch(client: TestClient, key: str) -> dict[str, Any]:
    body = b"\n".join(orjson.dumps({**line, "at": t}) for t, line in week())
    r = client.post("/v1/events:batch", content=body, headers=bearer(key))
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def sessions(ct: Container) -> dict[str, dict[str, Any]]:
    out = {}
    for sid in sorted({line["session_id"] for _, line in week()}):
        state = ct.ledger.load(sid)
        out[sid] = {k: state[k] for k in COMPARED}
    return out


def stats(ct: Container) -> dict[str, Any]:
    ct.runner.catch_up()
    with ct.runner.engine.connect() as conn:
        t = ct.runner.tables
        return {
            str(by): qs.stats(conn, t, qs.StatsQuery(group_by=by))
            for by in [(), ("day",), ("status",), ("day", "status")]
        }


@pytest.fixture
def imported(
    container: Container, client: TestClient, admin_key: str, clock: Any
) -> dict[str, Any]:
    answer = import_batch(client, admin_key)
    return {"answer": answer, "container": container, "clock": clock}


def test_an_imported_week_gives_what_live_ingest_gave(tmp_path: Path, imported: Any) -> None:
    live, refused_live = ingest_live(tmp_path)
    ct, answer = imported["container"], imported["answer"]
    # The keepalives after day 3's gap met an ended session in both.
    assert [r["line"] for r in answer["rejected"]] == refused_live != []
    assert {r["code"] for r in answer["rejected"]} == {"session-stopped"}
    # Right after the import nothing is silent on the ledger's clock: nothing expires.
    assert sweep(ct) == 0
    assert ct.ledger.load("d6-b")["ended_at"] is None
    imported["clock"].advance(TIMEOUT + 1)
    assert sweep(ct) == 1
    got, want = sessions(ct), sessions(live)
    assert got == want
    assert got["d3-b"]["status"] == "timeout" and got["d6-b"]["end_reason"] == "expired"
    assert got["d0-a"]["visible_time"] == {"/cart": 135.0, "/home": 158.0, "/pay": 135.0}
    assert stats(ct) == stats(live)
    live.close()


def test_replay_by_event_time_sees_imported_history_when_it_happened(
    imported: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    point_cli_at(imported["container"], monkeypatch)
    mid_week = str(iso(WEEK_START + 3 * DAY))  # days 0, 1 and 2 had happened; nothing was recorded

    def replay(*argv: str) -> dict[str, Any]:
        assert main(["replay", *argv]) == 0
        doc: dict[str, Any] = json.loads(capsys.readouterr().out)
        return doc

    recorded = replay("stats", "--as-of", mid_week, "--by", "day", "--format", "json")
    assert recorded["groups"] == []
    event = replay(
        "stats", "--as-of", mid_week, "--time", "event", "--by", "day", "--format", "json"
    )
    assert [(g["key"]["day"], g["count"]) for g in event["groups"]] == [
        ("2023-11-06", 2),
        ("2023-11-07", 2),
        ("2023-11-08", 2),
    ]
    assert replay("session", "d1-a", "--as-of", mid_week, "--time", "event")["status"] == (
        "completed"
    )
    assert main(["replay", "session", "d1-a", "--as-of", mid_week]) == 2  # not yet recorded
    assert main(["replay", "stats", "--as-of", "5", "--time", "event"]) == 2  # a position
    capsys.readouterr()


def test_the_report_cuts_by_either_clock(
    imported: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    point_cli_at(imported["container"], monkeypatch)
    mid_week = str(iso(WEEK_START + 3 * DAY))
    pages = {}
    for clock in ("recorded", "event"):
        out = tmp_path / f"{clock}.html"
        argv = ["replay", "report", "--as-of", mid_week, "--time", clock, "--out", str(out), "-q"]
        assert main(argv) == 0
        pages[clock] = out.read_text()
    head = imported["container"].store.head_digest()[0]
    assert "<b>0</b>sessions" in pages["recorded"]  # nothing was recorded by mid-week
    assert "<b>6</b>sessions" in pages["event"]  # days 0, 1 and 2 had happened
    assert f"as known at log position {head}" in pages["event"]
    assert "This report covers the whole log" in pages["event"]
    assert main(["replay", "report", "--time", "event", "--out", str(tmp_path / "x.html")]) == 2
    capsys.readouterr()


def test_out_of_window_and_out_of_order_are_refused_with_nothing_appended(
    container: Container, client: TestClient, admin_key: str, clock: Any
) -> None:
    h = bearer(admin_key)
    assert client.post("/v1/sessions", json={"id": "s"}, headers=h).status_code == 201
    now = clock.now
    head = container.store.head_digest()
    early = client.post("/v1/sessions/s/keepalive", json={"at": iso(now - 60)}, headers=h)
    assert early.status_code == 409 and code_of(early) == "event-out-of-order"
    for at, status, code in [
        (now - 32 * DAY, 422, "event-time-out-of-window"),
        (now + 3600, 422, "event-time-out-of-window"),
        ("yesterday", 422, "invalid-command"),
        (-1, 422, "invalid-command"),
        (1e308, 422, "invalid-command"),
        ("2026-13-45T00:00:00Z", 422, "invalid-command"),
    ]:
        r = client.post("/v1/sessions/s/keepalive", json={"at": at}, headers=h)
        assert (r.status_code, code_of(r), r.json()["field"]) == (status, code, "at")
    assert container.store.head_digest() == head
    assert client.post("/v1/sessions/s/hide", json={"at": now + 1}, headers=h).status_code == 200
    head = container.store.head_digest()
    late = client.post("/v1/sessions/s/status", json={"status": "passed", "at": now}, headers=h)
    assert late.status_code == 409 and code_of(late) == "event-out-of-order"
    lines = [
        {"command": "keepalive", "session_id": "s", "at": now},  # before the hide
        {"command": "stop", "session_id": "s", "at": now - 40 * DAY},
        {"command": "start", "session_id": "t", "at": now + 9000},
    ]
    body = b"\n".join(orjson.dumps(line) for line in lines)
    r = client.post("/v1/events:batch", content=body, headers=h)
    assert [x["code"] for x in r.json()["rejected"]] == [
        "event-out-of-order",
        "event-time-out-of-window",
        "event-time-out-of-window",
    ]
    assert container.store.head_digest() == head


def test_events_without_at_store_what_they_always_stored(container: Container, clock: Any) -> None:
    run = container.ledger.execute
    run(c.StartSession(session_id="s"))
    run(c.KeepAlive(session_id="s", path="/a"))
    run(c.KeepAlive(session_id="s", path="/b", at=clock.now + 60))  # a clock a minute ahead
    run(c.KeepAlive(session_id="s", path="/c"))  # recorded earlier than that: takes its time
    payloads = [e.data() for e in container.store.load_stream("s")]
    assert "at" not in payloads[0] and "at" not in payloads[1]
    assert payloads[1] == {"visible": True, "path": "/a", "by": None}
    assert payloads[3]["at"] == payloads[2]["at"]
    state = container.ledger.load("s")
    assert state["last_seen_at"] == payloads[2]["at"]
    assert state["visible_time"]["/b"] == 0.0


def test_a_command_without_at_keeps_the_fingerprint_it_had() -> None:
    """Idempotency keys remembered before `at` existed still match their retries."""
    import hashlib

    cmd = c.KeepAlive(session_id="s", path="/a", idempotency_key="k")
    before = {"session_id": "s", "by": None, "expected_version": None, "visible": True}
    before |= {"path": "/a", "command": "KeepAlive"}
    old = hashlib.sha256(orjson.dumps(before, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert cmd.fingerprint() == old
    assert c.KeepAlive(session_id="s", path="/a", at=1.0).fingerprint() != old


def test_bodyless_commands_take_at_as_a_query_parameter(
    container: Container, client: TestClient, admin_key: str, clock: Any
) -> None:
    """A raw log upload and a delete have no JSON body: `?at=` carries their event time, with
    the same window and the same refusals as a body's `at`; a refused one stores nothing."""
    h = bearer(admin_key)
    started = {"id": "s", "at": clock.now - 600}
    assert client.post("/v1/sessions", json=started, headers=h).status_code == 201
    blobs = container.settings.blob_dir
    before = sorted(p.name for p in blobs.rglob("*") if p.is_file())
    head = container.store.head_digest()
    refusals = [
        ("yesterday", "invalid-command"),
        (clock.now - 40 * DAY, "event-time-out-of-window"),
    ]
    for at, code in refusals:
        up = client.post(
            "/v1/sessions/s/logs/console", params={"at": at}, content=b"line one\n",
            headers={**h, "Content-Type": "text/plain"},
        )  # fmt: skip
        gone = client.delete("/v1/sessions/s", params={"at": at}, headers=h)
        for r in (up, gone):
            assert (r.status_code, code_of(r), r.json()["field"]) == (422, code, "at")
    assert container.store.head_digest() == head
    assert sorted(p.name for p in blobs.rglob("*") if p.is_file()) == before
    upload_at, delete_at = clock.now - 120, clock.now - 60
    r = client.post(
        "/v1/sessions/s/logs/console", params={"at": iso(upload_at)}, content=b"line one\n",
        headers={**h, "Content-Type": "text/plain"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert client.delete("/v1/sessions/s", params={"at": delete_at}, headers=h).status_code == 200
    events = list(container.store.load_stream("s"))
    got = [e.data().get("at") for e in events[-2:]]
    assert got == pytest.approx([upload_at, delete_at], abs=1e-3)  # ISO-8601 keeps ms
