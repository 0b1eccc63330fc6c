"""Every rule's message and condition, firing and clear, word for word: each test names the bugs it catches.

The mutation run found messages nobody read in a unit test (ΔT, primary shortage, a station back online,
"back above"): a changed word, a swapped value or a lost cause passed. The figures are one radiator loop
(75/50 °C, m 1.3) at -10 °C outdoor: required supply 58.8 °C, return 42.2 °C, expected ΔT 16.6 K.
"""

from __future__ import annotations

import math

import pytest

from stationmon.domain.alerts import Condition
from stationmon.domain.plant import DailyWindow, Setback, Site
from stationmon.domain.rules import LoopTable, RuleEngine, RuleResults, Series
from stationmon.domain.rules.faults import describe_faults
from stationmon.domain.rules.messages import describe_duration
from stationmon.domain.settings import RulesSettings
from tests.unit.test_rules_edges import NOW, make_engine, make_inputs

RAD = ("s1", "rad")


def judge(supply: float, return_: float, **kw: object) -> RuleResults:
    """A fresh engine's results for one set of readings (see test_rules_edges.make_inputs)."""
    flow, pump = kw.pop("flow", None), kw.pop("pump", None)
    inp = make_inputs(supply, return_, **kw)  # type: ignore[arg-type]
    if flow is not None:
        inp.flow = Series.of([flow], [NOW - 5])
    if pump is not None:
        inp.pump_running = Series.of([pump], [NOW - 5])
    return make_engine().evaluate(inp)


def loop(r: RuleResults, rule: str) -> Condition:
    found = r.lookup((rule, *RAD))
    assert found is not None, rule
    return found


def station(r: RuleResults, rule: str) -> Condition:
    found = r.lookup((rule, "s1", None))
    assert found is not None, rule
    return found


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (45.0, "45s"),
        (119.0, "119s"),
        (120.0, "2m"),
        (7199.0, "120m"),
        (7200.0, "2.0h"),
        (9000.0, "2.5h"),
        (1_000_000.0, "277.8h"),
    ],
)
def test_describe_duration(seconds: float, text: str) -> None:
    """Catches the unit boundaries moved (`<=` for `<`, 120 or 7200 changed) and the unit words changed."""
    assert describe_duration(seconds) == text


def test_describe_duration_of_never() -> None:
    """Catches the infinity or NaN test dropped (a station never seen has an infinite age)."""
    assert describe_duration(math.inf) == "ever" and describe_duration(math.nan) == "ever"


def test_water_below_the_curve_and_back_above() -> None:
    """Catches supply/return words, "below"/"back above", the required value or the margin changed."""
    r = judge(45.0, 35.0)
    conditions = r.conditions()
    supply = conditions[("supply_low", *RAD)]
    assert supply.message == "supply 45.0 °C below 57.8 °C (required 58.8 °C at outdoor -10.0 °C less margin 1 K)"
    assert supply.value == 45.0 and supply.threshold == pytest.approx(57.75, abs=0.01)
    assert supply.sensors == frozenset({"supply_temp", "outdoor_temp"}) and supply.cause == "station"
    assert supply.district == "d1" and loop(r, "supply_low").district == "d1"
    back = conditions[("return_low", *RAD)].message
    assert back == "return 35.0 °C below 41.2 °C (required 42.2 °C at outdoor -10.0 °C less margin 1 K)"
    estimate = conditions[("indoor_estimate_low", *RAD)].message
    assert estimate == "estimated indoor 12.5 °C below 17.0 °C (supply/return 45.0/35.0 °C at outdoor -10.0 °C)"
    r = judge(60.0, 57.0)
    assert loop(r, "supply_low").message == (
        "supply 60.0 °C back above 57.8 °C (required 58.8 °C at outdoor -10.0 °C less margin 1 K)"
    )
    assert loop(r, "indoor_estimate_low").message == (
        "estimated indoor 22.3 °C back above 17.0 °C (supply/return 60.0/57.0 °C at outdoor -10.0 °C)"
    )


def test_delta_t_messages() -> None:
    """Catches the ΔT messages' words, values or direction changed (no unit test read them)."""
    r = judge(60.0, 57.0)
    assert loop(r, "delta_t_low").message == "ΔT 3.0 K below 8.3 K (expected 16.6 K: overflow or bypass)"
    assert loop(r, "delta_t_high").message == "ΔT 3.0 K back below 33.2 K (expected 16.6 K: too little flow)"
    assert loop(r, "delta_t_low").sensors == frozenset({"supply_temp", "return_temp", "outdoor_temp"})
    r = judge(80.0, 40.0)
    assert loop(r, "delta_t_high").message == "ΔT 40.0 K above 33.2 K (expected 16.6 K: too little flow)"
    assert loop(r, "delta_t_low").message == "ΔT 40.0 K back above 8.3 K (expected 16.6 K: overflow or bypass)"
    assert (loop(r, "delta_t_high").value, loop(r, "delta_t_high").threshold) == (40.0, pytest.approx(33.175, abs=1e-3))


