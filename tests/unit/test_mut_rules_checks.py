"""The per-rule checks (stationmon/domain/rules/checks.py) at their edges: each test names the one-line bugs
(surviving mutants of `make mutation`) it catches.

The checks only compare facts the engine computed, so these tests hand each check a `LoopFacts` built
here with round, exactly representable numbers: a value exactly at its threshold, a held alert just
inside or past its hysteresis, two loops of which only one is held. Defaults: judged, heat demanded,
curve 60/45 °C, expected ΔT 16 K, indoor target 18 °C (refund tier 16 °C), no meter, no pump status.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from stationmon.domain.rules.checks import (
    IndoorFacts,
    LoopFacts,
    delta_t_high,
    delta_t_low,
    indoor_estimate_low,
    indoor_low,
    no_circulation,
    return_low,
    supply_low,
)
from stationmon.domain.rules.inputs import Series
from stationmon.domain.settings import RULE_DEFAULTS, RuleSettings

NOW = 1_700_000_000.0


def rule(name: str, **fields: Any) -> RuleSettings:
    """The rule's default settings (hysteresis 0.5 K), with `fields` changed."""
    return RuleSettings(name=name, **{**RULE_DEFAULTS.get(name, {}), **fields})


def _full(n: int, v: float) -> np.ndarray[Any, Any]:
    return np.full(n, v)


def facts(n: int = 1, indoor: tuple[list[float], list[int]] = ([], []), **kw: Any) -> LoopFacts:
    """`n` loops of one evaluation; `indoor`: (sensor values, their loops), all fresh; `kw`: fields."""
    yes, no = np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    clean = np.zeros(n, dtype=np.uint16)
    values, loops = indoor
    il = np.array(loops, dtype=np.int64)
    fresh = np.bincount(il, minlength=n).astype(np.int64)
    zeros = np.zeros(n, dtype=np.int64)
    ind = IndoorFacts(np.ones(len(values), dtype=bool), fresh, _full(n, np.nan), zeros, zeros)
    base = LoopFacts(
        now=NOW, online=yes, judge=yes.copy(), outdoor=_full(n, -10.0),
        supply=_full(n, 70.0), return_=_full(n, 50.0), supply_raw=_full(n, 70.0), return_raw=_full(n, 50.0),
        supply_ok=yes, return_ok=yes, supply_faults=clean, return_faults=clean, flowing=yes,
        delta_t=_full(n, 20.0), required_supply=_full(n, 60.0), required_return=_full(n, 45.0),
        expected_delta_t=_full(n, 16.0), estimated_indoor=_full(n, 20.0), setback_estimate=_full(n, 20.0),
        setback_k=_full(n, 0.0), demand=yes, min_supply=_full(n, np.nan), min_return=_full(n, np.nan),
        indoor_target=18.0, indoor_refund_below=16.0,
        indoor=Series.of(values, [NOW - 5] * len(values)), indoor_loop=il, indoor_facts=ind,
        flow=_full(n, np.nan), flow_ok=no, flow_faults=clean, min_flow=_full(n, 2.0),
        pump=_full(n, np.nan), pump_ok=no, pump_faults=clean, held={},
    )  # fmt: skip
    return replace(base, **kw)


def held(*mask: bool, rule_name: str) -> dict[str, np.ndarray[Any, Any]]:
    return {rule_name: np.array(mask, dtype=bool)}


# -- supply_low / return_low: max(curve - margin, floor) ----------------------------------------------


@pytest.mark.parametrize(("check", "field"), [(supply_low, "supply"), (return_low, "return_")])
def test_water_exactly_at_its_threshold_is_not_low(check: Any, field: str) -> None:
    """Curve 60/45 °C less the 1 K margin: 59.0 / 44.0 °C exactly is not below it, 0.5 K under is.

    Catches `<=` for `<` in _below_required (water exactly at the threshold would alert)."""
    name = check.__name__
    at = 59.0 if field == "supply" else 44.0
    c = check(facts(2, **{field: np.array([at, at - 0.5])}), rule(name))
    assert c.threshold.tolist() == [at, at] and c.active.tolist() == [False, True]


