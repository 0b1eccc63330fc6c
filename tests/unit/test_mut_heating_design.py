"""The precomputed heating model (`Design`, `curve`, `estimate_indoor`, Newton's stop test) against the
formulas of DOMAIN.md written out by hand, at relative flows other than 1 and site values other than the
defaults, and silent on the inputs a district feeds it (NaN, zero flow, no load, water no warmer than air).

Found by `make mutation` after the speed work rewrote these functions: each test names the bug it catches.
pytest turns every warning into an error here (pyproject `filterwarnings = ["error"]`), so "silent" is
tested by calling.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from stationmon.domain.heating import (
    Design,
    _largest_finite,
    curve,
    estimate_indoor,
    estimate_indoor_temp,
    expected_delta_t,
    relative_load,
    required_temps,
)

# a district's mix: floor 45/35 m=1.1, radiators 75/50 m=1.3 and 95/70 m=1.33, a fan coil 55/45 m=1.0
DS = np.array([45.0, 75.0, 95.0, 55.0])
DR = np.array([35.0, 50.0, 70.0, 45.0])
M = np.array([1.1, 1.3, 1.33, 1.0])
SITE = {"indoor_target": 20.0, "outdoor_design": -26.0, "design_indoor": 18.0}  # Harbin-like: target 20 on 18


def by_hand(t_o: float, ds: float, dr: float, m: float, g: float, t_i: float, t_od: float, t_id: float):
    """DOMAIN.md's curve for one loop: (supply, return, expected ΔT)."""
    q = max((t_i - t_o) / (t_id - t_od), 0.0)
    mean = t_i + ((ds + dr) / 2 - t_id) * q ** (1 / m)
    return mean + (ds - dr) * q / (2 * g), mean - (ds - dr) * q / (2 * g), (ds - dr) * q / g


def test_design_terms_are_the_documented_ones() -> None:
    """`spread` is t_s,d - t_r,d (a `+` would double every expected ΔT), and the inverses are exact."""
    d = Design.of(DS, DR, M, **SITE)
    np.testing.assert_array_equal(d.spread, DS - DR)
    np.testing.assert_array_equal(d.half_spread, (DS - DR) / 2)
    np.testing.assert_allclose(d.mean_excess, (DS + DR) / 2 - 18.0)
    np.testing.assert_allclose(d.inv_mean_excess, 1 / ((DS + DR) / 2 - 18.0))
    np.testing.assert_allclose(d.inv_load_span, 1 / (18.0 + 26.0))
    np.testing.assert_allclose(d.inv_exponent, 1 / M)


@pytest.mark.parametrize("outdoor", [-26.0, -10.0, 0.0, 5.5])
@pytest.mark.parametrize("flow", [0.5, 2.0, np.array([0.5, 1.0, 1.6, 2.5])])
def test_curve_at_a_relative_flow_other_than_one_is_the_formula(outdoor: float, flow: object) -> None:
    """Q / (2G): dividing by the relative flow (not multiplying), for a scalar G other than 1 (the
    `x / 1.0 is x` shortcut must not swallow G = 2) and for one G per loop; the load uses the site's
    target, design outdoor and design indoor (each dropped keyword would fall back to 18 / -24.2 / 18)."""
    supply, return_, expected = curve(outdoor, Design.of(DS, DR, M, **SITE), flow)
    g = np.broadcast_to(np.asarray(flow, dtype=float), DS.shape)
    for k in range(len(DS)):
        want = by_hand(outdoor, DS[k], DR[k], M[k], float(g[k]), 20.0, -26.0, 18.0)
        assert (supply[k], return_[k], expected[k]) == pytest.approx(want, abs=1e-12)
    # the unvectorised entry point agrees
    np.testing.assert_allclose(required_temps(outdoor, DS, DR, M, relative_flow=flow, **SITE), (supply, return_))


def test_curve_at_relative_flow_one_given_as_an_array_is_the_same_as_the_scalar() -> None:
    d = Design.of(DS, DR, M, **SITE)
    for got, want in zip(curve(-10.0, d, np.ones(4)), curve(-10.0, d, 1.0), strict=True):
        np.testing.assert_array_equal(got, want)


