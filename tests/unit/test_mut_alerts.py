"""The alert book's edges: the state file (today's and older formats), what is saved when, the order the
API lists alerts in, severity raised by a condition, and removed loops.

Each test names the one-line bug it would catch (mutation testing, issue 17).
"""

from __future__ import annotations

import json
import math

import pytest

from stationmon.domain.alerts import Alert, AlertBook, AlertKey, AlertSnapshot, Condition
from stationmon.domain.settings import RuleSettings, RulesSettings

H = 3600.0
SUPPLY: AlertKey = ("supply_low", "s1", "sec1")
RETURN: AlertKey = ("return_low", "s1", "sec1")
INDOOR: AlertKey = ("indoor_low", "s1", "sec1")
SHORTAGE: AlertKey = ("primary_shortage", "s1", None)
SENSORS = frozenset({"supply_temp", "outdoor_temp"})


def book(for_s: float = 0.0, clear_for_s: float = 600.0, **rules: RuleSettings) -> AlertBook:
    return AlertBook(
        RulesSettings(
            for_s=for_s,
            clear_for_s=clear_for_s,
            escalate_major_after_s=24 * H,
            escalate_critical_after_s=48 * H,
            rules=rules,
        )
    )


def low(value: float = 38.0, **kw: object) -> Condition:
    return Condition(value, 40.0, f"supply {value} below 40", "d1", SENSORS, **kw)  # type: ignore[arg-type]


CLEAR = Condition(42.0, 40.0, "supply 42 back above 40", "d1", SENSORS)


def judged_clear(key: AlertKey) -> Condition | None:
    return CLEAR


def roundtrip(b: AlertBook) -> dict:
    return json.loads(json.dumps(b.to_dict()))


# ----------------------------------------------------------------------------------------------------
# The state file


def _acknowledged_and_clearing() -> AlertBook:
    """A firing supply_low with every field set: acknowledged, its clear timer running, heat_source."""
    b = book()
    b.update(0.0, {SUPPLY: low(cause="heat_source", company="冰城热力")}, judged_clear)
    assert b.acknowledge("s1.sec1.supply_low.0", "li.wei", "crew on the way", 60.0) is not None
    b.update(100.0, {}, judged_clear)  # judged clear: the clear timer starts
    return b


def test_the_state_file_document() -> None:
    """What a restart reads: every field under its name (`id`, not "alert_id"; no `source`), numbers
    and the message as they are, not None."""
    assert roundtrip(_acknowledged_and_clearing()) == {
        "version": 1,
        "alerts": [
            {
                "id": "s1.sec1.supply_low.0",
                "rule": "supply_low",
                "station": "s1",
                "loop": "sec1",
                "district": "d1",
                "company": "冰城热力",
                "state": "firing",
                "pending_since": 0.0,
                "since": 0.0,
                "base_severity": "warning",
                "severity": "warning",
                "value": 38.0,
                "threshold": 40.0,
                "message": "supply 38.0 below 40",
                "clearing_since": 100.0,
                "acknowledged_by": "li.wei",
                "acknowledged_at": 60.0,
                "comment": "crew on the way",
                "cause": "heat_source",
            }
        ],
    }


def test_a_restart_restores_every_field() -> None:
    """Any field read under a wrong key or not at all (district, value, threshold, message, the clear
    timer, the acknowledgement, the cause) would come back different after a restart."""
    before = _acknowledged_and_clearing()
    after = book()
    assert after.load_dict(roundtrip(before)) == 1
    assert after.get(SUPPLY) == before.get(SUPPLY)
    assert after.dirty is False  # just read: nothing new to write back
    # the clear timer carried over: resolved clear_for after it started, not after the restart
    [resolved] = after.update(700.0, {}, judged_clear)
    assert (resolved.state, resolved.alert_id) == ("resolved", "s1.sec1.supply_low.0")


