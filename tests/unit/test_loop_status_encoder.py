"""`LoopStatusEncoder` writes what a line-by-line reference means: the same fields, floats rounded to 0.001.

Each line is read back by `parse_line`, a small strict line-protocol parser written here (independent of the
encoder): measurement, tags, fields (floats as `-?digits.digits`, no exponent, no "-0"), time. The
reference is computed field by field from the inputs: status, each finite float rounded as Python's
`format(v, ".3f")` rounds (half to even, on the exact binary value), compliant, verdict, flags, interval,
the time in the write precision. Inputs: random tags needing escapes (non-ASCII, NUL, quotes, separators),
floats of every kind (NaN, ±inf, -0.0, subnormal, huge, exact halves such as 21.0625, values within an
ulp of a half, integers, counts), every status, compliant, verdict and flag value, every precision.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stationmon.domain.lineproto import (
    LOOP_STATUS_DECIMALS,
    LOOP_STATUS_FLAGS,
    LOOP_STATUS_FLOATS,
    LoopStatusEncoder,
    _Field,
    encode_loop_status,
    format_decimal,
    to_precision,
)
from stationmon.domain.vocabulary import STATUS_NAMES, VERDICTS

# ----------------------------------------------------------------------------------------------------
# a strict line-protocol parser (the subset stationmon writes: float, boolean and string fields)

_FLOAT = re.compile(r"-?(0|[1-9][0-9]*)\.[0-9]+(e-?[0-9]+)?")  # (interval_s is written by repr)
_TIME = re.compile(r"-?[0-9]+")


def _name(text: str, i: int, stops: str) -> tuple[str, int]:
    """A measurement, tag key/value or field key from `i`: backslash escapes the stop characters."""
    out = []
    while i < len(text) and text[i] not in stops:
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ", =":
            i += 1
        out.append(text[i])
        i += 1
    if not out:
        raise ValueError(f"empty name at {i} in {text!r}")
    return "".join(out), i


def _string(text: str, i: int) -> tuple[str, int]:
    if text[i] != '"':
        raise ValueError(f"no string at {i}")
    out, i = [], i + 1
    while text[i] != '"':
        if text[i] == "\\" and text[i + 1] in '"\\':
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out), i + 1


def _value(text: str, i: int) -> tuple[Any, int]:
    if text[i] == '"':
        return _string(text, i)
    end = i
    while end < len(text) and text[end] not in ", ":
        end += 1
    raw = text[i:end]
    if raw in ("true", "false"):
        return raw == "true", end
    if not _FLOAT.fullmatch(raw) or (raw.startswith("-") and float(raw) == 0.0):
        raise ValueError(f"not a float as stationmon writes one: {raw!r}")
    return (float(raw), raw), end


def parse_line(text: str) -> tuple[str, dict[str, str], dict[str, Any], int]:
    """(measurement, tags, fields, time) of one line; a float field is (value, its text)."""
    measurement, i = _name(text, 0, ", ")
    tags: dict[str, str] = {}
    while text[i] == ",":
        key, i = _name(text, i + 1, "=")
        tags[key], i = _name(text, i + 1, ", ")
    if text[i] != " ":
        raise ValueError(f"no space after the tags in {text!r}")
    fields: dict[str, Any] = {}
    i += 1
    while True:
        key, i = _name(text, i, "=, ")
        if key in fields:
            raise ValueError(f"field {key} twice")
        fields[key], i = _value(text, i + 1)
        if text[i] == " ":
            break
        if text[i] != ",":
            raise ValueError(f"bad separator at {i} in {text!r}")
        i += 1
    if not _TIME.fullmatch(text[i + 1 :]):
        raise ValueError(f"bad time in {text!r}")
    return measurement, tags, fields, int(text[i + 1 :])


def test_the_parser_is_strict() -> None:
    assert parse_line('m,a=b\\ c f=1.5,g="x\\"y",h=true 12') == ("m", {"a": "b c"}, {
        "f": (1.5, "1.5"), "g": 'x"y', "h": True}, 12)  # fmt: skip
    for bad in ("m f=1e5 1", "m f=1 1", "m f=-0.0 1", "m f=01.5 1", "m f=1.5,f=2.5 1", "m f=1.5", "m  f=1.5 1"):
        with pytest.raises((ValueError, IndexError)):
            parse_line(bad)


# ----------------------------------------------------------------------------------------------------
# the reference: what each line must say, field by field


def _rounded(value: float) -> float:
    return float(f"{value:.{LOOP_STATUS_DECIMALS}f}")


def expected_fields(
    i: int,
    status: Sequence[int],
    compliant: Sequence[int],
    floats: Sequence[Sequence[float]],
    verdict: Sequence[int] | None,
    flags: Sequence[Sequence[bool]] | None,
    interval_s: float | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {"status": STATUS_NAMES[status[i]]}
    for key, column in zip(LOOP_STATUS_FLOATS, floats, strict=False):
        if math.isfinite(column[i]):
            fields[key] = _rounded(column[i])
    if compliant[i] >= 0:
        fields["compliant"] = bool(compliant[i])
    if verdict is not None:
        fields["verdict"] = VERDICTS[verdict[i]]
    if flags is not None:
        for key, column in zip(LOOP_STATUS_FLAGS, flags, strict=True):
            fields[key] = bool(column[i])
    if interval_s is not None:
        fields["interval_s"] = float(interval_s)
    return fields


def check_lines(
    encoder: LoopStatusEncoder, lines: list[str], ts: float, *columns: Any, interval_s: float | None = None
) -> None:
    """Every line parses strictly and says what the reference says; its tags are its prefix, byte for byte."""
    status, compliant, floats, verdict, flags = columns
    assert len(lines) == len(encoder.prefixes)
    for i, (line, prefix) in enumerate(zip(lines, encoder.prefixes, strict=True)):
        assert line.startswith(prefix)
        measurement, _, fields, time = parse_line(line)
        assert measurement == "loop_status"
        assert time == to_precision(ts, encoder.precision)
        texts = {k: v[1] for k, v in fields.items() if isinstance(v, tuple)}
        values = {k: v[0] if isinstance(v, tuple) else v for k, v in fields.items()}
        assert values == expected_fields(i, status, compliant, floats, verdict, flags, interval_s), line
        for key, text in texts.items():
            if key != "interval_s":
                assert text == format_decimal(values[key]) and "e" not in text, line


# ----------------------------------------------------------------------------------------------------
# random inputs

_NAME_CHARS = "ab,= \\\n\r\"'道里区é\0"


def _name_of(rng: np.random.Generator) -> str:
    length = int(rng.integers(0, 7))
    return "".join(_NAME_CHARS[int(k)] for k in rng.integers(0, len(_NAME_CHARS), length))


_SPECIALS = np.array(
    [math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, -5e-324, 1e16, -1e300, 999.9995, -999.9994, 1000.0, 0.0005,
     -0.0005, 0.0004, -0.0004, 2.675, 1.0005, 21.0625, -3.1875, 0.0625, 999.999, -999.999]
)  # fmt: skip


def random_floats(rng: np.random.Generator, n: int) -> np.ndarray:
    """A column mixing every kind of float the encoder may meet."""
    kinds = rng.integers(0, 10, n)
    sign = rng.integers(0, 2, n, dtype=np.uint64) << np.uint64(63)
    bits = (rng.integers(0, 2**63, n, dtype=np.uint64) | sign).view(np.float64)
    thousandths = rng.integers(-999_999, 1_000_000, n)
    values = np.select(
        [kinds == k for k in range(9)],
        [
            rng.uniform(-40.0, 110.0, n),
            np.round(rng.uniform(-40.0, 110.0, n), 1),
            np.round(rng.uniform(0.0, 30.0, n)),  # counts
            bits,  # any double, NaN and inf included
            rng.choice(_SPECIALS, n),
            (thousandths + 0.5) / 1000.0,  # the double nearest to a half thousandth: within an ulp of it
            np.round(rng.uniform(-60.0, 120.0, n) * 16.0) / 16.0,  # a 1/16 K sensor: exact halves
            rng.uniform(1e3, 1e18, n) * rng.choice([-1.0, 1.0], n),
            np.full(n, math.nan),
        ],
        rng.uniform(-1e-3, 1e-3, n),
    )
    return np.asarray(values, dtype=np.float64)


def random_loops(rng: np.random.Generator, n: int) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    loops = [(_name_of(rng), _name_of(rng), _name_of(rng)) for _ in range(n)]
    return loops, {s: _name_of(rng) for s, _, _ in loops if rng.random() < 0.7}


def random_case(seed: int, n: int | None = None) -> tuple[LoopStatusEncoder, float, tuple[Any, ...], float | None]:
    rng = np.random.default_rng(seed)
    loops, companies = random_loops(rng, int(rng.integers(1, 1500)) if n is None else n)
    encoder = LoopStatusEncoder(loops, str(rng.choice(["s", "ms", "us", "ns"])), companies)
    n = len(loops)
    floats = [random_floats(rng, n) for _ in range(int(rng.integers(0, len(LOOP_STATUS_FLOATS) + 1)))]
    for column in floats:  # some finite on few loops only, like the household sensor counts
        if rng.random() < 0.5:
            column[rng.random(n) < rng.choice([0.5, 0.8, 0.97, 1.0])] = math.nan
    status = rng.integers(0, len(STATUS_NAMES), n)
    compliant = rng.integers(-1, 2, n)
    verdict = rng.integers(0, len(VERDICTS), n) if rng.random() < 0.8 else None
    flags = [rng.random(n) < 0.5 for _ in LOOP_STATUS_FLAGS] if rng.random() < 0.8 else None
    interval = float(rng.choice([10.0, 60.0, 0.5, 2.5e-05, 3600.0])) if rng.random() < 0.7 else None
    return encoder, float(rng.uniform(0.0, 2e9)), (status, compliant, floats, verdict, flags), interval


@pytest.mark.parametrize("seed", range(12))
def test_lines_say_what_the_reference_says(seed: int) -> None:
    encoder, ts, columns, interval = random_case(seed)
    check_lines(encoder, encoder.encode(ts, *columns, interval_s=interval), ts, *columns, interval_s=interval)


def test_numpy_arrays_and_plain_lists_give_the_same_lines() -> None:
    encoder, ts, (status, compliant, floats, verdict, flags), interval = random_case(99, 300)
    lines = encoder.encode(ts, status, compliant, floats, verdict, flags, interval)
    lists = [f.tolist() for f in floats]
    assert encoder.encode(ts, status.tolist(), compliant.tolist(), lists, verdict, flags, interval) == lines


def test_many_loops_span_blocks_and_chunks() -> None:
    """Catches a block or chunk boundary handled wrong (a line lost, doubled or shifted, a piece of one line
    in the next): 9,000 lines (more than a block of lines and a chunk of floats) are the lines of the same
    loops encoded 300 at a time (300 lines: checked against the reference by the tests above, and here)."""
    rng = np.random.default_rng(7)
    n = 9_000
    loops, companies = random_loops(rng, n)
    floats = [random_floats(rng, n) for _ in LOOP_STATUS_FLOATS]
    floats[5][rng.random(n) < 0.9] = math.nan  # a sparse column
    status, compliant, verdict = rng.integers(0, 5, n), rng.integers(-1, 2, n), rng.integers(0, 3, n)
    flags = [rng.random(n) < 0.5 for _ in LOOP_STATUS_FLAGS]
    lines = LoopStatusEncoder(loops, "us", companies).encode(5.0, status, compliant, floats, verdict, flags, 10.0)
    assert len(lines) == n
    for begin in range(0, n, 300):
        part = slice(begin, begin + 300)
        columns = (status[part], compliant[part], [f[part] for f in floats], verdict[part], [f[part] for f in flags])
        small = LoopStatusEncoder(loops[part], "us", companies)
        assert lines[part] == small.encode(5.0, *columns, 10.0)
        if begin == 8_100:
            check_lines(small, lines[part], 5.0, *columns, interval_s=10.0)


def test_every_status_compliant_verdict_and_flag_combination() -> None:
    combos = [
        (s, c, v, f)
        for s in range(len(STATUS_NAMES))
        for c in (-1, 0, 1)
        for v in range(len(VERDICTS))
        for f in range(2 ** len(LOOP_STATUS_FLAGS))
    ]
    encoder = LoopStatusEncoder([("st", "d", f"l{i}") for i in range(len(combos))], "s")
    status, compliant, verdict = ([combo[k] for combo in combos] for k in range(3))
    flags = [[bool(combo[3] >> k & 1) for combo in combos] for k in range(len(LOOP_STATUS_FLAGS))]
    floats = [[20.5] * len(combos)]
    lines = encoder.encode(1_700_000_000.4, status, compliant, floats, verdict, flags, 10.0)
    check_lines(encoder, lines, 1_700_000_000.4, status, compliant, floats, verdict, flags, interval_s=10.0)
    assert len(set(line.split(" ", 1)[1] for line in lines)) == len(combos)


# ----------------------------------------------------------------------------------------------------
# the float text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (45.25, "45.25"),
        (3.0, "3.0"),  # an integer keeps one decimal: the same text as before for the sensor counts
        (0.0, "0.0"),
        (-0.0, "0.0"),  # no "-0.0"
        (-0.0004, "0.0"),  # rounds to zero: no sign
        (-0.0005, "-0.001"),  # the double below -0.0005 rounds away from zero
        (0.0005, "0.001"),  # ... and the one above 0.0005 too
        (21.0625, "21.062"),  # an exact half (a 1/16 K sensor): half to even
        (21.0875, "21.087"),  # not a half: the double is 21.08749999999999857...
        (2.675, "2.675"),
        (999.9994, "999.999"),
        (-999.999, "-999.999"),  # the longest text from the digit tables: 8 bytes
        (-1000.123, "-1000.123"),  # 9 characters: beyond the tables, written by `format_decimal`
        (999.9995, "1000.0"),  # too large for the digit tables: written by `format_decimal` on its own
        (850.0, "850.0"),
        (1e16, "10000000000000000.0"),  # no exponent
        (-1.5e-7, "0.0"),
        (36.29453057522434, "36.295"),
    ],
)
def test_float_text(value: float, text: str) -> None:
    """The value's text in a line (here as the only float field), and `format_decimal`'s, are `text`."""
    assert format_decimal(value) == text
    [line] = LoopStatusEncoder([("s", "d", "l")]).encode(0.0, [0], [-1], [[value]])
    assert line == f'loop_status,district=d,loop=l,station=s status="ok",required_supply_temp={text} 0'


def test_a_half_thousandth_within_an_ulp_is_rounded_on_the_exact_value() -> None:
    """Catches rounding the float product `value * 1000` (np.rint) where it is not exact: 21.0875 is the
    double 21.08749999999999857..., whose product 21087.5 rints to 21088 (its text must be 21.087); 0.0125
    is 0.012500000000000000069... (product 12.5, rint 12; must be 0.013); 0.0005 is above its half too
    (product 0.5, rint 0; must be 0.001). Exact halves (21.0625, 0.0625: 1/16 K steps) go half to even."""
    values = [21.0875, 0.0125, 0.0005, 21.0625, 0.0625, -21.0875]
    n = len(values)
    lines = LoopStatusEncoder([("s", "d", f"l{i}") for i in range(n)]).encode(0.0, [0] * n, [-1] * n, [values])
    got = [parse_line(line)[2]["required_supply_temp"][1] for line in lines]
    assert got == ["21.087", "0.013", "0.001", "21.062", "0.062", "-21.087"]
    assert got == [format(v, ".3f") for v in values]


def test_a_too_large_value_is_written_whole_with_the_other_fields() -> None:
    """Catches a line with a value beyond the digit tables losing a field or its neighbours' values."""
    encoder = LoopStatusEncoder([("s", "d", "a"), ("s", "d", "b"), ("s", "d", "c")])
    floats = [[1e20, 20.5, -1234.5678], [math.nan, 19.25, 5.0], [-5e3, math.nan, 7.0]]
    lines = encoder.encode(60.0, [2, 0, 1], [1, -1, 0], floats, [1, 0, 2], None, 10.0)
    assert lines == [
        'loop_status,district=d,loop=a,station=s status="sensor_fault",required_supply_temp=100000000000000000000.0,'
        'estimated_indoor_temp=-5000.0,compliant=true,verdict="estimate",interval_s=10.0 60000',
        'loop_status,district=d,loop=b,station=s status="ok",required_supply_temp=20.5,required_return_temp=19.25,'
        'verdict="none",interval_s=10.0 60000',
        'loop_status,district=d,loop=c,station=s status="noncompliant",required_supply_temp=-1234.568,'
        'required_return_temp=5.0,estimated_indoor_temp=7.0,compliant=false,verdict="sensors",interval_s=10.0 60000',
    ]


