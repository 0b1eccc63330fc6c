"""Read planning, decoding and encoding of Modbus registers (pure: no sockets, no event loop)."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stationmon.cli.check_config import describe_config
from stationmon.config import parse_config_text
from stationmon.domain.plant import ModbusLink, Point, Station
from stationmon.domain.registers import (
    ReadRequest,
    RequestDecoder,
    check_value,
    decode_point,
    decode_value,
    encode_value,
    parse_modicon,
    plan_reads,
    split_request,
)
from stationmon.domain.vocabulary import BYTE_ORDERS, DATA_TYPES, REGISTER_WIDTH
from stationmon.errors import ConfigError

READPLANS = Path(__file__).parent.parent / "testcases" / "readplans"

# (type, byte order, registers as the device sends them, raw value): known values worked out by hand.
KNOWN = [
    ("float32", "ABCD", [0x47F1, 0x2000], 123456.0),
    ("float32", "CDAB", [0x2000, 0x47F1], 123456.0),
    ("float32", "BADC", [0xF147, 0x0020], 123456.0),
    ("float32", "DCBA", [0x0020, 0xF147], 123456.0),
    ("float32", "ABCD", [0x4224, 0x0000], 41.0),
    ("float32", "CDAB", [0x0000, 0xC1C8], -25.0),
    ("float64", "ABCD", [0x40FE, 0x2400, 0x0000, 0x0000], 123456.0),
    ("float64", "CDAB", [0x0000, 0x0000, 0x2400, 0x40FE], 123456.0),
    ("float64", "BADC", [0xFE40, 0x0024, 0x0000, 0x0000], 123456.0),
    ("float64", "DCBA", [0x0000, 0x0000, 0x0024, 0xFE40], 123456.0),
    ("int16", "ABCD", [0x01A2], 418.0),
    ("int16", "CDAB", [0xFF9C], -100.0),
    ("int16", "BADC", [0xA201], 418.0),
    ("int16", "DCBA", [0x9CFF], -100.0),
    ("uint16", "ABCD", [0xFF9C], 65436.0),
    ("uint16", "CDAB", [0x1234], 4660.0),
    ("uint16", "BADC", [0x3412], 4660.0),
    ("uint16", "DCBA", [0x3412], 4660.0),
    ("int32", "ABCD", [0xFFFE, 0x1DC0], -123456.0),
    ("int32", "CDAB", [0x1DC0, 0xFFFE], -123456.0),
    ("int32", "BADC", [0xFEFF, 0xC01D], -123456.0),
    ("int32", "DCBA", [0xC01D, 0xFEFF], -123456.0),
    ("uint32", "ABCD", [0x0001, 0xE240], 123456.0),
    ("uint32", "CDAB", [0xE240, 0x0001], 123456.0),
    ("uint32", "BADC", [0x0100, 0x40E2], 123456.0),
    ("uint32", "DCBA", [0x40E2, 0x0100], 123456.0),
]


@pytest.mark.parametrize(("dtype", "order", "registers", "value"), KNOWN)
def test_decode_known_values(dtype: str, order: str, registers: list[int], value: float) -> None:
    assert decode_value(registers, dtype, order) == value


@pytest.mark.parametrize(("dtype", "order", "registers", "value"), KNOWN)
def test_encode_known_values(dtype: str, order: str, registers: list[int], value: float) -> None:
    assert encode_value(value, dtype, order) == registers


def test_every_type_and_byte_order_is_covered() -> None:
    assert {(d, o) for d, o, _, _ in KNOWN} == {(d, o) for d in DATA_TYPES for o in BYTE_ORDERS}


def test_wrong_register_count_is_an_error() -> None:
    with pytest.raises(ValueError, match="float32 needs 2 registers"):
        decode_value([1, 2, 3], "float32", "ABCD")


_VALUES = {
    "int16": st.integers(-32768, 32767),
    "uint16": st.integers(0, 65535),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "uint32": st.integers(0, 2**32 - 1),
    "float32": st.floats(width=32, allow_nan=False),
    "float64": st.floats(allow_nan=False),
}


@given(data=st.data(), dtype=st.sampled_from(DATA_TYPES), order=st.sampled_from(BYTE_ORDERS))
def test_encode_then_decode_round_trips(data: st.DataObject, dtype: str, order: str) -> None:
    value = data.draw(_VALUES[dtype])
    registers = encode_value(value, dtype, order)
    assert len(registers) == REGISTER_WIDTH[dtype]
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert decode_value(registers, dtype, order) == value


def _point(**kw: object) -> Point:
    base: dict[str, object] = {"quantity": "supply_temp", "address": 0}
    base.update(kw)
    return Point(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("point", "registers", "value", "fault"),
    [
        (_point(type="int16", scale=0.1), [418], 41.8, None),
        (_point(type="int16", scale=0.1, offset=-40.0), [900], 50.0, None),
        (_point(type="uint16", scale=0.01, quantity="supply_pressure"), [45], 0.45, None),
        (_point(type="float32", byte_order="CDAB"), [0x0000, 0x4224], 41.0, None),
        # broken probes: the PLC's sentinels are flagged, never stored as temperatures
        (_point(type="int16", scale=0.1), [32767], 3276.7, "sentinel"),
        (_point(type="int16", scale=0.1), [(-32768) & 0xFFFF], -3276.8, "sentinel"),
        (_point(type="int16"), [(-999) & 0xFFFF], -999.0, "sentinel"),
        (_point(type="int16", scale=0.1, quantity="flow"), [(-999) & 0xFFFF], -99.9, "sentinel"),
        (_point(type="float32"), encode_value(-999.0, "float32", "ABCD"), -999.0, "sentinel"),
        (_point(type="float32"), encode_value(850.0, "float32", "ABCD"), 850.0, "sentinel"),
        (_point(type="int16", scale=0.1), [8500], 850.0, "sentinel"),
        (_point(type="uint16", quantity="flow"), [65535], 65535.0, "sentinel"),
        # 850 is only a sentinel for temperatures: 850 kW is a plausible heat power
        (_point(type="float32", quantity="heat_power"), encode_value(850.0, "float32", "ABCD"), 850.0, None),
        # physical range: water 0..130 °C, outdoor -50..45 °C
        (_point(type="int16", scale=0.1), [1400], 140.0, "out_of_range"),
        (_point(type="int16", scale=0.1), [(-5) & 0xFFFF], -0.5, "out_of_range"),
        (_point(type="int16", scale=0.1), [1300], 130.0, None),
        (_point(type="int16", scale=0.1, quantity="outdoor_temp"), [(-300) & 0xFFFF], -30.0, None),
        (_point(type="int16", scale=0.1, quantity="outdoor_temp"), [(-510) & 0xFFFF], -51.0, "out_of_range"),
        (_point(type="int16", scale=0.1, quantity="outdoor_temp"), [460], 46.0, "out_of_range"),
        (_point(type="int16", quantity="flow"), [(-5) & 0xFFFF], -5.0, "out_of_range"),  # issue 12: flow >= 0
    ],
)
def test_decode_point(point: Point, registers: list[int], value: float, fault: str | None) -> None:
    got, got_fault = decode_point(point, registers)
    assert got == pytest.approx(value)
    assert got_fault == fault


@pytest.mark.parametrize(
    ("bits", "fault"),
    [(0x7FC00000, "nan"), (0x7F800000, "inf"), (0xFF800000, "inf")],
)
def test_nan_and_infinities_are_flagged(bits: int, fault: str) -> None:
    registers = [bits >> 16, bits & 0xFFFF]
    value, got = decode_point(_point(type="float32", scale=0.5, offset=1.0), registers)
    assert got == fault
    assert not math.isfinite(value)


def test_check_value_good_value() -> None:
    assert check_value("supply_temp", 41.0, "float32", 41.0) is None


# ----------------------------------------------------------------------------------------------------
# Read plans: golden cases, one folder each (config.toml -> expected.txt, one describe() line per request)

CASES = sorted(p.name for p in READPLANS.iterdir() if p.is_dir())


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 5


@pytest.mark.parametrize("case", CASES)
def test_read_plan_golden(case: str) -> None:
    folder = READPLANS / case
    config = parse_config_text(
        (folder / "config.toml").read_text(), str(folder / "config.toml"), require_influxdb=False
    )
    station = config.stations[0]
    plan = plan_reads(station)
    got = [r.describe() for r in plan]
    expected = (folder / "expected.txt").read_text().splitlines()
    assert got == expected
    # every Modbus point is served exactly once, inside its request, within the limit
    served = [p for r in plan for p in r.points]
    assert sorted(map(id, served)) == sorted(map(id, station.modbus_points))
    assert station.modbus is not None
    for r in plan:
        assert r.count <= max(125, *(p.width for p in r.points))
        for p, off in zip(r.points, r.offsets, strict=True):
            assert p.address == r.start + off
            assert off + p.width <= r.count


def test_plan_without_modbus_is_empty() -> None:
    config = parse_config_text('[[stations]]\nid = "s"\n', require_influxdb=False)
    assert plan_reads(config.stations[0]) == ()


def test_function_codes_are_reads_only() -> None:
    config = parse_config_text((READPLANS / "holding_and_input" / "config.toml").read_text(), require_influxdb=False)
    assert [r.function_code for r in plan_reads(config.stations[0])] == [3, 4]


# ----------------------------------------------------------------------------------------------------
# The hot-path decoder agrees with decode_point


def test_request_decoder_matches_decode_point() -> None:
    config = parse_config_text(
        """