def test_a_state_file_of_an_older_version_fills_in_the_defaults() -> None:
    """A minimal entry (saved before district, message, cause, company and the acknowledgement existed)
    loads with empty texts, cause "station" and None, not "None" or "XXXX"."""
    doc = {
        "version": 1,
        "alerts": [
            {"rule": "supply_low", "station": "s1", "loop": "sec1", "state": "firing", "severity": "warning"}
            | {"pending_since": 0, "since": 5, "id": "s1.sec1.supply_low.5000"},
            {"rule": "return_low", "station": "s1", "loop": None, "state": "pending", "severity": "warning"}
            | {"pending_since": 7},
        ],
    }
    b = book()
    assert b.load_dict(doc, {"s1": "冰城热力"}) == 2
    assert b.get(SUPPLY) == Alert(
        rule="supply_low",
        station="s1",
        loop="sec1",
        district="",
        state="firing",
        pending_since=0.0,
        base_severity="warning",
        severity="warning",
        alert_id="s1.sec1.supply_low.5000",
        since=5.0,
        company="冰城热力",
    )
    assert b.get(("return_low", "s1", None)) == Alert(
        rule="return_low",
        station="s1",
        loop=None,
        district="",
        state="pending",
        pending_since=7.0,
        base_severity="warning",
        severity="warning",
        company="冰城热力",
    )
    assert (b.get(SUPPLY).message, b.get(SUPPLY).cause, b.get(SUPPLY).acknowledged_by) == ("", "station", None)


GOOD = {"rule": "supply_low", "station": "s1", "loop": "sec1", "state": "firing", "severity": "warning"} | {
    "pending_since": 0.0,
    "since": 0.0,
    "id": "s1.sec1.supply_low.0",
}


@pytest.mark.parametrize(
    "bad",
    [
        GOOD | {"id": ""},  # firing without an id: nothing to acknowledge it by
        {k: v for k, v in GOOD.items() if k != "id"},
        GOOD | {"since": None},  # `and` for `or`: firing with an id but no start
        GOOD | {"state": "resolved"},
        GOOD | {"severity": "bogus"},  # `and` for `or`: a valid state with an unknown severity
        GOOD | {"rule": "no_such_rule"},
        GOOD | {"pending_since": "soon"},
        "junk",
    ],
)
def test_unusable_entries_are_skipped_and_the_rest_still_load(bad: object) -> None:
    """An entry it cannot use is skipped, not the end of the file (`break` for `continue`), and never
    loaded half-valid."""
    other = GOOD | {"rule": "return_low", "id": "s1.sec1.return_low.0"}
    b = book()
    assert b.load_dict({"version": 1, "alerts": [bad, other]}) == 1
    assert [s.rule for s in b.active_alerts(include_pending=True)] == ["return_low"]


def test_a_pending_entry_needs_no_id() -> None:
    b = book(for_s=600.0)
    assert b.load_dict({"version": 1, "alerts": [GOOD | {"state": "pending", "id": "", "since": None}]}) == 1
    alert = b.get(SUPPLY)
    assert alert is not None and (alert.state, alert.alert_id, alert.since) == ("pending", "", None)


def test_a_wrong_document_is_refused_with_a_message() -> None:
    """The state file loader logs this message when it moves the file aside."""
    with pytest.raises(ValueError, match="not an alert state of version 1"):
        book().load_dict({"version": 99, "alerts": []})
    with pytest.raises(ValueError, match="not an alert state of version 1"):
        book().load_dict([])  # type: ignore[arg-type]
    assert book().load_dict({"version": 1}) == 0  # no alerts at all: an empty book, no TypeError


@pytest.mark.parametrize(
    ("saved", "configured", "loaded"),
    [
        ("warning", "major", "major"),  # the config raised the rule's severity since
        ("critical", "major", "critical"),  # an escalated alert keeps its escalation
        ("warning", "warning", "warning"),
    ],
)
def test_the_configured_severity_is_a_floor_after_a_restart(saved: str, configured: str, loaded: str) -> None:
    b = book(supply_low=RuleSettings("supply_low", for_s=0.0, severity=configured))
    b.load_dict({"version": 1, "alerts": [GOOD | {"severity": saved, "base_severity": "warning"}]})
    alert = b.get(SUPPLY)
    assert alert is not None and (alert.severity, alert.base_severity) == (loaded, configured)