def test_long_tags_and_non_ascii_take_several_pieces() -> None:
    """Catches a prefix or tail longer than one piece (64 bytes) cut, or its later pieces misplaced; Chinese
    names stay exact UTF-8 (their bytes are not characters)."""
    station = "热力站" * 30 + "x"
    encoder = LoopStatusEncoder([(station, "道里区", "一号"), ("s", "d", "l" * 200)], "ns", {station: "冰城 热力"})
    lines = encoder.encode(1.5, [0, 4], [1, 0], [[1.5, math.nan], [math.nan, -2.25]], [2, 1], [[1, 0]] * 3, 0.5)
    assert lines[0] == (
        f"loop_status,company=冰城\\ 热力,district=道里区,loop=一号,station={station} "
        'status="ok",required_supply_temp=1.5,compliant=true,verdict="sensors",beyond_design=true,setback=true,'
        "inspection_hour=true,interval_s=0.5 1500000000"
    )
    assert lines[1] == (
        f'loop_status,district=d,loop={"l" * 200},station=s status="unknown",required_return_temp=-2.25,'
        'compliant=false,verdict="estimate",beyond_design=false,setback=false,inspection_hour=false,'
        "interval_s=0.5 1500000000"
    )


def test_a_lone_surrogate_in_a_tag_is_kept() -> None:
    """A tag from a str holding a lone surrogate (a name decoded with surrogateescape) comes back as the same
    str: the line is the prefix the old encoder wrote (the writer then reports it; the encoder does not)."""
    encoder = LoopStatusEncoder([("st\udc80", "d", "l")])
    assert encoder.encode(0.0, [0], [-1], []) == ['loop_status,district=d,loop=l,station=st\udc80 status="ok" 0']