[[stations]]
id = "s"
[stations.modbus]
port = 5020
byte_order = "CDAB"
[[stations.points]]
quantity = "supply_temp"
address = 0
[[stations.points]]
quantity = "return_temp"
address = 2
type = "int16"
scale = 0.1
[[stations.points]]
quantity = "flow"
address = 5
type = "float64"
byte_order = "DCBA"
[[stations.points]]
quantity = "heat_power"
address = 9
type = "uint32"
byte_order = "ABCD"
""",
        require_influxdb=False,
    )
    station = config.stations[0]
    (request,) = plan_reads(station)
    values = {"supply_temp": 51.5, "return_temp": 420, "flow": 12.25, "heat_power": 70000}
    registers = [0] * request.count
    for p, off in zip(request.points, request.offsets, strict=True):
        registers[off : off + p.width] = encode_value(values[p.quantity], p.type, p.byte_order)
    decoded = RequestDecoder(request).decode_registers(registers)
    for p, value, fault in decoded:
        off = request.offsets[request.points.index(p)]
        assert (value, fault) == decode_point(p, registers[off : off + p.width])
    assert [v for _, v, _ in decoded] == pytest.approx([51.5, 42.0, 12.25, 70000.0])
    with pytest.raises(ValueError, match="expected 22 bytes"):
        RequestDecoder(request).decode_bytes(struct.pack(">2H", 1, 2))


def test_automatic_jitter_is_small_for_small_sites_and_spreads_large_ones() -> None:
    from stationmon.adapters.modbus import automatic_jitter

    assert automatic_jitter(10.0, 12) == 1.0
    assert automatic_jitter(2.0, 12) == 0.2
    assert automatic_jitter(10.0, 5000) == 5.0
    assert automatic_jitter(10.0, 10000) == 10.0
    assert automatic_jitter(10.0, 50000) == 10.0  # never past the interval


# ----------------------------------------------------------------------------------------------------
# Register notation: Modicon strings and address_base


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("40001", ("holding", 0)),
        ("40101", ("holding", 100)),
        ("49999", ("holding", 9998)),
        ("30001", ("input", 0)),
        ("30008", ("input", 7)),
        ("400001", ("holding", 0)),
        ("400101", ("holding", 100)),
        ("465536", ("holding", 65535)),
        ("300001", ("input", 0)),
        ("310001", ("input", 10000)),
    ],
)
def test_modicon_notation(text: str, expected: tuple[str, int]) -> None:
    assert parse_modicon(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("40000", "count from 1 (40001 is the first)"),
        ("400000", "count from 1 (400001 is the first)"),
        ("465537", "past the last register (465536"),
        ("00001", "names coils"),
        ("10001", "names discrete inputs"),
        ("20001", "register type 2 is unknown"),
        ("101", "is not Modicon notation"),
        ("4000001", "is not Modicon notation"),
        ("4x101", "is not Modicon notation"),
        ("40 01", "is not Modicon notation"),
        ("４0101", "is not Modicon notation"),  # a full-width digit is a digit to str.isdigit
        ("", "is not Modicon notation"),
    ],
)
def test_bad_modicon_notation(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_modicon(text)


def _points(points: str, modbus: str = "") -> tuple[object, ...]:
    text = f'[[stations]]\nid = "s"\n[stations.modbus]\nport = 5020\n{modbus}\n{points}'
    return parse_config_text(text, require_influxdb=False).stations[0].points


def test_modicon_implies_the_register_and_address_base_shifts_integers() -> None:
    points = _points(
        """
