"""The heating model against DOMAIN.md's table and estimates, hypothesis properties, and `stationmon curve`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stationmon.cli import main
from stationmon.domain.heating import (
    estimate_indoor_temp,
    expected_delta_t,
    relative_load,
    required_return_temp,
    required_supply_temp,
    required_temps,
    running_mean_update,
)

OUTDOORS = (-24.2, -15.0, -10.0, -5.0, 0.0, 5.0)
# DOMAIN.md, t_i = t_i,d = 18, t_o,d = -24.2
TABLE = {
    (95, 70, 1.3): "95/70 81.2/61.6 73.3/56.8 65.3/51.6 56.8/46.2 47.9/40.2",
    (75, 50, 1.3): "75/50 64.6/45.1 58.8/42.2 52.7/39.1 46.4/35.8 39.8/32.1",
    (50, 40, 1.1): "50/40 43.5/35.7 39.9/33.3 36.3/30.8 32.6/28.3 28.8/25.7",
    (45, 35, 1.1): "45/35 39.5/31.7 36.5/29.8 33.4/27.9 30.3/26.0 27.1/24.0",
}


def _cases() -> list[tuple[float, float, float, float, float, float]]:
    out = []
    for (ds, dr, m), row in TABLE.items():
        for t_o, cell in zip(OUTDOORS, row.split(), strict=True):
            s, r = (float(x) for x in cell.split("/"))
            out.append((ds, dr, m, t_o, s, r))
    return out


@pytest.mark.parametrize(("ds", "dr", "m", "t_o", "want_s", "want_r"), _cases())
def test_domain_table_to_a_tenth_of_a_kelvin(
    ds: float, dr: float, m: float, t_o: float, want_s: float, want_r: float
) -> None:
    s, r = required_temps(t_o, ds, dr, m, indoor_target=18.0, outdoor_design=-24.2, design_indoor=18.0)
    assert abs(float(s) - want_s) <= 0.05 + 1e-9
    assert abs(float(r) - want_r) <= 0.05 + 1e-9
    assert float(required_supply_temp(t_o, ds, dr, m)) == pytest.approx(float(s))
    assert float(required_return_temp(t_o, ds, dr, m)) == pytest.approx(float(r))


def test_whole_table_in_one_vectorised_call() -> None:
    cases = np.array(_cases())
    s, r = required_temps(cases[:, 3], cases[:, 0], cases[:, 1], cases[:, 2])
    assert np.abs(s - cases[:, 4]).max() <= 0.05 + 1e-9
    assert np.abs(r - cases[:, 5]).max() <= 0.05 + 1e-9


@pytest.mark.parametrize(
    ("ds", "dr", "m", "want"),
    [(45, 35, 1.1, 20.9), (50, 40, 1.1, 18.6), (75, 50, 1.3, 11.2), (85, 60, 1.3, 8.5)],
)
def test_41_34_at_minus_10(ds: float, dr: float, m: float, want: float) -> None:
    est = float(estimate_indoor_temp(41.0, 34.0, -10.0, ds, dr, m))
    assert abs(est - want) <= 0.05 + 1e-9


def test_41_34_vectorised_and_compliance_verdicts() -> None:
    est = estimate_indoor_temp(41.0, 34.0, -10.0, [45, 50, 75, 85], [35, 40, 50, 60], [1.1, 1.1, 1.3, 1.3])
    assert est.shape == (4,)
    assert list(est >= 18.0) == [True, True, False, False]  # floor heating only


def test_indoor_target_raises_the_curve_and_the_estimate_inverts_it() -> None:
    s18, r18 = required_temps(-10.0, 50, 40, 1.1, indoor_target=18.0)
    s20, r20 = required_temps(-10.0, 50, 40, 1.1, indoor_target=20.0)
    assert s20 > s18 + 1.0 and r20 > r18 + 1.0
    assert float(estimate_indoor_temp(s20, r20, -10.0, 50, 40, 1.1)) == pytest.approx(20.0, abs=1e-3)


def test_edges_warm_weather_nan_and_cold_water() -> None:
    # warmer outside than the target: no load, the water only needs the target temperature
    s, r = required_temps(25.0, 75, 50, 1.3)
    assert float(s) == pytest.approx(18.0) and float(r) == pytest.approx(18.0)
    assert float(relative_load(25.0)) == 0.0
    assert float(expected_delta_t(25.0, 75, 50)) == 0.0
    assert float(expected_delta_t(-24.2, 75, 50)) == pytest.approx(25.0)
    # NaN in, NaN out, no warnings (warnings are errors here)
    assert np.isnan(required_temps(math.nan, 75, 50, 1.3)[0])
    got = estimate_indoor_temp([41.0, math.nan, -12.0], [34.0, 30.0, -13.0], -10.0, 50, 40, 1.1)
    assert np.isnan(got[1]) and not np.isnan(got[0])
    assert got[2] == pytest.approx(-10.0)  # water no warmer than outside: indoor falls to outdoor


@settings(max_examples=200, deadline=None)
@given(
    t_o=st.floats(-40.0, 10.0),
    colder=st.floats(0.1, 20.0),
    ds=st.floats(35.0, 95.0),
    dt=st.floats(3.0, 30.0),
    m=st.sampled_from([1.1, 1.3, 1.5]),
    target=st.floats(16.0, 22.0),
)
def test_colder_outdoor_needs_warmer_water(
    t_o: float, colder: float, ds: float, dt: float, m: float, target: float
) -> None:
    assume(t_o < target)
    # a physical design: the mean water temperature term outgrows the half-ΔT term (true for every
    # design in DOMAIN.md); a return at the design indoor temperature would not be one
    assume((ds - dt / 2 - 18.0) / m > dt)
    s1, r1 = required_temps(t_o, ds, ds - dt, m, indoor_target=target)
    s2, r2 = required_temps(t_o - colder, ds, ds - dt, m, indoor_target=target)
    assert s2 > s1 and r2 > r1
    assert s1 >= r1


@settings(max_examples=200, deadline=None)
@given(
    t_o=st.floats(-35.0, 12.0),
    ds=st.floats(35.0, 95.0),
    dt=st.floats(3.0, 30.0),
    m=st.floats(1.0, 1.6),
    target=st.floats(14.0, 24.0),
)
def test_estimate_inverts_the_curve(t_o: float, ds: float, dt: float, m: float, target: float) -> None:
    assume(target - t_o > 1.0)
    s, r = required_temps(t_o, ds, ds - dt, m, indoor_target=target)
    est = float(estimate_indoor_temp(s, r, t_o, ds, ds - dt, m))
    assert est == pytest.approx(target, abs=0.01)


@settings(max_examples=200, deadline=None)
@given(
    t_o=st.floats(-30.0, 10.0),
    supply=st.floats(20.0, 95.0),
    dt=st.floats(0.0, 25.0),
    bump=st.floats(0.5, 10.0),
    ds=st.floats(40.0, 95.0),
    m=st.sampled_from([1.1, 1.3]),
)
def test_estimate_rises_with_measured_temperatures(
    t_o: float, supply: float, dt: float, bump: float, ds: float, m: float
) -> None:
    assume(supply - dt > t_o + 1.0)
    base = float(estimate_indoor_temp(supply, supply - dt, t_o, ds, ds - 10.0, m))
    warmer_supply = float(estimate_indoor_temp(supply + bump, supply - dt, t_o, ds, ds - 10.0, m))
    warmer_return = float(estimate_indoor_temp(supply, supply - dt + bump, t_o, ds, ds - 10.0, m))
    assert warmer_supply > base and warmer_return > base
    assert t_o <= base <= (supply + supply - dt) / 2


def test_estimate_is_vectorised_over_many_loops_with_mixed_spans() -> None:
    rng = np.random.default_rng(7)
    n = 5000
    t_o = rng.uniform(-30, 10, n)
    ds = rng.uniform(40, 95, n)
    dr = ds - rng.uniform(5, 25, n)
    m = rng.choice([1.1, 1.3], n)
    target = rng.uniform(15, 22, n)
    s, r = required_temps(t_o, ds, dr, m, indoor_target=target)
    est = estimate_indoor_temp(s, r, t_o, ds, dr, m)
    assert np.abs(est - np.where(target > t_o, target, est)).max() < 0.01


def test_running_mean() -> None:
    mean, ts = running_mean_update(math.nan, math.nan, -10.0, 100.0, 3600.0)
    assert float(mean) == -10.0 and float(ts) == 100.0
    # one window later a step has moved the mean by 1 - 1/e of the way
    mean, ts = running_mean_update(mean, ts, 0.0, 3700.0, 3600.0)
    assert float(mean) == pytest.approx(-10.0 * math.exp(-1.0))
    # an old or NaN sample changes nothing; window 0 follows the sample
    same, same_ts = running_mean_update(mean, ts, 50.0, 3700.0, 3600.0)
    assert float(same) == float(mean) and float(same_ts) == 3700.0
    same, _ = running_mean_update(mean, ts, math.nan, 9999.0, 3600.0)
    assert float(same) == float(mean)
    raw, _ = running_mean_update(mean, ts, 5.0, 3800.0, 0.0)
    assert float(raw) == 5.0
    # arrays: stations update independently
    means, stamps = running_mean_update(
        np.array([math.nan, 1.0]), np.array([math.nan, 0.0]), np.array([2.0, 3.0]), np.array([10.0, 0.0]), 60.0
    )
    assert list(means) == [2.0, 1.0] and list(stamps) == [10.0, 0.0]


# -- stationmon curve ---------------------------------------------------------------------------------


def test_curve_prints_required_temperatures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["curve", "--design", "50/40", "--emitter", "floor", "--outdoor", "-10"]) == 0
    out = capsys.readouterr().out
    assert "39.9" in out and "33.3" in out


def test_curve_json_with_measured(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["curve", "--design", "50/40", "--emitter", "floor", "--outdoor", "-10", "--measured", "41/34", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"required_supply_temp", "required_return_temp", "estimated_indoor_temp"}
    assert doc["required_supply_temp"] == pytest.approx(39.9, abs=0.05)
    assert doc["required_return_temp"] == pytest.approx(33.3, abs=0.05)
    assert doc["estimated_indoor_temp"] == pytest.approx(18.6, abs=0.05)


def test_curve_options_change_the_answer(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["curve", "--design", "75/50", "--emitter", "radiator", "--outdoor", "-10", "--json"]
    assert main(base) == 0
    radiator = json.loads(capsys.readouterr().out)
    assert radiator["required_supply_temp"] == pytest.approx(58.8, abs=0.05)
    assert main([*base, "--indoor-target", "20", "--outdoor-design", "-26"]) == 0
    warmer = json.loads(capsys.readouterr().out)
    assert warmer["required_supply_temp"] > radiator["required_supply_temp"]
    assert main([*base, "--exponent", "1.1"]) == 0
    assert json.loads(capsys.readouterr().out) != radiator


@pytest.mark.parametrize(
    "extra",
    [
        ["--design", "75-50", "--emitter", "radiator"],
        ["--design", "40/50", "--emitter", "radiator"],
        ["--design", "75/50", "--emitter", "radiator", "--measured", "41"],
        ["--design", "75/50", "--exponent", "7"],
        ["--design", "75/50", "--emitter", "radiator", "--outdoor-design", "20"],
        ["--design", "75/50"],  # no --emitter and no --exponent
        ["--design", "50/40", "--emitter", "floor", "--measured", "34/41"],
    ],
)
def test_curve_bad_arguments_exit_2(extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["curve", "--outdoor", "-10", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stationmon curve: --") and "Traceback" not in err


def test_newton_agrees_with_bisection() -> None:
    rng = np.random.default_rng(11)
    n = 20000
    ds = rng.uniform(35, 95, n)
    dr = ds - rng.uniform(3, 25, n)
    m = rng.uniform(1.0, 1.6, n)
    t_o = rng.uniform(-40, 15, n)
    supply = rng.uniform(-5, 100, n)
    ret = supply - rng.uniform(-3, 25, n)
    supply[::97] = math.nan
    newton = estimate_indoor_temp(supply, ret, t_o, ds, dr, m)
    bisect = estimate_indoor_temp(supply, ret, t_o, ds, dr, m, method="bisection", tolerance=1e-4)
    assert np.array_equal(np.isnan(newton), np.isnan(bisect))
    ok = ~np.isnan(newton)
    assert np.abs(newton[ok] - bisect[ok]).max() < 1e-4
    # the root lies in [t_o, t_m]
    t_m = (supply + ret) / 2
    assert (newton[ok] >= t_o[ok] - 1e-9).all() and (newton[ok] <= np.maximum(t_m, t_o)[ok] + 1e-9).all()
    with pytest.raises(ValueError):
        estimate_indoor_temp(41, 34, -10, 50, 40, 1.1, method="secant")
