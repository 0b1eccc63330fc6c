"""Loop rules over arrays: statuses, conditions, faults, seasons. Pure: no clock, no sockets."""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stationmon.config import parse_config_text
from stationmon.domain.plant import Setback, Site
from stationmon.domain.rules import LoopTable, RuleEngine, RuleInputs, RuleResults, Series, in_heating_season
from stationmon.domain.rules.faults import (
    FAULT_FLAGGED,
    FAULT_FLATLINE,
    FAULT_PRIMARY,
    FAULT_RANGE,
    FAULT_RATE,
    FAULT_SENTINEL,
    FAULT_STALE,
    FAULT_SWAPPED,
    describe_faults,
    range_faults,
)
from stationmon.domain.settings import RulesSettings
from stationmon.domain.vocabulary import PLAUSIBLE_RANGES, RULE_NAMES, TEMPERATURE_SENTINELS, VALUE_SENTINELS

NOW = 1_700_000_000.0
NAN = math.nan
FLOOR = ("s1", "floor", 50.0, 40.0, 1.1, None, None)
RADIATOR = ("s1", "rad", 75.0, 50.0, 1.3, None, None)
WATER_RANGE = PLAUSIBLE_RANGES["supply_temp"]
OUTDOOR_RANGE = PLAUSIBLE_RANGES["outdoor_temp"]
INDOOR_RANGE = PLAUSIBLE_RANGES["indoor_temp"]
SENTINELS = VALUE_SENTINELS + TEMPERATURE_SENTINELS
# test keyword -> (rule, RuleSettings field)
_RULE_KEYS = {
    "indoor_min_sensors": ("indoor_low", "min_sensors"),
    "indoor_min_share": ("indoor_low", "min_share"),
    "flatline_window_s": ("sensor_fault", "flatline_window_s"),
    "flatline_tolerance": ("sensor_fault", "flatline_tolerance"),
    "max_rate_per_min": ("sensor_fault", "max_rate_per_min"),
}


def params(
    enabled: frozenset[str] = frozenset(RULE_NAMES),
    outdoor_smoothing_s: float = 0.0,
    water_smoothing_s: float = 0.0,
    setbacks: tuple[Setback, ...] = (),
    exempt_below_design: bool = False,
    **kw: float,
) -> RulesSettings:
    base = RulesSettings(
        outdoor_smoothing_s=outdoor_smoothing_s,
        water_smoothing_s=water_smoothing_s,
        setbacks=setbacks,
        exempt_below_design=exempt_below_design,
    )
    rules = {name: replace(base.rule(name), enabled=name in enabled) for name in RULE_NAMES}
    for key, value in kw.items():
        rule, name = _RULE_KEYS[key]
        rules[rule] = replace(rules[rule], **{name: value})
    return replace(base, rules=rules)


def engine(
    loops: Sequence[tuple[str, str, float, float, float, float | None, float | None]] = (FLOOR, RADIATOR),
    stations: Sequence[tuple[str, str]] = (("s1", "d1"),),
    indoor_target: float = 18.0,
    site: Site | None = None,
    design_flow: Sequence[float | None] | None = None,
    **kw: Any,
) -> RuleEngine:
    table = LoopTable.build(stations, loops, site or Site(indoor_target=indoor_target), design_flow=design_flow)
    return RuleEngine(table, params(**kw))


def series(
    values: Sequence[float], ts: float | Sequence[float] = NOW - 5, flagged: Sequence[bool] | None = None
) -> Series:
    stamps = [ts] * len(values) if isinstance(ts, float | int) else list(ts)
    return Series.of(values, stamps, flagged)


