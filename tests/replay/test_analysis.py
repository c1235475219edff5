"""The analysts' Python API (`from replay import open_ledger`): events, sessions and stats as
of a point from the same code as the CLI, the log head, DataFrames, a warning for a point
before the first event, and a handle that never writes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from api.cli import main
from replay import AsOfWarning, open_ledger
from tests.replay import make_history, point_cli_at


@pytest.fixture
def history(container: Any, clock: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    marks = make_history(container, clock)
    container.runner.catch_up()
    point_cli_at(container, monkeypatch)
    return marks


def db_path(container: Any) -> Path:
    return Path(container.settings.database_url.removeprefix("sqlite:///"))


def test_events_come_in_log_order_typed_with_leaf_index_and_opened_payload(container, history):
    with open_ledger(db_path(container)) as ledger:
        events = list(ledger.events())
        stops = list(ledger.events(types=["Stopped"]))
        day1 = list(ledger.events(until=history["day1_position"]))
    assert [e.position for e in events] == list(range(1, len(events) + 1))
    first = events[0]
    assert (first.leaf_index, first.type, first.stream_id, first.version) == (0, "Started", "s1", 1)
    assert first.payload["name"] == "login test"  # a personal value, opened by the store's read
    assert first.recorded_at.tzinfo is UTC and isinstance(first.recorded_at, datetime)
    assert len(first.hash) == 64
    assert {e.stream_id for e in stops} == {"s1", "s2"}
    assert day1[-1].position == history["day1_position"]


def test_stats_and_sessions_as_of_match_the_cli(container, history, capsys):
    when = history["day1_end"]  # epoch seconds (a float); a datetime keeps only microseconds
    assert main(["replay", "stats", "--as-of", repr(when), "--by", "status", "--format",
                 "json"]) == 0  # fmt: skip
    cli = json.loads(capsys.readouterr().out)
    with open_ledger() as ledger:  # LEDGER_DATABASE_URL, as the CLI
        stats = ledger.stats(as_of=when, by=["status"])
        sessions = ledger.sessions(as_of=when)
        now = ledger.sessions()
        web = ledger.stats(by=["project"], where={"project": "web"})
    assert stats.groups == cli["groups"] and stats.active_now == cli["active_now"]
    assert stats.point.position == history["day1_position"]
    assert [s["id"] for s in sessions] == ["s1", "s2"]
    assert sessions.rows[0]["status"] == "passed"
    assert isinstance(sessions.rows[0]["started_at"], datetime)
    assert "s5" not in {s["id"] for s in now}  # deleted: the list leaves it out
    assert [g["key"] for g in web.groups] == [{"project": "web"}]


def test_head_is_the_tree_size_and_root_a_checkpoint_signs(container, history):
    with open_ledger(container.settings.database_url) as ledger:
        head = ledger.head()
    size, root = container.store.tree.latest()
    assert (head.size, head.root) == (size, root)
    assert head.size == container.store.head_digest()[0]
    assert len(head.root_hex) == 64 and head.root_base64.endswith("=")


def test_dataframes_with_pandas_and_a_clear_error_without_the_package(
    container, history, monkeypatch
):
    pd = pytest.importorskip("pandas", reason="pandas is in the dev extra")
    with open_ledger(db_path(container)) as ledger:
        events = ledger.events().to_pandas()
        stats = ledger.stats(by=["day", "status"]).to_pandas()
        sessions = ledger.sessions().to_pandas()
        assert len(events) == container.store.head_digest()[0]
        assert list(events.columns[:3]) == ["position", "leaf_index", "stream_id"]
        assert str(events["recorded_at"].dt.tz) == "UTC"
        assert stats["count"].sum() == 5  # six sessions started, one deleted
        assert {"day", "status", "duration_p95"} <= set(stats.columns)
        assert set(sessions["id"]) == {"s1", "s2", "s3", "s4", "s6"}
        assert isinstance(pd.DataFrame, type)
        monkeypatch.setitem(sys.modules, "polars", None)  # as if not installed
        with pytest.raises(ImportError, match="pip install polars"):
            ledger.stats().to_polars()


def test_a_point_before_the_first_event_warns_and_answers_empty(container, history, capsys):
    with open_ledger(db_path(container)) as ledger:
        with pytest.warns(AsOfWarning, match="before the first event"):
            stats = ledger.stats(as_of="2001-01-01")
        with pytest.warns(AsOfWarning):
            assert list(ledger.events(until=datetime(2001, 1, 1, tzinfo=UTC))) == []
    assert stats.groups == [] and stats.point.position == 0
    for argv in (
        ["replay", "stats", "--as-of", "2001-01-01"],
        ["replay", "export", "--until", "2001-01-01"],
        ["replay", "run", "examples/my_projection.py", "--until", "0"],
    ):
        assert main(argv) == 0
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if "warning" in ln]
        assert len(lines) == 1 and "lies before the first event" in lines[0], err
    assert main(["replay", "stats", "--as-of", "2999-01-01"]) == 0  # later than the head: no
    assert "warning" not in capsys.readouterr().err


def test_the_handle_never_writes(container, history, tmp_path):
    db = db_path(container)
    container.close()  # the writer gone: only the handle touches the files now
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    views = Path(container.settings.views_url.removeprefix("sqlite:///"))
    views_before = hashlib.sha256(views.read_bytes()).hexdigest()
    with open_ledger(db) as ledger:
        list(ledger.events())
        ledger.stats(by=["day", "status"], as_of=history["day1_end"])
        ledger.sessions(as_of=3)
        ledger.session("s1", version=2)
        ledger.head()
        with (
            pytest.raises(OperationalError, match=r"readonly"),
            ledger.store.read_engine.begin() as conn,
        ):
            conn.execute(text("DELETE FROM idempotency_keys"))
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert hashlib.sha256(views.read_bytes()).hexdigest() == views_before
    assert not list(tmp_path.glob("ledger-replay-*"))


def test_the_notebook_example_runs_against_a_small_ledger(container, history):
    root = Path(__file__).resolve().parents[2]
    db = db_path(container)
    size = container.store.head_digest()[0]
    container.close()
    done = subprocess.run(
        [sys.executable, str(root / "examples" / "analysis.py"), str(db), "2023-11-15"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"log head: {size} events, root " in out
    assert "events by type:" in out and "'Started': 6" in out
    assert "first event: 1 Started s1" in out
    assert "2023-11-14 passed 1 sessions" in out  # stats as of the second day's start
    assert "s2" in out and "s3" not in out  # the sessions as of then, in a DataFrame