def test_after_a_restart_firing_alerts_are_found_by_id_and_pending_ones_are_not() -> None:
    """`!=` for `==` (or a misspelt "firing") in the id index: the firing alert could no longer be
    acknowledged after a restart, and the empty id of a pending one would find it."""
    b = book(for_s=0.0, return_low=RuleSettings("return_low", for_s=600.0))
    [fired] = b.update(0.0, {SUPPLY: low(), RETURN: low()}, judged_clear)
    after = book(for_s=0.0, return_low=RuleSettings("return_low", for_s=600.0))
    assert after.load_dict(roundtrip(b)) == 2
    snap = after.snapshot(fired.alert_id)
    assert snap is not None and (snap.rule, snap.state) == ("supply_low", "firing")
    assert after.snapshot("") is None
    assert after.acknowledge(fired.alert_id, "li", None, 10.0) is not None


# ----------------------------------------------------------------------------------------------------
# What is saved when (`dirty`: the evaluator writes the state file when it is set)


def test_an_acknowledgement_is_saved() -> None:
    """Not saving it (dirty False) would forget who acknowledged after a restart."""
    b = book()
    [fired] = b.update(0.0, {SUPPLY: low()}, judged_clear)
    b.dirty = False
    b.acknowledge(fired.alert_id, "li", None, 10.0)
    assert b.dirty is True


def test_a_graver_condition_on_a_pending_alert_is_saved_and_fires_at_that_severity() -> None:
    b = book(for_s=600.0)
    b.update(0.0, {INDOOR: low()}, judged_clear)
    b.dirty = False
    assert b.update(10.0, {INDOOR: low(severity="critical")}, judged_clear) == []
    assert b.dirty is True and b.get(INDOOR).severity == "critical"
    [fired] = b.update(600.0, {INDOOR: low()}, judged_clear)
    assert (fired.state, fired.severity) == ("firing", "critical")


def test_a_graver_condition_escalates_a_firing_alert_now_and_ends_its_acknowledgement() -> None:
    """The escalation event is stamped `now` (not None) and says who had acknowledged; afterwards the
    acknowledgement is gone (None, not "") so the alert can be acknowledged again."""
    b = book()
    [fired] = b.update(0.0, {INDOOR: low()}, judged_clear)
    b.acknowledge(fired.alert_id, "li", "known", 5.0)
    [event] = b.update(30.0, {INDOOR: low(severity="critical")}, judged_clear)
    assert (event.state, event.ts, event.severity, event.acknowledged_by) == ("escalated", 30.0, "critical", "li")
    alert = b.get(INDOOR)
    assert (alert.acknowledged_by, alert.acknowledged_at, alert.comment) == (None, None, None)
    assert b.acknowledgement(fired.alert_id) is None


# ----------------------------------------------------------------------------------------------------
# Listing


def test_active_alerts_are_listed_by_firing_time_then_station_loop_rule() -> None:
    """Pending alerts sort by when they became pending, firing ones by when they fired; a station-level
    alert before its station's loops (loop ids are [a-z0-9_-], "1" sorts before "XXXX")."""
    b = book(for_s=0.0, supply_low=RuleSettings("supply_low", for_s=600.0))
    b.update(0.0, {SUPPLY: low()}, judged_clear)  # pending from 0
    later: AlertKey = ("return_low", "s1", "1")
    b.update(100.0, {SUPPLY: low(), later: low(), SHORTAGE: low(), ("return_low", "s0", "1"): low()}, judged_clear)
    order = [(s.rule, s.station, s.loop, s.state) for s in b.active_alerts(include_pending=True)]
    assert order == [
        ("supply_low", "s1", "sec1", "pending"),  # pending since 0
        ("return_low", "s0", "1", "firing"),  # fired at 100
        ("primary_shortage", "s1", None, "firing"),
        ("return_low", "s1", "1", "firing"),
    ]
    b.update(600.0, {SUPPLY: low(), later: low(), SHORTAGE: low(), ("return_low", "s0", "1"): low()}, judged_clear)
    assert [(s.rule, s.station) for s in b.active_alerts()][-1] == ("supply_low", "s1")  # fired last, at 600


