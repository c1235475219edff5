"""The expiry sweeper: sessions with no keepalive within the timeout get an Expired event,
appended by the server. The aggregate decides (it re-checks the last keepalive)."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select

from api.bootstrap import Container
from domain import commands as c
from domain.errors import LedgerError
from persistence.schema import reading

log = logging.getLogger(__name__)


class ExpirySweeper:
    def __init__(self, container: Container) -> None:
        self.container = container
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="expiry-sweeper", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def sweep(self) -> int:
        """Expire every active session silent for longer than the timeout; returns how many."""
        ct = self.container
        timeout = ct.settings.session_timeout
        cutoff = ct.ledger.clock() - timeout
        lst = ct.runner.tables.list
        with reading(ct.runner.engine) as conn:
            stale = [
                r[0]
                for r in conn.execute(
                    select(lst.c.session_id)
                    .where(lst.c.active == 1, lst.c.last_seen_at < cutoff)
                    .limit(5000)
                )
            ]
        if not stale:
            return 0
        outcomes = ct.ledger.execute_many(
            [c.ExpireSession(session_id=sid, timeout=timeout) for sid in stale]
        )
        return sum(1 for o in outcomes if not isinstance(o, LedgerError) and o.appended)

    def _run(self) -> None:
        while not self._stop.wait(self.container.settings.expiry_interval):
            try:
                self.sweep()
            except Exception:
                log.exception("expiry sweep failed; will retry")
