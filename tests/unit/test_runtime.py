"""`settle_heap`: what `stationmon run` (and bench_evaluate.py) does to the garbage collector."""

from __future__ import annotations

import gc

from stationmon.runtime import GC_THRESHOLDS, settle_heap


def test_settle_heap_freezes_what_was_built_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    built = [[i] for i in range(1000)]  # containers built at startup: frozen, never walked again
    try:
        settle_heap()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > before[0]  # fewer young collections than Python's default
        assert gc.get_freeze_count() >= len(built)
        assert all(o is not built for g in range(3) for o in gc.get_objects(g))  # in no generation: frozen
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
