"""The human messages of the rules: one function per rule, asked only when a message is read."""

from __future__ import annotations

import math

from stationmon.domain.rules.checks import Check, LoopFacts, StationFacts
from stationmon.domain.rules.faults import describe_faults

__all__ = [
    "apart",
    "below_required",
    "compared",
    "delta_t_high",
    "delta_t_low",
    "describe_duration",
    "indoor_estimate_low",
    "indoor_low",
    "loop_sensor_fault",
    "no_circulation",
    "primary_shortage",
    "station_offline",
    "station_sensor_fault",
]


def describe_duration(seconds: float) -> str:
    """A short duration: "45s", "12m", "3.5h", or "ever" for infinity."""
    if math.isinf(seconds) or math.isnan(seconds):
        return "ever"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _fixed(x: float, decimals: int) -> str:
    """`x` with `decimals` decimals, without the sign of a zero ("-0.0" reads as a frost that is not there)."""
    text = f"{x:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0.0 else text


def _places(value: float, threshold: float, decimals: int) -> int:
    """The decimals, from `decimals` up to two more, that print `value` and `threshold` apart (if any do)."""
    for d in range(decimals, decimals + 2):
        if _fixed(value, d) != _fixed(threshold, d):
            return d
    return decimals + 2


def apart(value: float, threshold: float, decimals: int = 1) -> tuple[str, str]:
    """Both figures with `decimals` decimals, or up to two more where fewer print them alike (40.96 against 41:
    "40.96", "41.00"); alike still only when they are (nearly) equal."""
    d = _places(value, threshold, decimals)
    return _fixed(value, d), _fixed(threshold, d)


def compared(value: float, verb: str, threshold: float, unit: str, decimals: int = 1) -> str:
    """ "40.96 °C below 41.00 °C": never a value printed equal to the threshold it is said to be below or
    above. Too close to tell apart even with two more decimals: "just below 41.0 °C" ("back at" when equal)."""
    v, t = apart(value, threshold, decimals)
    if v != t or math.isnan(value) or math.isnan(threshold):
        return f"{v} {unit} {verb} {t} {unit}"
    t = _fixed(threshold, decimals)
    if value == threshold:
        return f"{verb.replace('below', 'at').replace('above', 'at')} {t} {unit}"
    return f"just {verb} {t} {unit}"


def _faults(bits: dict[str, int]) -> str:
    return "; ".join(f"{q}: {describe_faults(b)}" for q, b in bits.items() if b) or "sensors ok"


def below_required(f: LoopFacts, c: Check, i: int, active: bool) -> str:
    """supply_low / return_low: "supply 41.0 °C below 57.8 °C (required ... less margin 1 K)"."""
    supply = c.rule == "supply_low"
    if c.curve_used is not None and c.curve_used[i]:
        required = float(f.required_supply[i] if supply else f.required_return[i])
        why = f"required {required:.1f} °C at outdoor {float(f.outdoor[i]):.1f} °C less margin {c.margin:g} K"
    else:
        why = "the fixed minimum"
    if f.setback_k[i] > 0.0:
        why += f", less a planned setback of {float(f.setback_k[i]):.1f} K"
    verb = "below" if active else "back above"
    word = "supply" if supply else "return"
    return f"{word} {compared(float(c.value[i]), verb, float(c.threshold[i]), '°C')} ({why})"


def indoor_estimate_low(f: LoopFacts, c: Check, i: int, active: bool) -> str:
    """The estimate against the target, with the water and weather it came from."""
    verb = "below" if active else "back above"
    return (
        f"estimated indoor {compared(float(c.value[i]), verb, float(c.threshold[i]), '°C')} "
        f"(supply/return {float(f.supply[i]):.1f}/{float(f.return_[i]):.1f} °C "
        f"at outdoor {float(f.outdoor[i]):.1f} °C)"
    )


def indoor_low(f: LoopFacts, c: Check, i: int, active: bool) -> str:
    """How many fresh household sensors are low, the lowest, and how many are below the refund tier."""
    fresh, low = c.counts if c.counts is not None else ([0], [0])
    refund = int(f.indoor_facts.below_refund[i])
    value, target, refund_below = float(c.value[i]), float(c.threshold[i]), float(f.indoor_refund_below)
    # the lowest printed apart from each tier it is said to be below
    d = max(_places(value, target, 1), _places(value, refund_below, 1) if refund else 1)
    tier = f", {refund} below {_fixed(refund_below, d)} °C" if refund else ""
    return (
        f"{int(low[i])} of {int(fresh[i])} indoor sensors below {_fixed(target, d)} °C "
        f"(lowest {_fixed(value, d)} °C{tier})"
    )


def no_circulation(f: LoopFacts, c: Check, i: int, active: bool) -> str:
    """Flow against its minimum, or the pump reported stopped."""
    if c.read_code is not None and c.read_code[i] == 1:
        return "pump reported stopped" if active else "pump reported running again"
    verb = "below" if active else "back above"
    flow = compared(float(c.value[i]), verb, float(c.threshold[i]), "m³/h", decimals=2)
    return f"flow {flow}: the loop does not circulate"


def delta_t_low(f: LoopFacts, c: Check, i: int, active: bool) -> str:
    """ΔT against the expected one: overflow or bypass."""
    what = "below" if active else "back above"
    return (
        f"ΔT {compared(float(c.value[i]), what, float(c.threshold[i]), 'K')} "
        f"(expected {float(f.expected_delta_t[i]):.1f} K: overflow or bypass)"
    )


def delta_t_high(f: LoopFacts, c: Check, i: int, active: bool) -> str:
    """ΔT against the expected one: too little flow."""
    what = "above" if active else "back below"
    return (
        f"ΔT {compared(float(c.value[i]), what, float(c.threshold[i]), 'K')} "
        f"(expected {float(f.expected_delta_t[i]):.1f} K: too little flow)"
    )


def loop_sensor_fault(f: LoopFacts, c: Check, i: int, active: bool) -> str:
    """Which of the loop's sensors are faulty and how, e.g. "supply_temp: sentinel value"."""
    return _faults(
        {
            "supply_temp": int(f.supply_faults[i]),
            "return_temp": int(f.return_faults[i]),
            "flow": int(f.flow_faults[i]),
            "pump_running": int(f.pump_faults[i]),
        }
    )


def station_offline(f: StationFacts, c: Check, s: int, active: bool) -> str:
    """How long the station has been silent."""
    value, threshold = float(c.value[s]), float(c.threshold[s])
    if active:
        return f"no reading for {describe_duration(value)} (offline after {describe_duration(threshold)})"
    return f"reading again (last {describe_duration(value)} ago)"


def station_sensor_fault(f: StationFacts, c: Check, s: int, active: bool) -> str:
    """Which of the station's sensors are faulty and how."""
    return _faults({"outdoor_temp": int(f.outdoor_faults[s]), "primary_supply_temp": int(f.primary_faults[s])})


def primary_shortage(f: StationFacts, c: Check, s: int, active: bool) -> str:
    """The primary supply against what the station's loops need plus the exchanger's approach."""
    verb = "below" if active else "back above"
    need = float(f.required_secondary[s])
    return (
        f"primary supply {compared(float(c.value[s]), verb, float(c.threshold[s]), '°C')} "
        f"(the loops need {need:.1f} °C plus {float(c.threshold[s]) - need:.1f} K of approach): "
        "a heat-source shortage"
    )
