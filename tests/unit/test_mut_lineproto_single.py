"""`encode_loop_status`, the one-line form of the loop_status encoder (tests, tools and the contract's examples
use it): every argument reaches the line. Each test names the bug it catches (mutation survivors)."""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest

from stationmon.domain.lineproto import _SCALE, _product_error, encode_loop_status

PREFIX = "loop_status,district=d1,loop=L1,station=s1 "


def test_verdict_flags_and_zero_counts_are_written() -> None:
    """With three fresh household sensors and no count below a tier given, the counts are 0 (not 1), and the
    verdict and each flag are written as given.

    Catches: the verdict or the flags dropped on the way to the encoder, `rindex`/None for the verdict's
    index, and a default of 1 for either tier count."""
    line = encode_loop_status(
        "s1",
        "d1",
        "L1",
        1000.0,
        status="ok",
        verdict="sensors",
        flags={"beyond_design": False, "setback": True, "inspection_hour": False},
        indoor_sensors=3,
        compliant=True,
        required_supply_temp=55.5,
    )
    assert line == (
        PREFIX + 'status="ok",required_supply_temp=55.5,indoor_sensors=3.0,indoor_below_target=0.0,'
        'indoor_below_refund=0.0,compliant=true,verdict="sensors",beyond_design=false,setback=true,'
        "inspection_hour=false 1000000"
    )


@pytest.mark.parametrize("verdict", ["none", "estimate", "sensors"])
def test_every_verdict_is_written_by_name(verdict: str) -> None:
    line = encode_loop_status("s1", "d1", "L1", 1000.0, status="unknown", verdict=verdict)
    assert line == PREFIX + f'status="unknown",verdict="{verdict}" 1000000'


def test_without_verdict_or_flags_neither_is_written() -> None:
    assert encode_loop_status("s1", "d1", "L1", 1000.0, status="unknown") == PREFIX + 'status="unknown" 1000000'


def test_the_products_rounding_error_is_exact() -> None:
    """`_product_error` (Dekker's product) gives the exact rounding error of value × 1000, checked against
    rational arithmetic on values whose product is inexact and near a half (the only ones it is asked about),
    and 0.0 where the product is exact. A wrong split constant, a sign or an operation swapped would give
    a wrong (usually non-zero) error: those values would be formatted the slow way, and where the error
    came out 0.0 for an inexact product, rounded the wrong way."""
    rng = random.Random(17)
    values = [rng.uniform(-200.0, 1000.0) for _ in range(2000)] + [0.0005, 21.0625, 1e-7, 999.9995, -40.0005]
    v = np.array(values)
    product = v * _SCALE
    got = _product_error(v, product)
    exact = [float(Fraction(x) * Fraction(_SCALE) - Fraction(p)) for x, p in zip(values, product.tolist(), strict=True)]
    assert got.tolist() == exact
    assert sum(e != 0.0 for e in exact) > 1000  # most products are inexact: the test has teeth
    assert _product_error(np.array([21.0625, 1.5]), np.array([21062.5, 1500.0])).tolist() == [0.0, 0.0]
