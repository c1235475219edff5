"""The second bulk loader: a fresh interpreter (`python -m projections.second_loader`, this
module's entry point) that takes ranges of streams beside the first loader, writes their rows
into the same views database and hands its in-memory sums back for the first to add up and
write once (`load_parallel` starts it; `_load_child` is what it runs)."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from persistence.schema import make_engine
from persistence.store import EventStore
from projections.loader import Claims, Range, load_part
from projections.projection import BulkShare, Projection, bulk_share
from projections.tables import ViewTables

if TYPE_CHECKING:
    from projections.runner import ProjectionRunner

# Where `python -m projections.second_loader` finds this package (put on the child's path).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The module the child runs.
_ENTRY = "projections.second_loader"


def load_parallel(
    runner: ProjectionRunner,
    shares: Sequence[BulkShare],
    target: int,
    ranges: list[Range],
    progress: Callable[[int], None] | None,
    sessions_per_batch: int,
) -> None:
    """Load the ranges of streams with a child process, each loader claiming the next
    free range as it goes (`Claims`) and writing its batches into our tables (SQLite
    serialises the short transactions; on PostgreSQL they run side by side); the child's
    sums are added to our `shares`. Taking ranges as they go, not halves fixed in advance,
    the two end together whichever is slower (the child starts half a second late, and a
    shared machine's cores do not keep one speed). They share no stream, so their rows
    never collide."""
    t = runner.tables
    views_url = runner.engine.url.render_as_string(hide_password=False)
    kinds = [type(v) for v in runner.views]
    directory = tempfile.mkdtemp(prefix="ledger-load-")
    job = (
        runner.store.url, views_url, t.suffix, kinds, target, ranges, directory,
        sessions_per_batch,
    )  # fmt: skip
    try:
        child = _spawn()
        try:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(pickle.dumps(job, pickle.HIGHEST_PROTOCOL))
            child.stdin.close()
            load_part(
                runner.store, runner.engine, shares, target,
                Claims(ranges, directory), sessions_per_batch, progress,
            )  # fmt: skip
            out = _read_answer(child.stdout)
            child.wait()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if child.returncode != 0:
        raise RuntimeError(f"the second loader failed (exit {child.returncode})")
    if len(out) < 8 or len(out) - 8 != int.from_bytes(out[:8], "big"):
        raise RuntimeError(f"the second loader's answer was cut short ({len(out)} bytes)")
    # A whole answer: the child's rows are committed, and its sums are here.
    for share, part in zip(shares, pickle.loads(out[8:]), strict=True):
        if part is not None:
            share.merge(part)


def _spawn() -> subprocess.Popen[bytes]:
    """A fresh interpreter, not a fork: no inherited threads, locks or connections, and no
    re-import of whatever script started us (multiprocessing's spawn would do that). Same
    working directory (relative SQLite paths name the same files), our package first on
    its path."""
    path = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", _ENTRY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": path},
    )


def _read_answer(pipe: Any) -> bytes:
    """The second loader's length-prefixed answer, read to its end (a read can come back
    short, e.g. when a profiler stops the child mid-write)."""
    out = b""
    need = 8
    while len(out) < need:
        chunk = pipe.read(need - len(out))
        if not chunk:
            break
        out += chunk
        if need == 8 and len(out) >= 8:
            need = 8 + int.from_bytes(out[:8], "big")
    return out


def _load_child(job: bytes) -> bytes:
    """The second loader: the ranges it claims, into the same tables of the same views
    database (each batch its own short write transaction, like the parent's); returns its
    views' sums (None for a view that wrote as it went), in the views' order, pickled, for
    the parent to add to its own and write once."""
    store_url, views_url, suffix, kinds, until, ranges, directory, sessions_per_batch = (
        pickle.loads(job)
    )
    store = EventStore(store_url)
    # The same page cache as the first loader's in the benchmark and the live worker's
    # (`for_url`): both loaders insert at random places of the detail, list and tag keys.
    engine = make_engine(views_url, immediate=True, durable=False, cache_mb=64)
    try:
        t = ViewTables(suffix, bulk=True)
        views: list[Projection] = [k() for k in kinds]
        shares = [bulk_share(v, t) for v in views]
        load_part(store, engine, shares, until, Claims(ranges, directory), sessions_per_batch, None)
        return pickle.dumps([s.result() for s in shares], pickle.HIGHEST_PROTOCOL)
    finally:
        engine.dispose()
        store.dispose()


if __name__ == "__main__":
    answer = _load_child(sys.stdin.buffer.read())
    # Length first: the parent can tell a whole answer from one cut short.
    sys.stdout.buffer.write(len(answer).to_bytes(8, "big") + answer)
    sys.stdout.buffer.flush()
