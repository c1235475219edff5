"""A one-line progress bar (events/s, ETA) for long replays; silent when not on a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(
        self,
        start: int,
        total_to: int,
        label: str = "replay",
        out: TextIO | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.out = out or sys.stderr
        self.enabled = self.out.isatty() if enabled is None else enabled
        self.start, self.end, self.label = start, total_to, label
        self.t0 = time.monotonic()
        self._last_draw = 0.0
        self.position = start

    def __call__(self, position: int) -> None:
        self.position = position
        now = time.monotonic()
        if self.enabled and (now - self._last_draw >= 0.1 or position >= self.end):
            self._last_draw = now
            self.out.write("\r" + self.line(now))
            self.out.flush()

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        done = self.position - self.start
        todo = max(1, self.end - self.start)
        frac = min(1.0, done / todo)
        rate = done / max(now - self.t0, 1e-9)
        left = (self.end - self.position) / rate if rate > 0 else 0.0
        bar = "#" * int(frac * 30)
        return (
            f"{self.label} [{bar:<30}] {frac:6.1%} {self.position:,}/{self.end:,} "
            f"{rate:,.0f} events/s ETA {_clock(left)}  "
        )

    def close(self) -> None:
        if self.enabled:
            self.out.write("\r" + self.line() + "\n")
            self.out.flush()


def _clock(seconds: float) -> str:
    s = int(max(0.0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
