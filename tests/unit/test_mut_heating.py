"""The bisection estimate (`method="bisection"`) where its last steps matter: each test names the bugs it catches.

At the default tolerance (1e-6 K) the bracket is so narrow that a wrong final interpolation, or none, moves
the answer by less than a micro-kelvin, and the older tests (which compare with Newton to 1e-4 K) cannot
see it. With a coarse tolerance the bracket is kelvins wide and only the interpolation makes the answer
right. The water is built by hand from DOMAIN.md's curve for a known indoor temperature, so the expected
root is exact (plain `math`, not the module).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from stationmon.domain.heating import estimate_indoor_temp, running_mean_update

OUTDOOR = (-20.0, -10.0, -3.0, 0.0, 5.0)


def _water_for(indoor: float, outdoor: float) -> tuple[float, float]:
    """Supply and return of a 75/50 m = 1.3 loop (designed 18 °C at -24.2 °C) that hold `indoor` at `outdoor`."""
    q = (indoor - outdoor) / (18.0 - -24.2)
    t_m = indoor + (62.5 - 18.0) * q ** (1 / 1.3)
    return t_m + 12.5 * q, t_m - 12.5 * q


@pytest.mark.parametrize("tolerance", [1.0, 2.0, 4.0])
def test_bisection_interpolates_inside_a_coarse_bracket(tolerance: float) -> None:
    """A 2 K bracket plus one linear interpolation of the residual lands within 0.02 K of the root.

    Catches the interpolation dropped or wrong: the bracket's upper end taken as x - width, the drop as
    f_lo + f_hi, f_lo * drop for f_lo / drop, the `drop > 0` test replaced (None: always the midpoint;
    `> 1.0`: the midpoint or f_lo / 1 for every realistic drop), the fraction's lower clip 1.0 (always
    the upper end): each is off by up to the bracket's width, a kelvin or two here."""
    targets = [18.0, 20.0, 21.5, 16.0, 19.0]
    pairs = [_water_for(t, o) for t, o in zip(targets, OUTDOOR, strict=True)]
    supply = np.array([p[0] for p in pairs])
    ret = np.array([p[1] for p in pairs])
    est = estimate_indoor_temp(supply, ret, np.array(OUTDOOR), 75.0, 50.0, 1.3, method="bisection", tolerance=tolerance)
    assert np.abs(est - np.array(targets)).max() < 0.02 * tolerance


def test_bisection_of_all_unknown_water_is_nan() -> None:
    """Every loop unknown (NaN water or weather): NaN out, no exception.

    Catches the `if finite.size` guard dropped: the span of an empty set of widths raises ValueError."""
    est = estimate_indoor_temp(
        np.array([math.nan, 50.0]), np.array([40.0, math.nan]), -10.0, 75.0, 50.0, 1.3, method="bisection"
    )
    assert np.isnan(est).all()


@pytest.mark.parametrize("method", ["newton", "bisection"])
@pytest.mark.parametrize("exponent", [1.3, 1.0])
def test_water_no_warmer_than_outside_gives_the_outdoor_temperature(method: str, exponent: float) -> None:
    """Water at or below the outdoor temperature (a loop standing cold in a mild spell) sustains nothing:
    the flats sit at the outdoor temperature, a number, not NaN.

    Catches, in Newton, the clamp of t_m - t at 0 dropped (a negative base to the power 1.3 is NaN) and
    the slope's u^(m-1) = u^m / u taken where u is 0 (0/0); in the bisection, the `span > tolerance`
    guard dropped: a bracket of width 0 would take log2(0) (ValueError)."""
    est = estimate_indoor_temp(
        np.array([5.0, 3.0]), np.array([5.0, 1.0]), 5.0, 75.0, 50.0, exponent, method=method, tolerance=1e-6
    )
    assert list(est) == [5.0, 5.0]


def test_running_mean_of_a_sample_under_a_second_after_the_last() -> None:
    """Samples 0.5 s apart (two messages of one MQTT burst): the weight is exp(-0.5/60), not a whole second's.

    Catches the gap's floor at 0 raised to 1 s (`np.maximum(gap, 1.0)`)."""
    mean, ts = running_mean_update(10.0, 0.0, 20.0, 0.5, 60.0)
    assert float(mean) == pytest.approx(20.0 + math.exp(-0.5 / 60.0) * (10.0 - 20.0), abs=1e-12)
    assert float(ts) == 0.5
