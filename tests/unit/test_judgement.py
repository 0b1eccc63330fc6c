"""Issue 12's judgement, table-driven and pure: households decide, legal tiers, setbacks, circulation,
stale points, resolution-aware flatlines, demand and design limits, the primary side."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence

import numpy as np
import pytest

from stationmon.domain.alerts import AlertBook
from stationmon.domain.model import AlertEvent
from stationmon.domain.plant import DailyWindow, Loop, Point, Setback, Site, Station
from stationmon.domain.rules import LoopTable, RuleEngine, RuleResults
from stationmon.domain.rules.faults import FAULT_FLATLINE, FAULT_PRIMARY, FAULT_RANGE, FAULT_SENTINEL, FAULT_STALE
from stationmon.domain.settings import RulesSettings
from tests.unit.test_rules import FLOOR, NOW, RADIATOR, active, engine, inputs, judged, params

HARBIN = Site(indoor_target=20.0)
TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
WARM = [(0, 21.0, NOW - 60), (0, 21.5, NOW - 60), (0, 22.0, NOW - 60)]


def local(hh: int, mm: int = 0) -> float:
    return dt.datetime(2025, 12, 15, hh, mm, tzinfo=TZ).timestamp()


# -- households decide; the water model warns ----------------------------------------------------------


@pytest.mark.parametrize(
    ("households", "status", "verdict", "rules"),
    [
        # the seed: 41/34 on a 50/40 floor loop at -10 °C, Heilongjiang's 20 °C, flats at 21-22 °C
        (WARM, "ok", "sensors", {"supply_low", "return_low", "indoor_estimate_low"}),
        # the same water without household sensors: the estimate (18.6 °C) decides
        ((), "noncompliant", "estimate", {"supply_low", "return_low", "indoor_estimate_low"}),
        # households cold: they decide against the company
        ([(0, 19.0, NOW - 60), (0, 21.0, NOW - 60)], "noncompliant", "sensors", None),
    ],
)
def test_household_sensors_decide(
    households: Sequence[tuple[int, float, float]], status: str, verdict: str, rules: set[str] | None
) -> None:
    eng = engine(loops=[FLOOR], site=HARBIN)
    r = eng.evaluate(inputs(eng, [41.0], [34.0], indoor=households))
    assert (r.status_name(0), r.verdict_name(0)) == (status, verdict)
    if rules is not None:
        assert rules <= active(r, 0) and "indoor_low" not in active(r, 0)
    else:
        assert "indoor_low" in active(r, 0)
    assert r.estimated_indoor[0] == pytest.approx(18.6, abs=0.6)  # target 20: the curve sits higher
    # the water-model rules stay warnings
    assert eng.rules["supply_low"].severity == "warning"


def test_seed_estimates_still_reproduced_at_the_national_target() -> None:
    # DOMAIN.md: 41/34 at -10 °C: 45/35 floor 20.9, 50/40 floor 18.6, 75/50 radiator 11.2, 85/60 8.5
    loops = [
        ("s1", "a", 45.0, 35.0, 1.1, None, None),
        FLOOR,
        RADIATOR,
        ("s1", "d", 85.0, 60.0, 1.3, None, None),
    ]
    eng = engine(loops=loops)
    r = eng.evaluate(inputs(eng, [41.0] * 4, [34.0] * 4))
    assert list(np.round(r.estimated_indoor, 1)) == [20.9, 18.6, 11.2, 8.5]


def test_measured_indoor_median_and_tiers() -> None:
    eng = engine(loops=[FLOOR, RADIATOR], site=HARBIN)
    sensors = [(0, 21.0, NOW - 60), (0, 19.0, NOW - 60), (0, 15.0, NOW - 60), (0, 22.0, NOW - 60), (1, 20.0, NOW - 9)]
    r = eng.evaluate(inputs(eng, [41.0, 70.0], [34.0, 50.0], indoor=sensors))
    assert list(r.measured_indoor) == [20.0, 20.0]
    assert list(r.indoor_sensors) == [4, 1]
    assert list(r.indoor_below_target) == [2, 0] and list(r.indoor_below_refund) == [1, 0]
    # exactly at the target is compliant (no margin): 20.0 is not below 20
    assert "indoor_low" not in active(r, 1) and r.verdict_name(1) == "sensors"


@pytest.mark.parametrize(
    ("reading", "fires", "severity"),
    [
        (20.0, False, None),  # at the legal minimum
        (19.9, True, "major"),  # below it: 50 % refund
        (16.0, True, "major"),
        (15.9, True, "critical"),  # below the second tier: 100 % refund
    ],
)
def test_indoor_low_tiers(reading: float, fires: bool, severity: str | None) -> None:
    eng = engine(loops=[FLOOR], site=HARBIN)
    book = AlertBook(params())
    events: list[AlertEvent] = []
    for k in range(0, 700, 60):
        r = eng.evaluate(inputs(eng, [45.0], [37.0], indoor=[(0, reading, NOW + k - 5)], now=NOW + k, ts=NOW + k - 5))
        events += book.update(NOW + k, r.conditions(), r.lookup)
    fired = [e for e in events if e.rule == "indoor_low" and e.state == "firing"]
    assert bool(fired) is fires
    if fired:
        assert fired[0].severity == severity


def test_indoor_low_escalates_when_a_flat_drops_below_the_refund_tier() -> None:
    eng = engine(loops=[FLOOR], site=HARBIN, **{"indoor_min_sensors": 1})
    book = AlertBook(params())
    events: list[AlertEvent] = []
    for k, reading in ((0, 18.0), (600, 18.0), (660, 15.0)):
        r = eng.evaluate(inputs(eng, [45.0], [37.0], indoor=[(0, reading, NOW + k - 5)], now=NOW + k, ts=NOW + k - 5))
        events += book.update(NOW + k, r.conditions(), r.lookup)
    assert [(e.state, e.severity) for e in events] == [("firing", "major"), ("escalated", "critical")]


def test_indoor_low_keeps_its_hysteresis() -> None:
    eng = engine(loops=[FLOOR], site=HARBIN)
    held = eng.held_masks([("indoor_low", "s1", "floor")])
    r = eng.evaluate(inputs(eng, [45.0], [37.0], indoor=[(0, 20.3, NOW - 5)]), held)
    assert "indoor_low" in active(r, 0)  # held: clears only 0.5 K above the target
    r = eng.evaluate(inputs(eng, [45.0], [37.0], indoor=[(0, 20.6, NOW + 5)], now=NOW + 10, ts=NOW + 5), held)
    assert "indoor_low" not in active(r, 0)


def test_inspection_hours() -> None:
    site = Site(indoor_target=20.0, inspection_exclude=(DailyWindow(600, 840),))
    eng = engine(loops=[FLOOR], site=site)
    for when, counts in ((local(12), False), (local(9, 59), True), (local(14), True), (local(18), True)):
        r = eng.evaluate(inputs(eng, [45.0], [37.0], now=when, ts=when - 5))
        assert r.inspection_hour is counts, when


# -- planned setbacks ----------------------------------------------------------------------------------


def _day(drop_from: float, drop_to: float, setbacks: tuple[Setback, ...], households: bool = True) -> list[AlertEvent]:
    """A 50/40 floor loop at -10 °C, Harbin's 20 °C, default smoothing and `for`: the water runs 0.5 K above
    the curve, and 3 K lower between drop_from and drop_to; every minute from 08:00 to 23:00."""
    settings = RulesSettings(setbacks=setbacks)
    rules = {name: settings.rule(name) for name in params().rules}
    eng = RuleEngine(LoopTable.build([("s1", "d1")], [FLOOR], HARBIN), RulesSettings(setbacks=setbacks, rules=rules))
    book = AlertBook(settings)
    events: list[AlertEvent] = []
    start = local(8)
    rng = np.random.default_rng(1)
    for k in range(0, 15 * 3600, 120):
        now = start + k
        drop = 3.0 if drop_from <= now < drop_to else 0.0
        flats = [(0, 21.0, now - 30), (0, 21.5, now - 30)] if households else []
        noise = rng.uniform(-0.15, 0.15, 3)  # live probes: a constant reading would be a flatline
        supply, return_ = 43.9 - drop + noise[0], 36.8 - drop + noise[1]
        r = eng.evaluate(
            inputs(eng, [supply], [return_], outdoor=[-10.0 + noise[2]], now=now, ts=now - 5, indoor=flats)
        )
        events += book.update(now, r.conditions(), r.lookup)
    return events


MIDDAY = (Setback(DailyWindow(600, 900), 3.0),)


def test_a_planned_midday_setback_with_warm_flats_raises_no_alert() -> None:
    assert _day(local(10), local(15), MIDDAY) == []


def test_the_same_drop_outside_the_setback_hours_alerts() -> None:
    events = _day(local(17), local(22), MIDDAY)
    assert ("supply_low", "firing") in {(e.rule, e.state) for e in events}
    # and a setback that only starts later does not cover it
    assert _day(local(10), local(15), (Setback(DailyWindow(660, 900), 3.0),)) != []


def test_setback_field_and_lowered_thresholds() -> None:
    eng = engine(loops=[FLOOR], site=HARBIN, setbacks=MIDDAY)
    r = eng.evaluate(inputs(eng, [38.0], [34.0], now=local(12), ts=local(12) - 5))
    assert bool(r.setback[0]) and r.loop_checks["supply_low"].threshold[0] == pytest.approx(
        r.required_supply[0] - 1.0 - 3.0
    )
    assert "planned setback of 3.0 K" in r.conditions()[("supply_low", "s1", "floor")].message
    r = eng.evaluate(inputs(eng, [41.0], [34.0], now=local(18), ts=local(18) - 5))
    assert not r.setback[0]


def test_a_stations_own_setbacks_replace_the_site_wide_ones() -> None:
    table = LoopTable.build(
        [("s1", "d1"), ("s2", "d2")],
        [FLOOR, ("s2", "floor", 50.0, 40.0, 1.1, None, None)],
        HARBIN,
        station_setbacks=[None, (Setback(DailyWindow(1320, 360), 2.0),)],  # s2: a night setback only
    )
    eng = RuleEngine(table, params(setbacks=MIDDAY))
    noon = eng.evaluate(inputs(eng, [41.0, 41.0], [34.0, 34.0], outdoor=[-10.0, -10.0], now=local(12), ts=local(12)))
    assert list(noon.setback) == [True, False]
    night = eng.evaluate(inputs(eng, [41.0, 41.0], [34.0, 34.0], outdoor=[-10.0, -10.0], now=local(23), ts=local(23)))
    assert list(night.setback) == [False, True]


# -- circulation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flow", "pump", "design_flow", "fires", "reads"),
    [
        ([0.0], None, None, True, {"flow"}),
        ([0.5], None, None, True, {"flow"}),  # below min_flow 1.0
        ([12.0], None, None, False, None),
        ([50.0], None, 650.0, True, {"flow"}),  # below 10 % of 650 m³/h
        ([80.0], None, 650.0, False, None),
        (None, [0.0], None, True, {"pump_running"}),  # no meter, the pump reports stopped
        (None, [1.0], None, False, None),
        ([600.0], [0.0], 650.0, True, {"pump_running"}),
    ],
)
def test_pump_stop_is_no_circulation_within_for(
    flow: list[float] | None, pump: list[float] | None, design_flow: float | None, fires: bool, reads: set[str] | None
) -> None:
    eng = engine(loops=[RADIATOR], design_flow=[design_flow])
    book = AlertBook(params())
    events: list[AlertEvent] = []
    for k in range(0, 660, 10):
        r = eng.evaluate(inputs(eng, [55.0], [25.0], flow=flow, pump=pump, now=NOW + k, ts=NOW + k - 5))
        events += book.update(NOW + k, r.conditions(), r.lookup)
    fired = [e for e in events if e.rule == "no_circulation"]
    assert bool(fired) is fires
    if fires:
        assert fired[0].severity == "critical" and fired[0].ts - NOW <= 610
        assert np.isnan(r.estimated_indoor[0])  # no estimate from standing water
        assert r.status_name(0) == "noncompliant" and r.verdict_name(0) == "estimate"
        assert r.conditions()[("no_circulation", "s1", "rad")].sensors == frozenset(reads or ())
    else:
        assert not np.isnan(r.estimated_indoor[0])


@pytest.mark.parametrize(
    ("flow", "bits"),
    [(32767.0, FAULT_SENTINEL), (-50.0, FAULT_RANGE), (-999.0, FAULT_SENTINEL), (-0.2, 0)],
)
def test_flow_range_and_sentinels(flow: float, bits: int) -> None:
    eng = engine(loops=[RADIATOR])
    r = eng.evaluate(inputs(eng, [70.0], [50.0], flow=[flow]))
    assert r.loops.flow_faults[0] == bits
    assert ("sensor_fault" in active(r, 0)) is bool(bits)
    if bits:
        assert "no_circulation" not in active(r, 0)  # a broken meter is no evidence either way
        assert r.conditions()[("sensor_fault", "s1", "rad")].sensors == frozenset({"flow"})


# -- stale points and flatlines ---------------------------------------------------------------------


def test_an_outdoor_probe_frozen_for_an_hour_is_a_stale_sensor_fault() -> None:
    eng = engine(loops=[FLOOR])
    book = AlertBook(params())
    events: list[AlertEvent] = []
    for k in range(0, 3660, 60):
        inp = inputs(eng, [45.0], [37.0], now=NOW + k, ts=NOW + k - 5)
        inp.outdoor.ts[:] = NOW - 5  # the probe's value stopped updating
        r = eng.evaluate(inp)
        events += book.update(NOW + k, r.conditions(), r.lookup)
    assert r.outdoor_faults[0] == FAULT_STALE and r.status_name(0) == "sensor_fault"
    fired = [e for e in events if e.rule == "sensor_fault" and e.state == "firing"]
    assert fired and fired[0].loop is None and "outdoor_temp: stale" in fired[0].message


def test_a_configured_point_never_read_is_stale_after_the_grace() -> None:
    station = Station(
        "s1",
        loops=(Loop("l1", emitter="floor", design_supply=50.0, design_return=40.0, exponent=1.1),),
        points=(Point("supply_temp", loop="l1", address=0), Point("flow", loop="l1", address=2)),
    )
    eng = RuleEngine(LoopTable.from_plant(HARBIN, [station]), params())
    inp = inputs(eng, [45.0], [37.0])
    inp.flow.ts[:] = np.nan  # configured, never read
    inp.started_at = NOW - 30
    assert eng.evaluate(inp).loops.flow_faults[0] == 0  # still starting
    inp.started_at = NOW - 600
    r = eng.evaluate(inp)
    assert r.loops.flow_faults[0] == FAULT_STALE and "sensor_fault" in active(r, 0)
    # a series neither configured nor ever seen (a template's) is not expected
    assert r.return_faults[0] == 0


def _flat_station(**point: object) -> RuleEngine:
    station = Station(
        "s1",
        loops=(Loop("l1", emitter="floor", design_supply=50.0, design_return=40.0, exponent=1.1),),
        points=(Point("supply_temp", loop="l1", address=0, **point),),  # type: ignore[arg-type]
    )
    return RuleEngine(LoopTable.from_plant(HARBIN, [station]), params())


@pytest.mark.parametrize(
    ("point", "minutes", "flat"),
    [
        ({"type": "float32"}, 35, True),  # a float point sitting still for the 30 min window
        ({"type": "int16", "scale": 0.1}, 45, False),  # 0.1 K steps: a steady loop may sit still longer
        ({"type": "int16", "scale": 0.1}, 65, True),  # ... but not for ever
        ({"type": "int16", "scale": 1.0}, 120, False),  # whole degrees
        ({"type": "int16", "scale": 0.1, "flatline_tolerance": 0.05}, 35, True),  # the point's own
    ],
)
def test_flatline_follows_the_points_resolution(point: dict[str, object], minutes: int, flat: bool) -> None:
    eng = _flat_station(**point)
    for k in range(0, minutes * 60 + 1, 30):
        r = eng.evaluate(inputs(eng, [42.0], [33.0 + 0.3 * (k % 120 == 0)], now=NOW + k + 1, ts=NOW + k))
    assert bool(r.supply_faults[0] & FAULT_FLATLINE) is flat


def test_a_steady_point_in_0_1_k_steps_is_not_a_flatline() -> None:
    eng = _flat_station(type="int16", scale=0.1)
    rng = np.random.default_rng(7)
    for k in range(0, 4 * 3600, 30):
        steady = round(42.04 + rng.normal(0.0, 0.03), 1)  # a quiet loop: mostly 42.0, now and then 42.1
        r = eng.evaluate(inputs(eng, [steady], [33.0 + rng.uniform(-0.3, 0.3)], now=NOW + k + 1, ts=NOW + k))
        assert r.supply_faults[0] == 0, k


# -- demand and design limits ----------------------------------------------------------------------


def test_no_demand_above_the_target_is_not_noncompliant() -> None:
    eng = engine(loops=[FLOOR], site=HARBIN)
    r = eng.evaluate(inputs(eng, [15.0], [15.0], outdoor=[22.0]))
    assert r.status_name(0) == "ok" and active(r, 0) == set()
    assert "supply_low" in judged(r, 0)  # judged, and clear: alerts from colder days resolve


@pytest.mark.parametrize(("exempt", "status"), [(False, "noncompliant"), (True, "unknown")])
def test_beyond_design(exempt: bool, status: str) -> None:
    eng = engine(loops=[FLOOR], site=HARBIN, exempt_below_design=exempt)
    r = eng.evaluate(inputs(eng, [45.0], [38.0], outdoor=[-30.0]))
    assert bool(r.beyond_design[0]) and r.status_name(0) == status
    assert "supply_low" in active(r, 0)  # the live alert fires either way
    r = eng.evaluate(inputs(eng, [45.0], [38.0], outdoor=[-20.0], now=NOW + 10, ts=NOW + 5))
    assert not r.beyond_design[0]


# -- the primary side ----------------------------------------------------------------------------------


def test_primary_shortage_blames_the_heat_source() -> None:
    # a 75/50 radiator loop at -15 °C needs 64.6 °C; the primary arrives at 45 °C
    eng = engine(loops=[RADIATOR])
    book = AlertBook(params())
    events: list[AlertEvent] = []
    for k in range(0, 660, 60):
        r = eng.evaluate(inputs(eng, [43.0], [33.0], outdoor=[-15.0], primary=[45.0], now=NOW + k, ts=NOW + k - 5))
        events += book.update(NOW + k, r.conditions(), r.lookup)
    check = r.station_checks["primary_shortage"]
    assert check.active[0] and check.threshold[0] == pytest.approx(64.6 + 5.0, abs=0.1)
    firing = {e.rule: e for e in events if e.state == "firing"}
    assert {"primary_shortage", "supply_low", "indoor_estimate_low"} <= firing.keys()
    assert all(e.labels["cause"] == "heat_source" for e in firing.values())
    assert "heat-source shortage" in firing["primary_shortage"].message
    # the primary recovers: new alerts are the station's again
    r = eng.evaluate(inputs(eng, [43.0], [33.0], outdoor=[-15.0], primary=[95.0], now=NOW + 700, ts=NOW + 695))
    assert not r.station_checks["primary_shortage"].active[0]
    assert r.conditions()[("supply_low", "s1", "rad")].cause == "station"


def test_primary_below_secondary_flags_the_pair() -> None:
    eng = engine(loops=[FLOOR])
    r = eng.evaluate(inputs(eng, [45.0], [38.0], primary=[44.0]))
    assert r.supply_faults[0] & FAULT_PRIMARY and r.stations.primary_faults[0] & FAULT_PRIMARY
    cond = r.conditions()[("sensor_fault", "s1", None)]
    assert cond.sensors == frozenset({"primary_supply_temp"})
    assert not r.station_checks["primary_shortage"].judged[0]  # a contradicting pair judges nothing


def test_results_split_by_verdict() -> None:
    eng = engine(loops=[FLOOR, RADIATOR], site=HARBIN)
    r: RuleResults = eng.evaluate(inputs(eng, [41.0, 850.0], [34.0, 50.0], indoor=WARM))
    # the floor loop's flats are warm: a faulty probe elsewhere does not stop their verdict
    assert (r.status_name(0), r.verdict_name(0)) == ("ok", "sensors")
    assert (r.status_name(1), r.verdict_name(1)) == ("sensor_fault", "none")
