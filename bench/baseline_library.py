"""The eventsourcing-library baseline: events/s of `eventsourcing`'s Application with one
`save` per event, on SQLite or on the library's PostgreSQL recorder: the "just use the
library" alternative the ledger must beat."""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class BenchSession(Aggregate):
    """A minimal session aggregate for the library baseline."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = ""
        self.keepalives = 0

    @event("KeptAlive")
    def keep_alive(self, path: str) -> None:
        self.path = path
        self.keepalives += 1


def postgres_env(host: str, port: int, dbname: str, user: str) -> dict[str, str]:
    """The library's settings for its PostgreSQL recorder (`eventsourcing.postgres`)."""
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": str(port),
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_USER": user,
        "POSTGRES_PASSWORD": "",  # the bench's cluster trusts loopback
    }


def measure_eventsourcing_lib(
    n_events: int = 20_000,
    *,
    max_duration_s: float = 20.0,
    db_dir: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One `keep_alive` + `app.save(agg)` per event, up to `n_events` or `max_duration_s`,
    on the library's persistence `env` (`postgres_env`), by default SQLite in a temporary
    directory."""
    with tempfile.TemporaryDirectory(dir=db_dir, prefix="bench-es-") as d:
        app = Application(
            env=env
            or {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(Path(d) / "es.db"),
            }
        )
        try:
            agg = BenchSession("bench")
            app.save(agg)
            done = 0
            t0 = time.perf_counter()
            deadline = t0 + max_duration_s
            while done < n_events:
                agg.keep_alive("/p")
                app.save(agg)
                done += 1
                # The clock every 64 saves: a read per save would be part of the measurement.
                if done % 64 == 0 and time.perf_counter() >= deadline:
                    break
            secs = time.perf_counter() - t0
            assert agg.version == done + 1
        finally:
            with contextlib.suppress(Exception):
                app.close()
    return {"rate": done / secs if secs > 0 else 0.0, "events": done, "seconds": secs}


def eventsourcing_lib_rate(n_events: int = 20_000) -> float:
    """Events/s of eventsourcing's Application + SQLite, one save per event."""
    return float(measure_eventsourcing_lib(n_events)["rate"])