def test_no_circulation_messages() -> None:
    """Catches the flow and pump messages' words, the two decimals, and which sensor the rule read."""
    r = judge(60.0, 45.0, flow=0.5)
    cond = r.conditions()[("no_circulation", *RAD)]
    assert cond.message == "flow 0.50 m³/h below 1.00 m³/h: the loop does not circulate"
    assert cond.sensors == frozenset({"flow"}) and (cond.value, cond.threshold) == (0.5, 1.0)
    r = judge(60.0, 45.0, flow=5.0)
    assert loop(r, "no_circulation").message == "flow 5.00 m³/h back above 1.00 m³/h: the loop does not circulate"
    r = judge(60.0, 45.0, pump=0.0)
    cond = r.conditions()[("no_circulation", *RAD)]
    assert cond.message == "pump reported stopped" and cond.sensors == frozenset({"pump_running"})
    assert loop(judge(60.0, 45.0, pump=1.0), "no_circulation").message == "pump reported running again"


def test_indoor_low_message_and_its_critical_tier() -> None:
    """Catches the sensor counts, the lowest value or the refund tier left out or swapped."""
    r = judge(70.0, 50.0, indoor=[15.0, 17.0, 19.0])
    cond = r.conditions()[("indoor_low", *RAD)]
    assert cond.message == "2 of 3 indoor sensors below 18.0 °C (lowest 15.0 °C, 1 below 16.0 °C)"
    assert cond.severity == "critical" and cond.sensors == frozenset({"indoor_temp"})
    r = judge(70.0, 50.0, indoor=[17.0, 19.0])
    cond = r.conditions()[("indoor_low", *RAD)]
    assert cond.message == "1 of 2 indoor sensors below 18.0 °C (lowest 17.0 °C)" and cond.severity is None


def test_station_offline_and_back() -> None:
    """Catches the offline message's durations swapped, and "reading again" lost."""
    r = judge(60.0, 45.0, last_seen=NOW - 61)
    cond = r.conditions()[("station_offline", "s1", None)]
    assert cond.message == "no reading for 61s (offline after 60s)"
    assert (cond.value, cond.threshold, cond.district, cond.sensors) == (61.0, 60.0, "d1", frozenset())
    back = station(judge(60.0, 45.0), "station_offline")
    assert back.message == "reading again (last 5s ago)" and back.value == 5.0


def test_primary_shortage_names_the_heat_source() -> None:
    """Catches the shortage message's figures, the approach, the sensor read, and the heat-source cause on
    the station's own conditions and its loops'."""
    r = judge(57.0, 45.0, primary=60.0)
    cond = r.conditions()[("primary_shortage", "s1", None)]
    assert cond.message == (
        "primary supply 60.0 °C below 63.8 °C (the loops need 58.8 °C plus 5.0 K of approach): a heat-source shortage"
    )
    assert cond.sensors == frozenset({"primary_supply_temp"}) and cond.cause == "heat_source"
    assert cond.value == 60.0 and cond.threshold == pytest.approx(63.75, abs=0.01)
    assert r.conditions()[("supply_low", *RAD)].cause == "heat_source"
    assert loop(r, "supply_low").cause == "heat_source" and station(r, "sensor_fault").cause == "heat_source"
    r = judge(57.0, 45.0, primary=90.0)
    assert station(r, "primary_shortage").message == (
        "primary supply 90.0 °C back above 63.8 °C (the loops need 58.8 °C plus 5.0 K of approach): "
        "a heat-source shortage"
    )
    assert station(r, "primary_shortage").cause == "station" and loop(r, "supply_low").cause == "station"


