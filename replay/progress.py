"""The one progress bar of the long replay commands (rebuild, verify, export, report, stats
and any later one such as copy): rich's bar with events/s and a real ETA, on stderr, silent
when stderr is not a terminal or the command was given `--quiet`.

The ETA is the time left at the average rate so far (`eta_seconds`). The bar this replaced
printed "ETA 0:00:00" whenever it knew nothing: before the first report its rate was 0 and
it took 0 s as the time left, and its closing line, the one left on the terminal, always
ended in "ETA 0:00:00". The loaders report once per range of ~20,000 events, so on a log
of a range or two the bar went straight from nothing to that closing line. Now an unknown
ETA shows as "-:--:--", the bar redraws between reports (elapsed time keeps moving), and
the closing line gives the time the work took. Work after the counted part (the stats
cells written at the end, the swap of a rebuild) shows as a phase with its elapsed time.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

_quiet = False


def set_quiet(quiet: bool) -> None:
    """`--quiet`: no bar at all, even on a terminal (the CLI sets it for each command)."""
    global _quiet
    _quiet = quiet


def eta_seconds(done: float, total: float, elapsed: float) -> float | None:
    """Seconds left for `total - done` units at the average rate so far; None while it
    cannot be known (nothing done yet, or no time passed), never a made-up 0."""
    if done <= 0 or elapsed <= 0:
        return None
    return max(0.0, total - done) * elapsed / done


def clock(seconds: float | None) -> str:
    """H:MM:SS, or -:--:-- when unknown."""
    if seconds is None:
        return "-:--:--"
    s = int(max(0.0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class EtaColumn(ProgressColumn):
    """ETA while running ("-:--:--" until it can be known), the time taken once finished."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        if task.finished:
            return Text(f"in {clock(elapsed)}", style="progress.elapsed")
        if task.total is None:
            return Text(clock(elapsed), style="progress.elapsed")
        left = eta_seconds(task.completed, task.total, elapsed or 0.0)
        return Text(f"ETA {clock(left)}", style="progress.remaining")


class CountColumn(ProgressColumn):
    """The share done and position/end (a phase has neither)."""

    def render(self, task: Task) -> Text:
        if "of" not in task.fields:
            return Text("")
        return Text(f"{task.percentage:>3.0f}% {task.fields['done']:,}/{task.fields['of']:,}")


class RateColumn(ProgressColumn):
    """Average units per second since the start (the rate the ETA is computed from)."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        if not elapsed or task.completed <= 0 or "unit" not in task.fields:
            return Text("")
        return Text(f"{task.completed / elapsed:,.0f} {task.fields.get('unit', '')}/s")


class Progress:
    """A bar from position `start` to `total_to`, fed positions: `bar(position)` (the
    loaders' progress callback). `phase(label)` shows later, uncounted work."""

    def __init__(
        self,
        start: int,
        total_to: int,
        label: str = "replay",
        out: TextIO | None = None,
        enabled: bool | None = None,
        unit: str = "events",
        get_time: Callable[[], float] | None = None,
    ) -> None:
        out = out or sys.stderr
        self.enabled = (out.isatty() and not _quiet) if enabled is None else enabled
        self.start, self.end = start, total_to
        self._bar = RichProgress(
            SpinnerColumn(finished_text=" "),
            TextColumn("{task.description}"),
            BarColumn(),
            CountColumn(),
            RateColumn(),
            EtaColumn(),
            console=Console(file=out, force_terminal=True if enabled else None),
            disable=not self.enabled,
            auto_refresh=get_time is None,  # a test's clock: draws only when told
            get_time=get_time,
            redirect_stdout=False,  # a command's own output is not the bar's
            redirect_stderr=False,
        )
        self._task = self._bar.add_task(
            label, total=max(0, total_to - start), done=start, of=total_to, unit=unit
        )
        self._phase: Any = None
        self._bar.start()

    def __call__(self, position: int) -> None:
        self._bar.update(self._task, completed=position - self.start, done=position)

    def advance(self, n: int) -> None:
        """`n` more units done (for callers that count rather than hold positions)."""
        task = self._bar.tasks[self._task]
        self(self.start + int(task.completed) + n)

    def phase(self, label: str) -> None:
        """The counted work is done; show `label` with its elapsed time until `close`."""
        self._finish_current()
        self._phase = self._bar.add_task(label, total=None)

    def line(self) -> str:
        """The bar as plain text (what a terminal shows, without colours)."""
        console = Console(width=120, color_system=None, record=True, file=io.StringIO())
        console.print(self._bar.make_tasks_table(self._bar.tasks))
        return console.export_text().rstrip()

    def _finish_current(self) -> None:
        task = self._bar.tasks[self._task]
        if task.total is not None:
            self._bar.update(self._task, completed=task.total, done=self.end)
        if self._phase is not None:
            self._bar.update(self._phase, total=1, completed=1)

    def close(self) -> None:
        self._finish_current()
        self._bar.stop()


@contextmanager
def progress_bar(
    total_to: int, label: str, start: int = 0, unit: str = "events"
) -> Iterator[Progress]:
    """A `Progress` for the length of a `with` block, closed however the block ends."""
    bar = Progress(start, total_to, label, unit=unit)
    try:
        yield bar
    finally:
        bar.close()
