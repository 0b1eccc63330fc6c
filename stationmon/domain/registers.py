"""Modbus registers, pure: addresses, read planning, value decoding (and encoding, for the simulator), fault flags.

Addresses: the plan speaks zero-based protocol addresses. Manuals often write Modicon notation, a
register type digit and a one-based number: "40101" is holding register 100, "30001" input register 0;
the six-digit form ("400101") reaches the whole 0..65535 range.

Strict devices: the plan fills gaps of up to `max_gap` registers, which a device that does not map
them refuses (exception 2 or 3). `split_request` says how to read such a request instead: its gap-free
runs, then its single points.

Byte orders name the four bytes of a 32-bit value as the device sends them, A being the most
significant: ABCD is big endian, CDAB swaps the 16-bit words (the common "word swap" of PLCs), BADC
swaps the bytes inside each word, DCBA is little endian. For 64-bit values the same rule applies to
all four words (CDAB: word order reversed; BADC: bytes swapped in each word; DCBA: little endian).
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from stationmon.domain.mbap import MAX_REGISTERS
from stationmon.domain.plant import Point, Station
from stationmon.domain.vocabulary import (
    PLAUSIBLE_RANGES,
    QUANTITIES,
    RAW_SENTINELS,
    REGISTER_WIDTH,
    SENTINEL_TOLERANCE,
    TEMPERATURE_SENTINELS,
    VALUE_SENTINELS,
)

__all__ = [
    "FUNCTION_CODES",
    "ReadRequest",
    "RequestDecoder",
    "check_value",
    "decode_point",
    "decode_value",
    "encode_value",
    "parse_modicon",
    "plan_reads",
    "point_label",
    "split_request",
]

# Only reads are ever sent: holding registers with FC 3, input registers with FC 4.
FUNCTION_CODES = {"holding": 3, "input": 4}
# Modicon notation's leading digit -> register type (0 coils and 1 discrete inputs are never read).
_MODICON_TYPES = {"4": "holding", "3": "input"}
_MODICON_NOT_READ = {"0": "coils", "1": "discrete inputs"}


def parse_modicon(text: str) -> tuple[str, int]:
    """(register type, zero-based protocol address) of a Modicon address; ValueError says what is wrong.

    "40101" -> ("holding", 100), "30001" -> ("input", 0), "400101" -> ("holding", 100).
    """
    example = '"40101" = holding 100, "30001" = input 0, "400101" = holding 100'
    if not text.isascii() or not text.isdigit() or len(text) not in (5, 6):
        raise ValueError(f"{text!r} is not Modicon notation ({example}); a protocol address is an integer")
    kind, number = text[0], int(text[1:])
    if kind in _MODICON_NOT_READ:
        what = _MODICON_NOT_READ[kind]
        raise ValueError(f"{text!r} names {what}: only 3xxxx input and 4xxxx holding registers are read")
    if kind not in _MODICON_TYPES:
        raise ValueError(f"{text!r}: Modicon register type {kind} is unknown ({example})")
    if number == 0:
        first = kind + "1".rjust(len(text) - 1, "0")
        raise ValueError(f"{text!r}: Modicon numbers count from 1 ({first} is the first)")
    if number > 0x10000:
        raise ValueError(f"{text!r} is past the last register ({kind}65536 = protocol address 65535)")
    return _MODICON_TYPES[kind], number - 1


_STRUCT_CODE = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}


def _reorder(data: bytes, byte_order: str) -> bytes:
    """Bytes as received (register by register, each big endian) -> big-endian bytes of the value."""
    if byte_order == "ABCD":
        return data
    if byte_order in ("CDAB", "DCBA"):
        data = b"".join(data[i : i + 2] for i in range(len(data) - 2, -1, -2))
    if byte_order in ("BADC", "DCBA"):
        swapped = bytearray(data)
        swapped[0::2], swapped[1::2] = data[1::2], data[0::2]
        data = bytes(swapped)
    return data


def decode_value(registers: Sequence[int], dtype: str, byte_order: str) -> float:
    """The raw value (before scale/offset) of `dtype` held in `registers` in `byte_order`."""
    width = REGISTER_WIDTH[dtype]
    if len(registers) != width:
        raise ValueError(f"{dtype} needs {width} registers, got {len(registers)}")
    data = _reorder(struct.pack(f">{width}H", *registers), byte_order)
    return float(struct.unpack(">" + _STRUCT_CODE[dtype], data)[0])


def encode_value(value: float, dtype: str, byte_order: str) -> list[int]:
    """The registers a device sends for raw `value` (the inverse of decode_value; ints are rounded)."""
    width = REGISTER_WIDTH[dtype]
    code = _STRUCT_CODE[dtype]
    packed = struct.pack(">" + code, value if code in "fd" else round(value))
    # every reordering is its own inverse
    return list(struct.unpack(f">{width}H", _reorder(packed, byte_order)))


# Every sentinel is at least this far from zero: most values are judged by one comparison.
_SENTINEL_FLOOR = min(abs(s) for s in VALUE_SENTINELS + TEMPERATURE_SENTINELS) - SENTINEL_TOLERANCE


def _near(value: float, sentinels: tuple[float, ...]) -> bool:
    return abs(value) >= _SENTINEL_FLOOR and any(abs(value - s) < SENTINEL_TOLERANCE for s in sentinels)


def check_value(quantity: str, raw: float, dtype: str, value: float) -> str | None:
    """Why a decoded value cannot be trusted ("nan", "inf", "sentinel", "out_of_range"), or None."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf"
    if raw in RAW_SENTINELS[dtype] or _near(value, VALUE_SENTINELS):
        return "sentinel"
    known = QUANTITIES.get(quantity)
    if known is not None and known.temperature and _near(value, TEMPERATURE_SENTINELS):
        return "sentinel"
    limits = PLAUSIBLE_RANGES.get(quantity)
    if limits is not None and not limits[0] <= value <= limits[1]:
        return "out_of_range"
    return None


