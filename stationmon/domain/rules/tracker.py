"""Flatline and rate-of-change detection over many series at once, with O(1) state per series."""

from __future__ import annotations

import numpy as np

from stationmon.domain.heating import FloatArray
from stationmon.domain.rules.faults import FAULT_FLATLINE, FAULT_RATE, BoolArray, FaultArray

__all__ = ["SensorTracker"]


class SensorTracker:
    """Flatline and rate-of-change detection for n series.

    Flatline: the value has stayed within `tolerance` of an anchor for `window_s` (the anchor moves
    whenever a sample leaves that band), so max - min < 2 x tolerance over the window, seen in at least
    `MIN_FLAT_SAMPLES` samples with no gap longer than a quarter of the window: two readings either
    side of an outage are no evidence of a stuck sensor. Rate: the last step between two samples,
    spread over at least `RATE_WINDOW_S`, was faster than `max_rate_per_min`; it holds until the next
    sample.
    """

    MIN_FLAT_SAMPLES = 4
    RATE_WINDOW_S = 60.0

    def __init__(self, n: int, *, window_s: float, tolerance: float, max_rate_per_min: float | None) -> None:
        self.window_s = window_s
        self.tolerance = tolerance
        self.max_rate_per_min = max_rate_per_min
        self.last_value = np.full(n, np.nan)
        self.last_ts = np.full(n, np.nan)
        self.anchor = np.full(n, np.nan)
        self.anchor_ts = np.full(n, np.nan)
        self.rate_fault = np.zeros(n, dtype=bool)
        self.samples = np.zeros(n, dtype=np.int64)  # samples since the anchor was set
        self.max_gap_s = window_s / 4

    def update(self, value: FloatArray, ts: FloatArray, usable: BoolArray) -> FaultArray:
        """Take the latest samples (only newer ones change state); return flatline/rate bits."""
        with np.errstate(invalid="ignore", divide="ignore"):
            new = ~np.isnan(ts) & ~(ts <= self.last_ts)
            if self.max_rate_per_min is not None:
                step_s = ts - self.last_ts
                # over at least a minute: at a 1 s poll a 0.1 K step of an int16 x 0.1 probe is
                # 6 K/min between two samples, but only 0.1 K/min of real change
                rate = np.abs(value - self.last_value) / np.maximum(step_s, self.RATE_WINDOW_S) * 60.0
                jumped = usable & (step_s > 0) & (rate > self.max_rate_per_min)
                self.rate_fault = np.where(new, jumped, self.rate_fault)
            gap = ~(ts - self.last_ts <= self.max_gap_s)  # NaN (first sample) counts as a gap
            moved = new & (~usable | gap | np.isnan(self.anchor) | (np.abs(value - self.anchor) > self.tolerance))
            self.anchor = np.where(moved, np.where(usable, value, np.nan), self.anchor)
            self.anchor_ts = np.where(moved, ts, self.anchor_ts)
            self.samples = np.where(moved, 1, np.where(new, self.samples + 1, self.samples))
            self.last_value = np.where(new, np.where(usable, value, np.nan), self.last_value)
            self.last_ts = np.where(new, ts, self.last_ts)
            flat = (
                usable
                & ~np.isnan(self.anchor)
                & (ts - self.anchor_ts >= self.window_s)
                & (self.samples >= self.MIN_FLAT_SAMPLES)
            )
        bits = np.zeros(value.shape, dtype=np.uint16)
        bits[flat] |= FAULT_FLATLINE
        bits[self.rate_fault & usable] |= FAULT_RATE
        return bits