[[stations.points]]
quantity = "supply_temp"
address = "30101"
[[stations.points]]
quantity = "return_temp"
address = "40101"
register = "holding"
[[stations.points]]
quantity = "flow"
address = 1
register = "input"
""",
        "address_base = 1",
    )
    got = [(p.register, p.address, p.address_written) for p in points]  # type: ignore[attr-defined]
    assert got == [("input", 100, '"30101"'), ("holding", 100, '"40101"'), ("input", 0, "1")]
    # address_base 0 (the default): the written integer is the protocol address
    (plain,) = _points('[[stations.points]]\nquantity = "flow"\naddress = 0')
    assert (plain.address, plain.address_written) == (0, "")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("point", "modbus", "problem"),
    [
        ('address = "40101"\nregister = "input"', "", "points[0].register: 'input' contradicts address \"40101\""),
        ('address = "40000"', "", "points[0].address: '40000': Modicon numbers count from 1"),
        ('address = "00017"', "", "points[0].address: '00017' names coils"),
        ('address = "abc"', "", "points[0].address: 'abc' is not Modicon notation"),
        ("address = 1.5", "", 'points[0].address: expected an integer or Modicon notation such as "40101", got 1.5'),
        (
            "address = 0",
            "address_base = 1",
            "points[0].address: 0 is out of range (expected 1..65536 with address_base = 1)",
        ),
        ("address = 65536", "", "points[0].address: 65536 is out of range (expected 0..65535)"),
        ("address = 1", "address_base = 2", "modbus.address_base: 2 is out of range (expected 0..1)"),
    ],
)
def test_bad_addresses_are_config_errors_with_the_key(point: str, modbus: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        _points(f'[[stations.points]]\nquantity = "flow"\n{point}', modbus)
    (line,) = info.value.problems  # one problem, at the key, and nothing else
    assert line.startswith(f"<config>: stations[0].{problem}"), line


def test_timeout_defaults_to_the_interval_when_shorter() -> None:
    text = '[[stations]]\nid = "s"\n[stations.modbus]\nport = 5020\ninterval = "{}"\n'
    short = parse_config_text(text.format("1s"), require_influxdb=False)
    assert short.stations[0].modbus.timeout_s == 1.0  # type: ignore[union-attr]
    assert any("modbus.timeout: not set; using 1s" in n for n in short.notices)
    long = parse_config_text(text.format("10s"), require_influxdb=False)
    assert long.stations[0].modbus.timeout_s == 2.0  # type: ignore[union-attr]
    assert not any("modbus.timeout" in n for n in long.notices)
    with pytest.raises(ConfigError, match=r"timeout: 3s is longer than the interval \(1s\)"):
        parse_config_text(text.format("1s") + 'timeout = "3s"\n', require_influxdb=False)


def test_check_config_shows_addresses_as_written_and_gap_notes() -> None:
    config = parse_config_text(
        (READPLANS / "modicon_and_base" / "config.toml").read_text()
        + '[[stations.points]]\nquantity = "return_temp"\naddress = "40021"\n',
        require_influxdb=False,
    )
    text = describe_config(config)
    assert "address_base=1" in text
    assert 'point primary_supply_temp: holding 10 (as written: "40011") float32' in text
    assert "point primary_return_temp: holding 12 (as written: 13, address_base = 1) float32" in text
    assert 'point outdoor_temp: input 0 (as written: "300001") int16' in text
    assert "point flow: input 2 (as written: 3, address_base = 1) float32" in text
    assert "    holding 10..21 (12 registers): primary_supply_temp, primary_return_temp, return_temp" in text
    assert "      note: also reads unused holding 14..19; a device that refuses them (exception 2 or 3)" in text
    assert "      note: also reads unused input 1" in text


# ----------------------------------------------------------------------------------------------------
# Strict devices: splitting a refused request


def _request(points: str, max_gap: int = 10) -> ReadRequest:
    text = f'[[stations]]\nid = "s"\n[stations.modbus]\nport = 5020\nmax_gap = {max_gap}\n{points}'
    (request,) = plan_reads(parse_config_text(text, require_influxdb=False).stations[0])
    return request


GAPPED = """
[[stations.points]]
quantity = "supply_temp"
address = 100
[[stations.points]]
quantity = "supply_pressure"
address = 104
type = "uint16"
[[stations.points]]
quantity = "flow"
address = 105
[[stations.points]]
quantity = "heat_power"
address = 110
type = "float64"
"""


def test_gaps_of_a_request() -> None:
    request = _request(GAPPED)
    assert (request.start, request.count) == (100, 14)
    assert request.gaps == ((102, 103), (107, 109))
    assert request.span == "holding 100..113"
    contiguous = _request('[[stations.points]]\nquantity = "flow"\naddress = 5')
    assert contiguous.gaps == ()
    assert contiguous.span == "holding 5..6 (flow)"


def test_split_request_into_gap_free_runs_then_single_points() -> None:
    request = _request(GAPPED)
    runs = split_request(request)
    assert [(r.start, r.count, [p.quantity for p in r.points]) for r in runs] == [
        (100, 2, ["supply_temp"]),
        (104, 3, ["supply_pressure", "flow"]),
        (110, 4, ["heat_power"]),
    ]
    assert all(r.gaps == () for r in runs)
    singles = split_request(runs[1])
    assert [(r.start, r.count, r.offsets) for r in singles] == [(104, 1, (0,)), (105, 2, (0,))]
    # a single point cannot be split: it fails alone
    assert split_request(singles[0]) == [singles[0]]


@given(
    st.lists(
        st.tuples(st.integers(0, 200), st.sampled_from(["int16", "float32", "float64"])),
        min_size=1,
        max_size=12,
        unique_by=lambda t: t[0],
    ),
    st.integers(0, 20),
)
def test_split_request_keeps_every_point_at_its_address(points: list[tuple[int, str]], max_gap: int) -> None:
    # non-overlapping points at random addresses: every piece of every split serves each point once, in place
    taken: set[int] = set()
    kept = []
    for address, dtype in sorted(points):
        span = set(range(address, address + REGISTER_WIDTH[dtype]))
        if not span & taken:
            taken |= span
            kept.append(Point(quantity=f"q{address}", address=address, type=dtype))
    station = Station(id="s", modbus=ModbusLink(max_gap=max_gap), points=tuple(kept))
    for request in plan_reads(station):
        pieces = split_request(request)
        assert [p for r in pieces for p in r.points] == list(request.points)
        for piece in pieces:
            assert piece.register == request.register
            assert piece.start >= request.start and piece.end <= request.end
            for p, off in zip(piece.points, piece.offsets, strict=True):
                assert p.address == piece.start + off and off + p.width <= piece.count
            assert len(pieces) == 1 or piece.gaps == () or len(piece.points) == 1
        if len(pieces) > 1 and not request.gaps:
            assert all(len(piece.points) == 1 for piece in pieces)
