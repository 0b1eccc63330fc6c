"""The rule engine's facts at their edges: each test names the one-line bugs (surviving mutants) it catches.

A point's staleness at exactly `stale_after`, a configured point never read at exactly its grace, the
outdoor probe's flatline at its own resolution: the older tests judged values far from every edge.
One radiator loop (75/50, m 1.3) of station s1 unless said otherwise; no smoothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from stationmon.domain.plant import Site
from stationmon.domain.rules import LoopTable, RuleEngine, Series
from stationmon.domain.rules.faults import FAULT_FLATLINE, FAULT_STALE
from stationmon.domain.rules.inputs import PointFacts
from stationmon.domain.settings import RulesSettings
from stationmon.domain.vocabulary import RULE_NAMES
from tests.unit.test_rules_edges import NOW, RADIATOR, make_inputs


def _engine(points: dict[str, PointFacts] | None = None, **sensor_fault: Any) -> RuleEngine:
    """One radiator loop, offline_after 60 s, `sensor_fault` fields replaced, `points` configured."""
    base = RulesSettings(outdoor_smoothing_s=0.0, water_smoothing_s=0.0)
    rules = {name: base.rule(name) for name in RULE_NAMES}
    rules["sensor_fault"] = replace(rules["sensor_fault"], **sensor_fault)
    table = LoopTable.build([("s1", "d1")], [RADIATOR], Site(indoor_target=18.0), points=points or {})
    return RuleEngine(table, replace(base, rules=rules))


def _configured(tolerance: float = np.nan, resolution: float = 0.0) -> PointFacts:
    return PointFacts(configured=np.array([True]), tolerance=np.array([tolerance]), resolution=np.array([resolution]))


@pytest.mark.parametrize(("age", "stale"), [(90.0, False), (120.0, False), (120.5, True)])
def test_a_reading_is_fresh_until_exactly_stale_after(age: float, stale: bool) -> None:
    """stale_after 120 s (longer than offline_after's 60 s) while the station answers: a supply reading
    90 s or exactly 120 s old is still judged, 120.5 s old is a stale sensor fault.

    Catches `<` for `<=` in the freshness test (a reading at exactly stale_after neither judged nor stale:
    the loop would fall silent, "unknown", instead of saying why), and stale_after ignored for
    offline_after (`and` for `or`: every reading over 60 s old stale)."""
    eng = _engine(stale_after_s=120.0)
    inp = make_inputs(70.0, 50.0)
    inp.supply = Series.of([70.0], [NOW - age])
    r = eng.evaluate(inp)
    assert int(r.supply_faults[0]) == (FAULT_STALE if stale else 0)
    assert bool(r.loops.supply_ok[0]) is not stale
    assert r.status_name(0) == ("sensor_fault" if stale else "ok")


@pytest.mark.parametrize(("since_start", "stale"), [(60.0, False), (60.5, True)])
def test_a_configured_point_never_read_is_stale_only_after_the_whole_grace(since_start: float, stale: bool) -> None:
    """A configured flow meter never read counts from the service's start: exactly offline_after (60 s)
    after it, it is still in its grace; half a second later it is stale.

    Catches `>=` for `>` in the stale test (a configured point flagged at exactly its grace)."""
    eng = _engine(points={"flow": _configured()})
    inp = make_inputs(70.0, 50.0)
    inp.started_at = NOW - since_start
    r = eng.evaluate(inp)
    assert int(r.loops.flow_faults[0]) == (FAULT_STALE if stale else 0)


def _outdoor_run(eng: RuleEngine, minutes: int, step: float) -> int:
    """Feed the outdoor probe every 30 s for `minutes`, moving by `step` every 10 minutes; its last bits."""
    bits = 0
    for k in range(0, minutes * 60 + 1, 30):
        inp = make_inputs(70.0, 50.0, now=NOW + k + 1, outdoor=-10.0 + step * ((k // 600) % 2))
        inp.outdoor = Series.of([inp.outdoor.value[0]], [NOW + k])
        inp.supply = Series.of([70.0 + 0.5 * ((k // 60) % 2)], [NOW + k])
        inp.return_ = Series.of([50.0 + 0.5 * ((k // 60) % 2)], [NOW + k])
        inp.station_last_seen = np.array([NOW + k])
        bits = int(eng.evaluate(inp).outdoor_faults[0])
    return bits


def test_a_still_outdoor_probe_is_a_flatline_after_the_window() -> None:
    """An outdoor probe (a float point) that does not move for 35 minutes is a flatline (window 30 min).

    Catches the outdoor probe's tracker never consulted for flatlines."""
    eng = _engine(points={"outdoor_temp": _configured()})
    assert _outdoor_run(eng, 35, 0.0) == FAULT_FLATLINE


def test_a_coarse_outdoor_probe_is_judged_at_its_own_resolution() -> None:
    """An int16 x 0.5 outdoor probe moves in 0.5 K steps: a weather that changes by one step every ten
    minutes is alive, and the window grows tenfold with the tolerance (0.5 K over 0.05 K), so 35 still
    minutes is no flatline either; a float probe with the same readings (tolerance 0.05 K) is alive too,
    but one that sat still is flat after 30 minutes.

    Catches the outdoor tracker built without the outdoor point's facts (another quantity's, or none:
    the 0.05 K default would call the still coarse probe flat after 30 minutes)."""
    coarse = _engine(points={"outdoor_temp": _configured(resolution=0.5)})
    assert _outdoor_run(coarse, 35, 0.0) == 0
    moving = _engine(points={"outdoor_temp": _configured(resolution=0.5)})
    assert _outdoor_run(moving, 65, 0.5) == 0
    fine = _engine(points={"outdoor_temp": _configured()})
    assert _outdoor_run(fine, 65, 0.5) == 0


def test_a_new_engine_has_no_smoothing_state_to_save() -> None:
    """The evaluator saves the state file on its first tick, possibly before any evaluation: a new engine
    has nothing to save, and after one evaluation it has its station's running mean.

    Catches the running mean's NaN placeholders replaced by None (`np.full(ns, None)`): the state of a new
    engine would raise instead of being empty."""
    eng = _engine()
    assert eng.smoothing_state() == {}
    eng.evaluate(make_inputs(70.0, 50.0, outdoor=-7.5))
    assert eng.smoothing_state() == {"s1": [-7.5, NOW - 5]}
