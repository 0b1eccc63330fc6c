"""Alert messages at the edge: a value never printed equal to the threshold it is said to be below or above.

The demo printed "supply 41.0 °C below 41.0 °C (the fixed minimum)" for a supply of 40.96 °C: one decimal
rounds both to 41.0. Values within 0.05 of the threshold on both sides, negative temperatures and "-0.0".
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stationmon.cli.demo import _figures
from stationmon.domain.model import AlertEvent
from stationmon.domain.rules.messages import apart, compared
from tests.unit.test_rules_edges import make_engine, make_inputs
from tests.unit.test_rules_messages import RAD, judge, loop

FIXED_41 = ("s1", "rad", 75.0, 50.0, 1.3, 41.0, None)  # a fixed 41 °C supply floor, as the demo's seed


@pytest.mark.parametrize(
    ("value", "verb", "threshold", "text"),
    [
        (40.96, "below", 41.0, "40.96 °C below 41.00 °C"),
        (40.99, "below", 41.0, "40.99 °C below 41.00 °C"),
        (40.95, "below", 41.0, "40.95 °C below 41.00 °C"),  # 40.95 is 40.9499...: "40.9" alone would do, too
        (40.94, "below", 41.0, "40.9 °C below 41.0 °C"),  # one decimal tells them apart: kept
        (41.04, "back above", 41.0, "41.04 °C back above 41.00 °C"),
        (41.01, "above", 41.0, "41.01 °C above 41.00 °C"),
        (41.06, "back above", 41.0, "41.1 °C back above 41.0 °C"),
        (40.9999, "below", 41.0, "just below 41.0 °C"),  # alike even with three decimals
        (41.0, "back above", 41.0, "back at 41.0 °C"),
        (41.0, "below", 41.0, "at 41.0 °C"),  # held by hysteresis at its threshold: "at", not "below"
        (41.0, "above", 41.0, "at 41.0 °C"),
        (-12.04, "below", -12.0, "-12.04 °C below -12.00 °C"),
        (-11.97, "above", -12.0, "-11.97 °C above -12.00 °C"),
        (-0.04, "below", 0.0, "-0.04 °C below 0.00 °C"),  # not "-0.0 °C below 0.0 °C"
        (0.03, "above", -0.01, "0.03 °C above -0.01 °C"),
    ],
)
def test_compared_tells_the_value_from_its_threshold(value: float, verb: str, threshold: float, text: str) -> None:
    assert compared(value, verb, threshold, "°C") == text


def test_compared_keeps_the_flow_s_two_decimals_and_adds_where_needed() -> None:
    assert compared(0.5, "below", 1.0, "m³/h", decimals=2) == "0.50 m³/h below 1.00 m³/h"
    assert compared(0.996, "below", 1.0, "m³/h", decimals=2) == "0.996 m³/h below 1.000 m³/h"


@given(
    threshold=st.floats(-50.0, 130.0),
    offset=st.floats(0.001, 0.05) | st.floats(-0.05, -0.001),
)
def test_a_value_within_0_05_of_its_threshold_never_prints_as_it(threshold: float, offset: float) -> None:
    value = threshold + offset
    v, t = apart(value, threshold)
    assert v != t and float(v) != float(t)
    assert (float(v) < float(t)) == (value < threshold)  # the printed figures keep the order


@given(threshold=st.floats(-50.0, 130.0), offset=st.floats(-0.05, 0.05))
def test_a_message_never_shows_a_value_equal_to_its_threshold(threshold: float, offset: float) -> None:
    value = threshold + offset
    text = compared(value, "below" if value < threshold else "above", threshold, "°C")
    figures = re.findall(r"-?\d+\.\d+", text)
    if len(figures) == 2:
        assert figures[0] != figures[1], text
    else:  # too close for three decimals: the threshold alone, "just below" it (or "at" it)
        assert len(figures) == 1 and re.fullmatch(r"(just (below|above)|at) -?\d+\.\d °C", text), text


def test_the_demo_s_fixed_minimum_message() -> None:
    """The demo's seed: 40.96 °C against its fixed 41 °C floor in mild weather (the curve asks less)."""
    r = make_engine(loops=(FIXED_41,)).evaluate(make_inputs(40.96, 34.0, outdoor=10.0))
    cond = r.conditions()[("supply_low", *RAD)]
    assert cond.message == "supply 40.96 °C below 41.00 °C (the fixed minimum)"
    r = make_engine(loops=(FIXED_41,)).evaluate(make_inputs(41.04, 34.0, outdoor=10.0))
    assert loop(r, "supply_low").message == "supply 41.04 °C back above 41.00 °C (the fixed minimum)"


def test_indoor_low_prints_the_lowest_apart_from_both_tiers() -> None:
    r = judge(70.0, 50.0, indoor=[17.96, 19.0])
    assert r.conditions()[("indoor_low", *RAD)].message == "1 of 2 indoor sensors below 18.00 °C (lowest 17.96 °C)"
    r = judge(70.0, 50.0, indoor=[15.97, 19.0])
    assert r.conditions()[("indoor_low", *RAD)].message == (
        "1 of 2 indoor sensors below 18.00 °C (lowest 15.97 °C, 1 below 16.00 °C)"
    )
    r = judge(70.0, 50.0, indoor=[15.0, 19.0])  # apart at one decimal: as before
    assert (
        r.conditions()[("indoor_low", *RAD)].message
        == "1 of 2 indoor sensors below 18.0 °C (lowest 15.0 °C, 1 below 16.0 °C)"
    )
    # 16.04 is not below the 16 °C refund tier, which the message does not name: one decimal against 18 °C
    r = judge(70.0, 50.0, indoor=[16.04, 19.0])
    assert r.conditions()[("indoor_low", *RAD)].message == "1 of 2 indoor sensors below 18.0 °C (lowest 16.0 °C)"


def test_delta_t_and_primary_shortage_at_their_thresholds() -> None:
    threshold = loop(judge(60.0, 57.0), "delta_t_low").threshold
    assert threshold is not None
    r = judge(60.0, 60.0 - (threshold - 0.02))
    message = r.conditions()[("delta_t_low", *RAD)].message
    v, t = apart(threshold - 0.02, threshold)
    assert message.startswith(f"ΔT {v} K below {t} K ") and v != t, message
    need = judge(57.0, 45.0, primary=60.0).conditions()[("primary_shortage", "s1", None)].threshold
    assert need is not None
    r = judge(57.0, 45.0, primary=need - 0.03)
    message = r.conditions()[("primary_shortage", "s1", None)].message
    v, t = apart(need - 0.03, need)
    assert message.startswith(f"primary supply {v} °C below {t} °C ") and v != t, message


def _event(value: float | None, threshold: float | None) -> AlertEvent:
    return AlertEvent("a", "supply_low", "s1", "d1", "sec1", "warning", "firing", 0.0, 0.0, value, threshold)


def test_the_demo_s_alert_lines_print_value_and_threshold_apart() -> None:
    assert _figures(_event(40.96, 41.0)) == " value 40.96 (threshold 41.00)"
    assert _figures(_event(-12.04, -12.0)) == " value -12.04 (threshold -12.00)"
    assert _figures(_event(45.4, 64.6)) == " value 45.4 (threshold 64.6)"
    assert _figures(_event(850.0, None)) == " value 850.0"
    assert _figures(_event(None, None)) == ""
