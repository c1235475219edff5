"""The bulk path (`POST /v1/events:batch` -> the writer's fast path) keeps every rule, answer
and stored byte of the one-event-object-per-event path: the same rows, the same states, the
same hash chain, the same per-line report."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from api.problems import status_of
from api.routes.batch import COMMANDS, parse_body
from domain import commands as c
from domain.decide import decide
from domain.errors import (
    IllegalStatusChangeError,
    InvalidCommandError,
    LedgerError,
    SessionDeletedError,
    SessionExistsError,
    SessionStoppedError,
)
from domain.session import Session
from persistence.aggregates import fold
from persistence.store import GENESIS_HASH, NewEvent, chain_hash

# Times a datetime holds exactly, so the library path's fold (through `timestamp`) and the
# fast path's (the float itself) see the same instants.
LIFE: list[c.Command] = [
    c.StartSession(session_id="s", name="n", user="ann", tags={"k": "v"}, status="queued", at=99.5),
    c.ChangeStatus(session_id="s", status="running", reason="go", by="bob"),
    c.KeepAlive(session_id="s", visible=True, path="/a"),
    c.KeepAlive(session_id="s", visible=True, path="/b", at=100.625),  # its own event time
    c.Hide(session_id="s", path="/b", at=100.25),  # refused: before the session's latest
    c.Hide(session_id="s", path="/b"),
    c.KeepAlive(session_id="s", visible=False, path="/c"),
    c.UpdateDetails(session_id="s", changes={"remarks": "flaky", "tags": {"k": None, "x": "1"}}),
    c.UpdateDetails(session_id="s", changes={"name": "n2"}, status="failed", reason="r"),
    c.UpdateDetails(session_id="s", changes={"name": "n2"}),  # nothing changes: no event
    c.UploadLog(session_id="s", kind="console", content_type="text/plain", size=3, sha256="a" * 64),
    c.AttachArtifact(session_id="s", kind="video", title="t", url="http://x/v", by="ann"),
    c.RecordMetric(session_id="s", item="cpu", context="ctx", values={"p50": 0.5}),
    c.RecordResult(session_id="s", status="passed", test="t1"),
    c.Annotate(session_id="s", annotation_id="a1", kind="note", text="hi", occurred_at=2.5),
    c.Annotate(session_id="s", annotation_id="a1", retracted=True),
    c.ChangeStatus(session_id="s", status="queued"),  # illegal: refused
    c.StopSession(session_id="s", reason="done", by="ann"),
    c.StopSession(session_id="s"),  # a second stop appends nothing
    c.KeepAlive(session_id="s", path="/late"),  # refused: stopped
    c.ExpireSession(session_id="s", timeout=1.0),  # ended already: nothing
    c.DeleteSession(session_id="s", reason="gdpr"),
    c.RecordResult(session_id="s", status="failed"),  # refused: deleted
    c.DeleteSession(session_id="s"),  # the tombstone is already there
]


def run_life(fast: bool) -> tuple[list[tuple[Any, ...]], list[str], Session]:
    """Decide LIFE on one aggregate: rows (fast) or library event objects (not fast)."""
    sink: list[NewEvent] | None = [] if fast else None
    rows: list[tuple[Any, ...]] = []
    refused: list[str] = []
    agg = None
    for i, cmd in enumerate(LIFE):
        at = 100.0 + i * 0.25
        try:
            agg = decide(cmd, agg, at, sink)
        except LedgerError as err:
            refused.append(err.code)
            continue
        if sink is None:
            for e in agg.collect_events():
                rows.append(
                    (type(e).__name__, e.originator_version, type(e).class_version, e.payload())
                )
    if sink is not None:
        rows = [(e.type, e.version, e.schema_version, e.payload) for e in sink]
        assert [e.recorded_at for e in sink] == sorted(e.recorded_at for e in sink)
    assert isinstance(agg, Session)
    return rows, refused, agg


def test_the_fast_path_decides_exactly_what_the_library_path_decides() -> None:
    slow_rows, slow_refused, slow = run_life(fast=False)
    fast_rows, fast_refused, fast = run_life(fast=True)
    assert (
        fast_refused
        == slow_refused
        == [
            "event-out-of-order",
            "illegal-status-change",
            "session-stopped",
            "session-deleted",
        ]
    )
    assert [r[0] for r in fast_rows] == [r[0] for r in slow_rows]
    for f, s in zip(fast_rows, slow_rows, strict=True):
        assert f == s  # type, version, schema version and the payload dict itself
        # the stored bytes are what the hash chain covers
        assert orjson.dumps(f[3], option=orjson.OPT_SORT_KEYS) == orjson.dumps(
            s[3], option=orjson.OPT_SORT_KEYS
        )
    assert fast.version == slow.version == len(fast_rows)
    assert fast.state == slow.state
    assert fast.state["status"] == "failed" and fast.state["deleted"]
    assert fast_rows[0][3]["at"] == 99.5 and fast.state["started_at"] == 99.5
    assert sum("at" in r[3] for r in fast_rows) == 2  # stored only where given


def test_bulk_lines_keep_every_rule_and_report_each_refused_line(client) -> None:
    lines = [
        {"command": "start", "session_id": "b1", "project": "p"},
        {"command": "keepalive", "session_id": "b1", "path": "/x"},
        {"command": "keepalive", "session_id": "ghost"},
        {"command": "status", "session_id": "b1", "status": "passed"},
        {"command": "status", "session_id": "b1", "status": "running"},  # passed -> running
        {"command": "keepalive", "session_id": "b1", "expected_version": 99},
        {"command": "start", "session_id": "b1"},
        {"command": "start", "session_id": "context:x"},
        {"command": "stop", "session_id": "b1"},
        {"command": "hide", "session_id": "b1"},
        {"command": "delete", "session_id": "b1"},
        {"command": "metric", "session_id": "b1", "item": "m"},
    ]
    body = b"\n".join(orjson.dumps(x) for x in lines)
    r = client.post("/v1/events:batch", content=body)
    assert r.status_code == 200, r.text
    out = r.json()
    refused = {x["line"]: (x["status"], x["code"]) for x in out["rejected"]}
    assert refused == {
        3: (404, "session-not-found"),
        5: (status_of(IllegalStatusChangeError("")), "illegal-status-change"),
        6: (412, "precondition-failed"),  # a stale expected_version, as a stale If-Match
        7: (status_of(SessionExistsError("")), "session-exists"),
        8: (status_of(InvalidCommandError("")), "invalid-command"),
        10: (status_of(SessionStoppedError("")), "session-stopped"),
        12: (status_of(SessionDeletedError("")), "session-deleted"),
    }
    # start, keepalive, status, stop, delete: five events, the refused lines appended nothing
    assert out["accepted"] == 5 and out["appended"] == 5 and out["position"] == 5
    events = client.get("/v1/events").json()["events"]
    assert [e["type"] for e in events] == [
        "Started",
        "KeptAlive",
        "StatusChanged",
        "Stopped",
        "Deleted",
    ]
    assert [e["position"] for e in events] == [1, 2, 3, 4, 5]
    assert [e["version"] for e in events] == [1, 2, 3, 4, 5]


def test_bulk_appends_a_gap_free_log_whose_chain_verifies_and_folds_to_the_live_state(
    client, container
) -> None:
    lines: list[dict[str, Any]] = [
        {"command": "start", "session_id": f"s{i}", "tags": {"n": str(i)}} for i in range(20)
    ]
    for k in range(300):
        lines.append({"command": "keepalive", "session_id": f"s{k % 20}", "path": f"/p/{k % 7}"})
    lines += [{"command": "stop", "session_id": f"s{i}"} for i in range(0, 20, 3)]
    body = b"\n".join(orjson.dumps(x) for x in lines) + b"\n"
    cut = body.index(b"\n", len(body) // 2) + 1  # two bodies, split on a line boundary
    for part in (body[:cut], body[cut:]):
        r = client.post("/v1/events:batch", content=part)
        assert r.status_code == 200 and r.json()["rejected"] == []
    store = container.store
    stored = list(store.iter_all())
    assert [e.position for e in stored] == list(range(1, len(lines) + 1))
    prev = GENESIS_HASH
    for e in stored:
        prev = chain_hash(
            prev,
            e.position,
            e.stream_id,
            e.version,
            e.type,
            e.schema_version,
            e.recorded_at,
            e.payload,
        )
        assert prev == e.hash
    assert store.head_digest() == (stored[-1].position, stored[-1].hash)
    for i in range(20):
        sid = f"s{i}"
        live = container.ledger.cache[sid]
        assert live.state == fold(store.load_stream(sid), sid)
        assert live.version == live.state["version"]
        assert "sink" not in vars(live)  # the batch's rows are not kept by the cache


def test_each_answer_carries_its_own_version_and_position(container) -> None:
    ledger = container.ledger
    out = ledger.execute_many(
        [
            c.StartSession(session_id="v"),
            c.KeepAlive(session_id="v"),
            c.KeepAlive(session_id="ghost"),
            c.StopSession(session_id="v"),
            c.StopSession(session_id="v"),  # nothing to append
        ]
    )
    assert isinstance(out[2], LedgerError)
    ok = [o for o in out if not isinstance(o, LedgerError)]
    assert [(o.version, o.position, o.appended, o.number) for o in ok] == [
        (1, 1, 1, 1),
        (2, 2, 1, 1),
        (3, 3, 1, 1),
        (3, 3, 0, 1),
    ]


def test_idempotency_keys_in_a_batch_answer_once_and_refuse_reuse(client) -> None:
    def post(lines: list[dict[str, Any]]) -> dict[str, Any]:
        r = client.post("/v1/events:batch", content=b"\n".join(orjson.dumps(x) for x in lines))
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    ka = {"command": "keepalive", "session_id": "i1", "path": "/k", "idempotency_key": "k1"}
    first = post([{"command": "start", "session_id": "i1"}, ka, ka])
    # the retry (same batch) gets the first answer and appends nothing
    assert first["accepted"] == 3 and first["rejected"] == [] and first["position"] == 2
    assert client.get("/v1/ledger/digest").json()["position"] == 2
    again = post([ka, {**ka, "path": "/other"}])
    assert again["accepted"] == 1 and again["position"] == 2
    assert again["rejected"] == [
        {
            "line": 2,
            "status": again["rejected"][0]["status"],
            "code": "idempotency-key-reused",
            "detail": "Idempotency-Key 'k1' was used for a different command",
        }
    ]
    assert client.get("/v1/ledger/digest").json()["position"] == 2


def test_malformed_lines_refuse_the_whole_body_naming_the_line(client) -> None:
    before = client.get("/v1/ledger/digest").json()["position"]
    ok = b'{"command":"start","session_id":"m1"}'
    cases = {
        b"\n\n" + ok + b"\n{nope\n": ("line 4", "not JSON"),
        ok + b"\n[1, 2]": ("line 2", "expected a JSON object"),
        ok + b'\n{"command": ["start"], "session_id": "m2"}': ("line 2", "command must be"),
        ok + b'\n{"command":"start","session_id":"m2","colour":"red"}': (
            "line 2",
            "unknown field(s) colour",
        ),
        ok + b'\n{"command":"keepalive","session_id":""}': ("line 2", "session_id is required"),
        ok + b'\n{"command":"status","session_id":"m1"}': ("line 2", "status"),
    }
    for body, (line, detail) in cases.items():
        r = client.post("/v1/events:batch", content=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["detail"].startswith(line + ":") and detail in r.json()["detail"]
    assert client.post("/v1/events:batch", content=b"\n \n").status_code == 400
    assert client.get("/v1/ledger/digest").json()["position"] == before


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_parsed_commands_equal_the_constructors(name: str) -> None:
    cls = COMMANDS[name]
    required = {
        f.name: "x"
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    fields = {**required, "session_id": "p1", "by": "ann"}
    (parsed,) = parse_body(orjson.dumps({"command": name, **fields}))
    assert type(parsed) is cls and parsed == cls(**fields)
    assert parsed.fingerprint() == cls(**fields).fingerprint()
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.by = "bob"  # type: ignore[misc]
    # mutable defaults are each instance's own, never shared between lines
    line = orjson.dumps({"command": name, **fields})
    a, b = parse_body(line + b"\n" + line)
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            assert getattr(a, f.name) == getattr(b, f.name) == f.default_factory()
            assert getattr(a, f.name) is not getattr(b, f.name)