def inputs(
    eng: RuleEngine,
    supply: Sequence[float],
    return_: Sequence[float],
    outdoor: Sequence[float] = (-10.0,),
    *,
    now: float = NOW,
    ts: float | None = None,
    flow: Sequence[float] | None = None,
    primary: Sequence[float] | None = None,
    last_seen: Sequence[float] | None = None,
    indoor: Sequence[tuple[int, float, float]] = (),
    in_season: bool = True,
    supply_flagged: Sequence[bool] | None = None,
    pump: Sequence[float] | None = None,
) -> RuleInputs:
    t = eng.table
    stamp = now - 5 if ts is None else ts
    return RuleInputs(
        now=now,
        supply=series(supply, stamp, supply_flagged),
        return_=series(return_, stamp),
        flow=series(flow, stamp) if flow is not None else Series.empty(t.n_loops),
        outdoor=series(outdoor, stamp),
        primary_supply=series(primary, stamp) if primary is not None else Series.empty(t.n_stations),
        station_last_seen=np.array(last_seen if last_seen is not None else [stamp] * t.n_stations, dtype=float),
        indoor=Series.of([v for _, v, _ in indoor], [s for _, _, s in indoor]),
        indoor_loop=np.array([i for i, _, _ in indoor], dtype=np.int64),
        in_season=in_season,
        pump_running=series(pump, stamp) if pump is not None else None,
    )


def active(r: RuleResults, i: int) -> set[str]:
    return {rule for rule, c in r.loop_checks.items() if c.active[i]}


def judged(r: RuleResults, i: int) -> set[str]:
    return {rule for rule, c in r.loop_checks.items() if c.judged[i]}


# -- the heating model inside the rules ---------------------------------------------------------------


def test_41_34_is_compliant_for_floor_heating_only() -> None:
    eng = engine()
    r = eng.evaluate(inputs(eng, [41.0, 41.0], [34.0, 34.0]))
    assert [r.status_name(0), r.status_name(1)] == ["ok", "noncompliant"]
    assert list(r.compliant()) == [1, 0]
    assert r.required_supply[0] == pytest.approx(39.9, abs=0.05)
    assert r.required_return[1] == pytest.approx(42.2, abs=0.05)
    assert r.estimated_indoor[0] == pytest.approx(18.6, abs=0.05)
    assert r.estimated_indoor[1] == pytest.approx(11.2, abs=0.05)
    assert list(r.delta_t) == [7.0, 7.0]
    assert active(r, 0) == set()
    assert active(r, 1) == {"supply_low", "return_low", "indoor_estimate_low", "delta_t_low"}
    check = r.loop_checks["supply_low"]
    assert check.threshold[1] == pytest.approx(58.75 - 1.0, abs=0.01)  # curve minus margin
    conditions = r.conditions()
    assert set(conditions) == {(rule, "s1", "rad") for rule in active(r, 1)}
    cond = conditions[("supply_low", "s1", "rad")]
    assert cond.value == 41.0 and cond.district == "d1"
    assert cond.sensors == frozenset({"supply_temp", "outdoor_temp"})
    assert "41.0 °C below 57.8 °C" in cond.message
    clear = r.lookup(("supply_low", "s1", "floor"))
    assert clear is not None and "back above" in clear.message
    assert r.lookup(("supply_low", "s1", "nope")) is None


def test_indoor_target_20_makes_41_34_too_cold_for_a_50_40_floor() -> None:
    eng = engine(loops=[FLOOR], indoor_target=20.0)
    r = eng.evaluate(inputs(eng, [41.0], [34.0]))
    assert r.status_name(0) == "noncompliant"
    assert "indoor_estimate_low" in active(r, 0)


def test_margin_and_fixed_floor() -> None:
    # required supply 39.9: 39.2 is within the 1 K margin
    eng = engine(loops=[FLOOR])
    r = eng.evaluate(inputs(eng, [39.2], [33.0]))
    assert "supply_low" not in active(r, 0)
    # a fixed 41/34 floor catches what the curve allows
    eng = engine(loops=[("s1", "floor", 50.0, 40.0, 1.1, 41.0, 34.0)])
    r = eng.evaluate(inputs(eng, [40.5], [33.5]))
    assert {"supply_low", "return_low"} <= active(r, 0)
    assert r.loop_checks["supply_low"].threshold[0] == 41.0
    cond = r.conditions()[("supply_low", "s1", "floor")]
    assert cond.sensors == frozenset({"supply_temp"}) and "fixed minimum" in cond.message


