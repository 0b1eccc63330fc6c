"""`stationmon curve`: the heating model on the command line (CONTRACT section 6).

stationmon curve --design 50/40 --emitter floor --outdoor -10
stationmon curve --design 50/40 --emitter floor --outdoor -10 --measured 41/34 --json

Arguments are checked against what water and weather can be (a PLC's 850 or -999 is refused, not
answered), and the answer says when the outdoor temperature is outside the curve's meaningful range:
below the design outdoor temperature (the plant is beyond its design) or at or above the indoor target
(no heating demand).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass

from stationmon.domain.heating import estimate_indoor_temp, required_temps
from stationmon.domain.vocabulary import EMITTER_EXPONENTS, PLAUSIBLE_RANGES, VALUE_SENTINELS

__all__ = ["main", "outdoor_notes", "parse_pair"]

_WATER_C = PLAUSIBLE_RANGES["supply_temp"]
_OUTDOOR_C = PLAUSIBLE_RANGES["outdoor_temp"]
_INDOOR_C = (5.0, 30.0)  # the same bounds as site.indoor_target in the config
_OUTDOOR_DESIGN_C = (-60.0, 15.0)


def parse_pair(text: str, what: str) -> tuple[float, float]:
    """ "50/40" -> (50.0, 40.0); ValueError naming `what` if malformed or not plausible water temperatures."""
    parts = text.split("/")
    try:
        if len(parts) != 2:
            raise ValueError
        supply, ret = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"{what}: expected SUPPLY/RETURN such as 75/50, got {text!r}") from None
    if not (math.isfinite(supply) and math.isfinite(ret)):
        raise ValueError(f"{what}: temperatures must be finite numbers, got {text!r}")
    lo, hi = _WATER_C
    for value in (supply, ret):
        if not lo <= value <= hi:
            sentinel = " (a PLC's broken-probe value)" if value in (*VALUE_SENTINELS, 850.0) else ""
            raise ValueError(
                f"{what}: {value:g} °C{sentinel} is not a plausible water temperature (expected {lo:g}..{hi:g} °C)"
            )
    return supply, ret


def _in_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number")
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{name}: {value:g} °C is out of range (expected {bounds[0]:g}..{bounds[1]:g} °C)")


@dataclass(frozen=True, slots=True)
class _Question:
    design: tuple[float, float]
    exponent: float
    measured: tuple[float, float] | None


def _question(args: argparse.Namespace) -> _Question:
    """The validated arguments; ValueError naming the option that is wrong."""
    design = parse_pair(args.design, "--design")
    if design[0] <= design[1]:
        raise ValueError(f"--design: supply ({design[0]:g}) must be above return ({design[1]:g})")
    measured = parse_pair(args.measured, "--measured") if args.measured else None
    if measured is not None and measured[0] < measured[1]:
        raise ValueError(f"--measured: supply ({measured[0]:g}) below return ({measured[1]:g}): swapped sensors?")
    if args.emitter is None and args.exponent is None:
        raise ValueError("--emitter: required (floor or radiator), or give --exponent")
    exponent = args.exponent if args.exponent is not None else EMITTER_EXPONENTS[args.emitter]
    if not 1.0 <= exponent <= 2.0:
        raise ValueError(f"--exponent: {exponent:g} is out of range (expected 1.0..2.0)")
    _in_range("--outdoor", args.outdoor, _OUTDOOR_C)
    _in_range("--indoor-target", args.indoor_target, _INDOOR_C)
    _in_range("--design-indoor", args.design_indoor, _INDOOR_C)
    _in_range("--outdoor-design", args.outdoor_design, _OUTDOOR_DESIGN_C)
    if args.outdoor_design >= args.design_indoor:
        raise ValueError(
            f"--outdoor-design: {args.outdoor_design:g} must be below the design indoor temperature "
            f"({args.design_indoor:g} °C)"
        )
    if design[1] <= args.design_indoor:
        raise ValueError(
            f"--design: return ({design[1]:g}) must be above the design indoor ({args.design_indoor:g} °C)"
        )
    return _Question(design, exponent, measured)


def outdoor_notes(outdoor: float, indoor_target: float, outdoor_design: float) -> list[str]:
    """Why an answer at `outdoor` means less than usual: beyond the design, or no heating demand."""
    if outdoor >= indoor_target:
        return [
            f"outdoor {outdoor:g} °C is at or above the indoor target {indoor_target:g} °C: no heating demand, "
            "so the curve asks for nothing and the loop cannot be judged noncompliant"
        ]
    if outdoor < outdoor_design:
        return [
            f"outdoor {outdoor:g} °C is below the design outdoor temperature {outdoor_design:g} °C: the plant is "
            "beyond its design and the curve is extrapolated past what it was built for"
        ]
    return []


def _answer(q: _Question, args: argparse.Namespace) -> dict[str, float]:
    (design_supply, design_return), exponent = q.design, q.exponent
    req_supply, req_return = required_temps(
        args.outdoor,
        design_supply,
        design_return,
        exponent,
        indoor_target=args.indoor_target,
        outdoor_design=args.outdoor_design,
        design_indoor=args.design_indoor,
    )
    doc = {"required_supply_temp": round(float(req_supply), 3), "required_return_temp": round(float(req_return), 3)}
    if q.measured is not None:
        estimate = estimate_indoor_temp(
            q.measured[0],
            q.measured[1],
            args.outdoor,
            design_supply,
            design_return,
            exponent,
            outdoor_design=args.outdoor_design,
            design_indoor=args.design_indoor,
        )
        doc["estimated_indoor_temp"] = round(float(estimate), 3)
    return doc


def main(args: argparse.Namespace) -> int:
    """Print the required supply/return temperatures (and the indoor estimate with --measured)."""
    try:
        q = _question(args)
    except ValueError as exc:
        print(f"stationmon curve: {exc}", file=sys.stderr)
        return 2
    doc = _answer(q, args)
    notes = outdoor_notes(args.outdoor, args.indoor_target, args.outdoor_design)
    if args.json:
        print(json.dumps({**doc, "notes": notes} if notes else doc, ensure_ascii=False))
        return 0
    print(
        f"design {q.design[0]:g}/{q.design[1]:g} °C, exponent {q.exponent:g}, outdoor {args.outdoor:g} °C, "
        f"indoor target {args.indoor_target:g} °C, design indoor {args.design_indoor:g} °C, "
        f"design outdoor {args.outdoor_design:g} °C"
    )
    print(f"required supply {doc['required_supply_temp']:.1f} °C, return {doc['required_return_temp']:.1f} °C")
    if q.measured is not None:
        est = doc["estimated_indoor_temp"]
        verdict = "meets" if est >= args.indoor_target else "below"
        print(
            f"measured {q.measured[0]:g}/{q.measured[1]:g} °C: estimated indoor {est:.1f} °C "
            f"({verdict} the {args.indoor_target:g} °C target)"
        )
    for note in notes:
        print(f"note: {note}")
    return 0