def test_sparse_floats_are_written_on_their_loops_only() -> None:
    """Catches the second pass (floats finite on few loops) writing a field on the wrong loop, or its lines
    not replacing the first pass's: sensor counts on 3 loops of 20."""
    n = 20
    encoder = LoopStatusEncoder([("s", "d", f"l{i}") for i in range(n)])
    supply = np.linspace(40.0, 60.0, n)
    sensors = np.full(n, math.nan)
    sensors[[0, 7, 19]] = [3.0, 1.0, 12.0]
    lines = encoder.encode(0.0, [0] * n, [1] * n, [supply, supply - 10, [math.nan] * n, [math.nan] * n, sensors])
    check_lines(encoder, lines, 0.0, [0] * n, [1] * n, [supply, supply - 10, [math.nan] * n, [math.nan] * n, sensors],
                None, None)  # fmt: skip
    assert [i for i, line in enumerate(lines) if "measured_indoor_temp" in line] == [0, 7, 19]


def test_no_loops_no_lines() -> None:
    assert LoopStatusEncoder([]).encode(0.0, [], [], [[]]) == []


# ----------------------------------------------------------------------------------------------------
# encode_loop_status (one line, through the encoder)


@settings(max_examples=200, deadline=None)
@given(
    names=st.tuples(st.text(max_size=8), st.text(max_size=8), st.text(max_size=8), st.text(max_size=8)),
    values=st.lists(st.none() | st.floats(allow_nan=True, allow_infinity=True), min_size=5, max_size=5),
    counts=st.lists(st.integers(0, 40), min_size=3, max_size=3),
    status=st.sampled_from(STATUS_NAMES),
    ts=st.floats(0.0, 4e9),
)
def test_encode_loop_status_says_what_the_reference_says(
    names: tuple[str, str, str, str], values: list[float | None], counts: list[int], status: str, ts: float
) -> None:
    station, district, loop, company = names
    line = encode_loop_status(
        station, district, loop, ts, status=status, company=company, required_supply_temp=values[0],
        required_return_temp=values[1], estimated_indoor_temp=values[2], delta_t=values[3],
        measured_indoor_temp=values[4], indoor_sensors=counts[0], indoor_below_target=counts[1],
        indoor_below_refund=counts[2],
    )  # fmt: skip
    encoder = LoopStatusEncoder([(station, district, loop)], "ms", {station: company})
    floats = [[math.nan if v is None else v] for v in values]
    floats += [[float(c) if counts[0] else math.nan] for c in counts]
    check_lines(encoder, [line], ts, [STATUS_NAMES.index(status)], [-1], floats, None, None)


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
    with pytest.raises(ValueError, match="precision"):
        LoopStatusEncoder([("s", "d", "a")], "m")