def test_hysteresis_holds_a_held_condition_until_past_the_threshold() -> None:
    eng = engine(loops=[FLOOR])
    threshold = 39.913 - 1.0
    just_above = threshold + 0.3
    r = eng.evaluate(inputs(eng, [just_above], [33.0]))
    assert "supply_low" not in active(r, 0)
    held = eng.held_masks([("supply_low", "s1", "floor"), ("supply_low", "s1", "unknown-loop")])
    r = eng.evaluate(inputs(eng, [just_above], [33.0], now=NOW + 10, ts=NOW + 5), held)
    assert "supply_low" in active(r, 0)
    assert r.loop_checks["supply_low"].threshold[0] == pytest.approx(threshold, abs=0.01)  # reported unshifted
    r = eng.evaluate(inputs(eng, [threshold + 0.6], [33.0], now=NOW + 20, ts=NOW + 15), held)
    assert "supply_low" not in active(r, 0)


# -- seasons ----------------------------------------------------------------------------------------


def _ts(y: int, m: int, d: int, hh: int = 0, mm: int = 0, tz: str = "Asia/Shanghai") -> float:
    return dt.datetime(y, m, d, hh, mm, tzinfo=zoneinfo.ZoneInfo(tz)).timestamp()


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ((2025, 10, 19, 23, 59), False),
        ((2025, 10, 20, 0, 0), True),
        ((2025, 12, 31, 23, 59), True),
        ((2026, 1, 1, 0, 0), True),
        ((2026, 4, 20, 23, 59), True),
        ((2026, 4, 21, 0, 0), False),
        ((2026, 7, 1, 12, 0), False),
    ],
)
def test_season_wrapping_the_new_year(when: tuple[int, int, int, int, int], expected: bool) -> None:
    assert in_heating_season(_ts(*when), "Asia/Shanghai", (10, 20), (4, 20)) is expected


def test_season_uses_the_local_date() -> None:
    # 19 Oct 17:00 UTC is already 20 Oct 01:00 in Harbin
    utc = dt.datetime(2025, 10, 19, 17, 0, tzinfo=dt.UTC).timestamp()
    assert in_heating_season(utc, "Asia/Shanghai", (10, 20), (4, 20))
    assert not in_heating_season(utc, "UTC", (10, 20), (4, 20))


def test_season_all_year_and_not_wrapping() -> None:
    for month in range(1, 13):
        assert in_heating_season(_ts(2026, month, 15), "Asia/Shanghai", (1, 1), (12, 31))
    assert in_heating_season(_ts(2026, 3, 1), "Asia/Shanghai", (3, 1), (5, 31))
    assert not in_heating_season(_ts(2026, 6, 1), "Asia/Shanghai", (3, 1), (5, 31))
    assert not in_heating_season(_ts(2026, 2, 28), "Asia/Shanghai", (3, 1), (5, 31))


def test_out_of_season_judges_faults_but_not_compliance() -> None:
    eng = engine()
    r = eng.evaluate(inputs(eng, [41.0, 850.0], [34.0, 34.0], in_season=False))
    assert r.status_name(0) == "unknown" and r.status_name(1) == "sensor_fault"
    assert active(r, 0) == set() and active(r, 1) == {"sensor_fault"}
    # compliance counts as judged clear, so alerts left firing at the season's end resolve
    assert judged(r, 0) == set(RULE_NAMES) - {"station_offline", "primary_shortage"}
    clear = r.lookup(("supply_low", "s1", "rad"))
    assert clear is not None and clear.message == "outside the heating season"
    assert not np.isnan(r.required_supply[0])  # still computed for the status page


# -- offline and stale data ---------------------------------------------------------------------------


def test_station_offline() -> None:
    eng = engine(loops=[FLOOR, ("s2", "a", 75.0, 50.0, 1.3, None, None)], stations=[("s1", "d1"), ("s2", "d2")])
    inp = inputs(eng, [30.0, 30.0], [25.0, 25.0], outdoor=[-10.0, -10.0], last_seen=[NOW - 61, NOW - 5])
    inp.supply.ts[0] = inp.return_.ts[0] = inp.outdoor.ts[0] = NOW - 61
    r = eng.evaluate(inp)
    off = r.station_checks["station_offline"]
    assert list(off.active) == [True, False] and off.value[0] == pytest.approx(61.0)
    assert r.status_name(0) == "offline" and r.status_name(1) == "noncompliant"
    assert judged(r, 0) == set()  # the outage is the one alert: loop rules are not judged
    cond = r.conditions()[("station_offline", "s1", None)]
    assert cond.district == "d1" and "no reading for 61s" in cond.message


