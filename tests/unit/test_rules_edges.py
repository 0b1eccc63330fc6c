"""The rules at their edges: each test names the one-line bug (issue 17's surviving mutant) it catches.

A value exactly at a threshold, a held alert just inside its hysteresis, a tolerance just either side:
the older tests judged values far from every edge, so a flipped sign or `>` for `>=` passed them.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from stationmon.domain.heating import required_temps
from stationmon.domain.plant import DailyWindow, Loop, Point, Setback, Site, Station
from stationmon.domain.rules import (
    LoopTable,
    RuleEngine,
    RuleInputs,
    RuleResults,
    Series,
    in_heating_season,
    station_online,
)
from stationmon.domain.rules.faults import (
    FAULT_FLATLINE,
    FAULT_PRIMARY,
    FAULT_RANGE,
    FAULT_RATE,
    FAULT_SENTINEL,
    FAULT_SWAPPED,
    SensorTracker,
    quantity_faults,
)
from stationmon.domain.rules.inputs import PointFacts, reading_age
from stationmon.domain.settings import RulesSettings
from stationmon.domain.vocabulary import RULE_NAMES

NOW = 1_700_000_000.0
FLOOR = ("s1", "floor", 50.0, 40.0, 1.1, None, None)
RADIATOR = ("s1", "rad", 75.0, 50.0, 1.3, None, None)
RADIATOR_EXPECTED_DT = 25.0 * 28.0 / 42.2  # at -10 °C outdoor, 18 °C target: 16.588 K


def make_engine(loops: Sequence[Any] = (RADIATOR,), **rule_settings: dict[str, Any]) -> RuleEngine:
    """An engine over station s1 with no smoothing; `rule_settings`: rule name -> RuleSettings fields."""
    base = RulesSettings(outdoor_smoothing_s=0.0, water_smoothing_s=0.0)
    rules = {name: base.rule(name) for name in RULE_NAMES}
    for name, fields in rule_settings.items():
        rules[name] = replace(rules[name], **fields)
    table = LoopTable.build([("s1", "d1")], loops, Site(indoor_target=18.0))
    return RuleEngine(table, replace(base, rules=rules))


def make_inputs(
    supply: float,
    return_: float,
    *,
    now: float = NOW,
    outdoor: float = -10.0,
    primary: float | None = None,
    last_seen: float | None = None,
    indoor: Sequence[float] = (),
) -> RuleInputs:
    """One loop's readings, stamped 5 s before `now`."""
    ts = now - 5
    return RuleInputs(
        now=now,
        supply=Series.of([supply], [ts]),
        return_=Series.of([return_], [ts]),
        flow=Series.empty(1),
        outdoor=Series.of([outdoor], [ts]),
        primary_supply=Series.of([primary], [ts]) if primary is not None else Series.empty(1),
        station_last_seen=np.array([ts if last_seen is None else last_seen]),
        indoor=Series.of(list(indoor), [ts] * len(indoor)),
        indoor_loop=np.zeros(len(indoor), dtype=np.int64),
    )


def active(r: RuleResults, rule: str) -> bool:
    return bool(r.loop_checks[rule].active[0])


def held_and_unheld(rule: str, supply: float, return_: float, **kw: Any) -> tuple[bool, bool]:
    """(active without a held alert, active with the alert held) for the same readings."""
    eng = make_engine(**kw.pop("settings", {}))
    unheld = active(eng.evaluate(make_inputs(supply, return_, **kw)), rule)
    held = eng.held_masks([(rule, "s1", "rad")])
    return unheld, active(eng.evaluate(make_inputs(supply, return_, now=NOW + 10, **kw), held), rule)


# -- hysteresis: a held alert holds until the value is `hysteresis` (0.5 K) past the threshold ----------


def test_delta_t_low_hysteresis_lifts_the_threshold() -> None:
    """Catches `threshold - hysteresis` for `threshold + hysteresis` in delta_t_low (the sign of the lift)."""
    threshold = 0.5 * RADIATOR_EXPECTED_DT  # 8.294 K
    # 0.2 K above the threshold: clear when new, still low when held
    assert held_and_unheld("delta_t_low", 60.0, 60.0 - (threshold + 0.2)) == (False, True)
    # 0.7 K above: past the hysteresis, clear even when held
    assert held_and_unheld("delta_t_low", 60.0, 60.0 - (threshold + 0.7)) == (False, False)


