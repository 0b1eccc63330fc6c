"""The soak's memory verdict (bench/soak_judge.py): the steady phase, "within noise", and "cannot judge"."""

from __future__ import annotations

import math
import random

import pytest

from bench.soak_judge import FLOORS, K_SD, MARGIN_S, fit, history_cost, judge, steady_start


def _series(seconds: float, every: float, f: object, seed: int = 1) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return [(t, f(t) + rng.gauss(0, 0.3)) for t in (k * every for k in range(int(seconds / every) + 1))]  # type: ignore[operator]


def test_fit_finds_the_slope_per_hour_and_no_residual_on_a_line() -> None:
    k, sd = fit([(t, 100 + 0.01 * t) for t in range(0, 600, 15)])
    assert k == pytest.approx(36.0) and sd == pytest.approx(0.0, abs=1e-9)
    assert all(math.isnan(x) for x in fit([(0, 1.0), (1, 2.0)]))


def test_steady_phase_starts_after_the_history_is_full_and_not_before_the_middle_of_the_life() -> None:
    assert steady_start(0.0, 1800.0, fill_s=440.0) == 900.0  # the middle comes later
    assert steady_start(0.0, 1800.0, fill_s=1200.0) == 1200.0 + MARGIN_S  # the window comes later
    assert steady_start(1100.0, 1800.0, fill_s=440.0) == 1100.0 + 440.0 + MARGIN_S


def test_a_flat_series_with_noise_is_within_noise_and_says_what_it_could_detect() -> None:
    points = _series(1800, 15, lambda t: 110.0)
    v = judge(points, 0.0, fill_s=440.0, floor=FLOORS["rss"])
    assert v.status == "within noise" and v.ok is True
    assert v.from_s == 900.0 and v.samples == len([p for p in points if p[0] >= 900.0])
    assert abs(v.drift) <= v.bound == pytest.approx(K_SD * v.sd + FLOORS["rss"])
    assert v.detectable_per_h == pytest.approx(v.bound / (900 / 3600))
    assert "within noise" in v.describe("MB") and "detects >" in v.describe("MB")
    assert f"+ {FLOORS['rss']:g} = {v.bound:.2f} MB" in v.describe("MB")


def test_growth_in_the_steady_phase_is_not_within_noise() -> None:
    v = judge(_series(1800, 15, lambda t: 100.0 + 20.0 * t / 3600), 0.0, fill_s=440.0, floor=FLOORS["rss"])
    assert v.status == "NOT within noise" and v.ok is False
    assert v.slope_per_h == pytest.approx(20.0, rel=0.1)


def test_growth_while_the_window_fills_does_not_count_once_it_has_levelled() -> None:
    # +60 MB/h until the history is full at 20 min, then flat: the 2nd half (15-30 min) would see the filling
    def rss(t: float) -> float:
        return 100.0 + 60.0 * min(t, 1200.0) / 3600

    points = _series(1800, 15, rss)
    half = judge(points, 0.0, fill_s=0.0, floor=FLOORS["rss"])
    assert half.status == "NOT within noise"  # what the old verdict (2nd half only) said
    steady = judge(points, 0.0, fill_s=1200.0 - MARGIN_S, floor=FLOORS["rss"], min_steady_s=240.0)
    assert steady.from_s == 1200.0 and steady.status == "within noise"


def test_a_window_that_does_not_fill_within_the_life_cannot_be_judged() -> None:
    points = _series(1800, 15, lambda t: 100.0 + 15.0 * t / 3600)
    v = judge(points, 0.0, fill_s=6 * 3600.0, floor=FLOORS["rss"])  # the default 6 h window in a 30 min run
    assert v.status.startswith("cannot judge: window not filled") and v.ok is None and not v.judged
    assert "cannot judge: window not filled" in v.describe("MB")
    late = judge(points, 0.0, fill_s=1800 - 300 - MARGIN_S + 1, floor=FLOORS["rss"])  # full, but under 5 min left
    assert late.status.startswith("cannot judge: window not filled")


def test_a_short_life_cannot_be_judged_even_with_its_window_full() -> None:
    v = judge(_series(480, 15, lambda t: 100.0), 0.0, fill_s=0.0, floor=FLOORS["rss"])  # steady phase 4 min
    assert v.status.startswith("cannot judge: steady phase") and v.ok is None
    assert judge([], 0.0, 0.0, 1.0).status == "cannot judge: no samples"
    files = judge(_series(480, 15, lambda t: 1500.0), 0.0, fill_s=0.0, floor=FLOORS["fds"])  # no window to fill
    assert files.status.startswith("cannot judge: steady phase 4.0 min, 17 samples")


def test_the_history_of_a_series_levels_off_just_after_its_window_at_about_16_bytes_a_point() -> None:
    cost = history_cost(600.0, 10.0)  # 61 points a series
    assert cost.points == 61
    # compacted at an eighth past the window (at least 17 points), and the arrays' own allocation steps: compacting
    # at half (as History did) made it twice the window
    assert 600.0 <= cost.fill_s <= 1.5 * 600.0
    big = history_cost(6 * 3600.0, 10.0, series=4, windows=1.5)  # 720 points, one per 30 s
    assert big.points == 720
    assert 6 * 3600.0 <= big.fill_s <= 6 * 3600.0 * 8 / 7 + 60  # at most 8/7 of the window
    assert 16.0 <= big.bytes_per_point <= 16.0 * 8 / 7 + 4  # two doubles a point, 8/7 at most, and bookkeeping