def test_a_station_never_seen_goes_offline_after_offline_after_from_start() -> None:
    eng = engine(loops=[FLOOR])
    inp = inputs(eng, [NAN], [NAN], outdoor=[NAN], ts=NAN, last_seen=[NAN])
    inp.started_at = NOW - 30
    r = eng.evaluate(inp)
    assert not r.station_checks["station_offline"].active[0] and r.status_name(0) == "unknown"
    inp.started_at = NOW - 90
    assert eng.evaluate(inp).station_checks["station_offline"].active[0]


def test_a_stale_point_of_an_answering_station_is_a_sensor_fault() -> None:
    # issue 12: a point that stops updating while its station answers is a fault, never a silent unknown
    eng = engine(loops=[FLOOR])
    inp = inputs(eng, [850.0], [34.0], last_seen=[NOW - 1])
    inp.supply.ts[:] = NOW - 120
    r = eng.evaluate(inp)
    assert r.status_name(0) == "sensor_fault" and active(r, 0) == {"sensor_fault"}
    assert r.supply_faults[0] == FAULT_STALE and "supply_low" not in judged(r, 0)
    cond = r.conditions()[("sensor_fault", "s1", "floor")]
    assert cond.sensors == frozenset({"supply_temp"}) and "supply_temp: stale" in cond.message


# -- sensor faults ------------------------------------------------------------------------------------


def test_range_faults() -> None:
    bits = range_faults(np.array([20.0, 850.0, -999.0, 32767.0, 140.0, -1.0, NAN]), 0.0, 130.0)
    assert list(bits) == [0, FAULT_SENTINEL, FAULT_SENTINEL, FAULT_SENTINEL, FAULT_RANGE, FAULT_RANGE, FAULT_FLAGGED]
    assert describe_faults(FAULT_SENTINEL | FAULT_FLATLINE) == "sentinel value, flatline"
    # range_faults only tests values outside the range for sentinels: they must all lie outside
    for lo, hi in (WATER_RANGE, OUTDOOR_RANGE, INDOOR_RANGE):
        assert all(s < lo or s > hi for s in SENTINELS)


def test_sentinel_and_flagged_values_give_sensor_fault_and_suppress_compliance() -> None:
    eng = engine()
    r = eng.evaluate(inputs(eng, [850.0, 45.0], [34.0, 34.0], supply_flagged=[False, True]))
    assert [r.status_name(0), r.status_name(1)] == ["sensor_fault", "sensor_fault"]
    assert r.supply_faults[0] == FAULT_SENTINEL and r.supply_faults[1] == FAULT_FLAGGED
    for i in (0, 1):
        assert "sensor_fault" in active(r, i)
        assert "supply_low" not in judged(r, i) and "indoor_estimate_low" not in judged(r, i)
        assert "return_low" in judged(r, i)  # the return sensor is fine
    cond = r.conditions()[("sensor_fault", "s1", "floor")]
    assert cond.sensors == frozenset({"supply_temp"}) and cond.message == "supply_temp: sentinel value"
    assert cond.value == 850.0


def test_supply_below_return_with_flow_is_a_fault_without_flow_it_is_not() -> None:
    eng = engine()
    r = eng.evaluate(inputs(eng, [34.0, 34.0], [41.0, 41.0], flow=[12.0, 0.0]))
    assert r.supply_faults[0] & FAULT_SWAPPED and r.return_faults[0] & FAULT_SWAPPED
    assert r.status_name(0) == "sensor_fault"
    assert r.supply_faults[1] == 0 and r.status_name(1) != "sensor_fault"
    # no flow meter: constant-flow plants count as flowing
    eng = engine(loops=[FLOOR])
    assert eng.evaluate(inputs(eng, [34.0], [41.0])).supply_faults[0] & FAULT_SWAPPED


def test_primary_below_secondary_supply() -> None:
    eng = engine(loops=[FLOOR])
    r = eng.evaluate(inputs(eng, [45.0], [38.0], primary=[44.0]))
    assert r.supply_faults[0] & FAULT_PRIMARY and r.status_name(0) == "sensor_fault"
    r = eng.evaluate(inputs(eng, [45.0], [38.0], primary=[90.0], now=NOW + 10, ts=NOW + 5))
    assert r.supply_faults[0] == 0


