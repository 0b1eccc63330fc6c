"""Register decoding at the values the older tests skipped: each test names the one-line bug it catches.

The 32-bit sentinels were never decoded, and the fast decode path (`RequestDecoder`, the one the poller
uses) was only compared with `decode_point` for points without an offset.
"""

from __future__ import annotations

import pytest

from stationmon.domain.plant import Point
from stationmon.domain.registers import (
    ReadRequest,
    RequestDecoder,
    check_value,
    decode_point,
    encode_value,
    parse_modicon,
    split_request,
)
from stationmon.domain.vocabulary import RAW_SENTINELS

# raw register values PLCs send for a broken probe, as the device sends them (ABCD)
RAW_32 = [
    ("int32", [0x7FFF, 0xFFFF], 2147483647.0),
    ("int32", [0x8000, 0x0000], -2147483648.0),
    ("int32", [0xFFFF, 0xFC19], -999.0),
    ("uint32", [0xFFFF, 0xFFFF], 4294967295.0),
]


@pytest.mark.parametrize(("dtype", "registers", "raw"), RAW_32)
def test_32_bit_raw_sentinels_are_sentinels_whatever_the_scale(dtype: str, registers: list[int], raw: float) -> None:
    """Catches an int32 or uint32 sentinel dropped or changed in RAW_SENTINELS: scaled by 0.001 none of them
    is near an engineering-value sentinel, so only the raw test says "sentinel" (else "out_of_range")."""
    assert raw in RAW_SENTINELS[dtype]
    point = Point(quantity="supply_temp", address=0, type=dtype, scale=0.001)
    value, fault = decode_point(point, registers)
    assert value == pytest.approx(raw * 0.001)
    assert fault == "sentinel"
    assert check_value("supply_temp", raw, dtype, raw * 0.001) == "sentinel"
    # one count away it is an ordinary (implausible) reading
    assert check_value("supply_temp", raw - 1.0, dtype, (raw - 1.0) * 0.001) == "out_of_range"


def test_16_bit_raw_sentinels() -> None:
    """Catches an int16 or uint16 raw sentinel dropped (scaled by 0.01 they are no engineering sentinel)."""
    for dtype, raw, other in (
        ("int16", 32767.0, "uint16"),
        ("int16", -32768.0, "uint16"),
        ("int16", -999.0, "uint16"),
        ("uint16", 65535.0, "int16"),
    ):
        assert check_value("supply_temp", raw, dtype, raw * 0.01) == "sentinel", (dtype, raw)
        # the same raw value from a type for which it is no sentinel
        assert check_value("supply_temp", raw, other, raw * 0.01) == "out_of_range", (other, raw)


def test_engineering_sentinels_within_the_tolerance_only() -> None:
    """Catches the sentinel tolerance widened, or the float32 image of 3276.7 no longer matched."""
    float32_3276_7 = 3276.699951171875
    assert check_value("flow", float32_3276_7, "float32", float32_3276_7) == "sentinel"
    assert check_value("flow", -999.0004, "float32", -999.0004) == "sentinel"
    assert check_value("flow", 3276.71, "float32", 3276.71) == "out_of_range"
    assert check_value("flow", -999.01, "float32", -999.01) == "out_of_range"


def test_850_is_a_sentinel_for_temperatures_only() -> None:
    """Catches the temperature-only sentinel applied to every quantity (850 m³/h is a real flow)."""
    assert check_value("supply_temp", 850.0, "float32", 850.0) == "sentinel"
    assert check_value("flow", 850.0, "float32", 850.0) is None
    assert check_value("supply_temp", 849.9, "float32", 849.9) == "out_of_range"


def test_limits_of_the_plausible_range_are_plausible() -> None:
    """Catches `<` for `<=` at either end of the plausible range."""
    assert check_value("supply_temp", 0.0, "float32", 0.0) is None
    assert check_value("supply_temp", 130.0, "float32", 130.0) is None
    assert check_value("supply_temp", 130.01, "float32", 130.01) == "out_of_range"
    assert check_value("heat_power", 1e9, "float32", 1e9) is None  # no range stated


POINTS = (
    Point(quantity="supply_temp", loop="sec1", address=10, type="int16", scale=0.1, offset=-40.0),
    Point(quantity="return_temp", loop="sec1", address=11, type="int32", byte_order="CDAB", scale=0.01, offset=5.0),
    Point(quantity="flow", loop="sec1", address=14, type="float32", byte_order="BADC", offset=-1.5),
    Point(quantity="outdoor_temp", address=16, type="uint16", scale=0.5, offset=-50.0),
)


def _request() -> ReadRequest:
    return ReadRequest("holding", 10, 7, POINTS, (0, 1, 4, 6))


