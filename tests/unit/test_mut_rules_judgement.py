"""The rule engine's judgement, water facts and setbacks at their edges: each test names the one-line bugs
(surviving mutants of `make mutation`) it catches.

One radiator loop (75/50, m 1.3) of station s1 unless said otherwise; no smoothing.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from stationmon.domain.heating import estimate_indoor_temp
from stationmon.domain.plant import DailyWindow, Setback, Site
from stationmon.domain.rules import LoopTable, RuleEngine, RuleInputs, Series
from stationmon.domain.rules.faults import FAULT_FLATLINE, FAULT_PRIMARY, FAULT_SWAPPED
from stationmon.domain.settings import RulesSettings
from tests.unit.test_rules_edges import NOW, RADIATOR, make_engine, make_inputs

NO_SMOOTHING = RulesSettings(outdoor_smoothing_s=0.0, water_smoothing_s=0.0)


def test_a_loop_whose_return_probe_never_reported_is_unknown_not_ok() -> None:
    """The return probe has never sent a value (not configured, so not stale either): its supply is known,
    the outdoor too, but the curve cannot be judged: status unknown, verdict none, neither probe usable
    for the model.

    Catches `|` for `&` between supply_ok, return_ok and a known outdoor (the estimate verdict without a
    return), and `|` for `&` in the usable flags the water facts return (a never-read probe used as NaN)."""
    inp = make_inputs(70.0, 50.0)
    inp.return_ = Series.empty(1)
    r = make_engine().evaluate(inp)
    assert not bool(r.loops.return_ok[0]) and int(r.return_faults[0]) == 0
    assert (r.status_name(0), r.verdict_name(0)) == ("unknown", "none")
    inp = make_inputs(70.0, 50.0, now=NOW + 10)
    inp.supply = Series.empty(1)
    r = make_engine().evaluate(inp)
    assert not bool(r.loops.supply_ok[0]) and int(r.supply_faults[0]) == 0
    assert (r.status_name(0), r.verdict_name(0)) == ("unknown", "none")


def test_a_diagnostic_rule_alone_does_not_make_a_loop_noncompliant() -> None:
    """Water well above the curve with a ΔT far above what the design expects: delta_t_high holds (a
    diagnostic for the company), but the rooms are warm: the loop is ok, not noncompliant.

    Catches `|` for `&` when the water-model rules are picked from the checks (every active check would
    count as a compliance failure)."""
    r = make_engine().evaluate(make_inputs(80.0, 45.0))
    assert [rule for rule, check in r.loop_checks.items() if check.active[0]] == ["delta_t_high"]
    assert r.status_name(0) == "ok"


def test_each_water_model_rule_makes_its_own_loop_noncompliant() -> None:
    """Two loops on one station: the first gets water far under its curve (supply_low and friends), the
    second warm water but a stopped pump (no_circulation only). Both are noncompliant.

    Catches `=` for `|=` when the water-model rules' findings are combined (only the last rule looked at,
    in set order, would count)."""
    loops = [("s1", "cold", 75.0, 50.0, 1.3, None, None), ("s1", "stopped", 75.0, 50.0, 1.3, None, None)]
    table = LoopTable.build([("s1", "d1")], loops, Site(indoor_target=18.0))
    ts = [NOW - 5, NOW - 5]
    inp = RuleInputs(
        now=NOW,
        supply=Series.of([35.0, 70.0], ts),
        return_=Series.of([30.0, 50.0], ts),
        flow=Series.empty(2),
        outdoor=Series.of([-10.0], [NOW - 5]),
        primary_supply=Series.empty(1),
        station_last_seen=np.array([NOW - 5]),
        pump_running=Series.of([1.0, 0.0], ts),
    )
    r = RuleEngine(table, NO_SMOOTHING).evaluate(inp)
    active = {rule: r.loop_checks[rule].active.tolist() for rule in ("supply_low", "no_circulation")}
    assert active == {"supply_low": [True, False], "no_circulation": [False, True]}
    assert [r.status_name(0), r.status_name(1)] == ["noncompliant", "noncompliant"]


def test_status_and_verdict_codes_are_int8() -> None:
    """`status` and `verdict` are int8 codes into STATUS_NAMES / VERDICTS (the encoder, the report and the
    status page index tables with them; one byte per loop at 100,000 loops)."""
    r = make_engine().evaluate(make_inputs(70.0, 50.0))
    assert (r.status.dtype, r.verdict.dtype) == (np.int8, np.int8)


@pytest.mark.parametrize(("pump", "flowing"), [(0.0, False), (0.49, False), (0.5, True), (1.0, True)])
def test_a_pump_status_of_at_least_half_is_running(pump: float, flowing: bool) -> None:
    """A pump-running point reads 0/1 (or an analog 0..1): 0.5 and above is running.

    Catches `<=` for `<` in the standing test (a pump at exactly 0.5 would stop the loop's circulation)."""
    inp = make_inputs(70.0, 50.0)
    inp.pump_running = Series.of([pump], [NOW - 5])
    assert bool(make_engine().evaluate(inp).loops.flowing[0]) is flowing


@pytest.mark.parametrize(("supply", "return_", "swapped"), [(0.05, 0.25, False), (0.05, 0.26, True)])
def test_a_supply_exactly_the_swap_tolerance_below_the_return_is_no_swap(
    supply: float, return_: float, swapped: bool
) -> None:
    """Supply exactly 0.2 K under the return (0.05 - 0.25 is -0.2 in binary floating point, which few
    pairs are): within the tolerance, no swap; 0.21 K under is one.

    Catches `<=` for `<` in the swap test."""
    assert supply - return_ == -0.2 or swapped
    r = make_engine().evaluate(make_inputs(supply, return_))
    assert bool(r.supply_faults[0] & FAULT_SWAPPED) is swapped


def test_a_swapped_pair_under_a_low_primary_keeps_both_faults() -> None:
    """Supply 1 K under the return (swapped) and the primary 5 K under that supply: the supply probe is
    both swapped and contradicted by the primary; both bits are kept.

    Catches `=` for `|=` when the primary contradiction is added (it would erase the swap)."""
    r = make_engine().evaluate(make_inputs(50.0, 51.0, primary=45.0))
    assert int(r.supply_faults[0]) == FAULT_SWAPPED | FAULT_PRIMARY


def test_a_frozen_return_probe_is_a_flatline() -> None:
    """The return probe repeats 40.0 °C for 35 minutes while the supply moves: a flatline of the return
    after the 30-minute window (the return has its own tracker, like the supply).

    Catches the return series judged without its tracker (no flatline or rate test on returns)."""
    eng = make_engine()
    bits = 0
    for k in range(0, 35 * 60 + 1, 300):
        bits = int(eng.evaluate(make_inputs(60.0 + 0.5 * ((k // 300) % 2), 40.0, now=NOW + k + 1)).return_faults[0])
    assert bits == FAULT_FLATLINE


# ------------------------------------------------------------------------------ setbacks


def _setback_engine(kelvin: float, site: Site, loops: list[tuple[object, ...]] | None = None) -> RuleEngine:
    settings = RulesSettings(
        outdoor_smoothing_s=0.0, water_smoothing_s=0.0, setbacks=(Setback(DailyWindow(0, 1440), kelvin),)
    )
    return RuleEngine(LoopTable.build([("s1", "d1")], loops or [RADIATOR], site), settings)


def test_a_setback_is_given_back_with_the_sites_design_point() -> None:
    """A 3 K setback on a site designed for -26 °C outdoor and 20 °C indoor: the estimate with the kelvin
    given back uses that design point, not the defaults (-24.2 °C, 18 °C).

    Catches outdoor_design or design_indoor left out of the given-back estimate."""
    site = Site(indoor_target=20.0, outdoor_design=-26.0, design_indoor=20.0)
    r = _setback_engine(3.0, site).evaluate(make_inputs(50.0, 40.0))
    want = float(estimate_indoor_temp(53.0, 43.0, -10.0, 75.0, 50.0, 1.3, outdoor_design=-26.0, design_indoor=20.0))
    assert float(r.loops.setback_estimate[0]) == pytest.approx(want, abs=1e-5)
    default = float(estimate_indoor_temp(53.0, 43.0, -10.0, 75.0, 50.0, 1.3))
    assert abs(want - default) > 0.1


def test_a_standing_loop_in_a_setback_has_no_estimate_given_back() -> None:
    """A loop whose pump stopped has no indoor estimate (standing water says nothing of the rooms), with or
    without a setback's kelvin given back.

    Catches `|` for `&` choosing the loops to give the setback back to (every loop in a setback would get
    an estimate from its standing water)."""
    inp = make_inputs(50.0, 40.0)
    inp.pump_running = Series.of([0.0], [NOW - 5])
    r = _setback_engine(3.0, Site(indoor_target=18.0)).evaluate(inp)
    assert math.isnan(float(r.loops.estimated_indoor[0]))
    assert math.isnan(float(r.loops.setback_estimate[0]))


def test_the_primary_must_reach_the_lowered_supply_during_a_setback() -> None:
    """During a 5 K setback the station's loops need 5 K less supply: the primary is judged against the
    required supply minus the setback, not plus.

    Catches `+` for `-` of the setback in the station's required secondary supply."""
    r = _setback_engine(5.0, Site(indoor_target=18.0)).evaluate(make_inputs(60.0, 45.0, primary=90.0))
    assert float(r.stations.required_secondary[0]) == pytest.approx(float(r.required_supply[0]) - 5.0)