def test_no_warning_at_zero_flow_zero_load_or_unknown_values() -> None:
    """A pump that stopped (G = 0), a warm day (Q = 0, so 0/0), an unknown outdoor (NaN), a broken design
    (exponent 0, design mean at the design indoor): numpy must not warn (each would be an error here and
    a log flood in service), and the results are what the arithmetic gives."""
    d = Design.of([45.0, 45.0, 45.0, np.inf], [35.0, 35.0, 35.0, np.inf], [1.1, 0.0, 1.1, 1.1], **SITE)
    outdoor = np.array([-10.0, -10.0, 25.0, np.nan])
    supply, return_, expected = curve(outdoor, d, np.array([0.0, 1.0, 0.0, 1.0]))
    assert math.isinf(supply[0]) and math.isinf(expected[0])  # Q > 0 over no flow: unbounded
    assert math.isnan(expected[2]) and math.isnan(supply[2])  # 0 / 0
    assert np.isnan([supply[3], return_[3], expected[3]]).all()
    delta = expected_delta_t([-10.0, 25.0], [45.0, 45.0], [35.0, 35.0], relative_flow=[0.0, 0.0], **SITE)
    assert math.isinf(delta[0]) and math.isnan(delta[1])
    assert Design.of([40.0], [36.0], [0.0], design_indoor=38.0).inv_mean_excess[0] == math.inf


def test_estimate_indoor_is_silent_on_degenerate_water() -> None:
    """Water exactly at the outdoor temperature (u = 0: 0/0 in Newton's slope), an exponent 0 design
    (0^0 / 0), water hot enough to overflow u^m, and +inf/-inf probes (inf - inf): no warning escapes."""
    design = Design.of(np.array([75.0] * 5), np.array([50.0] * 5), np.array([1.3, 0.0, 2.0, 1.3, 0.0]))
    supply = np.array([-5.0, 60.0, 1e300, np.inf, -5.0])
    return_ = np.array([-5.0, 40.0, 1e300, -np.inf, -5.0])
    outdoor = np.full(5, -5.0)
    got = estimate_indoor(supply, return_, outdoor, design)  # the last: 0^0 / 0, a division by zero
    assert got[0] == -5.0  # no heat in the water: the room is as cold as outside
    assert math.isnan(got[3])
    # the unvectorised entry point on the same water: silent too, the same estimates
    exponents = np.array([1.3, 0.0, 2.0, 1.3, 0.0])
    again = estimate_indoor_temp(supply, return_, outdoor, np.full(5, 75.0), np.full(5, 50.0), exponents)
    np.testing.assert_array_equal(again, got)


@pytest.mark.parametrize("outdoor", [-30.0, -12.0, 0.0, 8.0])
def test_newton_estimate_matches_a_fine_bisection(outdoor: float) -> None:
    """The precomputed Newton path against a bisection to 1e-11 K, to 1e-9 K: Newton converges
    quadratically, so once a step is under the 1e-6 tolerance the estimate is far closer than that. A step
    not divided by the slope, a slope not scaled by m or by 1/(t_m,d - t_i,d) (linear convergence: about
    the tolerance away), a residual not refreshed each step, or a default tolerance of 1 K all miss."""
    supply = np.array([38.0, 62.0, 81.0, 47.0])
    return_ = np.array([31.0, 45.0, 60.0, 41.0])
    design = Design.of(DS, DR, M, outdoor_design=-26.0, design_indoor=18.0)
    got = estimate_indoor(supply, return_, np.full(4, outdoor), design)
    fine = estimate_indoor_temp(
        supply,
        return_,
        outdoor,
        DS,
        DR,
        M,
        outdoor_design=-26.0,
        design_indoor=18.0,
        tolerance=1e-11,
        method="bisection",
    )
    np.testing.assert_allclose(got, fine, atol=1e-9, rtol=0)
    np.testing.assert_allclose(
        estimate_indoor_temp(supply, return_, outdoor, DS, DR, M, outdoor_design=-26.0, design_indoor=18.0),
        fine,
        atol=1e-9,
        rtol=0,
    )


