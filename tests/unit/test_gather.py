"""`InputGatherer` reads arrays that `LatestValues.track` keeps current: they must equal what looking up
every series in `LatestValues.latest` at the tick gives, whatever order the readings came in."""

from __future__ import annotations

import math
import random

import numpy as np

from stationmon.domain.latest import LatestValues, SeriesKey
from stationmon.domain.model import Reading, StationState
from stationmon.domain.rules import LoopTable, RuleInputs, Series
from stationmon.domain.settings import RulesSettings
from stationmon.evaluator.gather import InputGatherer

STATIONS = [("s1", "d"), ("s2", "d"), ("s3", "e")]
LOOPS = [("s1", "a"), ("s1", "b"), ("s2", "a"), ("s3", "x")]
QUANTITIES = ("supply_temp", "return_temp", "flow", "pump_running")


def _table() -> LoopTable:
    return LoopTable.build(STATIONS, ((s, lp, 50.0, 40.0, 1.1, None, None) for s, lp in LOOPS))


def _looked_up(latest: LatestValues, keys: list[SeriesKey]) -> Series:
    """The reference: one lookup per series now."""
    samples = [latest.latest.get(k) for k in keys]
    return Series.of(
        [math.nan if s is None else s.value for s in samples],
        [math.nan if s is None else s.ts for s in samples],
        [s is not None and s.fault is not None for s in samples],
    )


def _same(a: Series, b: Series) -> None:
    assert np.array_equal(a.value, b.value, equal_nan=True)
    assert np.array_equal(a.ts, b.ts, equal_nan=True)
    assert np.array_equal(a.flagged, b.flagged)


def _random_readings(rng: random.Random, n: int) -> list[Reading]:
    out = []
    for _ in range(n):
        station, loop = rng.choice([*LOOPS, ("s9", "z")])  # s9: not configured
        ts = rng.uniform(0.0, 100.0)
        fault = rng.choice([None, None, "range"])
        kind = rng.random()
        if kind < 0.5:
            out.append(Reading(station, rng.choice(QUANTITIES), rng.uniform(0, 90), ts, loop=loop, fault=fault))
        elif kind < 0.7:
            q = rng.choice(("outdoor_temp", "primary_supply_temp"))
            out.append(Reading(station, q, rng.uniform(-20, 90), ts, fault=fault))
        else:
            sensor = f"h{rng.randrange(3)}"
            out.append(Reading(station, "indoor_temp", rng.uniform(15, 25), ts, loop=loop, sensor=sensor))
    return out


def _check(inp: RuleInputs, latest: LatestValues, table: LoopTable, states: dict[str, StationState]) -> None:
    for q, series in zip(QUANTITIES, (inp.supply, inp.return_, inp.flow, inp.pump_running), strict=True):
        assert series is not None
        _same(series, _looked_up(latest, [(s, lp, None, q) for s, lp in LOOPS]))
    for q, series in (("outdoor_temp", inp.outdoor), ("primary_supply_temp", inp.primary_supply)):
        _same(series, _looked_up(latest, [(s, None, None, q) for s, _ in STATIONS]))
    indoor = [k for k in latest.latest if k[3] == "indoor_temp" and (k[0], k[1]) in table.loop_index]
    assert sorted(zip(inp.indoor_loop.tolist(), inp.indoor.value.tolist(), strict=True)) == sorted(
        (table.loop_index[(k[0], k[1] or "")], latest.latest[k].value) for k in indoor
    )
    for i, (sid, _) in enumerate(STATIONS):
        seen = [t for t in (latest.last_seen.get(sid), states[sid].last_success) if t is not None]
        assert (max(seen) if seen else None) == (
            None if math.isnan(inp.station_last_seen[i]) else inp.station_last_seen[i]
        )


def test_tracked_arrays_equal_fresh_lookups_whatever_the_order() -> None:
    rng = random.Random(7)
    latest, table = LatestValues(), _table()
    latest.update(_random_readings(rng, 30))  # some known before the gatherer starts
    states = {sid: StationState(sid) for sid, _ in STATIONS}
    gatherer = InputGatherer(table, latest, states, timezone="UTC", rules=RulesSettings(), started_at=0.0)
    for tick in range(40):
        latest.update(_random_readings(rng, rng.randrange(0, 25)))
        if tick % 5 == 0:
            states[rng.choice(STATIONS)[0]].last_success = rng.uniform(0.0, 120.0)
        inp = gatherer.gather(200.0)
        _check(inp, latest, table, states)


def test_a_tick_keeps_its_values_while_readings_arrive() -> None:
    latest, table = LatestValues(), _table()
    gatherer = InputGatherer(table, latest, {}, timezone="UTC", rules=RulesSettings(), started_at=0.0)
    latest.update([Reading("s1", "supply_temp", 41.0, 1.0, loop="a")])
    inp = gatherer.gather(10.0)
    latest.update(
        [Reading("s1", "supply_temp", 45.0, 2.0, loop="a"), Reading("s1", "supply_temp", 30.0, 1.5, loop="a")]
    )
    assert inp.supply.value[0] == 41.0 and inp.station_last_seen[0] == 1.0
    later = gatherer.gather(20.0)
    assert later.supply.value[0] == 45.0 and later.supply.ts[0] == 2.0  # the older 30.0 did not replace it
    assert later.station_last_seen[0] == 2.0


def test_untracked_series_are_no_longer_updated() -> None:
    latest = LatestValues()
    key: SeriesKey = ("s1", "a", None, "flow")
    first, second = latest.track([key]), latest.track([key])
    latest.update([Reading("s1", "flow", 3.0, 1.0, loop="a")])
    latest.untrack(first)
    latest.update([Reading("s1", "flow", 4.0, 2.0, loop="a", fault="stuck")])
    assert first.value.tolist() == [3.0] and not first.flagged[0]
    assert second.value.tolist() == [4.0] and second.flagged[0]
    assert latest.track([key]).ts.tolist() == [2.0]  # filled from what is known