def test_snapshot_of_an_unknown_id_is_none() -> None:
    b = book()
    b.update(0.0, {SUPPLY: low()}, judged_clear)
    assert b.snapshot("no-such-id") is None


def test_counts_every_alert_per_rule_and_state() -> None:
    b = book(return_low=RuleSettings("return_low", for_s=600.0))
    b.update(0.0, {SUPPLY: low(), ("supply_low", "s2", "sec1"): low(), RETURN: low()}, judged_clear)
    counts = b.counts()
    assert counts[("supply_low", "firing")] == 2
    assert counts[("return_low", "pending")] == 1
    assert counts[("supply_low", "pending")] == counts[("return_low", "firing")] == 0


def test_snapshot_to_dict_turns_nan_into_null() -> None:
    snap = AlertSnapshot(
        id="a",
        rule="supply_low",
        station="s1",
        district="d1",
        loop=None,
        severity="warning",
        state="firing",
        since=1.0,
        pending_since=0.0,
        value=math.nan,
        threshold=40.0,
        message="m",
        acknowledged_by=None,
        acknowledged_at=None,
        comment=None,
    )
    assert snap.to_dict() == {
        "id": "a",
        "rule": "supply_low",
        "station": "s1",
        "district": "d1",
        "loop": None,
        "severity": "warning",
        "state": "firing",
        "since": 1.0,
        "pending_since": 0.0,
        "value": None,
        "threshold": 40.0,
        "message": "m",
        "acknowledged_by": None,
        "acknowledged_at": None,
        "comment": None,
        "cause": "station",
        "company": "",
    }
    json.dumps(snap.to_dict(), allow_nan=False)  # the API's JSON has no NaN
    none_threshold = AlertSnapshot(**{**snap.to_dict(), "value": 1.5, "threshold": math.nan})
    assert (none_threshold.to_dict()["value"], none_threshold.to_dict()["threshold"]) == (1.5, None)


def test_condition_repr_shows_what_the_rule_saw() -> None:
    cond = Condition(38.0, 40.0, "low", "d1", frozenset({"supply_temp"}), cause="heat_source", company="c1")
    assert repr(cond) == (
        "Condition(value=38.0, threshold=40.0, message='low', district='d1', company='c1', "
        "sensors={'supply_temp'}, severity=None, cause='heat_source')"
    )


# ----------------------------------------------------------------------------------------------------
# Loops removed from the configuration


def test_retain_resolves_now_with_the_last_message_when_no_reason_is_given() -> None:
    b = book()
    b.update(0.0, {SUPPLY: low(37.0)}, judged_clear)
    b.dirty = False
    [event] = b.retain(lambda key: False, 50.0)
    assert (event.state, event.ts, event.message) == ("resolved", 50.0, "supply 37.0 below 40")
    assert b.dirty is True


def test_retain_of_a_pending_alert_is_saved() -> None:
    b = book(for_s=600.0)
    b.update(0.0, {SUPPLY: low()}, judged_clear)
    b.dirty = False
    assert b.retain(lambda key: False, 50.0, "gone") == []
    assert b.get(SUPPLY) is None and b.dirty is True


# ----------------------------------------------------------------------------------------------------
# Firing and resolving


def test_a_station_level_alert_id_has_an_empty_loop() -> None:
    """The id is station.loop.rule.<ms>: a station-level alert's loop part is empty (not "XXXX")."""
    b = book()
    [fired] = b.update(12.5, {SHORTAGE: low()}, judged_clear)
    assert fired.alert_id == "s1..primary_shortage.12500"
    snap = b.snapshot("s1..primary_shortage.12500")
    assert snap is not None and snap.message == "supply 38.0 below 40"  # the snapshot carries the message


def test_firing_and_resolving_are_saved_and_stamped_now() -> None:
    b = book(for_s=600.0, clear_for_s=60.0)
    b.update(0.0, {SUPPLY: low()}, judged_clear)
    b.dirty = False
    [fired] = b.update(600.0, {SUPPLY: low()}, judged_clear)
    assert (fired.state, fired.ts) == ("firing", 600.0)
    assert b.dirty is True  # a firing alert not saved would fire anew after a restart
    b.update(700.0, {}, judged_clear)
    b.dirty = False
    [resolved] = b.update(760.0, {}, judged_clear)
    assert (resolved.state, resolved.ts, resolved.since) == ("resolved", 760.0, 600.0)
    assert b.dirty is True  # a resolved alert not saved would come back after a restart


