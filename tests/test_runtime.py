"""Pausing the cycle collector: pauses from several threads nest, and the collector comes
back as it was (on if it ran before the first pause, off if it did not). A settled service
process still frees reference cycles, and what it built at start is never traversed."""

from __future__ import annotations

import gc
import threading
import weakref

from persistence.runtime import paused_gc, settle_gc


def test_pauses_nest_across_threads_and_give_the_collector_back() -> None:
    gc.enable()
    try:
        inner_started, outer_may_end, inner_may_end = (threading.Event() for _ in range(3))
        seen: list[bool] = []

        def other_thread() -> None:
            with paused_gc():
                inner_started.set()
                inner_may_end.wait(5)
            seen.append(gc.isenabled())

        with paused_gc():
            t = threading.Thread(target=other_thread)
            t.start()
            assert inner_started.wait(5)
            outer_may_end.set()
        # The first pause ended while the other thread's still runs: still paused.
        assert not gc.isenabled()
        inner_may_end.set()
        t.join(5)
        assert seen == [True] and gc.isenabled()
        gc.disable()
        with paused_gc():
            pass
        assert not gc.isenabled()  # it did not run before, so it does not after
    finally:
        gc.enable()


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_a_settled_process_still_frees_cycles_and_skips_what_start_built() -> None:
    before = gc.get_threshold()
    gc.enable()
    built_at_start = Node()
    try:
        settle_gc()
        assert gc.get_freeze_count() > 0
        assert gc.is_tracked(built_at_start) and not any(
            o is built_at_start for o in gc.get_objects()
        )  # frozen: no collection looks at it again
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        # Allocation alone (no explicit collect) frees the cycle once the young generation
        # fills: the collector still runs, only less often.
        junk = [[] for _ in range(3 * gc.get_threshold()[0])]
        assert gone() is None
        del junk
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