@pytest.mark.parametrize("seed", range(3))
def test_floats_finite_on_most_lines_are_written_on_every_line_and_left_out_exactly(seed: int) -> None:
    """With tags as long as real ones, a float finite on most lines is written on every line, of length 0
    where it is left out (NaN, ±inf, too large: the next piece writes over it). Catches such a field's text
    or padding left in a line, a line end moved, or a too-large value's line missing a neighbour's field."""
    rng = np.random.default_rng(100 + seed)
    n = 3_000
    loops = [(f"st{i:06d}", f"district-{i % 9}", f"loop-{i % 7}") for i in range(n)]
    encoder = LoopStatusEncoder(loops, "ms", {f"st{i:06d}": "company" for i in range(0, n, 3)})
    floats = [random_floats(rng, n) for _ in LOOP_STATUS_FLOATS]
    assert all(0.5 < np.isfinite(f).mean() < 1.0 for f in floats)
    status, compliant, verdict = rng.integers(0, 5, n), rng.integers(-1, 2, n), rng.integers(0, 3, n)
    flags = [rng.random(n) < 0.5 for _ in LOOP_STATUS_FLAGS]
    lines = encoder.encode(1.7e9 + seed, status, compliant, floats, verdict, flags, 10.0)
    check_lines(encoder, lines, 1.7e9 + seed, status, compliant, floats, verdict, flags, interval_s=10.0)
    # the case takes that path: the tags leave room for a field's padding past a line's end
    assert all(_Field(key, f, encoder._reach).dense for key, f in zip(LOOP_STATUS_FLOATS, floats, strict=True))


