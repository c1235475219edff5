"""The composition root: builds the store, ledger, projection runner and blob store from
settings. Tests, the server and the replay tools all get their parts from here."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from persistence.blobs import BlobStore
from persistence.integrator import TreeIntegrator
from persistence.ledger import Ledger
from persistence.settings import Settings
from persistence.signing import LogKeyFile
from persistence.store import EventStore
from projections.runner import ProjectionRunner


@dataclass
class Container:
    settings: Settings
    store: EventStore
    ledger: Ledger
    runner: ProjectionRunner
    blobs: BlobStore
    log_keys: LogKeyFile
    # The views the queries read: `runner`'s, or a read replica's (LEDGER_VIEWS_READ_URL),
    # which nothing here writes: no schema is made there and no worker runs on it.
    reader: ProjectionRunner
    # The log's tree integrated beside the views: in the worker's process, or here when the
    # worker is a thread of this process (persistence/integrator.py).
    integrator: TreeIntegrator | None = None

    def start(self) -> None:
        self.log_keys.keys()  # the log's signing key exists from the first start on
        self.ledger.start()
        if self.settings.projection_worker == "thread":
            self.runner.start()
            self.integrator = TreeIntegrator(self.store)
            self.integrator.start()

    def close(self) -> None:
        self.ledger.close()
        self.runner.close()
        if self.integrator is not None:
            self.integrator.close()
        self.store.dispose()
        self.runner.engine.dispose()
        self.reader.engine.dispose()


def bootstrap(settings: Settings, clock: Callable[[], float] = time.time) -> Container:
    store = EventStore(settings.database_url, settings.personal_keys)
    store.create_schema()
    ledger = Ledger(
        store,
        clock,
        cache_size=settings.cache_size,
        limits=settings.command_limits,
        window=settings.event_time_window,
        session_timeout=settings.session_timeout,
    )
    runner = ProjectionRunner.for_url(store, settings.views_url)
    runner.create_schema()
    ledger.listeners.append(runner.wake)
    log_keys = LogKeyFile(settings.log_key, settings.log_origin or None)
    reader = runner
    if settings.views_read_url != settings.views_url:
        reader = ProjectionRunner.for_url(store, settings.views_read_url)
    blobs = BlobStore(settings.blob_dir)
    return Container(settings, store, ledger, runner, blobs, log_keys, reader)
