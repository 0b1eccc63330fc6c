"""The alert state machine with injected time: no clock, no event loop."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stationmon.config import parse_config_text
from stationmon.domain.alerts import AlertBook, AlertKey, Condition
from stationmon.domain.settings import RuleSettings, RulesSettings
from stationmon.domain.vocabulary import RULE_NAMES

H = 3600.0
SUPPLY: AlertKey = ("supply_low", "s1", "sec1")
RETURN: AlertKey = ("return_low", "s1", "sec1")
INDOOR: AlertKey = ("indoor_low", "s1", "sec1")
OFFLINE: AlertKey = ("station_offline", "s1", None)
LOOP_FAULT: AlertKey = ("sensor_fault", "s1", "sec1")
STATION_FAULT: AlertKey = ("sensor_fault", "s1", None)


def book(for_s: float = 600.0, clear_for_s: float = 600.0) -> AlertBook:
    return AlertBook(
        RulesSettings(
            for_s=for_s, clear_for_s=clear_for_s, escalate_major_after_s=24 * H, escalate_critical_after_s=48 * H
        )
    )


def low(value: float = 38.0, sensors: frozenset[str] = frozenset({"supply_temp", "outdoor_temp"})) -> Condition:
    return Condition(value, 40.0, f"supply {value} below 40", "d1", sensors)


CLEAR = Condition(42.0, 40.0, "supply 42 back above 40", "d1", frozenset({"supply_temp", "outdoor_temp"}))


def judged_clear(key: AlertKey) -> Condition | None:
    return CLEAR


def not_judged(key: AlertKey) -> Condition | None:
    return None


def states(events: list) -> list[tuple[str, str]]:
    return [(e.rule, e.state) for e in events]


def test_pending_then_firing_after_for() -> None:
    b = book()
    assert b.update(0.0, {SUPPLY: low()}, judged_clear) == []
    assert b.get(SUPPLY).state == "pending"
    assert b.active_alerts() == []
    assert [a.state for a in b.active_alerts(include_pending=True)] == ["pending"]
    assert b.update(599.0, {SUPPLY: low()}, judged_clear) == []
    events = b.update(600.0, {SUPPLY: low(37.5)}, judged_clear)
    assert states(events) == [("supply_low", "firing")]
    e = events[0]
    assert (e.station, e.loop, e.district, e.severity, e.value, e.threshold) == (
        "s1",
        "sec1",
        "d1",
        "warning",
        37.5,
        40.0,
    )
    assert e.since == 600.0 and e.ts == 600.0 and e.alert_id == "s1.sec1.supply_low.600000"
    assert e.labels == {
        "alertname": "supply_low",
        "station": "s1",
        "district": "d1",
        "loop": "sec1",
        "severity": "warning",
        "cause": "station",
    }
    [snap] = b.active_alerts()
    assert (snap.id, snap.state, snap.since, snap.pending_since, snap.value) == (e.alert_id, "firing", 600.0, 0.0, 37.5)
    # holding on does not fire again
    assert b.update(700.0, {SUPPLY: low()}, judged_clear) == []


def test_for_zero_fires_at_once() -> None:
    b = book(for_s=0.0)
    assert states(b.update(5.0, {SUPPLY: low()})) == [("supply_low", "firing")]


def test_pending_that_goes_away_never_fires() -> None:
    b = book()
    b.update(0.0, {SUPPLY: low()}, judged_clear)
    assert b.update(300.0, {}, judged_clear) == []
    assert b.get(SUPPLY) is None
    # the `for` timer starts over
    b.update(400.0, {SUPPLY: low()}, judged_clear)
    assert b.update(900.0, {SUPPLY: low()}, judged_clear) == []
    assert states(b.update(1000.0, {SUPPLY: low()}, judged_clear)) == [("supply_low", "firing")]


def test_resolved_after_clear_for_with_the_recovered_value() -> None:
    b = book(for_s=0.0, clear_for_s=600.0)
    [fired] = b.update(0.0, {SUPPLY: low()}, judged_clear)
    assert b.update(100.0, {}, judged_clear) == []
    assert b.update(699.0, {}, judged_clear) == []
    [resolved] = b.update(700.0, {}, judged_clear)
    assert (resolved.state, resolved.alert_id, resolved.since, resolved.value) == (
        "resolved",
        fired.alert_id,
        0.0,
        42.0,
    )
    assert resolved.message == "supply 42 back above 40"
    assert b.get(SUPPLY) is None and b.active_alerts() == []
    assert [s.id for s in b.recently_resolved] == [fired.alert_id]
    # a new episode is a new alert with a new id
    [again] = b.update(800.0, {SUPPLY: low()}, judged_clear)
    assert again.state == "firing" and again.alert_id != fired.alert_id


def test_flapping_is_suppressed() -> None:
    """A loop hovering at the threshold: gone for less than clear_for never resolves or re-fires."""
    b = book(for_s=0.0, clear_for_s=600.0)
    events = b.update(0.0, {SUPPLY: low()}, judged_clear)
    t = 0.0
    for _ in range(30):  # five hours of 5 min below / 5 min above
        t += 300.0
        events += b.update(t, {}, judged_clear)
        t += 300.0
        events += b.update(t, {SUPPLY: low()}, judged_clear)
    assert states(events) == [("supply_low", "firing")]
    assert b.get(SUPPLY).state == "firing"


def test_escalation_at_24_and_48_hours() -> None:
    b = book(for_s=0.0)
    events = b.update(0.0, {SUPPLY: low(), OFFLINE: Condition(120.0, 60.0, "", "d1")}, judged_clear)
    # the offline alert inhibits the loop alert; escalation is tested on both apart below
    assert states(events) == [("station_offline", "firing")]
    b2 = book(for_s=0.0)
    [fired] = b2.update(0.0, {SUPPLY: low()})
    assert b2.update(24 * H - 1, {SUPPLY: low()}) == []
    [major] = b2.update(24 * H, {SUPPLY: low()})
    assert (major.state, major.severity, major.alert_id) == ("escalated", "major", fired.alert_id)
    assert b2.update(30 * H, {SUPPLY: low()}) == []
    [critical] = b2.update(48 * H, {SUPPLY: low()})
    assert (critical.state, critical.severity) == ("escalated", "critical")
    assert b2.update(100 * H, {SUPPLY: low()}) == []
    assert b2.active_alerts()[0].severity == "critical"
    # a rule that starts at major goes straight to critical at 48 h, nothing at 24 h
    assert b.update(24 * H, {OFFLINE: Condition(1.0, 60.0, "", "d1")}) == []
    [off] = b.update(48 * H, {OFFLINE: Condition(1.0, 60.0, "", "d1")})
    assert (off.rule, off.state, off.severity) == ("station_offline", "escalated", "critical")


def test_escalation_after_a_gap_jumps_straight_to_the_due_level() -> None:
    b = book(for_s=0.0)
    b.update(0.0, {SUPPLY: low()})
    events = b.update(50 * H, {SUPPLY: low()})
    assert [(e.state, e.severity) for e in events] == [("escalated", "critical")]


def test_acknowledgement() -> None:
    b = book(for_s=0.0)
    [fired] = b.update(0.0, {SUPPLY: low()})
    b.update(10.0, {SUPPLY: low(), RETURN: low()})
    assert b.acknowledge("no-such-id", "li", None, 10.0) is None
    event = b.acknowledge(fired.alert_id, "li.wei", "crew on the way", 60.0)
    assert event is not None
    assert (event.state, event.acknowledged_by, event.acknowledged_at, event.comment) == (
        "acknowledged",
        "li.wei",
        60.0,
        "crew on the way",
    )
    snap = b.snapshot(fired.alert_id)
    assert snap is not None and snap.acknowledged_by == "li.wei" and snap.to_dict()["comment"] == "crew on the way"
    # acknowledged alerts still escalate (the complaint deadline runs), keeping the acknowledgement
    [esc] = b.update(24 * H, {SUPPLY: low(), RETURN: low()})
    assert esc.rule == "supply_low" and esc.state == "escalated" and esc.acknowledged_by == "li.wei"
    # at the new severity it needs (and takes) a new acknowledgement
    assert b.acknowledgement(fired.alert_id) is None
    again = b.acknowledge(fired.alert_id, "zhang.supervisor", "escalated: second crew", 24 * H + 60)
    assert again is not None and (again.acknowledged_by, again.severity) == ("zhang.supervisor", "major")
    # a pending alert has no id to acknowledge
    slow = book(for_s=600.0)
    slow.update(0.0, {INDOOR: low(sensors=frozenset({"indoor_temp"}))})
    assert slow.get(INDOOR).state == "pending" and slow.get(INDOOR).alert_id == ""
    assert slow.acknowledge("", "li", None, 1.0) is None


def test_a_repeated_acknowledgement_changes_nothing() -> None:
    b = book(for_s=0.0)
    [fired] = b.update(0.0, {SUPPLY: low()})
    assert b.acknowledgement(fired.alert_id) is None
    first = b.acknowledge(fired.alert_id, "li.wei", "crew on the way", 60.0)
    assert first is not None
    b.dirty = False
    again = b.acknowledge(fired.alert_id, "zhang", None, 120.0)
    # the acknowledgement as it was made: same person, time and comment; nothing to save
    assert again == first
    assert b.acknowledgement(fired.alert_id) == first
    assert b.dirty is False
    snap = b.snapshot(fired.alert_id)
    assert snap is not None and (snap.acknowledged_by, snap.acknowledged_at, snap.comment) == (
        "li.wei",
        60.0,
        "crew on the way",
    )
    assert b.acknowledgement("no-such-id") is None


def test_offline_station_inhibits_its_loop_alerts() -> None:
    b = book(for_s=0.0)
    other: AlertKey = ("supply_low", "s2", "sec1")
    assert len(b.update(0.0, {other: low(), SUPPLY: low()}, judged_clear)) == 2
    offline = Condition(300.0, 60.0, "no reading for 300s", "d1")
    events = b.update(60.0, {OFFLINE: offline, RETURN: low(), LOOP_FAULT: low(), other: low()}, judged_clear)
    # one alert for the outage; no new loop alerts of s1; s2 untouched
    assert states(events) == [("station_offline", "firing")]
    assert b.get(RETURN) is None and b.get(LOOP_FAULT) is None
    # the firing loop alert of s1 is not resolved while its station is offline, however long
    for t in (700.0, 5000.0, 20000.0):
        assert states(b.update(t, {OFFLINE: offline, other: low()}, judged_clear)) == []
    assert b.get(SUPPLY).state == "firing" and b.get(SUPPLY).clearing_since is None
    # back online and warm: it resolves after clear_for, the outage too
    assert b.update(21000.0, {other: low()}, judged_clear) == []
    events = b.update(21600.0, {other: low()}, judged_clear)
    assert sorted(states(events)) == [("station_offline", "resolved"), ("supply_low", "resolved")]


def test_sensor_fault_inhibits_the_rules_that_read_that_sensor() -> None:
    b = book(for_s=0.0)
    fault = Condition(850.0, None, "supply_temp: sentinel value", "d1", frozenset({"supply_temp"}))
    indoor = Condition(16.0, 17.0, "2 of 3 indoor sensors below", "d1", frozenset({"indoor_temp"}))
    events = b.update(0.0, {LOOP_FAULT: fault, SUPPLY: low(), INDOOR: indoor}, judged_clear)
    assert sorted(states(events)) == [("indoor_low", "firing"), ("sensor_fault", "firing")]
    assert b.get(SUPPLY) is None
    # a station-level outdoor fault suppresses curve-based judgements of every loop of the station...
    outdoor = Condition(-999.0, None, "outdoor_temp: sentinel value", "d1", frozenset({"outdoor_temp"}))
    other_loop: AlertKey = ("supply_low", "s1", "sec2")
    events = b.update(10.0, {STATION_FAULT: outdoor, other_loop: low()}, judged_clear)
    assert states(events) == [("sensor_fault", "firing")]
    assert b.get(other_loop) is None
    # ...but not the fixed-floor judgement, which reads only the supply sensor
    floor = Condition(38.0, 41.0, "supply 38 below the fixed minimum 41", "d1", frozenset({"supply_temp"}))
    events = b.update(20.0, {STATION_FAULT: outdoor, other_loop: floor}, judged_clear)
    assert states(events) == [("supply_low", "firing")]


def test_not_judged_keeps_firing_and_drops_pending() -> None:
    b = book(for_s=600.0, clear_for_s=60.0)
    b.update(0.0, {SUPPLY: low()}, judged_clear)
    b.update(600.0, {SUPPLY: low()}, judged_clear)
    b.update(600.0, {SUPPLY: low(), RETURN: low()}, judged_clear)
    assert b.get(RETURN).state == "pending"
    # data stops (or the season ends): nothing judged for a week
    for t in (700.0, 7 * 86400.0):
        assert b.update(t, {}, not_judged) == []
    assert b.get(SUPPLY).state == "firing" and b.get(RETURN) is None
    # a clear timer started before the gap is kept, not restarted, and finishes once judged again
    b2 = book(for_s=0.0, clear_for_s=600.0)
    b2.update(0.0, {SUPPLY: low()}, judged_clear)
    b2.update(100.0, {}, judged_clear)
    b2.update(500.0, {}, not_judged)
    assert states(b2.update(700.0, {}, judged_clear)) == [("supply_low", "resolved")]


def test_disabled_rules_are_ignored() -> None:
    only_supply = {"supply_low": RuleSettings("supply_low", for_s=0.0, clear_for_s=0.0)}
    b = AlertBook(RulesSettings(rules={**{n: RuleSettings(n, enabled=False) for n in RULE_NAMES}, **only_supply}))
    assert b.update(0.0, {RETURN: low(), SUPPLY: low()}) != []
    assert b.get(RETURN) is None
    assert b.counts() == {("supply_low", "pending"): 0, ("supply_low", "firing"): 1}


def test_restart_neither_forgets_nor_refires() -> None:
    b = book(for_s=600.0, clear_for_s=600.0)
    b.update(0.0, {SUPPLY: low()}, judged_clear)
    [fired] = b.update(600.0, {SUPPLY: low()}, judged_clear)
    b.update(24 * H + 600.0, {SUPPLY: low()}, judged_clear)  # supply_low escalated to major
    b.acknowledge(fired.alert_id, "ops", "known", 24 * H + 650.0)
    b.update(24 * H + 600.0, {SUPPLY: low(), RETURN: low()}, judged_clear)  # return_low pending
    saved = json.loads(json.dumps(b.to_dict()))  # through real JSON

    restarted = book(for_s=600.0, clear_for_s=600.0)
    assert restarted.load_dict(saved) == 2
    [snap] = restarted.active_alerts()
    assert (snap.id, snap.severity, snap.since, snap.acknowledged_by) == (fired.alert_id, "major", 600.0, "ops")
    # same condition after the restart: no new firing event
    assert restarted.update(24 * H + 700.0, {SUPPLY: low(), RETURN: low()}, judged_clear) == []
    # then it clears and resolves as the same alert
    restarted.update(24 * H + 800.0, {}, judged_clear)
    [resolved] = restarted.update(24 * H + 1400.0, {}, judged_clear)
    assert (resolved.state, resolved.alert_id) == ("resolved", fired.alert_id)
    assert restarted.acknowledge(fired.alert_id, "x", None, 0.0) is None


def test_restart_keeps_a_pending_alert_counting() -> None:
    b = book(for_s=600.0)
    b.update(0.0, {SUPPLY: low()}, judged_clear)
    restarted = book(for_s=600.0)
    restarted.load_dict(json.loads(json.dumps(b.to_dict())))
    assert states(restarted.update(600.0, {SUPPLY: low()}, judged_clear)) == [("supply_low", "firing")]


def test_load_skips_what_it_cannot_use() -> None:
    b = book(for_s=0.0)
    b.update(0.0, {SUPPLY: low(), RETURN: low()})
    doc = b.to_dict()
    doc["alerts"][1]["rule"] = "no_such_rule"
    doc["alerts"].append({"rule": "supply_low", "state": "firing"})  # malformed
    restarted = book()
    assert restarted.load_dict(doc) == 1
    with pytest.raises(ValueError):
        restarted.load_dict({"version": 99, "alerts": []})


def test_retain_resolves_alerts_of_removed_loops() -> None:
    b = book(for_s=0.0)
    b.update(0.0, {SUPPLY: low(), ("supply_low", "gone", "sec1"): low()})
    events = b.retain(lambda key: key[1] != "gone", 10.0, "no longer in the configuration")
    assert [(e.station, e.state, e.message) for e in events] == [("gone", "resolved", "no longer in the configuration")]
    assert [a.station for a in b.active_alerts()] == ["s1"]


def test_from_rules_config_uses_per_rule_settings() -> None:
    cfg = parse_config_text(
        """
        [rules]
        for = "10m"
        escalate_major_after = "12h"
        escalate_critical_after = "36h"
        [rules.supply_low]
        for = "5m"
        severity = "major"
        [rules.delta_t_high]
        enabled = false
        [[stations]]
        id = "s1"
        """,
        require_influxdb=False,
    )
    b = AlertBook(cfg.rules)
    policy = b.policies["supply_low"]
    assert (policy.for_s, policy.clear_for_s, policy.severity) == (300.0, 600.0, "major")
    assert b.policies["return_low"].for_s == 600.0
    assert "delta_t_high" not in b.policies
    assert (b.escalate_major_after_s, b.escalate_critical_after_s) == (12 * H, 36 * H)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(1.0, 900.0), st.sampled_from(["on", "off", "unjudged"])), max_size=60))
def test_lifecycle_invariants(steps: list[tuple[float, str]]) -> None:
    """Any sequence: each alert id fires once, resolves at most once and only after firing; the
    firing event comes `for` after a continuous run, the resolve `clear_for` after one."""
    b = book(for_s=600.0, clear_for_s=600.0)
    t = 0.0
    fired: set[str] = set()
    resolved: set[str] = set()
    on_since: float | None = None
    judged_off_since: float | None = None
    for dt, what in steps:
        t += dt
        if what == "on":
            events = b.update(t, {SUPPLY: low()}, judged_clear)
            on_since = t if on_since is None else on_since
            judged_off_since = None
        else:
            events = b.update(t, {}, judged_clear if what == "off" else not_judged)
            on_since = None
            if what == "off" and judged_off_since is None:
                judged_off_since = t
        for e in events:
            if e.state == "firing":
                assert e.alert_id not in fired
                fired.add(e.alert_id)
            elif e.state == "resolved":
                assert e.alert_id in fired and e.alert_id not in resolved
                resolved.add(e.alert_id)
                assert judged_off_since is not None
    assert len(fired - resolved) <= 1
