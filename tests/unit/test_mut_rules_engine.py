"""The rule engine's facts at their edges: each test names the one-line bugs (surviving mutants) it catches.

A point's staleness at exactly `stale_after`, a configured point never read at exactly its grace, the
outdoor probe's flatline at its own resolution: the older tests judged values far from every edge.
One radiator loop (75/50, m 1.3) of station s1 unless said otherwise; no smoothing.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from stationmon.domain.heating import estimate_indoor_temp
from stationmon.domain.plant import DailyWindow, Setback, Site
from stationmon.domain.rules import LoopTable, RuleEngine, RuleInputs, Series
from stationmon.domain.rules.faults import FAULT_FLAGGED, FAULT_FLATLINE, FAULT_RANGE, FAULT_SENTINEL, FAULT_STALE
from stationmon.domain.rules.inputs import PointFacts
from stationmon.domain.settings import RulesSettings
from stationmon.domain.vocabulary import RULE_NAMES
from tests.unit.test_rules_edges import NOW, RADIATOR, make_inputs


def _engine(points: dict[str, PointFacts] | None = None, **sensor_fault: Any) -> RuleEngine:
    """One radiator loop, offline_after 60 s, `sensor_fault` fields replaced, `points` configured."""
    base = RulesSettings(outdoor_smoothing_s=0.0, water_smoothing_s=0.0)
    rules = {name: base.rule(name) for name in RULE_NAMES}
    rules["sensor_fault"] = replace(rules["sensor_fault"], **sensor_fault)
    table = LoopTable.build([("s1", "d1")], [RADIATOR], Site(indoor_target=18.0), points=points or {})
    return RuleEngine(table, replace(base, rules=rules))


def _configured(tolerance: float = np.nan, resolution: float = 0.0) -> PointFacts:
    return PointFacts(configured=np.array([True]), tolerance=np.array([tolerance]), resolution=np.array([resolution]))


@pytest.mark.parametrize(("age", "stale"), [(90.0, False), (120.0, False), (120.5, True)])
def test_a_reading_is_fresh_until_exactly_stale_after(age: float, stale: bool) -> None:
    """stale_after 120 s (longer than offline_after's 60 s) while the station answers: a supply reading
    90 s or exactly 120 s old is still judged, 120.5 s old is a stale sensor fault.

    Catches `<` for `<=` in the freshness test (a reading at exactly stale_after neither judged nor stale:
    the loop would fall silent, "unknown", instead of saying why), and stale_after ignored for
    offline_after (`and` for `or`: every reading over 60 s old stale)."""
    eng = _engine(stale_after_s=120.0)
    inp = make_inputs(70.0, 50.0)
    inp.supply = Series.of([70.0], [NOW - age])
    r = eng.evaluate(inp)
    assert int(r.supply_faults[0]) == (FAULT_STALE if stale else 0)
    assert bool(r.loops.supply_ok[0]) is not stale
    assert r.status_name(0) == ("sensor_fault" if stale else "ok")


@pytest.mark.parametrize(("since_start", "stale"), [(60.0, False), (60.5, True)])
def test_a_configured_point_never_read_is_stale_only_after_the_whole_grace(since_start: float, stale: bool) -> None:
    """A configured flow meter never read counts from the service's start: exactly offline_after (60 s)
    after it, it is still in its grace; half a second later it is stale.

    Catches `>=` for `>` in the stale test (a configured point flagged at exactly its grace)."""
    eng = _engine(points={"flow": _configured()})
    inp = make_inputs(70.0, 50.0)
    inp.started_at = NOW - since_start
    r = eng.evaluate(inp)
    assert int(r.loops.flow_faults[0]) == (FAULT_STALE if stale else 0)


def _outdoor_run(eng: RuleEngine, minutes: int, step: float) -> int:
    """Feed the outdoor probe every 5 minutes (gaps under a quarter window) for `minutes`, moving by
    `step` every 10 minutes; its last bits."""
    bits = 0
    for k in range(0, minutes * 60 + 1, 300):
        inp = make_inputs(70.0, 50.0, now=NOW + k + 1, outdoor=-10.0 + step * ((k // 600) % 2))
        inp.outdoor = Series.of([inp.outdoor.value[0]], [NOW + k])
        inp.supply = Series.of([70.0 + 0.5 * ((k // 300) % 2)], [NOW + k])
        inp.return_ = Series.of([50.0 + 0.5 * ((k // 300) % 2)], [NOW + k])
        inp.station_last_seen = np.array([NOW + k])
        bits = int(eng.evaluate(inp).outdoor_faults[0])
    return bits


def test_a_still_outdoor_probe_is_a_flatline_after_the_window() -> None:
    """An outdoor probe (a float point) that does not move for 35 minutes is a flatline (window 30 min).

    Catches the outdoor probe's tracker never consulted for flatlines."""
    eng = _engine(points={"outdoor_temp": _configured()})
    assert _outdoor_run(eng, 35, 0.0) == FAULT_FLATLINE


def test_a_coarse_outdoor_probe_is_judged_at_its_own_resolution() -> None:
    """An int16 x 0.5 outdoor probe moves in 0.5 K steps: a weather that changes by one step every ten
    minutes is alive, and the window grows tenfold with the tolerance (0.5 K over 0.05 K), so 35 still
    minutes is no flatline either; a float probe with the same readings (tolerance 0.05 K) is alive too,
    but one that sat still is flat after 30 minutes.

    Catches the outdoor tracker built without the outdoor point's facts (another quantity's, or none:
    the 0.05 K default would call the still coarse probe flat after 30 minutes)."""
    coarse = _engine(points={"outdoor_temp": _configured(resolution=0.5)})
    assert _outdoor_run(coarse, 35, 0.0) == 0
    moving = _engine(points={"outdoor_temp": _configured(resolution=0.5)})
    assert _outdoor_run(moving, 65, 0.5) == 0
    fine = _engine(points={"outdoor_temp": _configured()})
    assert _outdoor_run(fine, 65, 0.5) == 0


def test_a_new_engine_has_no_smoothing_state_to_save() -> None:
    """The evaluator saves the state file on its first tick, possibly before any evaluation: a new engine
    has nothing to save, and after one evaluation it has its station's running mean.

    Catches the running mean's NaN placeholders replaced by None (`np.full(ns, None)`): the state of a new
    engine would raise instead of being empty."""
    eng = _engine()
    assert eng.smoothing_state() == {}
    eng.evaluate(make_inputs(70.0, 50.0, outdoor=-7.5))
    assert eng.smoothing_state() == {"s1": [-7.5, NOW - 5]}


# -- household sensors: age, tiers and the median per loop ----------------------------------------------

FOUR_LOOPS = [("s1", name, 75.0, 50.0, 1.3, None, None) for name in ("a", "b", "c", "d")]


def _four_loop_engine(**settings: Any) -> RuleEngine:
    table = LoopTable.build([("s1", "d1")], FOUR_LOOPS, Site(indoor_target=18.0))
    return RuleEngine(table, RulesSettings(outdoor_smoothing_s=0.0, water_smoothing_s=0.0, **settings))


def _four_loop_inputs(indoor: list[tuple[int, float, float]], now: float = NOW) -> RuleInputs:
    """Warm water on every loop (60/45 °C at -10 °C); `indoor`: (loop, value, age in s) per household sensor."""
    four = [now - 5] * 4
    return RuleInputs(
        now=now,
        supply=Series.of([60.0] * 4, four),
        return_=Series.of([45.0] * 4, four),
        flow=Series.empty(4),
        outdoor=Series.of([-10.0], [now - 5]),
        primary_supply=Series.empty(1),
        station_last_seen=np.array([now - 5]),
        indoor=Series.of([v for _, v, _ in indoor], [now - age for _, _, age in indoor]),
        indoor_loop=np.array([i for i, _, _ in indoor], dtype=np.int64),
    )


def test_household_medians_of_one_three_and_four_sensors_and_none() -> None:
    """The median per loop (what the status page shows as measured indoor): one sensor is its own median,
    three the middle one, four the mean of the middle two, a loop without sensors has none (NaN).

    Catches the median's index arithmetic changed (`(fresh - 2) // 2`, `// 3`, `fresh // 3`), the loops
    given a median from a count of at least 0 (a loop without sensors reads its neighbour's) or 2 (a
    single sensor ignored)."""
    indoor = [(0, 19.0, 60.0)]
    indoor += [(1, v, 60.0) for v in (22.0, 18.5, 20.0)]
    indoor += [(3, v, 60.0) for v in (21.0, 17.0, 19.0, 23.0)]
    r = _four_loop_engine().evaluate(_four_loop_inputs(indoor))
    median = r.measured_indoor
    assert median[[0, 1, 3]].tolist() == [19.0, 20.0, 20.0] and np.isnan(median[2])
    assert r.indoor_sensors.tolist() == [1, 3, 0, 4]


def test_household_tiers_count_only_readings_strictly_below() -> None:
    """A flat at exactly the target (18 °C here) or exactly the refund tier (16 °C) is not below it: the
    regulation refunds below 18/16, not at them.

    Catches `<=` for `<` in the per-loop counts below the target and below the refund tier."""
    indoor = [(0, v, 60.0) for v in (18.0, 16.0, 15.9, 20.0)]
    r = _four_loop_engine().evaluate(_four_loop_inputs(indoor))
    assert r.indoor_below_target.tolist() == [2, 0, 0, 0]
    assert r.indoor_below_refund.tolist() == [1, 0, 0, 0]


@pytest.mark.parametrize(("age", "counted"), [(3600.0, True), (3600.5, False)])
def test_a_household_reading_counts_for_exactly_an_hour(age: float, counted: bool) -> None:
    """Household thermometers report rarely: a reading exactly an hour old still counts, older does not.

    Catches `<` for `<=` against INDOOR_MAX_AGE_S."""
    r = _four_loop_engine().evaluate(_four_loop_inputs([(0, 17.0, age)]))
    assert int(r.indoor_sensors[0]) == int(counted)


# -- planned setbacks under a kelvin, demand at the target, design limits -------------------------------


def test_a_setback_of_half_a_kelvin_is_flagged_and_given_back_to_the_estimate() -> None:
    """A planned setback of 0.5 K now: the loop is in a setback, and the estimate the rule judges is the
    one of the water with the 0.5 K given back (computed here with the model directly).

    Catches `> 1.0` for `> 0.0` in the setback flag and in the loops given back, and the kelvin taken
    off the supply instead of given back (`supply - k`)."""
    base = RulesSettings(outdoor_smoothing_s=0.0, water_smoothing_s=0.0, setbacks=(Setback(DailyWindow(0, 1440), 0.5),))
    table = LoopTable.build([("s1", "d1")], [RADIATOR], Site(indoor_target=18.0))
    r = RuleEngine(table, base).evaluate(make_inputs(50.0, 40.0))
    assert r.setback.tolist() == [True]
    as_measured = float(estimate_indoor_temp(50.0, 40.0, -10.0, 75.0, 50.0, 1.3))
    assert float(r.loops.estimated_indoor[0]) == pytest.approx(as_measured)
    given_back = float(estimate_indoor_temp(50.5, 40.5, -10.0, 75.0, 50.0, 1.3))
    assert float(r.loops.setback_estimate[0]) == pytest.approx(given_back, abs=1e-5)
    assert given_back > float(r.loops.estimated_indoor[0]) + 0.1


def test_outdoor_exactly_at_the_target_is_no_demand() -> None:
    """Outdoor exactly at the indoor target (18 °C): no heat is needed, so a loop with a stopped flow and
    water under its fixed 40 °C floor is judged and clear (a summer-like day is no shortfall).

    Catches `>` for `>=` in the demand test (no_circulation and the fixed floor would fire at 18 °C)."""
    table = LoopTable.build([("s1", "d1")], [("s1", "rad", 75.0, 50.0, 1.3, 40.0, None)], Site(indoor_target=18.0))
    eng = RuleEngine(table, RulesSettings(outdoor_smoothing_s=0.0, water_smoothing_s=0.0))
    inp = make_inputs(25.0, 22.0, outdoor=18.0)
    inp.flow = Series.of([0.0], [NOW - 5])
    r = eng.evaluate(inp)
    for rule in ("supply_low", "no_circulation"):
        assert r.loop_checks[rule].judged[0] and not r.loop_checks[rule].active[0], rule
    assert r.status_name(0) == "ok"
    inp = make_inputs(25.0, 22.0, outdoor=17.9, now=NOW + 10)
    inp.flow = Series.of([0.0], [NOW + 5])
    r = eng.evaluate(inp)
    assert r.loop_checks["supply_low"].active[0] and r.loop_checks["no_circulation"].active[0]


def test_exactly_the_design_outdoor_temperature_is_not_beyond_design() -> None:
    """With exempt_below_design, a shortfall at exactly the design outdoor temperature (-24.2 °C) still
    counts against the company: the plant was built for it. Only colder is exempt.

    Catches `<=` for `<` in the exemption."""
    base = RulesSettings(outdoor_smoothing_s=0.0, water_smoothing_s=0.0, exempt_below_design=True)
    table = LoopTable.build([("s1", "d1")], [RADIATOR], Site(indoor_target=18.0))
    r = RuleEngine(table, base).evaluate(make_inputs(50.0, 40.0, outdoor=-24.2))
    assert r.status_name(0) == "noncompliant"
    r = RuleEngine(table, base).evaluate(make_inputs(50.0, 40.0, outdoor=-24.3))
    assert r.status_name(0) == "unknown"


def test_a_standing_loop_asks_nothing_of_the_primary() -> None:
    """Two loops on one station: a 95/70 loop whose flow meter reads 0 (standing) and a 50/40 floor loop
    circulating. The primary must reach only what the circulating loop needs (+ 5 K approach).

    Catches `|` for `&` between flowing and demand in the station's required secondary supply."""
    loops = [("s1", "hot", 95.0, 70.0, 1.3, None, None), ("s1", "floor", 50.0, 40.0, 1.1, None, None)]
    table = LoopTable.build([("s1", "d1")], loops, Site(indoor_target=18.0))
    eng = RuleEngine(table, RulesSettings(outdoor_smoothing_s=0.0, water_smoothing_s=0.0))
    ts = [NOW - 5, NOW - 5]
    inp = RuleInputs(
        now=NOW,
        supply=Series.of([45.0, 40.0], ts),
        return_=Series.of([40.0, 34.0], ts),
        flow=Series.of([0.0, 30.0], ts),
        outdoor=Series.of([-10.0], [NOW - 5]),
        primary_supply=Series.of([60.0], [NOW - 5]),
        station_last_seen=np.array([NOW - 5]),
    )
    r = eng.evaluate(inp)
    assert r.loops.flowing.tolist() == [False, True]
    assert float(r.stations.required_secondary[0]) == pytest.approx(float(r.required_supply[1]))


def test_a_primary_exactly_half_a_kelvin_under_the_secondary_is_noise() -> None:
    """Primary 49.5 °C against a secondary supply of 50.0 °C: exactly the 0.5 K tolerance, no fault.

    Catches `<=` for `<` in the primary-below-secondary test."""
    r = _engine().evaluate(make_inputs(50.0, 40.0, primary=49.5))
    assert int(r.supply_faults[0]) == 0 and int(r.stations.primary_faults[0]) == 0


@pytest.mark.parametrize("sensor", ["supply", "return_", "flow", "pump_running", "outdoor"])
def test_a_sensor_flagged_by_the_collector_alone_makes_the_loop_a_sensor_fault(sensor: str) -> None:
    """A reading the collector flagged (fault bits exactly FAULT_FLAGGED, 1) of any one of the loop's
    sensors, or of its station's outdoor probe: the loop's status is sensor_fault.

    Catches `!= 1` for `!= 0` in the loop's faulty test for each sensor (a lone flag would pass)."""
    inp = make_inputs(60.0, 45.0)
    inp.flow = Series.of([30.0], [NOW - 5])
    inp.pump_running = Series.of([1.0], [NOW - 5])
    one = getattr(inp, sensor)
    setattr(inp, sensor, Series.of(one.value, one.ts, [True]))
    r = _engine().evaluate(inp)
    assert r.status_name(0) == "sensor_fault"


def test_a_flatline_tolerance_of_zero_still_finds_a_frozen_probe() -> None:
    """`flatline_tolerance = 0` (allowed: any change at all is life) for a float supply point: a value that
    repeats exactly for 35 minutes is a flatline after the 30-minute window.

    Catches `>= 0` for `> 0` before scaling the window by tolerance / flatline_tolerance: 0 / 0 makes the
    window NaN, and no probe would ever be flat."""
    eng = _engine(points={"supply_temp": _configured()}, flatline_tolerance=0.0)
    bits = 0
    for k in range(0, 35 * 60 + 1, 300):
        inp = make_inputs(42.0, 33.0 + 0.3 * ((k // 300) % 2), now=NOW + k + 1)
        bits = int(eng.evaluate(inp).supply_faults[0])
    assert bits == FAULT_FLATLINE


# ------------------------------------------------------------------------------ per-station reductions

_LOOPS_BY_STATION = {
    "s1": [("s1", "rad", 75.0, 50.0, 1.3, None, None), ("s1", "floor", 45.0, 35.0, 1.1, None, None)],
    "s2": [("s2", "hot", 95.0, 70.0, 1.3, None, None), ("s2", "warm", 50.0, 40.0, 1.1, None, None)],
    "s3": [("s3", "standing", 50.0, 40.0, 1.1, None, None)],
}


def _required_secondary(order: list[tuple[str, int]]) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """Evaluate the loops of _LOOPS_BY_STATION listed in `order` ((station, k) each); s3's flow reads 0
    and s2's "warm" loop's flow read 0 (standing: they ask nothing of the primary). Per station its
    required secondary supply, and per loop its required supply."""
    loops = [_LOOPS_BY_STATION[s][k] for s, k in order]
    stations = [("s1", "d1"), ("s2", "d1"), ("s3", "d1")]
    table = LoopTable.build(stations, loops, Site(indoor_target=18.0))
    eng = RuleEngine(table, RulesSettings(outdoor_smoothing_s=0.0, water_smoothing_s=0.0))
    ts = [NOW - 5] * len(loops)
    inp = RuleInputs(
        now=NOW,
        supply=Series.of([50.0] * len(loops), ts),
        return_=Series.of([40.0] * len(loops), ts),
        flow=Series.of([0.0 if (s, k) in (("s3", 0), ("s2", 1)) else 30.0 for s, k in order], ts),
        outdoor=Series.of([-10.0] * 3, [NOW - 5] * 3),
        primary_supply=Series.of([90.0] * 3, [NOW - 5] * 3),
        station_last_seen=np.array([NOW - 5] * 3),
    )
    r = eng.evaluate(inp)
    per_station = {sid: float(r.stations.required_secondary[table.station_index[sid]]) for sid in ("s1", "s2", "s3")}
    per_loop = {(s, loops[i][1]): float(r.required_supply[i]) for i, (s, _) in enumerate(order)}
    return per_station, per_loop


@pytest.mark.parametrize(
    "order",
    [
        [("s1", 0), ("s1", 1), ("s2", 0), ("s2", 1), ("s3", 0)],  # station by station, as configurations list them
        [
            ("s2", 0),
            ("s1", 0),
            ("s3", 0),
            ("s1", 1),
            ("s2", 1),
        ],  # interleaved: the per-station reduction cannot use runs
        [("s1", 0), ("s3", 0), ("s2", 0), ("s2", 1), ("s1", 1)],  # the first station first, the rest out of order
    ],
)
def test_the_hottest_supply_a_station_needs_is_its_circulating_loops_maximum_in_any_order(
    order: list[tuple[str, int]],
) -> None:
    """Per station, the largest required supply of its circulating loops; none (NaN) where no loop
    circulates. Loops listed station by station take `reduceat` over runs of a station; listed out of
    order they take `maximum.at`.

    Catches: runs taken for an interleaved table (`and` for `or`, the order test dropped: reduceat over
    non-contiguous runs mixes stations), run starts at equal neighbours (`==`), the two paths swapped,
    the order compared with the first loop only (`st[:+1]`, in the order test or in the run starts), the
    fallback's initial +inf or NaN filter inverted, dropped or its arguments dropped (a standing loop's NaN
    would make its station's maximum NaN)."""
    per_station, per_loop = _required_secondary(order)
    assert per_station["s1"] == max(per_loop[("s1", "rad")], per_loop[("s1", "floor")])
    assert per_station["s1"] == per_loop[("s1", "rad")] > per_loop[("s1", "floor")]
    assert per_station["s2"] == per_loop[("s2", "hot")]
    assert math.isnan(per_station["s3"])
    assert per_station == pytest.approx(
        _required_secondary([("s1", 0), ("s1", 1), ("s2", 0), ("s3", 0)])[0], nan_ok=True
    )


@pytest.mark.parametrize(("value", "bits"), [(300.0, FAULT_RANGE), (850.0, FAULT_SENTINEL), (60.0, 0)])
def test_a_flagged_reading_keeps_its_own_fault_bits_too(value: float, bits: int) -> None:
    """The collector flagged a supply reading that is also out of range (or a sentinel): both are said,
    so the message names what is wrong with the probe and not only that the collector doubted it.

    Catches `=` for `|=` when the collector's flag is added to the value's own bits."""
    inp = make_inputs(60.0, 45.0)
    inp.supply = Series.of([value], [NOW - 5], [True])
    r = _engine().evaluate(inp)
    assert int(r.supply_faults[0]) == bits | FAULT_FLAGGED
    assert r.status_name(0) == "sensor_fault"


def test_during_the_startup_grace_a_fresh_reading_is_judged_and_a_missing_one_is_not_used() -> None:
    """10 s after the service started (within offline_after's 60 s grace): the supply read 5 s ago is fresh
    and judged; a flow meter configured but not yet read is neither stale nor usable.

    Catches `=` for `|=` when the grace adds never-read points to the young ones (a fresh reading would
    then count as old and go stale) and `|` for `&` in fresh (a point never read would be used)."""
    eng = _engine(points={"flow": _configured()})
    inp = make_inputs(70.0, 50.0)
    inp.started_at = NOW - 10
    r = eng.evaluate(inp)
    assert int(r.supply_faults[0]) == 0 and bool(r.loops.supply_ok[0])
    assert int(r.loops.flow_faults[0]) == 0 and not bool(r.loops.flow_ok[0])
    assert r.status_name(0) == "ok"


def test_results_carry_the_evaluation_time() -> None:
    """`loop_status` points are stamped with the results' time: the evaluation's `now`."""
    inp = make_inputs(70.0, 50.0, now=NOW + 30)
    assert _engine().evaluate(inp).now == NOW + 30


@pytest.mark.parametrize(
    ("supply", "return_", "delta_t"), [(70.0, 50.0, 20.0), (70.0, 850.0, None), (850.0, 50.0, None)]
)
def test_measured_delta_t_only_where_both_probes_are_usable(
    supply: float, return_: float, delta_t: float | None
) -> None:
    """The ΔT written to `loop_status` is supply - return where both probes are good, NaN (a float, so the
    field is left out) where either is faulty: never 70 - 850.

    Catches `|` for `&` (one good probe would do) and None for NaN (an object array)."""
    r = _engine().evaluate(make_inputs(supply, return_))
    assert r.delta_t.dtype == np.float64
    if delta_t is None:
        assert math.isnan(r.delta_t[0])
    else:
        assert r.delta_t[0] == delta_t
