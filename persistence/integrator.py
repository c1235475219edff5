"""The thread that keeps the log's Merkle tree integrated: it stores the nodes of the events
appended since its last pass (persistence/tree.py `LogTree.integrate`), off the writer's
path. The projection worker's process runs one (`ProjectionRunner.run_forever`; the API
process in thread mode, api/bootstrap.py), apart from the views' loop, so that the tree keeps
up with the log however long a batch of the views takes; the writer integrates only as a
backstop (persistence/store.py `TREE_BACKSTOP`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from persistence.store import EventStore
from persistence.tree import CATCH_UP_CHUNK

log = logging.getLogger(__name__)

INTERVAL_S = 0.05  # between passes that found the tree caught up: ~20 checks a second
RETRY_S = 1.0  # after a pass that failed


class TreeIntegrator:
    """`start()` a daemon thread, `close()` to stop it. It integrates only while `active()`
    says so (the leading worker, where workers elect one)."""

    def __init__(
        self,
        store: EventStore,
        active: Callable[[], bool] = lambda: True,
        interval_s: float = INTERVAL_S,
    ) -> None:
        self.store, self.active, self.interval_s = store, active, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0  # passes that raised (logged; for tests and curiosity)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="tree-integrator", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        covered = 0  # what the stored nodes covered after the last pass
        while not self._stop.is_set():
            wait = self.interval_s
            try:
                if self.active():
                    before, covered = covered, self.store.integrate_tree()
                    if covered - before >= CATCH_UP_CHUNK:
                        wait = 0.0  # a full chunk (or more): more may be waiting
            except Exception:
                # A database that cannot write now, say: tried again, and the writer's
                # backstop bounds the lag meanwhile.
                self.failures += 1
                log.warning("integrating the log's tree failed; will retry", exc_info=True)
                wait = RETRY_S
            if wait:
                self._stop.wait(wait)
