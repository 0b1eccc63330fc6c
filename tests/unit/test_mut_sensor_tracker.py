"""SensorTracker (flatline and rate of change) at its edges: the rate's boundary and its one-minute window,
samples that arrive late, probes that read infinity, and both faults at once. Each test names the bug it
catches (mutation survivors of `SensorTracker.update`)."""

from __future__ import annotations

import numpy as np

from stationmon.domain.rules.faults import FAULT_FLATLINE, FAULT_RATE, SensorTracker

OK = np.array([True])


def _step(tracker: SensorTracker, value: float, ts: float, usable: bool = True) -> int:
    return int(tracker.update(np.array([value]), np.array([ts]), np.array([usable]))[0])


def test_the_rate_is_per_minute_over_at_least_a_minute_to_the_hundredth() -> None:
    """4.95 K and 5.05 K within 5 s are 4.95 and 5.05 K/min over the minute: only the second exceeds 5 (a rate
    scaled by 61 instead of 60 makes the first 5.03 K/min, a fault)."""
    tracker = SensorTracker(2, window_s=1800.0, tolerance=0.05, max_rate_per_min=5.0)
    ok = np.array([True, True])
    tracker.update(np.array([40.0, 40.0]), np.array([0.0, 0.0]), ok)
    bits = tracker.update(np.array([44.95, 45.05]), np.array([5.0, 5.0]), ok)
    assert list(bits & FAULT_RATE) == [0, FAULT_RATE]


def test_a_rate_exactly_at_the_maximum_is_no_fault() -> None:
    """3 K in 64 s is exactly 2.8125 K/min (every figure exact in binary): at the maximum, not above it
    (`>=` for `>` would flag it)."""
    tracker = SensorTracker(1, window_s=1800.0, tolerance=0.05, max_rate_per_min=2.8125)
    _step(tracker, 40.0, 0.0)
    assert _step(tracker, 43.0, 64.0) & FAULT_RATE == 0
    assert _step(tracker, 46.0 + 2**-20, 128.0) & FAULT_RATE  # a hair more: a fault


def test_a_late_sample_changes_neither_the_last_value_nor_the_last_time() -> None:
    """A reading older than the last one (a late MQTT message) is ignored whole. Taking its value would
    make the next step a jump (40 -> 50 -> 41 K: 9 K/min); taking its time would make the next step a gap
    that restarts the flatline's window."""
    tracker = SensorTracker(1, window_s=100.0, tolerance=0.05, max_rate_per_min=5.0)
    for t in (0.0, 25.0, 50.0):
        assert _step(tracker, 40.0, t) == 0
    assert _step(tracker, 50.0, 10.0) == 0  # late: older than 50 s
    assert _step(tracker, 40.5, 75.0) & FAULT_RATE == 0  # 0.5 K over the minute from 40, not 9.5 from 50
    assert _step(tracker, 40.5, 100.0) == 0  # moved by 0.5 K at 75 s: a new anchor
    tracker = SensorTracker(1, window_s=100.0, tolerance=0.05, max_rate_per_min=None)
    for t in (0.0, 25.0, 50.0, 75.0):
        _step(tracker, 42.0, t)
    _step(tracker, 42.0, 10.0)  # late
    assert _step(tracker, 42.0, 100.0) == FAULT_FLATLINE  # 25 s after the last sample in order: no gap


def test_a_probe_reading_infinity_is_judged_silently() -> None:
    """A float32 register can decode to +inf or -inf. The engine marks such a reading unusable, but the
    tracker is silent on whatever it is given: inf - inf is NaN with no RuntimeWarning (an error under the
    tests' warning filter, log noise in service), and NaN arithmetic raises no fault."""
    tracker = SensorTracker(3, window_s=100.0, tolerance=0.05, max_rate_per_min=5.0)
    usable = np.array([True, True, False])
    tracker.update(np.array([np.inf, -np.inf, np.inf]), np.array([0.0, 0.0, 0.0]), usable)
    bits = tracker.update(np.array([np.inf, -np.inf, np.inf]), np.array([30.0, 30.0, 30.0]), usable)
    assert list(bits & FAULT_RATE) == [0, 0, 0]


def test_a_stuck_probe_that_also_jumped_within_a_wide_tolerance_has_both_bits() -> None:
    """With a 10 K flatline tolerance a 6 K jump in a minute (6 K/min, above 5) stays within it: the point
    is both flat for the window and too fast, and keeps both bits (`=` for `|=` would drop the flatline)."""
    tracker = SensorTracker(1, window_s=100.0, tolerance=10.0, max_rate_per_min=5.0)
    for t in (0.0, 25.0, 50.0, 75.0):
        assert _step(tracker, 40.0, t) == 0
    assert _step(tracker, 46.0, 100.0) == FAULT_FLATLINE | FAULT_RATE
