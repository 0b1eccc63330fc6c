"""Process-wide settings of a long-running stationmon process: `stationmon run` calls `settle_heap` once
its service is built, and `bench/bench_evaluate.py` calls the same function before it times anything.
"""

from __future__ import annotations

import gc

__all__ = ["GC_THRESHOLDS", "settle_heap"]

# Python's defaults (700, 10, 10) run a young collection every 700 container allocations. Ingesting a
# district's readings keeps a minute of history per series young for a while, and every young collection
# walks all of it: at 100,000 loops ~25 ms of each evaluation tick and ~290 ms of a tick's ingestion went
# to collections that freed nothing (bench_evaluate.py's cycle, 12-03); with these, none in the tick and
# ~70 ms in the ingestion. Garbage without cycles is freed by reference counting whatever the thresholds.
GC_THRESHOLDS = (10_000, 50, 100)


def settle_heap() -> None:
    """Freeze what was built so far (it lives as long as the process, out of the collector's way) and
    raise the collector's thresholds to `GC_THRESHOLDS`."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