def test_delta_t_high_hysteresis_lowers_the_threshold() -> None:
    """Catches `threshold + hysteresis` for `threshold - hysteresis` in delta_t_high."""
    threshold = 2.0 * RADIATOR_EXPECTED_DT  # 33.18 K
    assert held_and_unheld("delta_t_high", 80.0, 80.0 - (threshold - 0.2)) == (False, True)
    assert held_and_unheld("delta_t_high", 80.0, 80.0 - (threshold - 0.7)) == (False, False)
    assert held_and_unheld("delta_t_high", 80.0, 80.0 - (threshold + 0.2)) == (True, True)


def _water_for_indoor(indoor: float) -> tuple[float, float]:
    """Supply and return of the radiator loop that sustain `indoor` °C at -10 °C (the curve inverted)."""
    s, r = required_temps(-10.0, 75.0, 50.0, 1.3, indoor_target=indoor)
    return float(s), float(r)


def test_indoor_estimate_low_hysteresis_lifts_the_threshold() -> None:
    """Catches the sign of the hysteresis in indoor_estimate_low (threshold 18 - 1 K margin = 17 °C)."""
    assert held_and_unheld("indoor_estimate_low", *_water_for_indoor(17.2)) == (False, True)
    assert held_and_unheld("indoor_estimate_low", *_water_for_indoor(17.7)) == (False, False)
    assert held_and_unheld("indoor_estimate_low", *_water_for_indoor(16.9)) == (True, True)


def test_indoor_low_hysteresis_lifts_the_threshold() -> None:
    """Catches the sign of the hysteresis in indoor_low (18 °C exactly: its margin is 0)."""
    warm = _water_for_indoor(22.0)
    assert held_and_unheld("indoor_low", *warm, indoor=[18.2]) == (False, True)
    assert held_and_unheld("indoor_low", *warm, indoor=[18.7]) == (False, False)
    assert held_and_unheld("indoor_low", *warm, indoor=[17.9]) == (True, True)


# -- comparisons at their exact edge -----------------------------------------------------------------


def test_indoor_low_share_is_at_least_not_more_than() -> None:
    """Catches `>` for `>=` in the share test: 1 of 2 sensors low meets a 50 % share."""
    warm = _water_for_indoor(22.0)
    eng = make_engine(indoor_low={"min_share": 0.5})
    r = eng.evaluate(make_inputs(*warm, indoor=[16.0, 20.0]))
    assert active(r, "indoor_low")
    eng = make_engine(indoor_low={"min_share": 0.51})
    assert not active(eng.evaluate(make_inputs(*warm, indoor=[16.0, 20.0])), "indoor_low")


def test_indoor_low_min_sensors_is_at_least() -> None:
    """Catches `>` for `>=` in the sensor count: 2 low sensors meet min_sensors 2, 1 does not."""
    warm = _water_for_indoor(22.0)
    eng = make_engine(indoor_low={"min_sensors": 2})
    assert active(eng.evaluate(make_inputs(*warm, indoor=[16.0, 17.0, 20.0])), "indoor_low")
    eng = make_engine(indoor_low={"min_sensors": 2})
    assert not active(eng.evaluate(make_inputs(*warm, indoor=[16.0, 20.0, 20.0])), "indoor_low")


def test_delta_t_judged_from_exactly_the_minimum_expected() -> None:
    """Catches `>` for `>=` in `expected >= min_expected_delta_t`."""
    probe = make_engine()
    expected = float(probe.evaluate(make_inputs(60.0, 57.0)).expected_delta_t[0])
    assert expected == pytest.approx(RADIATOR_EXPECTED_DT)
    at = make_engine(delta_t_low={"min_expected_delta_t": expected}, delta_t_high={"min_expected_delta_t": expected})
    r = at.evaluate(make_inputs(60.0, 57.0))
    assert r.loop_checks["delta_t_low"].judged[0] and active(r, "delta_t_low")
    assert r.loop_checks["delta_t_high"].judged[0]
    above = math.nextafter(expected, math.inf)
    past = make_engine(delta_t_low={"min_expected_delta_t": above}, delta_t_high={"min_expected_delta_t": above})
    r = past.evaluate(make_inputs(60.0, 57.0))
    assert not r.loop_checks["delta_t_low"].judged[0] and not r.loop_checks["delta_t_high"].judged[0]