def test_outdoor_fault_is_station_level_and_leaves_only_fixed_floors_judged() -> None:
    eng = engine(loops=[FLOOR, ("s1", "fixed", 50.0, 40.0, 1.1, 41.0, None)])
    r = eng.evaluate(inputs(eng, [38.0, 38.0], [33.0, 33.0], outdoor=[-999.0]))
    sf = r.station_checks["sensor_fault"]
    assert sf.active[0] and r.outdoor_faults[0] == FAULT_SENTINEL
    cond = r.conditions()[("sensor_fault", "s1", None)]
    assert cond.sensors == frozenset({"outdoor_temp"}) and "outdoor_temp: sentinel value" in cond.message
    assert [r.status_name(0), r.status_name(1)] == ["sensor_fault", "sensor_fault"]
    assert "supply_low" not in judged(r, 0)
    assert "supply_low" in active(r, 1)  # 38 < the fixed 41, no outdoor needed
    assert r.conditions()[("supply_low", "s1", "fixed")].sensors == frozenset({"supply_temp"})


def test_flatline() -> None:
    eng = engine(loops=[FLOOR], flatline_window_s=1800.0, flatline_tolerance=0.05)
    rng = np.random.default_rng(3)
    for k in range(0, 1900, 10):
        t = NOW + k
        moving = 33.0 + rng.uniform(-0.3, 0.3)
        r = eng.evaluate(inputs(eng, [42.0], [moving], outdoor=[-10.0 + rng.uniform(-0.3, 0.3)], now=t + 1, ts=t))
    assert r.supply_faults[0] == FAULT_FLATLINE
    assert r.return_faults[0] == 0 and r.outdoor_faults[0] == 0
    assert "supply_temp: flatline" in r.conditions()[("sensor_fault", "s1", "floor")].message
    # it moves again: the fault clears
    r = eng.evaluate(inputs(eng, [43.0], [33.0], now=NOW + 1921, ts=NOW + 1920))
    assert r.supply_faults[0] == 0


def test_no_flatline_from_readings_either_side_of_an_outage() -> None:
    eng = engine(loops=[FLOOR], flatline_window_s=1800.0, flatline_tolerance=0.05)
    # a few identical readings, then silence for an hour, then the same value again: no evidence
    for k in (0, 10, 20):
        eng.evaluate(inputs(eng, [42.0], [33.0], outdoor=[-10.0], now=NOW + k + 1, ts=NOW + k))
    r = eng.evaluate(inputs(eng, [42.0], [33.0], outdoor=[-10.0], now=NOW + 3601, ts=NOW + 3600))
    assert r.supply_faults[0] == 0
    # readings every 600 s (more than a quarter of the window apart) never make a flatline
    t = NOW + 3600
    for _ in range(6):
        t += 600
        r = eng.evaluate(inputs(eng, [42.0], [33.0], outdoor=[-10.0], now=t + 1, ts=t))
    assert r.supply_faults[0] == 0
    # every 400 s they do, once they span the window
    for _ in range(6):
        t += 400
        r = eng.evaluate(inputs(eng, [42.0], [33.0], outdoor=[-10.0], now=t + 1, ts=t))
    assert r.supply_faults[0] == FAULT_FLATLINE


def test_implausible_rate_of_change_holds_until_the_next_good_sample() -> None:
    eng = engine(loops=[FLOOR], max_rate_per_min=5.0)
    eng.evaluate(inputs(eng, [42.0], [33.0], now=NOW, ts=NOW - 1))
    r = eng.evaluate(inputs(eng, [42.5], [33.0], now=NOW + 10, ts=NOW + 9))  # 0.5 K: within a minute's 5 K
    assert r.supply_faults[0] == 0
    r = eng.evaluate(inputs(eng, [60.0], [33.0], now=NOW + 20, ts=NOW + 19))  # 17.5 K in 10 s
    assert r.supply_faults[0] == FAULT_RATE
    r = eng.evaluate(inputs(eng, [60.0], [33.0], now=NOW + 25, ts=NOW + 19))  # same sample: still
    assert r.supply_faults[0] == FAULT_RATE
    r = eng.evaluate(inputs(eng, [60.2], [33.0], now=NOW + 30, ts=NOW + 29))
    assert r.supply_faults[0] == 0


