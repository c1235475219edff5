"""Background WAL checkpoints for a SQLite database written by one hot writer.

SQLite's default checkpoints inside the commit that takes the WAL past 1,000 pages: that
commit copies ~4 MB of pages into the database file and fsyncs it before its waiters are
answered. Measured on the bulk path, that was ~4 us of every event's ~30 us. Here the
writer's connection only checkpoints as a backstop (`BACKSTOP_PAGES`, should this thread
fall behind or die), and a thread with a connection of its own runs PASSIVE checkpoints
(they never block the writer or readers) at most every `INTERVAL_S` while commits come.
Durability is unchanged: a commit is durable once its WAL frames are synced, whoever copies
them later. The copy itself runs in SQLite with the GIL released.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

INTERVAL_S = 0.2  # at most five checkpoints a second, each copying what piled up
BACKSTOP_PAGES = 16000  # the writer checkpoints itself past ~64 MB of WAL


class Checkpointer:
    """One daemon thread per database file; `poke()` after a commit, `close()` at dispose."""

    def __init__(self, path: Path, interval_s: float = INTERVAL_S) -> None:
        self.path = path
        self.interval_s = interval_s
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.runs = 0  # checkpoints run (for tests and curiosity)
        self.failures = 0  # checkpoints the database refused (disk full, read-only)

    def poke(self) -> None:
        """A commit happened: checkpoint soon (starts the thread on first use)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(
                        target=self._run, name=f"checkpoint-{self.path.name}", daemon=True
                    )
                    self._thread.start()
        self._wake.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        self._wake.set()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            while True:
                self._wake.wait()
                if self._closed:
                    return
                # Let commits pile up for a while: one checkpoint copies a page rewritten by
                # many of them once.
                time.sleep(self.interval_s)
                self._wake.clear()
                if self._closed:
                    return
                # PASSIVE copies what no reader still needs and returns without waiting; the
                # next writer restarts a fully copied WAL from its beginning.
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.OperationalError as err:
                    # A full disk or a read-only file: the frames stay in the WAL (durable
                    # there), and the next commit's poke tries again once the fault clears.
                    self.failures += 1
                    log.warning("checkpoint of %s failed: %s", self.path.name, err)
                    continue
                self.runs += 1
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