def test_sensor_fault_conditions() -> None:
    """Catches the faulty sensors, value or message of a sensor fault changed, and a clear one not "ok"."""
    r = judge(60.0, 45.0, outdoor=-999.0)
    cond = r.conditions()[("sensor_fault", "s1", None)]
    assert (cond.message, cond.value, cond.threshold) == ("outdoor_temp: sentinel value", -999.0, None)
    assert cond.sensors == frozenset({"outdoor_temp"})
    clear = loop(r, "sensor_fault")
    assert (clear.message, clear.value, clear.threshold, clear.sensors) == ("sensors ok", None, None, frozenset())
    r = judge(60.0, 45.0, primary=50.0)
    cond = station(r, "sensor_fault")
    assert cond.message == "primary_supply_temp: primary supply below secondary supply"
    assert cond.sensors == frozenset({"primary_supply_temp"}) and cond.value == 50.0
    r = judge(850.0, 45.0)
    cond = r.conditions()[("sensor_fault", *RAD)]
    assert (cond.message, cond.value, cond.sensors) == (
        "supply_temp: sentinel value",
        850.0,
        frozenset({"supply_temp"}),
    )


def test_lookup_of_what_was_not_judged() -> None:
    """Catches lookup answering for an unknown station, loop or rule, or for a rule not judged."""
    r = judge(60.0, 45.0)
    assert r.lookup(("supply_low", "s1", "nope")) is None
    assert r.lookup(("supply_low", "nope", "rad")) is None
    assert r.lookup(("no_such_rule", *RAD)) is None
    assert r.lookup(("station_offline", "nope", None)) is None
    assert r.lookup(("no_such_rule", "s1", None)) is None
    assert r.lookup(("indoor_low", *RAD)) is None  # no household sensors: not judged
    assert r.lookup(("primary_shortage", "s1", None)) is None  # no primary reading


def test_compliant_codes() -> None:
    """Catches the compliant codes swapped: 1 ok, 0 noncompliant, -1 neither (offline, faults, unknown)."""
    assert judge(70.0, 50.0).compliant().tolist() == [1]
    assert judge(45.0, 35.0).compliant().tolist() == [0]
    assert judge(70.0, 50.0, last_seen=NOW - 61).compliant().tolist() == [-1]
    assert judge(850.0, 50.0).compliant().tolist() == [-1]


def test_every_faulty_loop_sensor_is_named() -> None:
    """Catches a loop sensor's name changed in the fault message, or the "; " between two faulty sensors."""
    r = judge(850.0, -999.0)
    cond = r.conditions()[("sensor_fault", *RAD)]
    assert cond.message == "supply_temp: sentinel value; return_temp: sentinel value"
    assert cond.sensors == frozenset({"supply_temp", "return_temp"})
    r = judge(60.0, 45.0, flow=-5.0, pump=5.0)
    cond = r.conditions()[("sensor_fault", *RAD)]
    assert cond.message == "flow: out of range; pump_running: out of range"
    assert cond.sensors == frozenset({"flow", "pump_running"}) and cond.value == -5.0


def test_describe_faults_of_no_fault() -> None:
    """Catches the word for an empty fault set changed."""
    assert describe_faults(0) == "ok"


def test_station_conditions_by_lookup_carry_district_cause_and_state() -> None:
    """Catches a station condition looked up without its district, its cause, or whether it is active."""
    r = judge(57.0, 45.0, primary=60.0)
    for rule in ("station_offline", "primary_shortage", "sensor_fault"):
        cond = station(r, rule)
        assert (cond.district, cond.cause) == ("d1", "heat_source"), rule
    assert station(r, "primary_shortage").sensors == frozenset({"primary_supply_temp"})
    offline = station(judge(60.0, 45.0, last_seen=NOW - 61), "station_offline")
    assert offline.message == "no reading for 61s (offline after 60s)"
    assert (offline.value, offline.threshold, offline.cause) == (61.0, 60.0, "station")
    fault = station(judge(60.0, 45.0, outdoor=-999.0), "sensor_fault")
    assert (fault.message, fault.value, fault.district, fault.cause) == (
        "outdoor_temp: sentinel value",
        -999.0,
        "d1",
        "station",
    )


def test_a_planned_setback_is_named_in_the_message() -> None:
    """Catches the setback clause dropped for setbacks under 1 K (`> 1.0` for `> 0.0`), or replacing the
    rest of the reason (`=` for `+=`)."""
    base = RulesSettings(outdoor_smoothing_s=0.0, water_smoothing_s=0.0, setbacks=(Setback(DailyWindow(0, 1440), 0.5),))
    table = LoopTable.build([("s1", "d1")], [("s1", "rad", 75.0, 50.0, 1.3, None, None)], Site())
    r = RuleEngine(table, base).evaluate(make_inputs(50.0, 45.0))
    assert r.conditions()[("supply_low", *RAD)].message == (
        "supply 50.0 °C below 57.3 °C "
        "(required 58.8 °C at outdoor -10.0 °C less margin 1 K, less a planned setback of 0.5 K)"
    )