def test_a_station_is_online_until_exactly_offline_after() -> None:
    """Catches `<` for `<=` in station_online (offline at `>` offline_after, not `>=`), scalar and arrays."""
    assert station_online(NOW - 60.0, NOW, 60.0)
    assert not station_online(NOW - 60.5, NOW, 60.0)
    assert not station_online(None, NOW, 60.0)
    assert list(station_online(np.array([NOW - 60.0, NOW - 60.5, math.nan]), NOW, 60.0)) == [True, False, False]
    eng = make_engine()
    r = eng.evaluate(make_inputs(60.0, 45.0, last_seen=NOW - 60.0))
    assert not r.station_checks["station_offline"].active[0] and r.status_name(0) != "offline"
    eng = make_engine()
    r = eng.evaluate(make_inputs(60.0, 45.0, last_seen=NOW - 60.5))
    assert r.station_checks["station_offline"].active[0] and r.status_name(0) == "offline"


# -- the sensor tolerances -------------------------------------------------------------------------------


def test_swap_tolerance_is_supply_below_return_by_more_than_0_2_k() -> None:
    """Catches `< +SWAP_TOLERANCE_K` for `< -SWAP_TOLERANCE_K` (supply a little above return is no swap)."""
    for supply, return_, swapped in ((50.0, 49.9, False), (50.0, 50.1, False), (50.0, 50.3, True)):
        r = make_engine().evaluate(make_inputs(supply, return_))
        assert bool(r.supply_faults[0] & FAULT_SWAPPED) is swapped, (supply, return_)
        assert bool(r.return_faults[0] & FAULT_SWAPPED) is swapped, (supply, return_)


def test_primary_tolerance_is_primary_below_secondary_by_more_than_0_5_k() -> None:
    """Catches `+ PRIMARY_TOLERANCE_K` for `- PRIMARY_TOLERANCE_K` (a primary 0.3 K under is sensor noise)."""
    for primary, fault in ((50.2, False), (49.7, False), (49.3, True)):
        r = make_engine().evaluate(make_inputs(50.0, 45.0, primary=primary))
        assert bool(r.supply_faults[0] & FAULT_PRIMARY) is fault, primary


def test_rate_of_change_is_judged_over_at_least_a_minute() -> None:
    """Catches a rate window of 10 s for 60 s: 1 K in 10 s is 1 K/min over the minute, 6 K/min over 10 s."""
    eng = make_engine(sensor_fault={"max_rate_per_min": 5.0})
    eng.evaluate(make_inputs(60.0, 45.0, now=NOW))
    r = eng.evaluate(make_inputs(61.0, 45.0, now=NOW + 10))
    assert r.supply_faults[0] & FAULT_RATE == 0
    # over longer than a minute the rate is the real one: 9 K in 90 s is 6 K/min
    r = eng.evaluate(make_inputs(70.0, 45.0, now=NOW + 100))
    assert r.supply_faults[0] & FAULT_RATE


def test_rate_of_change_tracker_directly() -> None:
    """Catches the window constant changed, and the rate divided by the shorter of step and window."""
    tracker = SensorTracker(2, window_s=1800.0, tolerance=0.05, max_rate_per_min=5.0)
    ok = np.array([True, True])
    tracker.update(np.array([40.0, 40.0]), np.array([0.0, 0.0]), ok)
    # 4.9 K and 5.1 K within 5 s: judged over the minute, 4.9 and 5.1 K/min
    bits = tracker.update(np.array([44.9, 45.1]), np.array([5.0, 5.0]), ok)
    assert list(bits & FAULT_RATE) == [0, FAULT_RATE]


