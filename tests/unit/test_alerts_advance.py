"""`AlertBook.advance` (the evaluator's tick: loop rules as columns, values read lazily) against
`AlertBook.update(now, results.conditions(), results.lookup)` (a Condition per key, the reference):
both books see the same evaluations of a small district where alerts start, fire, clear, resolve,
escalate by age and by tier, change cause, are inhibited by offline stations and faulty sensors,
are acknowledged, fired elsewhere, retained and reloaded. Every tick's events, held keys and counts
must be identical, and every few ticks (reading materialises the lazy values) snapshots and state.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import fields, replace
from typing import Any

import numpy as np
import pytest

from stationmon.domain.alerts import AlertBook
from stationmon.domain.heating import required_temps
from stationmon.domain.model import AlertEvent
from stationmon.domain.rules import LoopTable, RuleEngine, RuleInputs, RuleResults, Series
from stationmon.domain.rules.checks import Check
from stationmon.domain.rules.faults import IntArray
from stationmon.domain.settings import RulesSettings

T0 = 1_700_000_000.0
STEP_S = 10.0
DESIGNS = ((50.0, 40.0, 1.1), (75.0, 50.0, 1.3))
# loop modes: fine, supply short, return short, no circulation; and now and then a broken supply probe
MODES = ("ok", "supply_low", "return_low", "still")
SETTINGS = RulesSettings(
    for_s=30.0,
    clear_for_s=30.0,
    offline_after_s=40.0,
    escalate_major_after_s=120.0,
    escalate_critical_after_s=250.0,
    outdoor_smoothing_s=0.0,
    water_smoothing_s=0.0,
)


class District:
    """Stations of four loops whose faults come and go at random (seeded), one tick at a time."""

    def __init__(self, n_stations: int = 10, per_station: int = 4, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        ns, n = n_stations, n_stations * per_station
        self.table = LoopTable.build(
            ((f"s{s}", f"d{s % 3}") for s in range(ns)),
            ((f"s{i // per_station}", f"l{i % per_station}", *DESIGNS[i % 2], None, None) for i in range(n)),
            companies=[f"c{s % 2}" for s in range(ns)],
        )
        self.mode = np.zeros(n, dtype=np.int64)
        self.broken = np.zeros(n, dtype=bool)  # the supply probe reads 850 °C
        self.indoor = np.full(n, 20.0)  # one household sensor per loop
        self.outdoor = self.rng.uniform(-15.0, 0.0, ns)
        self.offline_until = np.zeros(ns)
        self.outdoor_broken_until = np.zeros(ns)  # the outdoor probe reads 150 °C: a station-level fault
        self.primary_low = np.zeros(ns, dtype=bool)

    def inputs(self, k: int) -> RuleInputs:
        rng, t = self.rng, self.table
        now = T0 + k * STEP_S
        n, ns = t.n_loops, t.n_stations
        change = rng.random(n) < 0.06
        self.mode[change] = rng.choice(len(MODES), int(change.sum()), p=(0.55, 0.2, 0.15, 0.1))
        self.broken ^= rng.random(n) < 0.03
        hop = rng.random(n) < 0.05
        self.indoor[hop] = rng.choice((20.0, 17.0, 15.0), int(hop.sum()))
        self.outdoor += rng.normal(0.0, 0.05, ns)
        down = rng.random(ns) < 0.02
        self.offline_until[down] = now + rng.choice((30.0, 60.0, 120.0), int(down.sum()))
        broken = rng.random(ns) < 0.02
        self.outdoor_broken_until[broken] = now + rng.choice((30.0, 90.0), int(broken.sum()))
        flip = rng.random(ns) < 0.03
        self.primary_low[flip] = ~self.primary_low[flip]
        t_o = self.outdoor[t.loop_station]
        req_s, req_r = required_temps(t_o, t.design_supply, t.design_return, t.exponent)
        supply = req_s + 1.5 + rng.normal(0.0, 0.3, n)
        return_ = req_r + 1.0 + rng.normal(0.0, 0.3, n)
        supply[self.mode == 1] -= 8.0
        return_[self.mode == 2] -= 6.0
        supply[self.broken] = 850.0
        flow = np.where(self.mode == 3, rng.uniform(0.0, 0.5, n), 5.0)  # (a value that moves: frozen or not shows)
        # short of the hottest required supply plus the exchanger's approach, yet above every supply
        hottest = np.full(ns, -np.inf)
        np.maximum.at(hottest, t.loop_station, req_s)
        primary = np.where(self.primary_low, hottest + 3.0, 110.0)
        seen = np.where(self.offline_until > now, now - 100.0, now - 2.0)
        stamp = np.full(n, now - 2.0)
        return RuleInputs(
            now=now,
            supply=Series.of(supply, stamp),
            return_=Series.of(return_, stamp),
            flow=Series.of(flow, stamp),
            outdoor=Series.of(np.where(self.outdoor_broken_until > now, 150.0, self.outdoor), np.full(ns, now - 2.0)),
            primary_supply=Series.of(primary, np.full(ns, now - 2.0)),
            station_last_seen=seen,
            indoor=Series.of(self.indoor.copy(), stamp),
            indoor_loop=np.arange(n, dtype=np.int64),
        )


class WideResults(RuleResults):
    """The engine never holds a loop condition that reads a faulty sensor (it does not judge there), nor
    one at an offline station: here every loop rule but indoor_low claims to read every loop sensor and
    the outdoor one, so a faulty probe suppresses its loop's other conditions (and a faulty outdoor one
    its station's), and some stations whose loops still report count as offline (a flaky link), so that
    inhibition suppresses conditions at both books (indoor_low: only at an offline station)."""

    def _sensors_of(self, check: Check, idx: IntArray) -> list[frozenset[str]]:
        if check.rule in ("sensor_fault", "indoor_low"):
            return RuleResults._sensors_of(self, check, idx)
        return [frozenset({"supply_temp", "return_temp", "flow", "pump_running", "outdoor_temp"})] * len(idx)

    @classmethod
    def of(cls, r: RuleResults, flaky: np.ndarray) -> WideResults:
        wide = cls(**{f.name: getattr(r, f.name) for f in fields(r)})
        offline = r.station_checks["station_offline"]
        wide.station_checks = {**r.station_checks, "station_offline": replace(offline, active=offline.active | flaky)}
        return wide


def _same_masks(old: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> None:
    assert old.keys() == new.keys()
    for rule, mask in old.items():
        assert np.array_equal(new[rule], mask), rule


def _same_state(old: AlertBook, new: AlertBook) -> None:
    assert new.to_dict() == old.to_dict()
    assert new.active_alerts(include_pending=True) == old.active_alerts(include_pending=True)
    assert new.active_alerts() == old.active_alerts()
    assert list(new.recently_resolved) == list(old.recently_resolved)
    for key in list(old.held_keys())[::5]:
        assert new.get(key) == old.get(key)


def _acknowledge(rng: np.random.Generator, old: AlertBook, new: AlertBook, now: float) -> list[AlertEvent]:
    """Both books acknowledge the same firing alert, now and then (and ask for it by id)."""
    if rng.random() > 0.3:  # (not every tick: a read settles every lazy value)
        return []
    firing = [a.id for a in old.active_alerts()]  # (a read has effects: the messages are built)
    assert [a.id for a in new.active_alerts()] == firing
    if not firing:
        return []
    alert_id = firing[int(rng.integers(len(firing)))]
    assert new.snapshot(alert_id) == old.snapshot(alert_id)
    got = [new.acknowledge(alert_id, "op", "seen", now), old.acknowledge(alert_id, "op", "seen", now)]
    assert got[0] == got[1] and got[0] is not None
    assert new.acknowledgement(alert_id) == old.acknowledgement(alert_id)
    return [got[0]]


def run(ticks: int, read_every: int, seed: int, wide: bool = False) -> Counter[str]:
    """Both books through `ticks` evaluations (`wide`: as `WideResults`); the states of the events seen."""
    district = District(seed=seed)
    engine = RuleEngine(district.table, SETTINGS)
    old, new = AlertBook(SETTINGS), AlertBook(SETTINGS)
    masks = RuleEngine(district.table, SETTINGS)  # the held masks of either book, from keys or the index
    rng = np.random.default_rng(seed + 1)
    seen: Counter[str] = Counter()
    for k in range(ticks):
        inp = district.inputs(k)
        results: RuleResults = engine.evaluate(inp, engine.held_masks(old.held_keys()))
        if wide:
            results = WideResults.of(results, np.arange(district.table.n_stations) == (k // 9) % 4)
            seen.update(_inhibited(results, old))
        if k % 17 == 5:  # a replica reports a pending alert firing: it fires at once, with that start
            pending = [a for a in old.active_alerts(include_pending=True) if a.state == "pending"]
            assert new.active_alerts(include_pending=True) == old.active_alerts(include_pending=True)
            for book in (old, new):
                book.firing_elsewhere = {(a.rule, a.station, a.loop): inp.now - 500.0 for a in pending[:2]}
        events = old.update(inp.now, results.conditions(), results.lookup)
        assert new.advance(inp.now, results) == events
        _same_masks(masks.held_masks(old.held_keys()), masks.held_of(new))
        assert list(new.held_keys()) == list(old.held_keys())
        assert new.counts() == old.counts() and len(new) == len(old) and new.dirty == old.dirty
        old.dirty = new.dirty = False
        seen.update(e.state for e in events)
        seen.update(f"cause:{e.labels['cause']}" for e in events)
        seen.update(f"{e.state}:{e.severity}" for e in events)
        seen.update(_acknowledge(rng, old, new, inp.now + 1.0) and ["acknowledged"])
        if k % read_every == read_every - 1:
            _same_state(old, new)
        if k == ticks // 2:  # a loop leaves the configuration; then both restart from their saved state
            assert new.retain(lambda key: key[1] != "s3", inp.now) == old.retain(lambda key: key[1] != "s3", inp.now)
            saved = old.to_dict()
            assert new.to_dict() == saved
            old, new = AlertBook(SETTINGS), AlertBook(SETTINGS)
            assert new.load_dict(saved) == old.load_dict(saved)
    _same_state(old, new)
    return seen


def _inhibited(results: RuleResults, book: AlertBook) -> Counter[str]:
    """Held alerts whose condition holds at a station offline, next to a faulty sensor of what it reads
    (of its loop or its station's), or at an offline station with a fault of what it does not read."""
    conditions = results.conditions()
    offline = {station for rule, station, _ in conditions if rule == "station_offline"}
    faulty = {(station, loop): c.sensors for (rule, station, loop), c in conditions.items() if rule == "sensor_fault"}
    held = set(book.held_keys())
    out: Counter[str] = Counter()
    for (rule, station, loop), c in conditions.items():
        if (rule, station, loop) not in held or rule in ("station_offline", "sensor_fault"):
            continue
        bad = faulty.get((station, loop), frozenset()) | faulty.get((station, None), frozenset())
        if station in offline:
            read = "not read" if c.sensors.isdisjoint(bad) else "read"
            out[f"inhibited:offline, fault {read}" if bad else "inhibited:offline"] += 1
        elif not c.sensors.isdisjoint(faulty.get((station, None), frozenset())):
            out["inhibited:station fault"] += 1
        elif not c.sensors.isdisjoint(bad):
            out["inhibited:loop fault"] += 1
    return out


@pytest.mark.parametrize(("seed", "read_every", "wide"), [(7, 4, False), (11, 9, False), (8, 5, True)])
def test_advance_gives_the_same_events_and_state_as_update(seed: int, read_every: int, wide: bool) -> None:
    seen = run(ticks=80, read_every=read_every, seed=seed, wide=wide)
    # the district went through every kind of transition (else the comparison proves little)
    for state in ("firing", "resolved", "escalated", "acknowledged", "cause:heat_source", "escalated:critical"):
        assert seen[state] > 0, (state, seen)
    if wide:  # every way to be inhibited, both ways to be suppressed at an offline station with a fault
        for how in ("offline", "offline, fault read", "offline, fault not read", "station fault", "loop fault"):
            assert seen[f"inhibited:{how}"] > 0, (how, seen)


def test_an_alert_read_between_ticks_has_the_latest_values() -> None:
    """A held alert not visited by `advance` still reads the value of the latest evaluation."""
    district = District(seed=3)
    engine = RuleEngine(district.table, SETTINGS)
    old, new = AlertBook(SETTINGS), AlertBook(SETTINGS)
    values: dict[Any, list[float | None]] = {}
    for k in range(40):
        inp = district.inputs(k)
        results = engine.evaluate(inp, engine.held_masks(old.held_keys()))
        old.update(inp.now, results.conditions(), results.lookup)
        new.advance(inp.now, results)
        for key in old.held_keys():
            a, b = old.get(key), new.get(key)
            assert a is not None and b is not None
            assert (b.value, b.threshold, b.text()) == (a.value, a.threshold, a.text())
            values.setdefault(key, []).append(b.value)
    # some alert was held for many ticks with a changing value: the lazy values did follow
    assert any(len(v) > 5 and len({x for x in v if x is not None and not math.isnan(x)}) > 3 for v in values.values())


def test_the_loop_index_serves_only_the_table_it_was_built_for() -> None:
    """`held_loops` of another table (a reloaded configuration) is None: the engine falls back to the keys."""
    district, other = District(seed=3), District(seed=3)
    engine = RuleEngine(district.table, SETTINGS)
    book = AlertBook(SETTINGS)
    assert book.held_loops(district.table) is None  # nothing indexed before the first advance
    for k in range(6):
        inp = district.inputs(k)
        book.advance(inp.now, engine.evaluate(inp, engine.held_of(book)))
    indexed = book.held_loops(district.table)
    assert indexed is not None and any(mask.any() for mask in indexed[0].values())
    assert book.held_loops(other.table) is None
    assert sum(int(m.sum()) for m in indexed[0].values()) + len(indexed[1]) == len(book)


def test_a_new_table_is_indexed_anew() -> None:
    """The same book advanced with the results of another table (a reloaded configuration, the loops
    in another order) indexes its alerts again: the same events and state as `update`."""
    first = District(seed=4)
    t = first.table
    # the same stations and loops listed in reverse: every loop has another index
    rows = [(t.station_of(i), t.loop_ids[i], *DESIGNS[i % 2], None, None) for i in reversed(range(t.n_loops))]
    stations = list(zip(t.station_ids, t.districts, strict=True))
    second = LoopTable.build(stations, rows, companies=list(t.companies))
    old, new = AlertBook(SETTINGS), AlertBook(SETTINGS)
    for table, ticks in ((t, range(30)), (second, range(30, 60)), (t, range(60, 75))):
        engine = RuleEngine(table, SETTINGS)
        for k in ticks:
            inp = first.inputs(k)
            if table is second:  # the loop arrays in the second table's order
                inp = replace(inp, **{q: _reversed(getattr(inp, q)) for q in ("supply", "return_", "flow", "indoor")})
            results = engine.evaluate(inp, engine.held_masks(old.held_keys()))
            assert new.advance(inp.now, results) == old.update(inp.now, results.conditions(), results.lookup)
            assert list(new.held_keys()) == list(old.held_keys())
        _same_state(old, new)


def _reversed(s: Series) -> Series:
    return Series(s.value[::-1].copy(), s.ts[::-1].copy(), s.flagged[::-1].copy())


def test_an_alert_of_a_loop_not_in_the_table_is_kept_unjudged() -> None:
    """A state saved with a loop since removed (not yet retained): its firing alert is never judged
    (it neither clears nor fires anew) and its pending one starts over, as with `update`."""
    district = District(seed=4)
    engine = RuleEngine(district.table, SETTINGS)
    saved = {
        "version": 1,
        "alerts": [
            {
                "rule": "supply_low",
                "station": "s1",
                "loop": "gone",
                "state": "firing",
                "severity": "warning",
                "pending_since": T0 - 900.0,
                "since": T0 - 600.0,
                "id": "s1.gone.supply_low.1",
            },
            {
                "rule": "return_low",
                "station": "s1",
                "loop": "gone",
                "state": "pending",
                "severity": "warning",
                "pending_since": T0 - 20.0,
            },
            # a cause this version does not know (an older or newer state file): the condition's is taken
            {
                "rule": "no_circulation",
                "station": "s2",
                "loop": "l1",
                "state": "pending",
                "severity": "critical",
                "pending_since": T0 - 5.0,
                "cause": "grid",
            },
        ],
    }
    old, new = AlertBook(SETTINGS), AlertBook(SETTINGS)
    assert old.load_dict(saved) == new.load_dict(saved) == 3
    for k in range(20):
        inp = district.inputs(k)
        results = engine.evaluate(inp, engine.held_masks(old.held_keys()))
        assert new.advance(inp.now, results) == old.update(inp.now, results.conditions(), results.lookup)
        assert list(new.held_keys()) == list(old.held_keys())
    assert new.get(("supply_low", "s1", "gone")) == old.get(("supply_low", "s1", "gone")) is not None
    assert new.get(("return_low", "s1", "gone")) is None
    _same_state(old, new)
