"""Pausing the cycle collector: pauses from several threads nest, and the collector comes
back as it was (on if it ran before the first pause, off if it did not)."""

from __future__ import annotations

import gc
import threading

from domain.runtime import paused_gc


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