def test_flatline_needs_the_whole_window() -> None:
    """Catches `>` for `>=` in the window test and a flatline from a series that has not spanned it."""
    tracker = SensorTracker(1, window_s=100.0, tolerance=0.05, max_rate_per_min=None)
    ok = np.array([True])
    bits = [int(tracker.update(np.array([42.0]), np.array([float(t)]), ok)[0]) for t in (0, 25, 50, 75, 99, 100)]
    assert bits == [0, 0, 0, 0, 0, FAULT_FLATLINE]


# -- disabled rules, seasons, the smoothing state ------------------------------------------------------


def test_a_disabled_rule_is_an_empty_check_of_its_own_name() -> None:
    """Catches Check.off losing its rule name or its NaN value and threshold arrays."""
    eng = make_engine(delta_t_low={"enabled": False}, primary_shortage={"enabled": False})
    r = eng.evaluate(make_inputs(60.0, 57.0, primary=60.0))
    for check in (r.loop_checks["delta_t_low"], r.station_checks["primary_shortage"]):
        assert check.rule in ("delta_t_low", "primary_shortage")
        assert not check.active.any() and not check.judged.any()
        assert check.value.dtype == np.float64 and np.isnan(check.value).all()
        assert check.threshold.dtype == np.float64 and np.isnan(check.threshold).all()
    assert r.lookup(("delta_t_low", "s1", "rad")) is None