def test_resolving_forgets_what_alertmanager_said_was_firing() -> None:
    """Alertmanager still lists the alert as firing (its last sync): once resolved here, that start is
    stale. Kept, the next episode would fire at once, without `for`, with the old start."""
    b = book(for_s=600.0, clear_for_s=0.0)
    b.update(0.0, {SUPPLY: low()}, judged_clear)
    b.update(600.0, {SUPPLY: low()}, judged_clear)
    b.firing_elsewhere = {SUPPLY: 600.0}  # the sync after it fired
    [resolved] = b.update(700.0, {}, judged_clear)
    assert resolved.state == "resolved" and b.firing_elsewhere == {}
    assert b.update(800.0, {SUPPLY: low()}, judged_clear) == []  # pending again, waiting for `for`
    assert b.get(SUPPLY).state == "pending"


def test_an_escalation_by_age_is_saved_and_stamped_now() -> None:
    """At exactly 24 h: the event is stamped then (not None) and the new severity is saved (a restart
    must not send it as a warning again)."""
    b = book()
    b.update(0.0, {SUPPLY: low()}, judged_clear)
    b.dirty = False
    [major] = b.update(24 * H, {SUPPLY: low()}, judged_clear)
    assert (major.state, major.severity, major.ts, major.since) == ("escalated", "major", 24 * H, 0.0)
    assert b.dirty is True


def test_the_state_file_is_strict_json_with_the_latest_message() -> None:
    """NaN numbers are saved as null (a state file with NaN is not JSON other tools can read), and a
    message not built yet is built for the file (the alert's own field still holds the older one)."""
    b = book(for_s=600.0)
    b.update(0.0, {SUPPLY: low()}, judged_clear)
    late = Condition(math.nan, math.nan, district="d1", sensors=SENSORS, describe=lambda: "supply unreadable")
    assert b.update(10.0, {SUPPLY: late}, judged_clear) == []  # still pending: no event read the message
    [saved] = json.loads(json.dumps(b.to_dict(), allow_nan=False))["alerts"]
    assert (saved["value"], saved["threshold"], saved["message"]) == (None, None, "supply unreadable")


def test_a_new_book_and_a_bare_condition() -> None:
    """A new book has nothing to save; a Condition without texts gives an alert with empty ones (the
    district and company labels are then left out), not "XXXX" or None."""
    b = book()
    assert b.dirty is False
    [fired] = b.update(0.0, {SUPPLY: Condition(38.0, 40.0)}, judged_clear)
    assert (fired.message, fired.district, fired.company) == ("", "", "")
    assert b.dirty is True
    pending = book(for_s=600.0)
    pending.update(0.0, {SUPPLY: low()}, judged_clear)
    assert pending.dirty is True  # a new pending alert is saved: a restart keeps its `for` running


def test_a_condition_without_a_district_keeps_the_alert_s() -> None:
    b = book(for_s=600.0)
    b.update(0.0, {SUPPLY: low()}, judged_clear)
    b.update(10.0, {SUPPLY: Condition(37.0, 40.0, "no district now")}, judged_clear)
    assert b.get(SUPPLY).district == "d1"  # `and` for `or` would blank it


def test_inhibited_pending_starts_over_and_is_saved_while_firing_waits() -> None:
    fault: AlertKey = ("sensor_fault", "s1", "sec1")
    bad = Condition(850.0, None, "supply_temp: sentinel", "d1", frozenset({"supply_temp"}))
    b = book(for_s=0.0, return_low=RuleSettings("return_low", for_s=600.0))
    b.update(0.0, {SUPPLY: low(), RETURN: low()}, judged_clear)  # supply_low fires, return_low pending
    b.dirty = False
    b.update(10.0, {fault: bad, SUPPLY: low(), RETURN: low()}, judged_clear)
    assert b.get(RETURN) is None and b.get(SUPPLY).state == "firing"  # `!=` would drop the firing one
    assert b.dirty is True


