"""Sensor faults over arrays: the fault bits, the range and sentinel test, flatline and rate of change.

The plausible ranges and sentinels are the vocabulary's (`stationmon.domain.vocabulary`), the same
table register decoding flags values with; this module only applies it to many values at once.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from stationmon.domain.heating import FloatArray
from stationmon.domain.vocabulary import (
    PLAUSIBLE_RANGES,
    QUANTITIES,
    SENTINEL_TOLERANCE,
    TEMPERATURE_SENTINELS,
    VALUE_SENTINELS,
)

__all__ = [
    "FAULT_FLAGGED",
    "FAULT_FLATLINE",
    "FAULT_PRIMARY",
    "FAULT_RANGE",
    "FAULT_RATE",
    "FAULT_SENTINEL",
    "FAULT_STALE",
    "FAULT_SWAPPED",
    "BoolArray",
    "FaultArray",
    "IntArray",
    "SensorTracker",
    "describe_faults",
    "quantity_faults",
    "range_faults",
]

BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]
FaultArray = NDArray[np.uint16]

FAULT_FLAGGED = 1  # the collector flagged it (NaN, decode error, its own checks)
FAULT_RANGE = 2  # outside the plausible range
FAULT_SENTINEL = 4  # a value PLCs send for a broken probe
FAULT_FLATLINE = 8  # has not moved by more than the tolerance for the whole window
FAULT_RATE = 16  # changed faster than any real loop can
FAULT_SWAPPED = 32  # supply below return while water flows
FAULT_PRIMARY = 64  # primary supply below this secondary supply (set on both probes of the pair)
FAULT_STALE = 128  # configured, station answering, but no fresh value
_FAULT_TEXT = (
    (FAULT_FLAGGED, "flagged by the collector"),
    (FAULT_RANGE, "out of range"),
    (FAULT_SENTINEL, "sentinel value"),
    (FAULT_FLATLINE, "flatline"),
    (FAULT_RATE, "implausible rate of change"),
    (FAULT_SWAPPED, "supply below return with flow"),
    (FAULT_PRIMARY, "primary supply below secondary supply"),
    (FAULT_STALE, "stale (no fresh value while the station answers)"),
)
_STEP_SLACK = 1.0 - 1e-6  # a move of exactly the tolerance (one step of a scaled register) counts
_SENTINELS = {
    True: np.array(VALUE_SENTINELS + TEMPERATURE_SENTINELS, dtype=np.float64),
    False: np.array(VALUE_SENTINELS, dtype=np.float64),
}


def describe_faults(bits: int) -> str:
    """Human words for a fault bit set, e.g. "flatline, out of range"."""
    return ", ".join(text for bit, text in _FAULT_TEXT if bits & bit) or "ok"


def range_faults(values: FloatArray, lo: float, hi: float, *, temperature: bool = True) -> FaultArray:
    """Sentinel and out-of-range bits per value (NaN gives FAULT_FLAGGED)."""
    v = np.asarray(values, dtype=np.float64)
    bits = np.zeros(v.shape, dtype=np.uint16)
    with np.errstate(invalid="ignore"):
        outside = np.flatnonzero((v < lo) | (v > hi))
    bits[np.isnan(v)] = FAULT_FLAGGED  # (series never read are NaN: no sentinel test for them)
    if outside.size:
        # sentinels lie outside every plausible range: only the few outside values need the test
        odd = v[outside]
        near = np.abs(odd[:, None] - _SENTINELS[temperature][None, :]) < SENTINEL_TOLERANCE
        bits[outside] = np.where(near.any(axis=1), FAULT_SENTINEL, FAULT_RANGE)
    return bits


def quantity_faults(values: FloatArray, quantity: str) -> FaultArray:
    """`range_faults` with the quantity's plausible range and sentinels from the vocabulary."""
    lo, hi = PLAUSIBLE_RANGES[quantity]
    return range_faults(values, lo, hi, temperature=QUANTITIES[quantity].temperature)


class SensorTracker:
    """Flatline and rate-of-change detection for n series.

    Flatline: within `tolerance` of an anchor for `window_s`, in `MIN_FLAT_SAMPLES` samples with no gap
    over a quarter window (readings either side of an outage are no evidence of a stuck sensor). A move
    of exactly `tolerance` counts, so a point whose tolerance is its step moves with every step.
    Tolerance and window may be per series (arrays): a coarse point needs longer to prove it is stuck.
    """

    MIN_FLAT_SAMPLES = 4
    RATE_WINDOW_S = 60.0

    def __init__(
        self,
        n: int,
        *,
        window_s: float | FloatArray,
        tolerance: float | FloatArray,
        max_rate_per_min: float | None,
    ) -> None:
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
        self._flat_tolerance = tolerance * _STEP_SLACK

    def update(self, value: FloatArray, ts: FloatArray, usable: BoolArray) -> FaultArray:
        """Take the latest samples (only newer ones change state); return flatline/rate bits.

        The state arrays are updated in place: new arrays every tick cost more than the arithmetic."""
        with np.errstate(invalid="ignore", divide="ignore"):
            new = ~np.isnan(ts) & ~(ts <= self.last_ts)
            step_s = ts - self.last_ts
            if self.max_rate_per_min is not None:
                # over at least a minute: at a 1 s poll a 0.1 K step of an int16 x 0.1 probe is
                # 6 K/min between two samples, but only 0.1 K/min of real change
                rate = np.abs(value - self.last_value)
                rate /= np.maximum(step_s, self.RATE_WINDOW_S)
                rate *= 60.0
                jumped = usable & (step_s > 0) & (rate > self.max_rate_per_min)
                np.copyto(self.rate_fault, jumped, where=new)
            gap = ~(step_s <= self.max_gap_s)  # NaN (first sample) counts as a gap
            moved = new & (~usable | gap | np.isnan(self.anchor) | (np.abs(value - self.anchor) > self._flat_tolerance))
            # noisy probes move in a random share of the series: by index, masked copies mispredict
            at = np.flatnonzero(moved)
            self.anchor[at] = np.where(usable[at], value[at], np.nan)
            self.anchor_ts[at] = ts[at]
            self.samples += new
            self.samples[at] = 1
            np.copyto(self.last_value, value, where=new)
            self.last_value[new & ~usable] = np.nan
            np.copyto(self.last_ts, ts, where=new)
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