def _local(month: int, day: int) -> float:
    return dt.datetime(2025, month, day, 12, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai")).timestamp()


def test_season_end_day_is_in_season_and_a_one_day_season_is_one_day() -> None:
    """Catches `< end` for `<= end` and `start < end` for `start <= end` (a season of one day would wrap
    into a whole year)."""
    assert in_heating_season(_local(3, 31), "Asia/Shanghai", (3, 1), (3, 31))
    assert not in_heating_season(_local(4, 1), "Asia/Shanghai", (3, 1), (3, 31))
    assert in_heating_season(_local(1, 1), "Asia/Shanghai", (1, 1), (1, 1))
    assert not in_heating_season(_local(1, 2), "Asia/Shanghai", (1, 1), (1, 1))
    assert not in_heating_season(_local(12, 31), "Asia/Shanghai", (1, 1), (1, 1))


def test_compliant_is_int8() -> None:
    """Catches compliant() returning floats (the loop_status writer indexes with it)."""
    r = make_engine().evaluate(make_inputs(70.0, 50.0))
    assert r.compliant().dtype == np.int8 and r.compliant().tolist() == [1]


def test_bad_smoothing_state_entries_are_skipped_not_the_rest() -> None:
    """Catches `break` for `continue` (one bad entry would drop every station after it) and `and` for `or`
    in the shape test (a one-element entry would raise)."""
    table = LoopTable.build([("s1", "d1"), ("s2", "d2"), ("s3", "d3")], [RADIATOR], Site())
    eng = RuleEngine(table, RulesSettings())
    eng.load_smoothing_state({"s1": [1.0], "s2": ["x", 5.0], "gone": [1.0, 2.0], "s3": [-7.5, NOW]})
    assert math.isnan(eng.outdoor_mean[0]) and math.isnan(eng.outdoor_mean[1])
    assert eng.outdoor_mean[2] == -7.5 and eng.outdoor_mean_ts[2] == NOW
    assert eng.smoothing_state() == {"s3": [-7.5, NOW]}
    eng.load_smoothing_state({"s1": "junk", "s2": [math.inf, NOW], "s3": [3.0, NOW + 1]})
    assert math.isnan(eng.outdoor_mean[1]) and eng.outdoor_mean[2] == 3.0


def test_held_masks_of_station_and_loop_alerts() -> None:
    """Catches a station alert's mask built per loop (or under the loop rule's name), a loop alert's looked
    up as a station's, and masks that are not boolean."""
    loops = [RADIATOR, ("s2", "a", 75.0, 50.0, 1.3, None, None), ("s2", "b", 50.0, 40.0, 1.1, None, None)]
    table = LoopTable.build([("s1", "d1"), ("s2", "d2")], loops, Site())
    eng = RuleEngine(table, RulesSettings())
    masks = eng.held_masks(
        [
            ("primary_shortage", "s2", None),
            ("supply_low", "s2", "b"),
            ("supply_low", "s2", "zzz"),  # unknown loop: skipped
            ("station_offline", "s9", None),  # unknown station: skipped
        ]
    )
    assert set(masks) == {"station:primary_shortage", "supply_low"}
    assert masks["station:primary_shortage"].dtype == np.bool_ and masks["supply_low"].dtype == np.bool_
    assert masks["station:primary_shortage"].tolist() == [False, True]
    assert masks["supply_low"].tolist() == [False, False, True]


def test_a_held_primary_shortage_holds_within_its_hysteresis() -> None:
    """Catches the station hysteresis not reaching primary_shortage (its held mask under the wrong name)."""
    eng = make_engine()
    probe = eng.evaluate(make_inputs(57.0, 45.0, primary=90.0))
    threshold = float(probe.station_checks["primary_shortage"].threshold[0])  # 63.75
    r = eng.evaluate(make_inputs(57.0, 45.0, primary=threshold + 0.2, now=NOW + 10))
    assert not r.station_checks["primary_shortage"].active[0]
    held = eng.held_masks([("primary_shortage", "s1", None)])
    r = eng.evaluate(make_inputs(57.0, 45.0, primary=threshold + 0.2, now=NOW + 20), held)
    assert r.station_checks["primary_shortage"].active[0]
    r = eng.evaluate(make_inputs(57.0, 45.0, primary=threshold + 0.7, now=NOW + 30), held)
    assert not r.station_checks["primary_shortage"].active[0]


# -- the station rules' edges and the plant tables ------------------------------------------------------


def test_primary_exactly_at_the_shortage_threshold_is_no_shortage() -> None:
    """Catches `<=` for `<` in primary_shortage, and a station hysteresis lifting stations not held."""
    loops = [RADIATOR, ("s2", "a", 75.0, 50.0, 1.3, None, None)]
    table = LoopTable.build([("s1", "d1"), ("s2", "d2")], loops, Site())
    eng = RuleEngine(table, RulesSettings(outdoor_smoothing_s=0.0, water_smoothing_s=0.0))

    def inputs(primary: float, now: float) -> RuleInputs:
        two = make_inputs(57.0, 45.0, primary=primary, now=now)
        for name in ("supply", "return_", "outdoor", "primary_supply"):
            one = getattr(two, name)
            setattr(two, name, Series.of([*one.value, *one.value], [*one.ts, *one.ts]))
        two.station_last_seen = np.array([now - 5, now - 5])
        return two

    threshold = float(eng.evaluate(inputs(90.0, NOW)).station_checks["primary_shortage"].threshold[0])
    r = eng.evaluate(inputs(threshold, NOW + 10))
    assert r.station_checks["primary_shortage"].active.tolist() == [False, False]
    held = eng.held_masks([("primary_shortage", "s2", None)])
    r = eng.evaluate(inputs(threshold + 0.2, NOW + 20), held)
    assert r.station_checks["primary_shortage"].active.tolist() == [False, True]


def test_every_check_carries_its_rule_name_and_boolean_masks() -> None:
    """Catches a station check built without its rule's name, or with non-boolean judged masks."""
    r = make_engine().evaluate(make_inputs(60.0, 45.0, primary=90.0))
    for name, check in [*r.loop_checks.items(), *r.station_checks.items()]:
        assert check.rule == name
        assert check.active.dtype == np.bool_ and check.judged.dtype == np.bool_, name


def test_point_facts_per_quantity() -> None:
    """Catches another quantity's sensor-less point taken for this one, and station points never found."""
    points = (
        Point(quantity="return_temp", loop="a", type="float32"),
        Point(quantity="supply_temp", loop="a", type="int16", scale=0.1),
        Point(quantity="outdoor_temp", type="int16", scale=0.5, flatline_tolerance=0.5),
        Point(quantity="indoor_temp", loop="a", sensor="b1", type="int16", scale=0.1),
    )
    st = Station(id="s1", loops=(Loop("a"), Loop("b")), points=points)
    ret = PointFacts.of([st], "return_temp")
    assert ret.configured.tolist() == [True, False] and ret.resolution.tolist() == [0.0, 0.0]
    sup = PointFacts.of([st], "supply_temp")
    assert sup.configured.tolist() == [True, False] and sup.resolution.tolist() == [0.1, 0.0]
    out = PointFacts.of([st], "outdoor_temp")
    assert out.configured.tolist() == [True] and out.resolution.tolist() == [0.5] and out.tolerance.tolist() == [0.5]
    assert PointFacts.of([st], "flow").configured.tolist() == [False, False]


def test_the_table_from_the_plant_keeps_design_flow_and_station_setbacks() -> None:
    """Catches from_plant dropping the loops' design flow or the stations' own setbacks."""
    own = (Setback(DailyWindow(0, 360), 3.0),)
    stations = [
        Station(id="s1", loops=(Loop("a", design_flow=40.0), Loop("b"))),
        Station(id="s2", loops=(Loop("c"),), setbacks=own),
    ]
    table = LoopTable.from_plant(Site(), stations)
    assert table.design_flow[0] == 40.0 and np.isnan(table.design_flow[1:]).all()
    assert table.station_setbacks == (None, own)


def test_a_fixed_floor_message_says_so_exactly() -> None:
    """Catches the words of a threshold from the loop's fixed minimum changed."""
    eng = make_engine(loops=[("s1", "rad", 75.0, 50.0, 1.3, 60.0, None)])
    r = eng.evaluate(make_inputs(59.5, 45.0))
    cond = r.conditions()[("supply_low", "s1", "rad")]
    assert cond.message == "supply 59.5 °C below 60.0 °C (the fixed minimum)"
    assert cond.sensors == frozenset({"supply_temp"})


def test_a_nan_sensor_fault_has_no_value() -> None:
    """Catches a sensor fault's NaN value (a reading flagged NaN) passed on as NaN instead of None."""
    r = make_engine().evaluate(make_inputs(math.nan, 45.0))
    cond = r.conditions()[("sensor_fault", "s1", "rad")]
    assert cond.value is None and cond.threshold is None
    assert cond.message == "supply_temp: flagged by the collector"


def test_series_and_ages_are_floats_and_never_read_is_infinitely_old() -> None:
    """Catches Series keeping integer values, an empty Series without its flags, and a series never read
    (NaN time) given a NaN age instead of an infinite one."""
    assert Series.of([1, 2], [0, 0]).value.dtype == np.float64
    empty = Series.empty(2)
    assert empty.flagged.dtype == np.bool_ and not empty.flagged.any() and np.isnan(empty.value).all()
    assert reading_age(np.array([math.nan, NOW - 5]), NOW).tolist() == [math.inf, 5.0]


def test_a_non_temperature_quantity_has_no_temperature_sentinel() -> None:
    """Catches quantity_faults judging every quantity as a temperature (850 is a sentinel only for those)."""
    assert quantity_faults(np.array([850.0]), "pump_running").tolist() == [FAULT_RANGE]
    assert quantity_faults(np.array([850.0]), "supply_temp").tolist() == [FAULT_SENTINEL]


def test_a_flow_of_exactly_min_flow_circulates() -> None:
    """Catches `<=` for `<` in the standing-water test: at exactly min_flow (1 m³/h) water flows, so a
    supply below its return is a swapped pair."""
    for flow, swapped in ((1.0, True), (0.99, False)):
        inp = make_inputs(34.0, 41.0)
        inp.flow = Series.of([flow], [NOW - 5])
        r = make_engine().evaluate(inp)
        assert bool(r.supply_faults[0] & FAULT_SWAPPED) is swapped, flow


def test_out_of_season_a_station_is_not_judged_for_shortage() -> None:
    """Catches the season's end not clearing station rules: out of season a shortage is judged clear, never
    active, so a firing alert resolves."""
    inp = make_inputs(57.0, 45.0, primary=50.0)
    inp.in_season = False
    r = make_engine().evaluate(inp)
    assert r.station_checks["primary_shortage"].judged[0]  # judged clear: a firing alert resolves
    assert not r.station_checks["primary_shortage"].active[0]