def test_a_float_left_out_at_the_end_of_a_short_line_spoils_no_next_line() -> None:
    """Without tags (the shortest prefix, "loop_status ") a float finite on half the lines is written only on
    its lines: written on every line, a left-out field's 32 bytes at the end of a line (" 0" and a newline
    follow) would reach past the part of the next line written last, into its status."""
    encoder = LoopStatusEncoder([("", "", "")] * 4, "s")
    lines = encoder.encode(0.0, [3, 3, 0, 4], [-1] * 4, [[1.5, math.nan, 2.5, math.nan]])
    assert lines == [
        'loop_status status="offline",required_supply_temp=1.5 0',
        'loop_status status="offline" 0',
        'loop_status status="ok",required_supply_temp=2.5 0',
        'loop_status status="unknown" 0',
    ]


def test_a_lone_surrogate_in_a_tag_is_kept_on_a_line_with_a_too_large_value() -> None:
    """The line `format_decimal` writes whole (a value beyond the table) keeps the tag's lone surrogate as the
    other lines do, instead of failing to encode it."""
    encoder = LoopStatusEncoder([("st\udc80", "d", "l"), ("st\udc80", "d", "m")])
    lines = encoder.encode(0.0, [0, 0], [-1, -1], [[1234.5, 1.5]])
    assert lines == [
        'loop_status,district=d,loop=l,station=st\udc80 status="ok",required_supply_temp=1234.5 0',
        'loop_status,district=d,loop=m,station=st\udc80 status="ok",required_supply_temp=1.5 0',
    ]