@pytest.mark.parametrize(
    ("values", "largest"),
    [
        ([0.5], 0.5),  # below 1: an initial of 1.0 would say 1
        ([], 0.0),  # nothing: 0, not an error
        ([np.nan, 1.0, -3.0], 3.0),  # NaN skipped, magnitude
        ([np.inf, 2.0, -np.nan], 2.0),  # inf skipped
        ([-np.inf, 5.0, -7.0], 7.0),
        ([np.inf, -np.inf, np.nan], 0.0),  # nothing finite: 0 (Newton stops), not 1
    ],
)
def test_largest_finite_step(values: list[float], largest: float) -> None:
    """Newton's stop test reads the largest finite |step|; a non-finite one (a loop with no answer) must
    neither stop nor prolong the others' iterations."""
    a = np.array(values, dtype=np.float64)
    assert _largest_finite(a) == largest
    assert _largest_finite(a.reshape(1, -1) if a.size else a.reshape(0, 2)) == largest  # any shape: over all


def test_largest_finite_of_a_table_is_over_every_element() -> None:
    assert _largest_finite(np.array([[1.0, -9.0], [np.inf, 4.0]])) == 9.0
    assert _largest_finite(np.array([[1.0, 2.0], [3.0, -4.0]])) == 4.0


def test_relative_load_is_silent_on_a_design_point_at_the_design_indoor() -> None:
    """A site whose design outdoor equals its design indoor (18 °C, a typo in the config) makes the load's
    span 0: colder than the target is x/0 (inf, a "divide"), exactly at the target 0/0 (NaN, an "invalid"),
    warmer is -inf clamped to no load. numpy must warn about neither. Catches `invalid` or `divide` dropped
    from relative_load's errstate (or set to None, which inherits numpy's default: warn)."""
    q = relative_load([-10.0, 18.0, 25.0], outdoor_design=18.0)
    assert q[0] == math.inf and math.isnan(q[1]) and q[2] == 0.0


def test_estimate_indoor_is_silent_when_the_water_mean_overflows() -> None:
    """Supply and return both 1.5e308 (a float64 register's garbage): their sum overflows before it is halved,
    so the water's mean is inf and no indoor temperature follows (NaN); numpy must not warn, and the loop
    beside it, water built by hand for 20 °C at -5 °C (75/50, m = 1.3, designed 18 °C at -24.2 °C), is
    still estimated at 20 °C. Catches `over="ignore"` dropped from the errstate around (supply + return) / 2."""
    q = (20.0 - -5.0) / (18.0 - -24.2)
    t_m = 20.0 + (62.5 - 18.0) * q ** (1 / 1.3)
    supply = np.array([1.5e308, t_m + 12.5 * q])
    return_ = np.array([1.5e308, t_m - 12.5 * q])
    got = estimate_indoor_temp(supply, return_, -5.0, 75.0, 50.0, 1.3)
    assert math.isnan(got[0])
    assert got[1] == pytest.approx(20.0, abs=1e-9)


def test_whole_numbers_and_float32_readings_are_computed_in_float64() -> None:
    """A caller may pass whole numbers (75/50 °C design, exponent 1) or float32 arrays (register values as
    decoded): every entry point computes in float64 and answers exactly as for the same values given as
    float64 (without the conversion, float32 readings would be computed in float32: about 1e-6 relative,
    coarser than Newton's tolerance)."""
    supply, return_ = np.array([60.3, 45.7], dtype=np.float32), np.array([45.1, 35.2], dtype=np.float32)
    narrow = estimate_indoor_temp(supply, return_, -10, [75, 45], [50, 35], [1, 2])
    wide = estimate_indoor_temp(
        supply.astype(np.float64), return_.astype(np.float64), -10.0, DS[[1, 0]], DR[[1, 0]], [1.0, 2.0]
    )
    assert narrow.dtype == np.float64
    np.testing.assert_array_equal(narrow, wide)
    outdoor32 = np.array([-10.3], dtype=np.float32)
    outdoor64 = outdoor32.astype(np.float64)
    for narrow_out, wide_out in (
        (required_temps(outdoor32, 75, 50, 1), required_temps(outdoor64, 75.0, 50.0, 1.0)),
        ((expected_delta_t(outdoor32, 75, 50),), (expected_delta_t(outdoor64, 75.0, 50.0),)),
        ((relative_load(outdoor32, indoor_target=20),), (relative_load(outdoor64, indoor_target=20.0),)),
    ):
        for a, b in zip(narrow_out, wide_out, strict=True):
            assert a.dtype == np.float64 and a.tolist() == b.tolist()