def test_a_floor_equal_to_the_curve_less_margin_is_reported_as_the_curve() -> None:
    """Floors 58.5, 59.0 and 59.5 °C against the curve's 60 - 1 = 59 °C: the threshold is the higher; on a
    tie it is the curve's value, so the message explains it by the curve (and the outdoor sensor counts as
    read); only a floor strictly above the curve is "the fixed minimum".

    Catches `>=` for `>` in curve_used (a tie would be put down to the fixed minimum)."""
    c = supply_low(facts(3, min_supply=np.array([58.5, 59.0, 59.5])), rule("supply_low"))
    assert c.threshold.tolist() == [59.0, 59.0, 59.5]
    assert c.curve_used is not None and c.curve_used.tolist() == [True, True, False]


def test_only_the_held_loop_gets_the_hysteresis() -> None:
    """Two loops 0.2 K above the 59 °C threshold, only the first one's alert held: the first stays low
    (59.5 °C with the hysteresis), the second is clear (the unheld loop's lift is 0, not 1 K).

    Catches `1.0` (and `None`) for the `0.0` an unheld loop gets in LoopFacts.hysteresis."""
    f = facts(2, supply=_full(2, 59.2), held=held(True, False, rule_name="supply_low"))
    assert supply_low(f, rule("supply_low")).active.tolist() == [True, False]
    f = facts(2, supply=_full(2, 59.7), held=held(True, False, rule_name="supply_low"))
    assert supply_low(f, rule("supply_low")).active.tolist() == [False, False]


# -- delta_t_low / delta_t_high ---------------------------------------------------------------------


def test_delta_t_exactly_at_either_ratio_is_clear() -> None:
    """Expected ΔT 16 K: delta_t_low's threshold is 0.5 x 16 = 8 K, delta_t_high's 2 x 16 = 32 K. A ΔT
    of exactly 8 K is not low and exactly 32 K is not high; 7.5 K is low and 32.5 K is high.

    Catches `<=` for `<` in delta_t_low and `>=` for `>` in delta_t_high."""
    f = facts(3, delta_t=np.array([8.0, 7.5, 32.0]))
    low = delta_t_low(f, rule("delta_t_low"))
    assert low.threshold.tolist() == [8.0] * 3 and low.active.tolist() == [False, True, False]
    f = facts(2, delta_t=np.array([32.0, 32.5]))
    high = delta_t_high(f, rule("delta_t_high"))
    assert high.threshold.tolist() == [32.0] * 2 and high.active.tolist() == [False, True]


# -- indoor_estimate_low ----------------------------------------------------------------------------


def test_an_estimate_exactly_at_target_less_margin_is_not_low() -> None:
    """Target 18 °C less the 1 K margin: an estimate of exactly 17 °C is not low, 16.5 °C is.

    Catches `<=` for `<` in indoor_estimate_low."""
    c = indoor_estimate_low(facts(2, setback_estimate=np.array([17.0, 16.5])), rule("indoor_estimate_low"))
    assert c.threshold.tolist() == [17.0, 17.0] and c.active.tolist() == [False, True]


# -- indoor_low ---------------------------------------------------------------------------------------


def test_indoor_low_margin_lowers_the_threshold() -> None:
    """indoor_low with a 0.5 K margin: a room at 17.7 °C is above 18 - 0.5 = 17.5 °C (not low), one at
    17.4 °C is low; the check's threshold (what the alert shows) is 17.5 °C.

    Catches `+ margin` for `- margin` in the per-sensor test and in the threshold reported."""
    f = facts(2, indoor=([17.7, 17.4], [0, 1]))
    c = indoor_low(f, rule("indoor_low", margin=0.5))
    assert c.active.tolist() == [False, True]
    assert c.threshold.tolist() == [17.5, 17.5]


def test_a_loop_with_one_fresh_sensor_has_a_share_of_one() -> None:
    """A loop with a single fresh sensor, and it is low: 1 of 1 is 100 %, which meets a 60 % share.

    Catches `np.maximum(fresh, 2)` for `np.maximum(fresh, 1)` (1 of 1 would count as 50 %)."""
    c = indoor_low(facts(1, indoor=([17.0], [0])), rule("indoor_low", min_share=0.6))
    assert c.active.tolist() == [True]


def test_indoor_low_lifts_each_sensor_by_its_own_loops_hysteresis() -> None:
    """Two loops, only the second one's indoor_low held; its sensor is listed first. Both rooms read
    18.2 °C: the held loop's sensor is within the hysteresis (18.5 °C) and stays low, the other's is clear.

    Catches using the per-loop hysteresis array as if it were per sensor (`lift = h` without `h[il]`:
    the lifts would land on the wrong sensors)."""
    f = facts(2, indoor=([18.2, 18.2], [1, 0]), held=held(False, True, rule_name="indoor_low"))
    c = indoor_low(f, rule("indoor_low"))
    assert c.active.tolist() == [False, True]
    assert c.counts is not None and c.counts[1].tolist() == [0, 1]


