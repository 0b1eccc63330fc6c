"""A station back from an outage: the points its PLC has not been polled for since are not stale yet.

In the demo a station's household sensors (MQTT) came back a poll or two before its Modbus poller
reconnected; the station counted as answering while every PLC point was still as old as the outage,
and three stale `sensor_fault` alerts fired and resolved a moment later. Pure: no clock, no sockets.
"""

from __future__ import annotations

from stationmon.domain.rules import RuleEngine, RuleInputs
from stationmon.domain.rules.faults import FAULT_STALE
from tests.unit.test_rules import FLOOR, NOW, active, engine, inputs

OFFLINE_AFTER = 60.0  # RulesSettings' default; stale_after unset, so fresh_s is the same


def _outage(eng: RuleEngine) -> float:
    """Online, then silent past `offline_after`: the time the outage was judged."""
    r = eng.evaluate(inputs(eng, [45.0], [35.0], now=NOW))
    assert r.status_name(0) == "ok"
    down = NOW + OFFLINE_AFTER + 30
    r = eng.evaluate(inputs(eng, [45.0], [35.0], now=down, ts=NOW - 5))
    assert r.status_name(0) == "offline"
    return down


def _back(eng: RuleEngine, now: float, plc_ts: float) -> RuleInputs:
    """The station answers again (a household sensor a second ago), its PLC points last read at `plc_ts`."""
    return inputs(eng, [45.0], [35.0], now=now, ts=plc_ts, last_seen=[now - 1])


def test_a_station_back_from_an_outage_is_not_stale_before_its_plc_is_polled() -> None:
    eng = engine(loops=[FLOOR])
    down = _outage(eng)
    back = down + 10
    r = eng.evaluate(_back(eng, back, NOW - 5))
    assert r.status_name(0) == "unknown"  # online, nothing fresh to judge on: no verdict, no fault
    assert r.supply_faults[0] == 0 and r.return_faults[0] == 0 and r.outdoor_faults[0] == 0
    assert "sensor_fault" not in active(r, 0)
    assert not r.station_checks["sensor_fault"].active[0]
    # the poll comes: fresh values, judged as usual
    r = eng.evaluate(inputs(eng, [45.0], [35.0], now=back + 2, ts=back + 1.5, last_seen=[back + 1.5]))
    assert r.status_name(0) == "ok"


def test_a_point_that_stays_stale_after_the_return_is_still_a_fault() -> None:
    eng = engine(loops=[FLOOR])
    down = _outage(eng)
    back = down + 10
    eng.evaluate(_back(eng, back, NOW - 5))
    # the station has answered for longer than fresh_s and the PLC points never came: stale
    r = eng.evaluate(_back(eng, back + OFFLINE_AFTER + 1, NOW - 5))
    assert r.status_name(0) == "sensor_fault" and "sensor_fault" in active(r, 0)
    assert r.supply_faults[0] == FAULT_STALE and r.return_faults[0] == FAULT_STALE
    assert r.outdoor_faults[0] == FAULT_STALE and r.station_checks["sensor_fault"].active[0]


def test_only_the_returning_station_gets_the_grace() -> None:
    eng = engine(loops=[FLOOR, ("s2", "floor", 50.0, 40.0, 1.1, None, None)], stations=[("s1", "d1"), ("s2", "d1")])
    # s2 answers throughout with an old supply reading: stale at once, as before
    inp = inputs(eng, [45.0, 45.0], [35.0, 35.0], (-10.0, -10.0), last_seen=[NOW - 1, NOW - 1])
    inp.supply.ts[1] = NOW - 120
    r = eng.evaluate(inp)
    assert r.supply_faults[1] == FAULT_STALE and r.supply_faults[0] == 0


def test_the_grace_ends_exactly_fresh_s_after_the_return() -> None:
    """At `fresh_s` after the station was judged back its unread points are not stale yet; a second later they are."""
    eng = engine(loops=[FLOOR])
    back = _outage(eng) + 10
    eng.evaluate(_back(eng, back, NOW - 5))
    assert eng.evaluate(_back(eng, back + OFFLINE_AFTER, NOW - 5)).supply_faults[0] == 0
    assert eng.evaluate(_back(eng, back + OFFLINE_AFTER + 1, NOW - 5)).supply_faults[0] == FAULT_STALE


def test_a_second_outage_starts_a_new_grace() -> None:
    eng = engine(loops=[FLOOR])
    back = _outage(eng) + 10
    eng.evaluate(inputs(eng, [45.0], [35.0], now=back, ts=back - 1, last_seen=[back - 1]))  # polled at once
    down = back + OFFLINE_AFTER + 30
    assert eng.evaluate(inputs(eng, [45.0], [35.0], now=down, ts=back - 1)).status_name(0) == "offline"
    r = eng.evaluate(_back(eng, down + 10, back - 1))
    assert r.supply_faults[0] == 0 and r.status_name(0) == "unknown"