def test_the_fast_decode_path_applies_scale_and_offset_in_every_byte_order() -> None:
    """Catches the decoder's `raw * scale + offset` losing its offset (or its scale) in the fast path
    (ABCD) or the reordering path; `decode_point` is the reference."""
    raws = {"supply_temp": 900, "return_temp": 3850, "flow": 13.75, "outdoor_temp": 70}
    registers = [0] * 7
    for p, off in zip(POINTS, _request().offsets, strict=True):
        registers[off : off + p.width] = encode_value(raws[p.quantity], p.type, p.byte_order)
    decoded = RequestDecoder.for_request(_request()).decode_registers(registers)
    assert [p.quantity for p, _, _ in decoded] == [p.quantity for p in POINTS]
    assert [v for _, v, _ in decoded] == pytest.approx([50.0, 43.5, 12.25, -15.0])
    assert [f for _, _, f in decoded] == [None, None, None, None]
    for (p, value, fault), off in zip(decoded, _request().offsets, strict=True):
        assert (value, fault) == decode_point(p, registers[off : off + p.width])


def test_the_fast_decode_path_flags_sentinels_and_non_finite_values() -> None:
    """Catches the decoder checking the scaled value against the raw sentinels (or skipping the check)."""
    registers = [0x7FFF, 0xFFFF, 0x7FFF, 0, 0, 0x4148, 0, 0xFFFF]
    points = (
        Point(quantity="supply_temp", address=0, type="int32", scale=0.001),
        Point(quantity="return_temp", address=2, type="int16", scale=0.1, offset=1.0),
        Point(quantity="flow", address=4, type="float32", byte_order="CDAB"),
        Point(quantity="outdoor_temp", address=7, type="uint16", scale=0.01),
    )
    request = ReadRequest("input", 0, 8, points, (0, 2, 4, 7))
    decoded = RequestDecoder(request).decode_registers(registers)
    faults = [f for _, _, f in decoded]
    assert faults == ["sentinel", "sentinel", None, "sentinel"]
    assert decoded[1][1] == pytest.approx(3277.7) and decoded[2][1] == 12.5
    # a NaN float32 in CDAB order: registers 0x0000 0x7FC0 -> 0x7FC00000
    nan_registers = [0, 0, 0, 0, 0, 0x7FC0, 0, 0]
    decoded = RequestDecoder(request).decode_registers(nan_registers)
    assert decoded[2][2] == "nan"


def test_a_request_with_an_overlapping_point_splits_into_runs() -> None:
    """Catches the run test (`start + off <= covered`) made strict: a point starting where the previous
    one ends belongs to the same run; one after a gap starts a new run."""
    a = Point(quantity="supply_temp", address=100, type="float32")
    b = Point(quantity="return_temp", address=102, type="float32")
    c = Point(quantity="flow", address=106, type="int16")
    request = ReadRequest("holding", 100, 7, (a, b, c), (0, 2, 6))
    runs = split_request(request)
    assert [(r.start, r.count, r.offsets) for r in runs] == [(100, 4, (0, 2)), (106, 1, (0,))]
    assert [r.points for r in runs] == [(a, b), (c,)]


def test_the_fast_decode_path_judges_the_value_as_its_quantity() -> None:
    """Catches the decoder judging without the point's quantity (no range, no temperature sentinel)."""
    points = (
        Point(quantity="supply_temp", address=0, type="int16", scale=0.1),
        Point(quantity="return_temp", address=1, type="float32"),
    )
    registers = [1400, *encode_value(850.0, "float32", "ABCD")]
    decoded = RequestDecoder(ReadRequest("holding", 0, 3, points, (0, 1))).decode_registers(registers)
    assert [(v, f) for _, v, f in decoded] == [(140.0, "out_of_range"), (850.0, "sentinel")]


def test_a_request_whose_offsets_do_not_match_its_points_is_refused() -> None:
    """Catches `strict=True` dropped from the decoder's zip: a point without an offset would be skipped."""
    a = Point(quantity="supply_temp", address=0, type="int16")
    b = Point(quantity="return_temp", address=1, type="int16")
    with pytest.raises(ValueError):
        RequestDecoder(ReadRequest("holding", 0, 2, (a, b), (0,)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("101", "'101' is not Modicon notation"),
        ("20001", "'20001': Modicon register type 2 is unknown"),
    ],
)
def test_modicon_errors_show_the_notation(text: str, message: str) -> None:
    """Catches the worked example in parse_modicon's errors changed or lost."""
    example = '("40101" = holding 100, "30001" = input 0, "400101" = holding 100)'
    with pytest.raises(ValueError) as caught:
        parse_modicon(text)
    assert str(caught.value).startswith(message) and example in str(caught.value)


@pytest.mark.parametrize("scale", [-1.0, 0.0])
def test_a_non_finite_raw_value_is_kept_as_it_came(scale: float) -> None:
    """Catches the `isfinite(raw)` guard dropped in either decode path: +inf scaled by -1 would turn into
    -inf, by 0 into NaN (and its fault from "inf" to "nan")."""
    point = Point(quantity="flow", address=0, type="float32", scale=scale, offset=1.0)
    registers = encode_value(float("inf"), "float32", "ABCD")
    assert decode_point(point, registers) == (float("inf"), "inf")
    [(_, value, fault)] = RequestDecoder(ReadRequest("holding", 0, 2, (point,), (0,))).decode_registers(registers)
    assert (value, fault) == (float("inf"), "inf")
