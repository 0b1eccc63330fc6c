"""The conditions `RuleResults` hands the alert book: each test names the one-line bugs it catches.

Alerts are routed and ranked per heating company (the regulator ranks companies), so every condition,
station or loop, active or clear, must carry its station's company.
"""

from __future__ import annotations

import numpy as np
import pytest

from stationmon.domain.plant import Site
from stationmon.domain.rules import LoopTable, RuleEngine, RuleResults, Series
from stationmon.domain.settings import RulesSettings
from tests.unit.test_rules_edges import RADIATOR, make_inputs


def _judge_for_company(supply: float, return_: float, **kw: float) -> RuleResults:
    table = LoopTable.build([("s1", "d1")], [RADIATOR], Site(indoor_target=18.0), companies=["北供热"])
    eng = RuleEngine(table, RulesSettings(outdoor_smoothing_s=0.0, water_smoothing_s=0.0))
    return eng.evaluate(make_inputs(supply, return_, **kw))


@pytest.mark.parametrize(
    ("rule", "readings"),
    [
        ("primary_shortage", {"primary": 60.0}),  # 60 °C primary under the 63.8 °C the loop needs
        ("sensor_fault", {"outdoor": -999.0}),  # the outdoor probe's sentinel
        ("station_offline", {"last_seen": 1_700_000_000.0 - 61.0}),
    ],
)
def test_station_conditions_carry_the_company(rule: str, readings: dict[str, float]) -> None:
    """Catches `company=None` (or dropped) in the primary_shortage and station sensor_fault conditions:
    the alert would reach no company's receiver and count for none in the ranking."""
    r = _judge_for_company(57.0, 45.0, **readings)
    key = (rule, "s1", None)
    assert r.station_checks[rule].active[0], rule
    assert r.conditions()[key].company == "北供热"
    found = r.lookup(key)
    assert found is not None and found.company == "北供热"


def test_a_clear_station_condition_carries_the_company() -> None:
    """Catches the company dropped from a judged-clear station condition (its resolve goes to the company)."""
    r = _judge_for_company(57.0, 45.0, primary=90.0)
    for rule in ("primary_shortage", "sensor_fault", "station_offline"):
        assert not r.station_checks[rule].active[0]
        found = r.lookup((rule, "s1", None))
        assert found is not None and found.company == "北供热", rule
    assert np.array_equal(r.heat_source, [False])


def test_loop_conditions_carry_the_company() -> None:
    """Catches `company=None` in a loop condition looked up (a clear supply_low resolves for no company)
    or collected (a firing one)."""
    r = _judge_for_company(70.0, 50.0)
    found = r.lookup(("supply_low", "s1", "rad"))
    assert found is not None and not r.loop_checks["supply_low"].active[0] and found.company == "北供热"
    r = _judge_for_company(45.0, 35.0)
    assert r.conditions()[("supply_low", "s1", "rad")].company == "北供热"
    found = r.lookup(("supply_low", "s1", "rad"))
    assert found is not None and found.company == "北供热"


def test_series_of_takes_any_iterable() -> None:
    """`Series.of` is typed for iterables: the gatherer hands it generators over its latest values.

    Catches the list() for non-arrays skipped (numpy cannot read a generator as float64)."""
    s = Series.of((v for v in (41.0, 34.0)), (t for t in (1.0, 2.0)), (f for f in (False, True)))
    assert s.value.tolist() == [41.0, 34.0] and s.ts.tolist() == [1.0, 2.0] and s.flagged.tolist() == [False, True]
    assert s.value.dtype == np.float64


def test_series_times_are_floats_even_from_whole_seconds() -> None:
    """Times given as whole seconds (ints) are still float64: a time can be NaN (never read), and the
    gatherer marks a series unread by writing NaN into it.

    Catches the float64 dtype dropped for the times (an int64 array cannot hold NaN)."""
    s = Series.of([41, 34], [1_700_000_000, 1_700_000_001])
    assert s.ts.dtype == np.float64
    s.ts[1] = np.nan
    assert np.isnan(s.ts[1])
