"""Sensor fault bits: what can be wrong with a value, and the range and sentinel test over arrays.

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
    "FAULT_SWAPPED",
    "BoolArray",
    "FaultArray",
    "IntArray",
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
FAULT_PRIMARY = 64  # primary supply below this secondary supply
_FAULT_TEXT = (
    (FAULT_FLAGGED, "flagged by the collector"),
    (FAULT_RANGE, "out of range"),
    (FAULT_SENTINEL, "sentinel value"),
    (FAULT_FLATLINE, "flatline"),
    (FAULT_RATE, "implausible rate of change"),
    (FAULT_SWAPPED, "supply below return with flow"),
    (FAULT_PRIMARY, "primary supply below secondary supply"),
)
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
        outside = np.flatnonzero((v < lo) | (v > hi) | np.isnan(v))
    if outside.size:
        # sentinels lie outside every plausible range: only the few outside values need the test
        odd = v[outside]
        near = np.abs(odd[:, None] - _SENTINELS[temperature][None, :]) < SENTINEL_TOLERANCE
        sentinel = near.any(axis=1)
        bits[outside] = np.where(np.isnan(odd), FAULT_FLAGGED, np.where(sentinel, FAULT_SENTINEL, FAULT_RANGE))
    return bits


def quantity_faults(values: FloatArray, quantity: str) -> FaultArray:
    """`range_faults` with the quantity's plausible range and sentinels from the vocabulary."""
    lo, hi = PLAUSIBLE_RANGES[quantity]
    return range_faults(values, lo, hi, temperature=QUANTITIES[quantity].temperature)