def test_probe_resolution_steps_at_short_polls_are_not_implausible() -> None:
    # a 1 s poll of an int16 x 0.1 probe: 0.1 K steps are 6 K/min between two samples, not a fault
    eng = engine(loops=[FLOOR], max_rate_per_min=5.0)
    for k in range(30):
        r = eng.evaluate(inputs(eng, [42.0 + 0.1 * (k % 2)], [33.0], now=NOW + k + 1, ts=NOW + k))
        assert r.supply_faults[0] == 0, k
    # a real jump still is: 8 K between two 1 s samples
    r = eng.evaluate(inputs(eng, [50.0], [33.0], now=NOW + 31, ts=NOW + 30))
    assert r.supply_faults[0] == FAULT_RATE


# -- indoor sensors and ΔT ----------------------------------------------------------------------------


def test_indoor_low_counts_fresh_good_sensors() -> None:
    eng = engine(indoor_min_sensors=2)
    fresh, stale = NOW - 60, NOW - 7200
    sensors = [
        (0, 16.0, fresh),
        (0, 19.5, fresh),
        (0, 15.0, stale),  # too old to count
        (0, 850.0, fresh),  # a broken thermometer
        (1, 16.5, fresh),
        (1, 16.9, fresh),
        (1, 21.0, fresh),
    ]
    r = eng.evaluate(inputs(eng, [41.0, 60.0], [34.0, 45.0], indoor=sensors))
    assert list(r.indoor_valid) == [2, 3] and list(r.indoor_low) == [1, 2]
    assert "indoor_low" not in active(r, 0) and "indoor_low" in active(r, 1)
    check = r.loop_checks["indoor_low"]
    # issue 12: the legal minimum is exact (no margin by default)
    assert check.value[1] == 16.5 and check.threshold[1] == 18.0
    assert r.status_name(1) == "noncompliant"
    assert r.conditions()[("indoor_low", "s1", "rad")].message == "2 of 3 indoor sensors below 18.0 °C (lowest 16.5 °C)"
    # a share instead: 2 of 3 is below a 70 % share
    eng = engine(indoor_min_sensors=1, indoor_min_share=0.7)
    r = eng.evaluate(inputs(eng, [41.0, 60.0], [34.0, 45.0], indoor=sensors))
    assert "indoor_low" not in active(r, 1)
    # no sensors: not judged
    assert "indoor_low" not in judged(eng.evaluate(inputs(eng, [41.0, 60.0], [34.0, 45.0])), 0)


def test_delta_t_low_and_high() -> None:
    eng = engine()
    # radiator at -10 expects 16.6 K: 6 K is overflow, 40 K starved flow
    r = eng.evaluate(inputs(eng, [41.0, 80.0], [35.0, 40.0]))
    assert "delta_t_low" in judged(r, 0) and "delta_t_low" not in active(r, 0)  # floor: 6 K of 6.6 K is fine
    assert r.expected_delta_t[1] == pytest.approx(16.59, abs=0.01)
    assert "delta_t_high" in active(r, 1)
    eng = engine()  # a fresh engine: these jumps would be implausible rates of change
    assert "delta_t_low" in active(eng.evaluate(inputs(eng, [60.0, 60.0], [57.0, 57.0])), 1)
    # mild weather: expected ΔT under 2 K, not judged
    eng = engine()
    r = eng.evaluate(inputs(eng, [30.0, 30.0], [29.9, 29.9], outdoor=[15.0]))
    assert r.expected_delta_t[0] < 2.0
    assert "delta_t_low" not in judged(r, 0)
    # flow measured zero: not judged (the pump is off, there is no ΔT to speak of)
    eng = engine()
    r = eng.evaluate(inputs(eng, [60.0, 60.0], [57.0, 57.0], flow=[0.0, 0.0]))
    assert "delta_t_low" not in judged(r, 1)


