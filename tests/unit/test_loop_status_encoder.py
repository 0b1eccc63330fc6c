"""The column-wise `LoopStatusEncoder` writes byte for byte what the line-by-line one wrote before it.

`OldLoopStatusEncoder` is the previous implementation, kept verbatim as the reference (bench/bench_evaluate.py
times the two against each other). Inputs: random names needing escapes, floats of every kind (NaN, ±inf,
-0.0, subnormal, huge, few digits, integers), None through `encode_loop_status`, every status, compliant,
verdict and flag value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stationmon.domain.lineproto import (
    LOOP_STATUS_FLAGS,
    LOOP_STATUS_FLOATS,
    LoopStatusEncoder,
    encode_loop_status,
    escape_string_value,
    escape_tag,
    to_precision,
)
from stationmon.domain.vocabulary import STATUS_NAMES, VERDICTS

_COMPLIANT_FIELDS = ("", ",compliant=false", ",compliant=true")
_VERDICT_FIELDS = tuple(f",verdict={escape_string_value(v)}" for v in VERDICTS)


class OldLoopStatusEncoder:
    """The line-by-line encoder as it was before the column-wise one (reference only)."""

    def __init__(
        self, loops: Iterable[tuple[str, str, str]], precision: str = "ms", companies: Mapping[str, str] | None = None
    ) -> None:
        self.precision = precision
        company = companies or {}
        self.prefixes = [
            "loop_status"
            + "".join(
                f",{k}={escape_tag(v)}"
                for k, v in (("company", company.get(s, "")), ("district", d), ("loop", lp), ("station", s))
                if v
            )
            + " "
            for s, d, lp in loops
        ]
        self._status_fields = [f"status={escape_string_value(name)}" for name in STATUS_NAMES]

    def encode(
        self,
        ts_s: float,
        status: Sequence[int],
        compliant: Sequence[int],
        floats: Sequence[Sequence[float]],
        verdict: Sequence[int] | None = None,
        flags: Sequence[Sequence[bool]] | None = None,
    ) -> list[str]:
        ts = f" {to_precision(ts_s, self.precision)}"
        status_fields = self._status_fields
        cols = [(f",{key}=", values) for key, values in zip(LOOP_STATUS_FLOATS, floats, strict=False)]
        flag_cols = (
            [(f",{key}=true", f",{key}=false", v) for key, v in zip(LOOP_STATUS_FLAGS, flags, strict=True)]
            if flags is not None
            else []
        )
        lines = []
        for i, (prefix, code, ok) in enumerate(zip(self.prefixes, status, compliant, strict=True)):
            parts = [prefix, status_fields[code]]
            for key, values in cols:
                v = values[i]
                if v - v == 0.0:  # finite
                    parts.append(key)
                    parts.append(repr(v))
            parts.append(_COMPLIANT_FIELDS[ok + 1])
            if verdict is not None:
                parts.append(_VERDICT_FIELDS[verdict[i]])
            for yes, no, values in flag_cols:
                parts.append(yes if values[i] else no)
            parts.append(ts)
            lines.append("".join(parts))
        return lines


_NAME_CHARS = "ab,= \\\n\r\"'道里区é"


def _name(rng: np.random.Generator) -> str:
    length = int(rng.integers(0, 7))
    return "".join(_NAME_CHARS[int(k)] for k in rng.integers(0, len(_NAME_CHARS), length))


def _floats(rng: np.random.Generator, n: int) -> np.ndarray:
    """A column mixing every kind of float the encoder may meet."""
    kinds = rng.integers(0, 9, n)
    sign = rng.integers(0, 2, n, dtype=np.uint64) << np.uint64(63)
    bits = (rng.integers(0, 2**63, n, dtype=np.uint64) | sign).view(np.float64)
    specials = rng.choice(np.array([math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1e16, 1e-4, 9.9999e-5]), n)
    values = np.select(
        [kinds == k for k in range(8)],
        [
            rng.uniform(-40.0, 110.0, n),
            np.round(rng.uniform(-40.0, 110.0, n), 1),
            np.round(rng.uniform(0.0, 30.0, n)),
            bits,  # any double, NaN and inf included
            specials,
            rng.uniform(-1e-3, 1e-3, n) * 10.0 ** rng.integers(-8, 0, n),
            rng.uniform(1e14, 1e18, n),
            np.full(n, math.nan),
        ],
        rng.uniform(-1e6, 1e6, n),
    )
    return np.asarray(values, dtype=np.float64)


@pytest.mark.parametrize("seed", range(12))
def test_columns_equal_the_line_by_line_encoder(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    loops = [(_name(rng), _name(rng), _name(rng)) for _ in range(n)]
    companies = {s: _name(rng) for s, _, _ in loops if rng.random() < 0.7}
    precision = str(rng.choice(["s", "ms", "us", "ns"]))
    old = OldLoopStatusEncoder(loops, precision, companies)
    new = LoopStatusEncoder(loops, precision, companies)
    assert new.prefixes == old.prefixes
    n_floats = int(rng.integers(0, len(LOOP_STATUS_FLOATS) + 1))
    floats = [_floats(rng, n) for _ in range(n_floats)]
    for column in floats:  # some finite on few loops only, like the household sensor counts
        if rng.random() < 0.4:
            column[rng.random(n) < rng.choice([0.8, 0.97, 1.0])] = math.nan
    status = rng.integers(0, len(STATUS_NAMES), n)
    compliant = rng.integers(-1, 2, n)
    verdict = rng.integers(0, len(VERDICTS), n) if rng.random() < 0.8 else None
    flags = [rng.random(n) < 0.5 for _ in LOOP_STATUS_FLAGS] if rng.random() < 0.8 else None
    ts = float(rng.uniform(0.0, 2e9))
    want = old.encode(
        ts,
        status.tolist(),
        compliant.tolist(),
        [f.tolist() for f in floats],
        None if verdict is None else verdict.tolist(),
        None if flags is None else [f.tolist() for f in flags],
    )
    # numpy arrays (the evaluator) and plain lists (encode_loop_status) alike
    assert new.encode(ts, status, compliant, floats, verdict, flags) == want
    lists = [f.tolist() for f in floats]
    assert new.encode(ts, status.tolist(), compliant.tolist(), lists, verdict, flags) == want
    interval = float(rng.choice([10.0, 60.0, 0.5, 2.5e-05, 3600.0]))
    stamped = [line.rpartition(" ") for line in want]
    with_interval = [f"{head},interval_s={interval!r} {tail}" for head, _, tail in stamped]
    assert new.encode(ts, status, compliant, floats, verdict, flags, interval_s=interval) == with_interval


def _old_encode_loop_status(
    station: str, district: str, loop: str, ts_s: float, status: str, company: str, values: list[float | None]
) -> str:
    """What `encode_loop_status` wrote before (five floats and the sensor count, all or none of the counts)."""
    sensors = values[5]
    counts = [float(c) if sensors else None for c in (sensors or 0, values[6] or 0, values[7] or 0)]
    floats = [[math.nan if v is None else float(v)] for v in [*values[:5], *counts]]
    encoder = OldLoopStatusEncoder([(station, district, loop)], "ms", {station: company})
    return encoder.encode(ts_s, [STATUS_NAMES.index(status)], [-1], floats)[0]


@settings(max_examples=300, deadline=None)
@given(
    names=st.tuples(st.text(max_size=8), st.text(max_size=8), st.text(max_size=8), st.text(max_size=8)),
    values=st.lists(st.none() | st.floats(allow_nan=True, allow_infinity=True), min_size=5, max_size=5),
    counts=st.lists(st.integers(0, 40), min_size=3, max_size=3),
    status=st.sampled_from(STATUS_NAMES),
    ts=st.floats(0.0, 4e9),
)
def test_encode_loop_status_equals_the_old_one(
    names: tuple[str, str, str, str], values: list[float | None], counts: list[int], status: str, ts: float
) -> None:
    station, district, loop, company = names
    line = encode_loop_status(
        station,
        district,
        loop,
        ts,
        status=status,
        company=company,
        required_supply_temp=values[0],
        required_return_temp=values[1],
        estimated_indoor_temp=values[2],
        delta_t=values[3],
        measured_indoor_temp=values[4],
        indoor_sensors=counts[0],
        indoor_below_target=counts[1],
        indoor_below_refund=counts[2],
    )
    as_floats: list[float | None] = [*values, *map(float, counts)]
    assert line == _old_encode_loop_status(station, district, loop, ts, status, company, as_floats)


def test_interval_is_a_float_field_before_the_time() -> None:
    line = encode_loop_status("s1", "d", "l1", 1700000000.0, status="ok", compliant=True, interval_s=10)
    assert line == 'loop_status,district=d,loop=l1,station=s1 status="ok",compliant=true,interval_s=10.0 1700000000000'


def test_mismatched_columns_are_refused() -> None:
    encoder = LoopStatusEncoder([("s", "d", "a"), ("s", "d", "b")])
    with pytest.raises(ValueError, match="status"):
        encoder.encode(1.0, [0], [1, 1], [])
    with pytest.raises(ValueError, match="required_supply_temp"):
        encoder.encode(1.0, [0, 0], [1, 1], [[1.0]])
    with pytest.raises(ValueError, match="flag"):
        encoder.encode(1.0, [0, 0], [1, 1], [], [1, 1], [[True, False]])
