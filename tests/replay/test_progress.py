"""The replay commands' progress bar: a real ETA (unknown until something is done, then the
time left at the average rate; never a made-up 0:00:00), the time taken once done, later
phases with their own time, and silence off a terminal or with --quiet. The clock is the
test's own: nothing here waits."""

from __future__ import annotations

import io
from typing import Any

import pytest

from api.cli import main
from replay.progress import Progress, eta_seconds, set_quiet
from tests.replay import make_history, point_cli_at


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_eta_is_unknown_until_work_is_done_then_the_time_left_at_the_average_rate():
    assert eta_seconds(0, 1000, 5.0) is None  # the old bar said 0 s left here
    assert eta_seconds(250, 1000, 0.0) is None
    assert eta_seconds(250, 1000, 5.0) == pytest.approx(15.0)
    assert eta_seconds(900, 1000, 9.0) == pytest.approx(1.0)
    assert eta_seconds(1000, 1000, 9.0) == 0.0


def test_the_bar_shows_an_unknown_eta_then_the_real_one_then_the_time_taken():
    clock = Clock()
    bar = Progress(0, 1000, "rebuild", out=io.StringIO(), enabled=True, get_time=clock)
    assert "ETA -:--:--" in bar.line() and "0/1,000" in bar.line()
    clock.now += 5
    bar(250)
    line = bar.line()
    assert "25%" in line and "250/1,000" in line
    assert "50 events/s" in line and "ETA 0:00:15" in line
    clock.now += 3
    bar.close()
    done = bar.line()
    assert "1,000/1,000" in done and "in 0:00:08" in done and "ETA" not in done


def test_a_catch_up_counts_from_where_it_starts():
    clock = Clock()
    bar = Progress(500, 1500, "catch up", out=io.StringIO(), enabled=True, get_time=clock)
    clock.now += 10
    bar(750)  # a quarter of the way: 30 s left at 25 events/s
    assert "750/1,500" in bar.line() and "ETA 0:00:30" in bar.line()
    bar.close()


def test_a_later_phase_shows_its_own_elapsed_time():
    clock = Clock()
    bar = Progress(0, 100, "rebuild", out=io.StringIO(), enabled=True, get_time=clock)
    clock.now += 2
    bar(100)
    bar.phase("catch up and swap")
    clock.now += 7
    running = bar.line()
    assert "catch up and swap" in running and "0:00:07" in running
    bar.close()
    lines = bar.line().splitlines()
    assert "in 0:00:02" in lines[0] and "in 0:00:07" in lines[1]


def test_silent_off_a_terminal_and_with_quiet():
    off = io.StringIO()
    bar = Progress(0, 10, out=off)  # a StringIO is not a terminal
    bar(5)
    bar.close()
    assert off.getvalue() == ""
    tty = Terminal()
    try:
        set_quiet(True)
        bar = Progress(0, 10, out=tty)
        bar(5)
        bar.close()
    finally:
        set_quiet(False)
    assert tty.getvalue() == ""
    bar = Progress(0, 10, out=tty)
    bar(10)
    bar.close()
    assert "10/10" in tty.getvalue()


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", "verify", "--quiet"],
        ["replay", "export", "-q", "--out", "{tmp}/e.ndjson"],
        ["replay", "report", "--quiet", "--out", "{tmp}/r.html"],
        ["replay", "rebuild", "--quiet"],
        ["replay", "stats", "--quiet"],
    ],
)
def test_long_commands_take_quiet_and_print_no_bar_off_a_terminal(
    argv: list[str], container: Any, clock: Any, monkeypatch: Any, tmp_path: Any, capsys: Any
):
    make_history(container, clock)
    point_cli_at(container, monkeypatch)
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 0
    err = capsys.readouterr().err
    assert "━" not in err and "ETA" not in err
