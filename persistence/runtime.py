"""Process-wide runtime switches shared by the writer, the bulk parse and the view loads.

Today one: pausing the cycle collector around work that allocates many short-lived,
acyclic objects. Pauses from several threads nest, so one ending does not switch the
collector back on under another.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cycle collector while a block allocates many short-lived, acyclic objects
    (a commit group, a bulk body's commands, a view load's open sessions). Collecting while
    they lived re-traversed them (and, in full collections, the whole heap) for nothing: a
    tenth of the writer's time, a third of parsing a bulk body and ~12 % of a load's CPU,
    when measured. The collector resumes (if it ran before) when the last pause ends."""
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


# Young objects collected every 20,000 net allocations instead of 700: a request, a commit
# group or a view batch allocates thousands of short-lived objects, and at 700 the collector
# ran several times per group, each time re-traversing what the group still held.
SERVICE_GC_THRESHOLD = (20_000, 10, 10)


def settle_gc() -> None:
    """For a long-running process once it has started (the server, the projection worker):
    freeze what start-up built (modules, the app, its routes: never garbage, but traversed
    by every full collection) and collect the young generation less often. Cycles are still
    collected. Measured on the keepalive load: the server's collector time fell from ~0.9 s
    to ~0.2 s per 55,000 requests."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVICE_GC_THRESHOLD)
