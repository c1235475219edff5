"""Stats and sessions as of a past point, and the auditors' stream and log readers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api.cli import main
from projections import queries
from projections.present import iso
from replay.asof import stats_as_of
from replay.source import open_store, resolve_point
from tests.replay import make_history, point_cli_at


@pytest.fixture
def marks(container: Any, clock: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    out = make_history(container, clock)
    container.runner.catch_up()
    point_cli_at(container, monkeypatch)
    return out


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["replay", *argv])
    got = capsys.readouterr()
    return code, got.out, got.err


def ok(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    return out


def live_stats(container: Any, q: queries.StatsQuery) -> dict[str, Any]:
    with container.runner.engine.connect() as conn:
        return queries.stats(conn, container.runner.tables, q)


def test_stats_now_equal_the_live_view(container, marks, capsys):
    code, out, _ = cli(capsys, "stats", "--by", "status", "--format", "json")
    doc = json.loads(out)
    assert code == 0
    assert doc["as_of"] == {"position": 23, "time": None}
    del doc["as_of"]
    assert doc == live_stats(container, queries.StatsQuery(group_by=("status",)))


def test_stats_as_of_a_time_show_that_day(marks, capsys):
    day1 = iso(marks["day1_end"] + 1)  # the next event comes a day later
    out = ok(capsys, "stats", "--as-of", day1, "--by", "day,status", "--format", "json")
    doc = json.loads(out)
    assert doc["as_of"]["position"] == marks["day1_position"]
    keys = [(g["key"]["day"], g["key"]["status"], g["count"]) for g in doc["groups"]]
    assert keys == [("2023-11-14", "passed", 1), ("2023-11-14", "running", 1)]
    assert doc["active_now"] == 1
    # A position gives the same answer as the time it stands for.
    by_pos = ok(
        capsys,
        "stats",
        "--as-of",
        str(marks["day1_position"]),
        "--by",
        "day,status",
        "--format",
        "json",
    )
    assert json.loads(by_pos)["groups"] == doc["groups"]


def test_stats_table_and_csv_formats(marks, capsys):
    out = ok(capsys, "stats", "--by", "browser")
    lines = out.splitlines()
    assert lines[0].split() == ["browser", "sessions", "ended", "mean_s", "p50_s", "p95_s", "max_s"]
    assert any(line.split()[:3] == ["chrome", "3", "2"] for line in lines)
    assert lines[-1].startswith("active now: 2")
    out = ok(capsys, "stats", "--by", "project", "--where", "browser=chrome", "--format", "csv")
    assert out.splitlines()[:2] == [
        "project,sessions,ended,mean_s,p50_s,p95_s,max_s",
        "web,3,2,51.003499,0.0,102.006999,102.006999",
    ]


def test_stats_reject_unknown_dimensions_and_future_positions(marks, capsys):
    assert cli(capsys, "stats", "--by", "colour")[0] == 2
    code, _, err = cli(capsys, "stats", "--as-of", "999")
    assert code == 2 and "past the log head (23)" in err
    code, _, err = cli(capsys, "stats", "--as-of", "yesterday-ish")
    assert code == 2 and "not a position or time" in err


def test_session_as_of_version_and_position(marks, capsys):
    out = ok(capsys, "session", "s1", "--version", "3")
    doc = json.loads(out)
    assert (doc["version"], doc["status"], doc["keepalives"], doc["active"]) == (
        3,
        "running",
        2,
        True,
    )
    out = ok(capsys, "session", "s1", "--as-of", "8")
    assert json.loads(out)["status"] == "completed"
    out = ok(capsys, "session", "s1")
    assert json.loads(out)["status"] == "passed"
    out = ok(capsys, "session", "s5")
    assert json.loads(out)["deleted"] is True
    code, _, err = cli(capsys, "session", "s3", "--as-of", str(marks["day1_position"]))
    assert code == 2 and f"no session s3 at position {marks['day1_position']}" in err


def test_stream_shows_every_event_with_its_hash(container, marks, capsys):
    out = ok(capsys, "stream", "s2", "--json")
    events = [json.loads(line) for line in out.splitlines()]
    stored = container.store.load_stream("s2")
    assert [(e["position"], e["version"], e["type"], e["hash"]) for e in events] == [
        (s.position, s.version, s.type, s.hash.hex()) for s in stored
    ]
    assert events[0]["recorded_at"] == iso(stored[0].recorded_at)
    text = ok(capsys, "stream", "s2")
    assert stored[-1].hash.hex() in text and '"to_status":"failed"' in text
    assert cli(capsys, "stream", "nobody")[0] == 2


def test_log_pages_and_filters_by_type(marks, capsys):
    out = ok(capsys, "log", "--after", "20", "--json")
    assert [json.loads(x)["position"] for x in out.splitlines()] == [21, 22, 23]
    out = ok(capsys, "log", "--type", "Started", "--limit", "2", "--json")
    assert [json.loads(x)["stream_id"] for x in out.splitlines()] == ["s1", "s2"]
    out = ok(capsys, "log", "--type", "Stopped")
    assert out.count("Stopped") == 2
    assert cli(capsys, "log", "--type", "Exploded")[0] == 2


def test_readers_cannot_write(container, marks):
    store = open_store(container.settings)
    try:
        with (
            pytest.raises(Exception, match=r"readonly|read-only|query_only"),
            store.read_engine.begin() as conn,
        ):
            conn.exec_driver_sql("DELETE FROM idempotency_keys")
        assert resolve_point(store, "now").position == 23
        q = queries.StatsQuery()
        assert stats_as_of(store, resolve_point(store, None), q) == live_stats(container, q)
    finally:
        store.dispose()