def test_recently_resolved_keeps_the_last_ones() -> None:
    b = AlertBook(RulesSettings(for_s=0.0, clear_for_s=0.0), keep_resolved=2)
    for i in range(3):
        b.update(float(i), {("supply_low", f"s{i}", "sec1"): low()}, judged_clear)
    b.update(10.0, {}, judged_clear)
    assert len(b.recently_resolved) == 2
    assert AlertBook(RulesSettings()).recently_resolved.maxlen == 100


def test_a_condition_without_a_company_keeps_the_alert_s() -> None:
    b = book(for_s=600.0)
    b.update(0.0, {SUPPLY: low(company="c1")}, judged_clear)
    b.update(10.0, {SUPPLY: low()}, judged_clear)
    assert b.get(SUPPLY).company == "c1"  # `and` for `or` would blank it


def test_the_cause_follows_the_condition_while_pending_and_is_fixed_once_firing() -> None:
    """A label change would make it another alert downstream; while pending the change is saved."""
    b = book(for_s=600.0)
    b.update(0.0, {SUPPLY: low()}, judged_clear)
    b.dirty = False
    b.update(10.0, {SUPPLY: low(cause="heat_source")}, judged_clear)
    assert b.get(SUPPLY).cause == "heat_source" and b.dirty is True
    b.update(600.0, {SUPPLY: low(cause="heat_source")}, judged_clear)
    b.update(700.0, {SUPPLY: low()}, judged_clear)
    assert b.get(SUPPLY).cause == "heat_source"  # `or` for `and` would change a firing alert's label


def test_a_condition_back_during_the_clear_timer_stops_it_and_is_saved() -> None:
    b = book(clear_for_s=600.0)
    b.update(0.0, {SUPPLY: low()}, judged_clear)
    b.update(100.0, {}, judged_clear)
    b.dirty = False
    b.update(200.0, {SUPPLY: low()}, judged_clear)
    assert b.get(SUPPLY).clearing_since is None and b.dirty is True


def test_a_condition_at_the_alert_s_own_severity_is_no_escalation() -> None:
    """`>=` would send an "escalated" event at the same severity and drop the acknowledgement."""
    b = book()
    [fired] = b.update(0.0, {INDOOR: low()}, judged_clear)
    b.acknowledge(fired.alert_id, "li", None, 5.0)
    assert b.update(10.0, {INDOOR: low(severity="major")}, judged_clear) == []
    assert b.get(INDOOR).acknowledged_by == "li"


def test_gone_pending_alerts_all_start_over_and_clear_timers_are_saved() -> None:
    b = book(for_s=600.0)
    b.update(0.0, {SUPPLY: low(), RETURN: low()}, judged_clear)
    b.dirty = False
    b.update(10.0, {}, judged_clear)
    assert len(b) == 0 and b.dirty is True  # `break` would keep the second one
    f = book(clear_for_s=600.0)
    f.update(0.0, {SUPPLY: low()}, judged_clear)
    f.dirty = False
    f.update(10.0, {}, judged_clear)
    assert f.get(SUPPLY).clearing_since == 10.0 and f.dirty is True


def test_the_lookup_is_asked_about_the_gone_key() -> None:
    b = book(clear_for_s=0.0)
    b.update(0.0, {SUPPLY: low(), RETURN: low()}, judged_clear)
    [resolved] = b.update(10.0, {}, lambda key: CLEAR if key == SUPPLY else None)
    assert resolved.rule == "supply_low" and b.get(RETURN) is not None


def test_events_clean_nan_and_label_a_station_level_loop_empty() -> None:
    b = book()
    [event] = b.update(0.0, {SHORTAGE: Condition(math.nan, 40.0, "m", "d1")}, judged_clear)
    assert event.value is None and event.labels["loop"] == ""
    # a threshold the rule could not compute is null on the wire too (Alertmanager's and the webhooks' JSON)
    [event] = book().update(0.0, {SHORTAGE: Condition(30.0, math.nan, "m", "d1")}, judged_clear)
    assert (event.value, event.threshold) == (30.0, None)