def test_a_left_out_field_at_the_very_end_may_reach_the_last_spare_byte() -> None:
    """Tags of 29 bytes are just enough for a 32-byte field element written, of length 0, where the last line
    ends in " 0" and a newline: it ends on the last of the spare bytes after the block's lines."""
    encoder = LoopStatusEncoder([("abcdefgh", "", "")] * 2, "s")
    lines = encoder.encode(0.0, [0, 0], [-1, -1], [[1.5, math.nan]])
    assert lines == [
        'loop_status,station=abcdefgh status="ok",required_supply_temp=1.5 0',
        'loop_status,station=abcdefgh status="ok" 0',
    ]


def test_a_float32_column_is_written_from_its_exact_value() -> None:
    """0.0125 as float32 is 0.012500000186...: rounded on that value (as `format` rounds the float64 it
    becomes), not on float32 arithmetic, whose product 12.5 would round half to even to 0.012."""
    [line] = LoopStatusEncoder([("s", "d", "l")]).encode(0.0, [0], [-1], [np.array([0.0125], dtype=np.float32)])
    assert line == 'loop_status,district=d,loop=l,station=s status="ok",required_supply_temp=0.013 0'


def test_a_column_of_the_wrong_length_is_named() -> None:
    encoder = LoopStatusEncoder([("s", "d", "a"), ("s", "d", "b")])
    with pytest.raises(ValueError, match=r"^status: 3 values for 2 loops$"):
        encoder.encode(0.0, [0, 0, 0], [1, 1], [[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"^required_return_temp: 1 values for 2 loops$"):
        encoder.encode(0.0, [0, 0], [1, 1], [[1.0, 2.0], [3.0]])
    with pytest.raises(ValueError, match=r"^compliant: 1 values for 2 loops$"):
        encoder.encode(0.0, [0, 0], [1], [])
    with pytest.raises(ValueError, match=r"^verdict: 3 values for 2 loops$"):
        encoder.encode(0.0, [0, 0], [1, 1], [], [0, 1, 2])
    with pytest.raises(ValueError, match=r"^setback: 1 values for 2 loops$"):
        encoder.encode(0.0, [0, 0], [1, 1], [], [0, 1], [[True, False], [True], [False, False]])
