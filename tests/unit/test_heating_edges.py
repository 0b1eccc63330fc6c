"""The heating model at values the older tests never used: each test names the one-line bug it catches.

Issue 17's mutation spot check: with an indoor target of 18 everywhere, a relative flow of 1 and a
running-mean gap equal to its window, several wrong formulas gave the same numbers as the right one.
The expected figures are worked by hand from DOMAIN.md's formulas (plain `math`, not the module).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from stationmon.domain.heating import (
    estimate_indoor_temp,
    expected_delta_t,
    relative_load,
    required_return_temp,
    required_supply_temp,
    required_temps,
    running_mean_update,
)

# Harbin's case: 75/50 radiators, m = 1.3, design 18 °C at -24.2 °C, but 20 °C promised indoors, -10 °C out.
Q_20 = (20.0 - -10.0) / (18.0 - -24.2)  # 0.71090
MEAN_20 = 20.0 + (62.5 - 18.0) * Q_20 ** (1 / 1.3)


def test_the_curve_for_an_indoor_target_of_20() -> None:
    """Catches a curve that uses the design indoor temperature (18) where the target belongs, or the target
    where the design temperature belongs: both agree with the right curve only when the two are equal."""
    s, r = required_temps(-10.0, 75.0, 50.0, 1.3, indoor_target=20.0, outdoor_design=-24.2, design_indoor=18.0)
    assert float(s) == pytest.approx(MEAN_20 + 12.5 * Q_20, abs=1e-9)
    assert float(r) == pytest.approx(MEAN_20 - 12.5 * Q_20, abs=1e-9)
    assert float(s) == pytest.approx(63.113, abs=1e-3) and float(r) == pytest.approx(45.341, abs=1e-3)
    # the one-value wrappers pass the site keywords on
    assert float(required_supply_temp(-10.0, 75.0, 50.0, 1.3, indoor_target=20.0)) == pytest.approx(float(s))
    assert float(required_return_temp(-10.0, 75.0, 50.0, 1.3, indoor_target=20.0)) == pytest.approx(float(r))


def test_relative_load_with_every_site_value_stated() -> None:
    """Catches a swapped sign or operand in Q = (t_i - t_o) / (t_i,d - t_o,d) when t_i != t_i,d."""
    q = relative_load(-10.0, indoor_target=20.0, outdoor_design=-30.0, design_indoor=16.0)
    assert float(q) == pytest.approx(30.0 / 46.0)
    # warmer outside than the target: no load (clamped at 0), NaN stays NaN
    assert list(relative_load(np.array([25.0, math.nan]), indoor_target=20.0)[:1]) == [0.0]
    assert math.isnan(float(relative_load(math.nan)))


def test_a_halved_flow_doubles_the_spread_of_the_curve() -> None:
    """Catches ΔT·Q·G (multiply) for ΔT·Q/G (divide) in the curve: at G = 1 both agree."""
    s, r = required_temps(-10.0, 75.0, 50.0, 1.3, indoor_target=20.0, relative_flow=0.5)
    assert float(s) == pytest.approx(MEAN_20 + 25.0 * Q_20, abs=1e-9)
    assert float(r) == pytest.approx(MEAN_20 - 25.0 * Q_20, abs=1e-9)
    s2, r2 = required_temps(-10.0, 75.0, 50.0, 1.3, indoor_target=20.0, relative_flow=2.0)
    assert float(s2 - r2) == pytest.approx(25.0 * Q_20 / 2.0)


def test_expected_delta_t_divides_by_the_relative_flow() -> None:
    """Catches a multiply for the divide by G in the expected ΔT (at G = 1 they agree)."""
    q = 30.0 / 42.2
    assert float(expected_delta_t(-10.0, 75.0, 50.0, indoor_target=20.0)) == pytest.approx(25.0 * q)
    assert float(expected_delta_t(-10.0, 75.0, 50.0, relative_flow=2.0, indoor_target=20.0)) == pytest.approx(12.5 * q)
    assert float(expected_delta_t(-10.0, 75.0, 50.0, relative_flow=0.5, indoor_target=20.0)) == pytest.approx(50.0 * q)


@pytest.mark.parametrize("method", ["newton", "bisection"])
def test_the_estimate_with_another_design_point(method: str) -> None:
    """Catches the estimate reading the default design point (-24.2 °C, 18 °C) instead of the one given."""
    # a 70/50 m = 1.2 loop designed for 20 °C at -30 °C; water for 20 °C indoors at -5 °C
    q = (20.0 - -5.0) / (20.0 - -30.0)
    t_m = 20.0 + (60.0 - 20.0) * q ** (1 / 1.2)
    spread = 20.0 * q
    est = estimate_indoor_temp(
        t_m + spread / 2,
        t_m - spread / 2,
        -5.0,
        70.0,
        50.0,
        1.2,
        outdoor_design=-30.0,
        design_indoor=20.0,
        method=method,
    )
    assert float(est) == pytest.approx(20.0, abs=1e-3)


def test_an_unknown_method_is_refused() -> None:
    """Catches the method check being dropped or inverted."""
    with pytest.raises(ValueError, match="unknown method 'secant'"):
        estimate_indoor_temp(50.0, 40.0, -10.0, 75.0, 50.0, 1.3, method="secant")


def test_running_mean_weight_is_exp_of_minus_gap_over_window() -> None:
    """Catches exp(-window/gap) for exp(-gap/window): the old test used gap == window, where both are e^-1."""
    mean, ts = running_mean_update(10.0, 0.0, 20.0, 60.0, 3600.0)
    keep = math.exp(-60.0 / 3600.0)  # 0.9835: one minute into an hour's mean moves it by 1.65 %
    assert float(mean) == pytest.approx(20.0 + keep * (10.0 - 20.0))
    assert float(ts) == 60.0
    # a gap three windows long keeps e^-3 of the old mean
    mean, _ = running_mean_update(10.0, 0.0, 20.0, 10800.0, 3600.0)
    assert float(mean) == pytest.approx(20.0 - 10.0 * math.exp(-3.0))


def test_running_mean_ignores_nan_and_old_samples_and_window_0_follows() -> None:
    """Catches the freshness test inverted (an old or NaN sample folded in) and window 0 smoothing."""
    mean, ts = running_mean_update([10.0, 10.0, 10.0], [100.0] * 3, [math.nan, 30.0, 30.0], [200.0, 100.0, 50.0], 60.0)
    assert list(mean) == [10.0, 10.0, 10.0] and list(ts) == [100.0] * 3
    mean, ts = running_mean_update(10.0, 100.0, 30.0, 101.0, 0.0)
    assert float(mean) == 30.0 and float(ts) == 101.0
    # no mean yet: the first sample is taken as it is
    mean, ts = running_mean_update(math.nan, math.nan, 7.0, 5.0, 600.0)
    assert float(mean) == 7.0 and float(ts) == 5.0
