"""`ledger replay erase SESSION`: destroy a session's personal values (persistence/erasure.py),
bring the views past the erasure so they no longer show them, and say what was and was not
erased. The one replay tool that appends to the log: the `Erased` event."""

from __future__ import annotations

import argparse
import time

from domain.errors import LedgerError
from persistence.blobs import BlobStore
from persistence.erasure import Erasure, compact, erase
from persistence.settings import Settings
from persistence.store import EventStore
from projections.runner import ProjectionRunner
from replay.source import ReplayError

# Exit status when the erasure happened but left something behind (values logged in clear,
# a blob another session shares, a write-ahead log a reader held).
PARTIAL = 3


def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    if not args.yes:
        raise ReplayError(
            f"erasing destroys {args.id}'s personal values for good; run again with --yes"
        )
    store = EventStore(settings.database_url, settings.personal_keys)
    try:
        store.create_schema()
        try:
            done = erase(store, BlobStore(settings.blob_dir), args.id, time.time, args.by)
        except LedgerError as err:
            raise ReplayError(str(err)) from err
        runner = ProjectionRunner.for_url(store, settings.views_url)
        try:
            runner.create_schema()
            runner.catch_up(until=done.position)
            done.compacted = compact(runner.engine) and done.compacted
        finally:
            runner.close()
            runner.engine.dispose()
    finally:
        store.dispose()
    print(report(done))
    return 0 if done.complete else PARTIAL


def report(done: Erasure) -> str:
    lines = [
        f"erased {done.session_id}: {done.values} sealed value(s) destroyed, "
        f"{len(done.blobs_destroyed)} blob(s) overwritten and removed; "
        f"the erasure is event {done.position} of the log",
    ]
    if done.blobs_kept:
        lines.append(f"kept {len(done.blobs_kept)} blob(s) another session also names:")
        lines += [f"  {sha}" for sha in done.blobs_kept]
    if done.in_clear:
        lines.append(
            f"NOT erased: {len(done.in_clear)} personal value(s) logged in clear (before "
            "sealing, or under a key named personal later); only a rewrite of the log could "
            "remove them:"
        )
        lines += [f"  position {p}: {slot}" for p, slot in done.in_clear]
    if not done.compacted:
        lines.append(
            "a reader held SQLite's write-ahead log: earlier page copies stay in it until "
            "the next checkpoint (run this again, or stop the server, to finish)"
        )
    return "\n".join(lines)
