"""The heating company takes the district's path: plant -> `LoopTable.companies` -> `Condition` -> `Alert`
-> snapshot, event and the state file (old state files without it still load)."""

from __future__ import annotations

import json

from stationmon.domain.alert_wire import alert_labels, event_from_snapshot
from stationmon.domain.alerts import AlertBook, AlertKey, Condition
from stationmon.domain.plant import Loop, Site, Station
from stationmon.domain.rules import LoopTable, RuleEngine, RuleInputs, Series
from stationmon.domain.settings import RulesSettings

SUPPLY: AlertKey = ("supply_low", "s1", "sec1")
OFFLINE: AlertKey = ("station_offline", "s2", None)
SETTINGS = RulesSettings(for_s=0.0, clear_for_s=0.0)


def _cond(company: str = "冰城热力") -> Condition:
    return Condition(38.0, 40.0, "supply 38 below 40", "d1", frozenset({"supply_temp"}), company=company)


def test_the_company_of_the_condition_reaches_events_snapshots_and_the_state() -> None:
    book = AlertBook(SETTINGS)
    [event] = book.update(0.0, {SUPPLY: _cond()})
    assert (event.state, event.company, event.district) == ("firing", "冰城热力", "d1")
    assert alert_labels(event)["company"] == "冰城热力"
    [snap] = book.active_alerts()
    assert snap.company == "冰城热力" and snap.to_dict()["company"] == "冰城热力"
    assert event_from_snapshot(snap, 5.0).company == "冰城热力"  # what Alertmanager gets re-sent
    ack = book.acknowledge(event.alert_id, "ops", None, 10.0)
    assert ack is not None and ack.company == "冰城热力"
    doc = json.loads(json.dumps(book.to_dict()))
    again = AlertBook(SETTINGS)
    assert again.load_dict(doc, {"s1": "another company"}) == 1  # a saved company is kept
    [restored] = again.active_alerts()
    assert restored.company == "冰城热力"
    [resolved] = again.update(20.0, {}, lambda key: Condition(41.0, 40.0, "back", "d1"))
    assert (resolved.state, resolved.company) == ("resolved", "冰城热力")


def test_a_state_file_saved_before_the_company_loads_with_the_station_company() -> None:
    book = AlertBook(SETTINGS)
    book.update(0.0, {SUPPLY: _cond(""), OFFLINE: Condition(900.0, 600.0, "offline", "d2")})
    doc = json.loads(json.dumps(book.to_dict()))
    for alert in doc["alerts"]:
        del alert["company"]  # as written before alerts kept the company
    old = AlertBook(SETTINGS)
    assert old.load_dict(doc, {"s1": "冰城热力"}) == 2
    companies = {a.station: a.company for a in old.active_alerts()}
    assert companies == {"s1": "冰城热力", "s2": ""}
    assert AlertBook(SETTINGS).load_dict(doc) == 2  # no companies known: none


def test_rule_conditions_carry_the_station_company_from_the_plant() -> None:
    stations = [
        Station("s1", district="道里区", company="冰城热力", loops=(Loop("sec1"),)),
        Station("s2", district="南岗区", loops=(Loop("sec1"),)),
    ]
    table = LoopTable.from_plant(Site(), stations)
    assert table.companies == ("冰城热力", "")
    inputs = RuleInputs(
        now=10_000.0,
        supply=Series.empty(2),
        return_=Series.empty(2),
        flow=Series.empty(2),
        outdoor=Series.empty(2),
        primary_supply=Series.empty(2),
        station_last_seen=Series.empty(2).ts,  # never seen: both offline
        started_at=0.0,
    )
    results = RuleEngine(table, SETTINGS).evaluate(inputs)
    conditions = results.conditions()
    assert {key[1]: c.company for key, c in conditions.items() if key[0] == "station_offline"} == {
        "s1": "冰城热力",
        "s2": "",
    }
    seen = results.lookup(("supply_low", "s1", "sec1"))
    assert seen is None or seen.company == "冰城热力"
    [first, second] = (e for e in AlertBook(SETTINGS).update(10_000.0, conditions) if e.rule == "station_offline")
    assert {first.station: first.company, second.station: second.company} == {"s1": "冰城热力", "s2": ""}
