"""`stationmon curve`: the heating model on the command line (CONTRACT section 6).

stationmon curve --design 50/40 --emitter floor --outdoor -10
stationmon curve --design 50/40 --emitter floor --outdoor -10 --measured 41/34 --json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass

from stationmon.domain.heating import estimate_indoor_temp, required_temps
from stationmon.domain.vocabulary import DESIGN_INDOOR, EMITTER_EXPONENTS

__all__ = ["main", "parse_pair"]


def parse_pair(text: str, what: str) -> tuple[float, float]:
    """ "50/40" -> (50.0, 40.0); ValueError naming `what` if malformed or supply is not above return."""
    parts = text.split("/")
    try:
        if len(parts) != 2:
            raise ValueError
        supply, ret = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"{what}: expected SUPPLY/RETURN such as 75/50, got {text!r}") from None
    if not (math.isfinite(supply) and math.isfinite(ret)):
        raise ValueError(f"{what}: temperatures must be finite numbers, got {text!r}")
    return supply, ret


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
    for name, value in (
        ("--outdoor", args.outdoor),
        ("--indoor-target", args.indoor_target),
        ("--outdoor-design", args.outdoor_design),
    ):
        if not math.isfinite(value):
            raise ValueError(f"{name}: must be a finite number")
    if args.outdoor_design >= DESIGN_INDOOR:
        raise ValueError(f"--outdoor-design: {args.outdoor_design:g} must be below {DESIGN_INDOOR:g} °C")
    return _Question(design, exponent, measured)


def _answer(q: _Question, args: argparse.Namespace) -> dict[str, float]:
    (design_supply, design_return), exponent = q.design, q.exponent
    req_supply, req_return = required_temps(
        args.outdoor,
        design_supply,
        design_return,
        exponent,
        indoor_target=args.indoor_target,
        outdoor_design=args.outdoor_design,
        design_indoor=DESIGN_INDOOR,
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
            design_indoor=DESIGN_INDOOR,
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
    if args.json:
        print(json.dumps(doc))
        return 0
    print(
        f"design {q.design[0]:g}/{q.design[1]:g} °C, exponent {q.exponent:g}, outdoor {args.outdoor:g} °C, "
        f"indoor target {args.indoor_target:g} °C, design outdoor {args.outdoor_design:g} °C"
    )
    print(f"required supply {doc['required_supply_temp']:.1f} °C, return {doc['required_return_temp']:.1f} °C")
    if q.measured is not None:
        est = doc["estimated_indoor_temp"]
        verdict = "meets" if est >= args.indoor_target else "below"
        print(
            f"measured {q.measured[0]:g}/{q.measured[1]:g} °C: estimated indoor {est:.1f} °C "
            f"({verdict} the {args.indoor_target:g} °C target)"
        )
    return 0