def test_indoor_low_counts_are_int64() -> None:
    """The (fresh, low) sensor counts per loop are integer arrays (`IntArray`), like every count in the
    results: "2 of 3 indoor sensors" is built from them.

    Catches `astype(None)` for `astype(np.int64)` (the low count would become float64)."""
    c = indoor_low(facts(2, indoor=([17.0, 19.0, 17.5], [0, 0, 1])), rule("indoor_low"))
    assert c.counts is not None
    fresh, low = c.counts
    assert (fresh.dtype, low.dtype) == (np.int64, np.int64)
    assert (fresh.tolist(), low.tolist()) == ([2, 1], [1, 1])


# -- no_circulation --------------------------------------------------------------------------------


def test_flow_exactly_at_its_minimum_circulates() -> None:
    """min_flow 2 m³/h: a flow of exactly 2.0 is enough, 1.9 is not.

    Catches `<=` for `<` in the flow test."""
    f = facts(2, flow=np.array([2.0, 1.9]), flow_ok=np.ones(2, dtype=bool))
    assert no_circulation(f, rule("no_circulation")).active.tolist() == [False, True]


@pytest.mark.parametrize(
    ("flow", "expected"),
    [
        (2.1, [True, False]),  # 5 % above min_flow: the held loop stays "no circulation"
        (2.3, [False, False]),  # 15 % above: past the 10 % flow hysteresis, clear even when held
        (1.9, [True, True]),  # below min_flow: both
    ],
)
def test_a_held_no_circulation_clears_only_ten_percent_above_min_flow(flow: float, expected: list[bool]) -> None:
    """Two loops with the same flow, only the first one's no_circulation held (min_flow 2 m³/h).

    Catches: the held mask ignored or looked up under the wrong name (no hysteresis at all), the lift
    `1 - 0.1` or `2 + 0.1` for `1 + 0.1`, `min_flow / lift` for `min_flow * lift`, an unheld loop lifted
    by 2 (or by None), and `np.where` called without the mask or a branch."""
    f = facts(
        2, flow=_full(2, flow), flow_ok=np.ones(2, dtype=bool), held=held(True, False, rule_name="no_circulation")
    )
    assert no_circulation(f, rule("no_circulation")).active.tolist() == expected


def test_a_pump_status_of_exactly_half_is_running() -> None:
    """A pump status of 0.5 (an analog 0..1 point at half) is running: no alert; 0.4 is stopped.

    Catches `<=` for `<` in the pump test."""
    f = facts(2, pump=np.array([0.5, 0.4]), pump_ok=np.ones(2, dtype=bool))
    assert no_circulation(f, rule("no_circulation")).active.tolist() == [False, True]


def test_a_stopped_pump_reports_the_pump_status_against_half() -> None:
    """Loop 0 has a good meter (3 m³/h) but its pump reports stopped; loop 1 has no meter and a stopped
    pump; loop 2 a slow meter (1 m³/h) and a running pump. The alert shows what it read: the pump status
    0 against 0.5 for the first two, the flow 1 against min_flow 2 for the third.

    Catches `np.where(None, ...)` for the value or the threshold (the flow shown for a stopped pump) and
    1.5 for the pump's 0.5 threshold."""
    f = facts(
        3,
        flow=np.array([3.0, np.nan, 1.0]),
        flow_ok=np.array([True, False, True]),
        pump=np.array([0.0, 0.0, 1.0]),
        pump_ok=np.ones(3, dtype=bool),
    )
    c = no_circulation(f, rule("no_circulation"))
    assert c.active.tolist() == [True, True, True]
    assert c.read_code is not None and c.read_code.tolist() == [1, 1, 0]
    assert c.value.tolist() == [0.0, 0.0, 1.0] and c.threshold.tolist() == [0.5, 0.5, 2.0]


def test_no_circulation_is_not_judged_out_of_season() -> None:
    """A loop the engine does not judge (out of the heating season, or offline) with a slow meter: not
    judged and no alert, although its meter is usable.

    Catches `|` for `&` between `judge` and the usable meter/pump."""
    f = facts(1, judge=np.zeros(1, dtype=bool), flow=np.array([1.0]), flow_ok=np.ones(1, dtype=bool))
    c = no_circulation(f, rule("no_circulation"))
    assert (c.judged.tolist(), c.active.tolist()) == ([False], [False])