def decode_point(point: Point, registers: Sequence[int]) -> tuple[float, str | None]:
    """The point's value (raw * scale + offset) and its fault reason, or None for a good value."""
    raw = decode_value(registers, point.type, point.byte_order)
    value = raw * point.scale + point.offset if math.isfinite(raw) else raw
    return value, check_value(point.quantity, raw, point.type, value)


def point_label(point: Point) -> str:
    """How a point is named in plans and logs: loop.quantity[sensor]."""
    loop = f"{point.loop}." if point.loop else ""
    sensor = f"[{point.sensor}]" if point.sensor else ""
    return f"{loop}{point.quantity}{sensor}"


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read of `count` registers from `start`; `points[i]` starts `offsets[i]` registers in."""

    register: str  # "holding" or "input"
    start: int
    count: int
    points: tuple[Point, ...]
    offsets: tuple[int, ...]

    @property
    def function_code(self) -> int:
        """3 for holding registers, 4 for input registers."""
        return FUNCTION_CODES[self.register]

    @property
    def end(self) -> int:
        """The last register read (inclusive)."""
        return self.start + self.count - 1

    @property
    def span(self) -> str:
        """Where it reads, for logs: "holding 100..113", or "holding 104..105 (sec1.flow)" for one point."""
        where = f"{self.register} {self.start}..{self.end}"
        return f"{where} ({point_label(self.points[0])})" if len(self.points) == 1 else where

    @property
    def gaps(self) -> tuple[tuple[int, int], ...]:
        """The register ranges (first, last) read only to fill the gaps between its points."""
        out = []
        covered = self.start
        for p, off in zip(self.points, self.offsets, strict=True):
            if self.start + off > covered:
                out.append((covered, self.start + off - 1))
            covered = max(covered, self.start + off + p.width)
        return tuple(out)

    def describe(self) -> str:
        """One line for check-config: "holding 100..113 (14 registers): sec1.supply_temp, ..."."""
        noun = "register" if self.count == 1 else "registers"
        names = ", ".join(point_label(p) for p in self.points)
        return f"{self.register} {self.start}..{self.end} ({self.count} {noun}): {names}"


def _group(points: list[Point], register: str, max_count: int, max_gap: int) -> list[ReadRequest]:
    requests: list[ReadRequest] = []
    group: list[Point] = []
    start = end = 0  # end: one past the last register of the group

    def flush() -> None:
        if group:
            offsets = tuple(p.address - start for p in group)  # type: ignore[operator]
            requests.append(ReadRequest(register, start, end - start, tuple(group), offsets))

    for p in points:
        assert p.address is not None
        p_end = p.address + p.width
        if group and p.address - end <= max_gap and max(end, p_end) - start <= max_count:
            group.append(p)
            end = max(end, p_end)
            continue
        flush()
        group = [p]
        start, end = p.address, p_end
    flush()
    return requests


def _request_of(register: str, points: Sequence[Point]) -> ReadRequest:
    addresses = [p.address or 0 for p in points]  # every planned point has one
    start = min(addresses)
    end = max(a + p.width for a, p in zip(addresses, points, strict=True))
    return ReadRequest(register, start, end - start, tuple(points), tuple(a - start for a in addresses))


def split_request(request: ReadRequest) -> list[ReadRequest]:
    """What to read instead of `request` when the device refused it (exception 2 or 3).

    Its gap-free runs if it fills gaps; its single points if it is one run of several points; the
    request itself if it reads a single point (nothing smaller can be tried).
    """
    if len(request.points) == 1:
        return [request]
    if not request.gaps:
        return [_request_of(request.register, [p]) for p in request.points]
    runs: list[list[Point]] = []
    covered = -1
    for p, off in zip(request.points, request.offsets, strict=True):
        if runs and request.start + off <= covered:
            runs[-1].append(p)
        else:
            runs.append([p])
        covered = max(covered, request.start + off + p.width)
    return [_request_of(request.register, run) for run in runs]


def plan_reads(station: Station) -> tuple[ReadRequest, ...]:
    """Group a station's Modbus points into as few reads as its ModbusLink allows.

    Points at most `max_gap` registers apart share a request (the gap is read and ignored); a point
    wider than the limit still gets one request of its width.
    """
    m = station.modbus
    if m is None:
        return ()
    max_count = min(m.max_registers_per_request, MAX_REGISTERS)
    plan: list[ReadRequest] = []
    for register in FUNCTION_CODES:
        points = sorted(
            (p for p in station.points if p.address is not None and p.register == register),
            key=lambda p: (p.address, p.width),
        )
        if m.one_request_per_point:
            plan.extend(ReadRequest(register, p.address, p.width, (p,), (0,)) for p in points)  # type: ignore[arg-type]
        else:
            plan.extend(_group(points, register, max_count, m.max_gap))
    return tuple(plan)


# Shared by every decoder: thousands of stations, a handful of formats.
_STRUCTS = {dtype: struct.Struct(">" + code) for dtype, code in _STRUCT_CODE.items()}


class RequestDecoder:
    """Decodes one ReadRequest's response into (point, value, fault) triples.

    Use `for_request`: stations with the same register map (one PLC program) share one decoder.
    """

    __slots__ = ("_fields", "request")

    def __init__(self, request: ReadRequest) -> None:
        self.request = request
        self._fields = [
            (p, 2 * off, 2 * p.width, _STRUCTS[p.type], p.byte_order, p.scale, p.offset, p.quantity, p.type)
            for p, off in zip(request.points, request.offsets, strict=True)
        ]

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def for_request(request: ReadRequest) -> RequestDecoder:
        """The (shared) decoder for this request."""
        return RequestDecoder(request)

    def decode_bytes(self, data: bytes) -> list[tuple[Point, float, str | None]]:
        """`data`: the response's register bytes as sent (2 * count bytes)."""
        if len(data) != 2 * self.request.count:
            raise ValueError(f"expected {2 * self.request.count} bytes, got {len(data)}")
        out = []
        for point, start, size, fmt, order, scale, offset, quantity, dtype in self._fields:
            if order == "ABCD":
                raw = float(fmt.unpack_from(data, start)[0])
            else:
                raw = float(fmt.unpack(_reorder(data[start : start + size], order))[0])
            value = raw * scale + offset if math.isfinite(raw) else raw
            out.append((point, value, check_value(quantity, raw, dtype, value)))
        return out

    def decode_registers(self, registers: Sequence[int]) -> list[tuple[Point, float, str | None]]:
        """Same as decode_bytes, from register values (what pymodbus returns)."""
        return self.decode_bytes(struct.pack(f">{len(registers)}H", *registers))