def test_outdoor_running_mean_smooths_a_step() -> None:
    eng = engine(loops=[FLOOR], outdoor_smoothing_s=3600.0)
    eng.evaluate(inputs(eng, [41.0], [34.0], outdoor=[-10.0], now=NOW, ts=NOW - 1))
    r = eng.evaluate(inputs(eng, [41.0], [34.0], outdoor=[-6.0], now=NOW + 60, ts=NOW + 59))
    # one minute into a 1 h running mean
    assert r.outdoor[0] == pytest.approx(-10.0 + 4.0 * (1 - math.exp(-60 / 3600)))
    state = eng.smoothing_state()
    restarted = engine(loops=[FLOOR], outdoor_smoothing_s=3600.0)
    restarted.load_smoothing_state({**state, "gone": [1.0, 2.0], "s9": "junk"})
    r2 = restarted.evaluate(inputs(restarted, [41.0], [34.0], outdoor=[-6.0], now=NOW + 60, ts=NOW + 59))
    assert r2.outdoor[0] == pytest.approx(r.outdoor[0])


def test_disabled_rules_are_never_judged() -> None:
    eng = engine(enabled=frozenset(RULE_NAMES) - {"supply_low", "sensor_fault", "station_offline"})
    r = eng.evaluate(inputs(eng, [41.0, 850.0], [34.0, 34.0], last_seen=[NOW - 500]))
    assert not r.loop_checks["supply_low"].judged.any()
    assert not r.loop_checks["sensor_fault"].judged.any()
    assert not r.station_checks["station_offline"].judged.any()
    assert ("station_offline", "s1", None) not in r.conditions()


def test_built_from_config() -> None:
    cfg = parse_config_text(
        """
        [site]
        indoor_target = 20.0
        outdoor_design = -26.0
        [rules]
        margin = 2.0
        offline_after = "2m"
        outdoor_smoothing = "30m"
        [rules.indoor_low]
        min_sensors = 3
        [rules.delta_t_high]
        enabled = false
        [[stations]]
        id = "a"
        district = "da"
          [[stations.loops]]
          id = "l1"
          emitter = "floor"
          min_supply = 41.0
          [[stations.loops]]
          id = "l2"
          exponent = 1.4
        [[stations]]
        id = "b"
        """,
        require_influxdb=False,
    )
    table = LoopTable.from_plant(cfg.site, cfg.stations)
    assert table.station_ids == ("a", "b") and table.loop_ids == ("l1", "l2")
    assert list(table.exponent) == [1.1, 1.4] and list(table.design_supply) == [50.0, 75.0]
    assert table.min_supply[0] == 41.0 and math.isnan(table.min_supply[1])
    assert (table.indoor_target, table.outdoor_design) == (20.0, -26.0)
    p = RuleEngine(table, cfg.rules).rules
    assert p["supply_low"].margin == 2.0 and cfg.rules.offline_after_s == 120.0 and p["indoor_low"].min_sensors == 3
    assert not p["delta_t_high"].enabled and cfg.rules.outdoor_smoothing_s == 1800.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([(50.0, 40.0, 1.1), (75.0, 50.0, 1.3), (95.0, 70.0, 1.3)]),
            st.floats(25.0, 90.0),
            st.floats(-3.0, 25.0),
            st.sampled_from([0.0, 5.0, math.nan]),
        ),
        min_size=1,
        max_size=12,
    ),
    st.floats(-30.0, 12.0),
)
def test_all_loops_at_once_equals_one_at_a_time(rows: list, outdoor: float) -> None:
    loops = [("s1", f"l{i}", d[0], d[1], d[2], None, None) for i, (d, _, _, _) in enumerate(rows)]
    supply = [s for _, s, _, _ in rows]
    ret = [s - dt for _, s, dt, _ in rows]
    flow = [f for _, _, _, f in rows]
    eng = engine(loops=loops)
    batch = eng.evaluate(inputs(eng, supply, ret, outdoor=[outdoor], flow=flow))
    for i, loop in enumerate(loops):
        one = engine(loops=[loop])
        single = one.evaluate(inputs(one, [supply[i]], [ret[i]], outdoor=[outdoor], flow=[flow[i]]))
        assert batch.status_name(i) == single.status_name(0)
        assert active(batch, i) == active(single, 0)
        for name in ("required_supply", "required_return", "estimated_indoor"):
            a, b = getattr(batch, name)[i], getattr(single, name)[0]
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-3)
