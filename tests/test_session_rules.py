"""The Session aggregate's rules: what it accepts, what it refuses, and that a refusal
appends nothing."""

from __future__ import annotations

import orjson
import pytest

from domain import commands as c
from domain.errors import (
    ConcurrencyError,
    IllegalStatusChangeError,
    SessionDeletedError,
    SessionExistsError,
    SessionNotFoundError,
    SessionStoppedError,
)
from domain.session import EVENT_CLASSES, Session
from domain.state import LEGAL_MOVES, STATUSES


def started() -> Session:
    s = Session.start("s1", 100.0, name="login", user="ann")
    s.collect_events()
    return s


def test_no_keepalive_hide_or_upload_after_stop() -> None:
    s = started()
    s.stop(110.0)
    for action in (
        lambda: s.keep_alive(111.0, True, "/a"),
        lambda: s.hide(111.0, "/a"),
        lambda: s.upload_log(111.0, "console", "text/plain", 3, "ab" * 32),
    ):
        with pytest.raises(SessionStoppedError):
            action()
    assert [type(e).__name__ for e in s.collect_events()] == ["Stopped"]


def test_stop_is_idempotent() -> None:
    s = started()
    s.stop(110.0)
    s.stop(120.0)
    events = s.collect_events()
    assert len(events) == 1
    assert s.state["ended_at"] == 110.0 and s.state["duration"] == 10.0


def test_every_status_move_is_checked_against_the_state_machine() -> None:
    for src in STATUSES:
        for dst in STATUSES:
            s = Session.from_state({**started().state, "status": src})
            if dst == src:
                s.change_status(1.0, dst)
                assert s.collect_events() == []
            elif dst in LEGAL_MOVES[src]:
                s.change_status(1.0, dst)
                assert s.state["status"] == dst
            else:
                with pytest.raises(IllegalStatusChangeError):
                    s.change_status(1.0, dst)
                assert s.collect_events() == [] and s.state["status"] == src


def test_a_deleted_session_refuses_everything_but_a_second_delete() -> None:
    s = started()
    s.delete(105.0)
    s.delete(106.0)
    assert len(s.collect_events()) == 1
    with pytest.raises(SessionDeletedError):
        s.change_status(107.0, "failed")
    with pytest.raises(SessionDeletedError):
        s.keep_alive(107.0)


def test_stopping_decides_the_final_status() -> None:
    queued = Session.start("q", 1.0, status="queued")
    queued.stop(2.0)
    assert queued.state["status"] == "cancelled"
    running = Session.start("r", 1.0)
    running.stop(2.0)
    assert running.state["status"] == "completed"
    failed = Session.start("f", 1.0)
    failed.change_status(1.5, "failed")
    failed.stop(2.0)
    assert failed.state["status"] == "failed"


def test_expiry_only_after_the_timeout_and_ends_at_the_last_keepalive() -> None:
    s = started()
    s.keep_alive(150.0, True, "/a")
    assert s.expire(200.0, timeout=60) is False
    assert s.expire(211.0, timeout=60) is True
    assert s.state["status"] == "timeout"
    assert s.state["ended_at"] == 150.0 and s.state["duration"] == 50.0


def test_visible_time_is_credited_to_the_path_until_the_next_signal() -> None:
    s = started()
    s.keep_alive(110.0, True, "/a")
    s.keep_alive(115.0, True, "/a")  # 5 s on /a
    s.keep_alive(120.0, True, "/b")  # 5 more on /a, then /b
    s.hide(123.0, "/b")  # 3 s on /b
    s.keep_alive(130.0, False, "/b")  # hidden time counts for nothing
    s.keep_alive(131.0, True, "/b")
    s.stop(135.0)  # 4 s on /b
    assert s.state["visible_time"] == {"/a": 10.0, "/b": 7.0}


def test_the_last_visible_keepalive_is_kept_while_hidden() -> None:
    s = started()
    assert (s.state["last_visible_at"], s.state["last_visible_path"]) == (None, None)
    s.keep_alive(110.0, True, "/a")
    s.keep_alive(115.0, False, "/b")  # hidden: the last visible one stays
    s.hide(118.0, "/c")
    assert (s.state["last_visible_at"], s.state["last_visible_path"]) == (110.0, "/a")
    s.keep_alive(120.0, True, "/d")
    assert (s.state["last_visible_at"], s.state["last_visible_path"]) == (120.0, "/d")


def test_events_survive_a_serialise_deserialise_round_trip() -> None:
    s = Session.start("s1", 1.0, name="n", tags={"k": "v"}, attributes={"os": "linux"})
    s.keep_alive(2.0, True, "/a")
    s.change_status(3.0, "failed", "assertion")
    s.update_details(4.0, {"remarks": "flaky"})
    s.record_metric(5.0, "test_a", {"cpu": 0.5}, "ctx")
    s.record_result(6.0, "failed", "test_a")
    s.annotate(7.0, "n1", kind="1", text="hello")
    s.stop(8.0)
    s.delete(9.0)
    for event in s.collect_events():
        payload = event.payload()
        again = orjson.loads(orjson.dumps(payload))
        assert again == payload
        cls = EVENT_CLASSES[type(event).__name__]
        assert cls.class_version >= 1


def test_ledger_refuses_unknown_sessions_and_duplicate_starts(container) -> None:
    ledger = container.ledger
    with pytest.raises(SessionNotFoundError):
        ledger.execute(c.KeepAlive(session_id="ghost"))
    ledger.execute(c.StartSession(session_id="s1"))
    with pytest.raises(SessionExistsError):
        ledger.execute(c.StartSession(session_id="s1"))
    with pytest.raises(ConcurrencyError):
        ledger.execute(c.KeepAlive(session_id="s1", expected_version=7))
    assert container.store.head_digest()[0] == 1


def test_a_compound_update_with_an_illegal_status_appends_nothing(container) -> None:
    ledger = container.ledger
    ledger.execute(c.StartSession(session_id="s1"))
    head = container.store.head_digest()
    with pytest.raises(IllegalStatusChangeError):
        ledger.execute(
            c.UpdateDetails(session_id="s1", changes={"name": "renamed"}, status="queued")
        )
    assert container.store.head_digest() == head
    assert ledger.load("s1")["name"] is None
