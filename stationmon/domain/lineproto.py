"""InfluxDB line protocol: escaping, one line per point, and the three stationmon measurements.

Newlines cannot appear inside any element, so they are written as (escaped) spaces. InfluxDB 1.x has
no escape for a backslash before a separator, so a trailing backslash is written as an escaped space,
the nearest value it can store. Empty tag values are omitted (InfluxDB rejects them); tags are sorted.
Times are Unix seconds in, integers in the write precision ("ms" by default) out.

Two telemetry points of one series and one timestamp are one point to InfluxDB (the later overwrites).
That is right for a payload's own time (a resent reading is the same reading) and wrong for readings
stamped at receipt: a broker delivering a queued burst of plain readings within a millisecond would
have them merge. So a `received` reading is written strictly after the series' previous received
reading, one unit of the write precision later if need be (a burst of 18 in 10 ms at "ms" lands on 18
distinct milliseconds, in order). A clock stepped back by more than a minute is followed, not bumped past.
"""

from __future__ import annotations

import itertools
import math
import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from stationmon.domain.model import AlertEvent, Reading
from stationmon.domain.plant import Station
from stationmon.domain.vocabulary import STATUS_NAMES, VERDICTS

__all__ = [
    "LOOP_STATUS_DECIMALS",
    "LOOP_STATUS_FLAGS",
    "LOOP_STATUS_FLOATS",
    "PRECISION_FACTORS",
    "LineBlock",
    "LoopStatusEncoder",
    "TelemetryEncoder",
    "encode_alert_event",
    "encode_line",
    "encode_loop_status",
    "escape_measurement",
    "escape_string_value",
    "escape_tag",
    "format_decimal",
    "format_field_value",
    "to_precision",
]

PRECISION_FACTORS: Mapping[str, int] = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_BUMP_WINDOW_S = 60  # how far ahead of its receive time a burst may push a reading's timestamp
_MAX_TRACKED_SERIES = 1_000_000  # received-time series remembered (the MQTT series limits keep it far lower)

_MEASUREMENT_TABLE = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\ ", "\r": "\\ "})
_TAG_TABLE = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\ ", "\r": "\\ "})
_STRING_TABLE = str.maketrans({'"': '\\"', "\\": "\\\\", "\n": " ", "\r": " "})
_SPECIAL_MEASUREMENT = frozenset(", \n\r\\")
_SPECIAL_TAG = frozenset(",= \n\r\\")


def _fix_trailing_backslash(escaped: str) -> str:
    # A trailing backslash would escape the separator that follows it (1.x has no escape for '\').
    return escaped + " " if escaped.endswith("\\") else escaped


def escape_measurement(name: str) -> str:
    """A measurement name escaped for line protocol (comma, space)."""
    if _SPECIAL_MEASUREMENT.isdisjoint(name):
        return name
    return _fix_trailing_backslash(name.translate(_MEASUREMENT_TABLE))


def escape_tag(text: str) -> str:
    """A tag key, tag value or field key escaped for line protocol (comma, equals sign, space)."""
    if _SPECIAL_TAG.isdisjoint(text):
        return text
    return _fix_trailing_backslash(text.translate(_TAG_TABLE))


def escape_string_value(text: str) -> str:
    """A string field value, quoted, with double quotes and backslashes escaped."""
    return '"' + text.translate(_STRING_TABLE) + '"'


def format_field_value(value: float | bool | str | int) -> str:
    """One field value: float as shortest repr, int with `i`, bool, quoted string; ValueError for NaN/inf."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if value - value != 0.0:  # NaN or ±inf
            raise ValueError(f"line protocol cannot store {value!r}")
        return repr(value)
    if isinstance(value, str):
        return escape_string_value(value)
    raise TypeError(f"unsupported field value type {type(value).__name__}")


def to_precision(ts_s: float, precision: str = "ms") -> int:
    """Unix seconds (float) to an integer timestamp in `precision` (s, ms, us, ns), rounded."""
    return round(ts_s * PRECISION_FACTORS[precision])


class LineBlock:
    """Lines as one buffer of UTF-8 bytes, each line followed by "\n", and where each ends: many lines
    handed on (the writer batches, spools and sends them) without a Python object per line.

    Line i is `data[start:ends[0]]` (i = 0) or `data[ends[i-1]:ends[i]]`, its "\n" included; `ends` are
    offsets into `data`, so a slice shares both. `lines()` makes the str lines (the rare paths that
    need them: a rejected write, the dead-letter file)."""

    __slots__ = ("data", "ends", "start")

    def __init__(self, data: bytes | memoryview, ends: NDArray[np.int64], start: int = 0) -> None:
        self.data = memoryview(data).cast("B")
        self.ends = ends
        self.start = start

    @classmethod
    def from_lines(cls, lines: Sequence[str]) -> LineBlock:
        """These lines (no "\n" inside one) as a block; a lone surrogate is kept (`surrogatepass`)."""
        data = "".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass")
        sizes = np.fromiter(map(len, lines), np.int64, len(lines)) + 1
        if int(sizes.sum()) != len(data):  # not all ASCII: the lines' lengths in bytes
            sizes = np.array([len(line.encode("utf-8", "surrogatepass")) + 1 for line in lines], dtype=np.int64)
        return cls(data, np.cumsum(sizes))

    @classmethod
    def join(cls, blocks: Sequence[LineBlock]) -> LineBlock:
        """The lines of these blocks, in order, as one block (a copy unless there is one block)."""
        if len(blocks) == 1:
            return blocks[0]
        offsets = np.cumsum([0] + [b.end - b.start for b in blocks])
        ends = [b.ends - b.start + offset for b, offset in zip(blocks, offsets.tolist(), strict=False)]
        data = b"".join(b.data[b.start : b.end] for b in blocks)
        return cls(data, np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def end(self) -> int:
        """The offset just past the last line's "\n"."""
        return int(self.ends[-1]) if len(self.ends) else self.start

    def __getitem__(self, lines: slice) -> LineBlock:
        """Lines `lines.start` to `lines.stop` (a step is not supported), sharing the buffer."""
        begin, stop, step = lines.indices(len(self.ends))
        if step != 1:
            raise ValueError("a LineBlock slice has no step")
        stop = max(begin, stop)
        return LineBlock(self.data, self.ends[begin:stop], int(self.ends[begin - 1]) if begin else self.start)

    def body(self) -> bytes:
        """The lines' bytes, each followed by "\n" (an InfluxDB write body, a spool record's payload)."""
        return bytes(self.data[self.start : self.end])

    def lines(self) -> list[str]:
        """The lines as str, without their "\n"."""
        ends = self.ends.tolist()
        data = self.data
        return [bytes(data[a:b - 1]).decode("utf-8", "surrogatepass") for a, b in zip([self.start, *ends], ends, strict=False)]


def encode_line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, float | bool | str | int],
    ts_ms: int | None,
) -> str:
    """One line (no newline); `ts_ms` in the write precision, None for the server's time.

    Non-finite float fields are left out; ValueError if no field remains.
    """
    parts = [escape_measurement(measurement)]
    for key in sorted(tags):
        tag_value = tags[key]
        if tag_value:
            parts.append(f",{escape_tag(key)}={escape_tag(tag_value)}")
    field_parts = []
    for key, value in fields.items():
        if isinstance(value, float) and value - value != 0.0:
            continue
        field_parts.append(f"{escape_tag(key)}={format_field_value(value)}")
    if not field_parts:
        raise ValueError(f"a {measurement!r} point needs at least one field")
    parts.append(" ")
    parts.append(",".join(field_parts))
    if ts_ms is not None:
        parts.append(f" {ts_ms}")
    return "".join(parts)


class TelemetryEncoder:
    """Readings to `telemetry` lines, one per series and timestamp; each series' escaped tags are cached."""

    def __init__(
        self, stations: Sequence[Station], precision: str = "ms", *, max_tracked_series: int = _MAX_TRACKED_SERIES
    ) -> None:
        """`max_tracked_series`: received-time series remembered; a new one past it forgets them all."""
        if precision not in PRECISION_FACTORS:
            raise ValueError(f"unknown precision {precision!r}")
        self._factor = PRECISION_FACTORS[precision]
        self._max_tracked = max_tracked_series
        self._districts = {s.id: s.district for s in stations}
        self._companies = {s.id: s.company for s in stations}
        self._prefixes: dict[tuple[str, str | None, str | None, str], str] = {}
        self._keys: dict[str, tuple[str, str, str]] = {}
        # (station, loop, sensor, source, quantity) -> the last timestamp given to a received reading
        self._last_received: dict[tuple[str, str | None, str | None, str, str], int] = {}
        self._window = _BUMP_WINDOW_S * self._factor

    def _prefix(self, station: str, loop: str | None, sensor: str | None, source: str) -> str:
        tags = {
            "station": station,
            "district": self._districts.get(station, ""),
            "company": self._companies.get(station, ""),
            "source": source,
        }
        if loop:
            tags["loop"] = loop
        if sensor:
            tags["sensor"] = sensor
        prefix = "telemetry" + "".join(f",{escape_tag(k)}={escape_tag(tags[k])}" for k in sorted(tags) if tags[k])
        if len(self._prefixes) > 100_000:  # unknown series from MQTT: keep the cache bounded
            self._prefixes.clear()
        self._prefixes[(station, loop, sensor, source)] = prefix + " "
        return prefix + " "

    def _field_keys(self, quantity: str) -> tuple[str, str, str]:
        keys = self._keys.get(quantity)
        if keys is None:
            esc = escape_tag(quantity)
            keys = (esc + "=", esc + "_fault=", esc + "_raw=")
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[quantity] = keys
        return keys

    def _distinct(self, r: Reading, ts: int) -> int:
        """A received reading's timestamp, after the series' previous one (see the module docstring)."""
        key = (r.station, r.loop, r.sensor, r.source, r.quantity)
        last = self._last_received.get(key)
        if last is not None and last - self._window < ts <= last:
            ts = last + 1
        elif last is None and len(self._last_received) >= self._max_tracked:
            self._last_received.clear()
        self._last_received[key] = ts
        return ts

    def encode(self, readings: Sequence[Reading]) -> list[str]:
        """Encode a batch; readings of one series at one timestamp share a line (received ones never merge)."""
        factor = self._factor
        prefixes = self._prefixes
        keys_of = self._keys
        groups: dict[tuple[str, str | None, str | None, str, int], dict[str, str]] = {}
        for r in readings:
            ts = round(r.ts * factor)
            if r.received:
                ts = self._distinct(r, ts)
            gkey = (r.station, r.loop, r.sensor, r.source, ts)
            fields = groups.get(gkey)
            if fields is None:
                fields = groups[gkey] = {}
            keys = keys_of.get(r.quantity) or self._field_keys(r.quantity)
            value = r.value
            if r.fault is None and value - value == 0.0:
                fields[keys[0]] = repr(float(value))
                continue
            # A faulted (or non-finite) value is never stored as the quantity itself.
            reason = r.fault or ("nan" if value != value else "inf")
            fields[keys[1]] = escape_string_value(reason)
            if value - value == 0.0:
                fields[keys[2]] = repr(float(value))
        out = []
        for (station, loop, sensor, source, ts), fields in groups.items():
            prefix = prefixes.get((station, loop, sensor, source)) or self._prefix(station, loop, sensor, source)
            out.append(prefix + ",".join(k + v for k, v in fields.items()) + f" {ts}")
        return out


# float fields, left out where NaN (the sensor counts too: a loop without fresh sensors writes none)
LOOP_STATUS_FLOATS = (
    "required_supply_temp",
    "required_return_temp",
    "estimated_indoor_temp",
    "delta_t",
    "measured_indoor_temp",
    "indoor_sensors",
    "indoor_below_target",
    "indoor_below_refund",
)
LOOP_STATUS_FLAGS = ("beyond_design", "setback", "inspection_hour")  # boolean fields, always written
# loop_status floats are written rounded to this many decimals: 0.001 K, a hundredth of a sensor's 0.1 K
LOOP_STATUS_DECIMALS = 3
_COMPLIANT_FIELDS = ("", ",compliant=false", ",compliant=true")  # by compliant code + 1 (-1, 0, 1)
_VERDICT_FIELDS = tuple(f",verdict={escape_string_value(v)}" for v in VERDICTS)
_STATUS_FIELDS = tuple(f"status={escape_string_value(name)}" for name in STATUS_NAMES)
_SCALE = 10**LOOP_STATUS_DECIMALS
_TABLE_INTS = 1_000  # integer parts in the digit tables: 0 to 999 ("-999.999" fills the 8 bytes of a uint64)
_PIECE = 64  # bytes per piece of a line: the tags, the status, one float field, the rest (a long text: several)
_BLOCK_LINES = 512  # lines assembled at a time: a block's pieces (256 kB) stay in the CPU's cache
_CHUNK = 8_192  # floats formatted at a time
# `_assemble` writes the lines as a pickle of a list of str: protocol 4, an empty list, a mark; per line the
# BINUNICODE opcode "X", the length (4 bytes, little-endian) and the UTF-8 text; append them all, stop
_PICKLE_START = b"\x80\x04]("
_ITEM_HEAD = b"X\0\0\0\0"
_PICKLE_END = b"e."


def format_decimal(value: float) -> str:
    """A finite float as `loop_status` writes it: rounded to LOOP_STATUS_DECIMALS places (half to even, on the
    exact binary value, as `format` rounds), trailing zeros dropped but one kept ("45.25", "3.0", "850.0"),
    "0.0" for a negative value that rounds to zero."""
    text = f"{value:.{LOOP_STATUS_DECIMALS}f}".rstrip("0")
    if text.endswith("."):
        text += "0"
    return "0.0" if text == "-0.0" else text


def _digit_tables() -> tuple[
    NDArray[np.uint64], NDArray[np.uint64], NDArray[np.intp], NDArray[np.uint64], NDArray[np.intp]
]:
    """The texts of integer parts (index: the integer part, + _TABLE_INTS + 1 with a minus sign) and of
    decimals (index: the thousandths), each as a uint64 (first character in the lowest byte), with the
    integer part's length in bits (the shift that puts the decimals after it) and both lengths in bytes.
    Index _TABLE_INTS (and its negative): a value left out (NaN, ±inf, or too large for the tables): no
    text, and a length that makes the field's length negative (`_decimal_words` clips it to 0)."""
    ints = [str(i) for i in range(_TABLE_INTS)]
    ints = [*ints, "", *("-" + text for text in ints), ""]
    decimals = ["." + (f"{i:0{LOOP_STATUS_DECIMALS}d}".rstrip("0") or "0") for i in range(_SCALE)]
    int_words = np.array([int.from_bytes(t.encode(), "little") for t in ints], dtype="<u8")
    int_lengths = np.array([len(t) or -_PIECE for t in ints], dtype=np.intp)
    decimal_words = np.array([int.from_bytes(t.encode(), "little") for t in decimals], dtype="<u8")
    decimal_lengths = np.array([len(t) for t in decimals], dtype=np.intp)
    int_bits = (np.maximum(int_lengths, 0) * 8).astype(np.uint64)
    return int_words, int_bits, int_lengths, decimal_words, decimal_lengths


_INT_WORDS, _INT_BITS, _INT_LENGTHS, _DECIMAL_WORDS, _DECIMAL_LENGTHS = _digit_tables()


class LoopStatusEncoder:
    """`loop_status` lines (CONTRACT section 4) for a fixed list of loops, one line per loop per call.

    Column-wise, for 100,000 loops a tick (`_assemble` says how): a line is a few pieces (its tags, escaped
    once in `__init__`; its status; a float field per value; the rest: compliant, verdict, flags, interval
    and time, few forms, a table built per call); a float's text is made of two table entries by integer
    arithmetic (`_decimal_words`). Floats finite on few loops (the household sensor counts) are written
    in a second pass over those loops only, whose lines replace the first pass's.
    """

    def __init__(
        self, loops: Iterable[tuple[str, str, str]], precision: str = "ms", companies: Mapping[str, str] | None = None
    ) -> None:
        """`loops`: (station, district, loop) each, in the order `encode` takes their values; `companies`:
        the heating company of each station id (the `company` tag)."""
        if precision not in PRECISION_FACTORS:
            raise ValueError(f"unknown precision {precision!r}")
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
        # each line's pickle item starts with the opcode and its length, then the tags
        self._prefix = _Part(*_piece_table([_ITEM_HEAD + p.encode("utf-8", "surrogatepass") for p in self.prefixes]))

    def encode(
        self,
        ts_s: float,
        status: ArrayLike,
        compliant: ArrayLike,
        floats: Sequence[ArrayLike],
        verdict: ArrayLike | None = None,
        flags: Sequence[ArrayLike] | None = None,
        interval_s: float | None = None,
    ) -> list[str]:
        """One line per loop; `status` indexes into STATUS_NAMES, `compliant` 1/0/-1 (left out), `floats` one
        column per LOOP_STATUS_FLOATS name (the first ones at least; NaN left out), `verdict` indexes into
        VERDICTS, `flags` one column per LOOP_STATUS_FLAGS, `interval_s` the seconds each point stands for."""
        n = len(self.prefixes)
        codes = _column(status, np.intp, n, "status")
        tail_codes, tails = self._tails(ts_s, n, compliant, verdict, flags, interval_s)
        columns = [_column(values, np.float64, n, key) for key, values in zip(LOOP_STATUS_FLOATS, floats, strict=False)]
        if not n:
            return []
        batch = _Batch(self._prefix, codes, _Part(*_piece_table([t.encode() for t in tails]), tail_codes), columns)
        finite = [np.isfinite(values) for values in columns]
        sparse = [int(np.count_nonzero(f)) <= n // 4 for f in finite]
        lines = batch.lines(None, [k for k, few in enumerate(sparse) if not few])
        if any(sparse):
            rows = np.flatnonzero(np.logical_or.reduce([f for f, few in zip(finite, sparse, strict=True) if few]))
            for i, line in zip(rows.tolist(), batch.lines(rows, range(len(columns))), strict=True):
                lines[i] = line
        for i in np.flatnonzero(batch.too_large).tolist():  # a float too large for the digit tables
            fields = (f",{k}={format_decimal(v[i])}" for k, v in zip(LOOP_STATUS_FLOATS, columns, strict=False))
            lines[i] = self.prefixes[i] + _STATUS_FIELDS[codes[i]]
            lines[i] += "".join(f for f, ok in zip(fields, finite, strict=False) if ok[i]) + tails[tail_codes[i]]
        return lines

    def _tails(
        self,
        ts_s: float,
        n: int,
        compliant: ArrayLike,
        verdict: ArrayLike | None,
        flags: Sequence[ArrayLike] | None,
        interval_s: float | None,
    ) -> tuple[NDArray[np.intp], list[str]]:
        """What follows the floats (compliant, verdict, flags, interval_s, the time): its forms, and per loop
        the index of its form."""
        code = _column(compliant, np.intp, n, "compliant") + 1
        choices: list[tuple[str, ...]] = [_COMPLIANT_FIELDS]
        if verdict is not None:
            code = code * len(VERDICTS) + _column(verdict, np.intp, n, "verdict")
            choices.append(_VERDICT_FIELDS)
        if flags is not None:
            if len(flags) != len(LOOP_STATUS_FLAGS):
                raise ValueError(f"{len(flags)} flag columns for {len(LOOP_STATUS_FLAGS)} flags")
            for key, values in zip(LOOP_STATUS_FLAGS, flags, strict=True):
                code = code * 2 + _column(values, np.bool_, n, key)
                choices.append((f",{key}=false", f",{key}=true"))
        end = "" if interval_s is None else f",interval_s={float(interval_s)!r}"
        end += f" {to_precision(ts_s, self.precision)}"
        return code, ["".join(parts) + end for parts in itertools.product(*choices)]


def _column(values: ArrayLike, dtype: type[np.generic], n: int, name: str) -> NDArray[Any]:
    """One column as a flat array of n entries."""
    array = np.asarray(values, dtype=dtype).reshape(-1)
    if len(array) != n:
        raise ValueError(f"{name}: {len(array)} values for {n} loops")
    return array


@dataclass(frozen=True)
class _Part:
    """A piece of every line: row `index[i]` of `table` for line i (row i if `index` is None)."""

    table: NDArray[np.void]  # a text per row, zero-padded to a whole number of pieces
    lengths: NDArray[np.intp]  # per row of `table`
    index: NDArray[np.intp] | None = None

    def pick(self, rows: NDArray[np.intp] | None) -> _Part:
        """The part of these lines only (None: all)."""
        if rows is None:
            return self
        return _Part(self.table, self.lengths, rows if self.index is None else self.index[rows])


@dataclass(frozen=True)
class _FloatPart:
    """A float field of every line: `head` (`,key=`) then the value's text, `words[i]` (see `_decimal_words`)."""

    head: bytes
    words: NDArray[np.uint64]
    lengths: NDArray[np.intp]  # per line: the field's length, 0 where the value is left out


def _piece_table(texts: Sequence[bytes]) -> tuple[NDArray[np.void], NDArray[np.intp]]:
    """These texts zero-padded to a whole number of pieces (a numpy element each), and their lengths."""
    lengths = np.array([len(t) for t in texts], dtype=np.intp)
    width = -(-max(1, int(lengths.max(initial=0))) // _PIECE) * _PIECE
    return np.frombuffer(b"".join(t.ljust(width, b"\0") for t in texts), dtype=f"V{width}"), lengths


_STATUS = _Part(*_piece_table([field.encode() for field in _STATUS_FIELDS]))


class _Batch:
    """One call's lines: its tags, status and rest parts and float columns; `too_large` marks the lines with
    a finite float too large for the digit tables (the caller writes them itself)."""

    def __init__(self, prefix: _Part, codes: NDArray[np.intp], tail: _Part, columns: list[NDArray[np.float64]]):
        self.prefix, self.status, self.tail, self.columns = (
            prefix,
            _Part(_STATUS.table, _STATUS.lengths, codes),
            tail,
            columns,
        )
        self.too_large = np.zeros(len(codes), dtype=np.bool_)

    def lines(self, rows: NDArray[np.intp] | None, keys: Iterable[int]) -> list[str]:
        """The lines of these loops (None: all) with these float columns."""
        parts: list[_Part | _FloatPart] = [self.prefix.pick(rows), self.status.pick(rows)]
        for k in keys:
            part, too_large = _float_part(
                LOOP_STATUS_FLOATS[k], self.columns[k] if rows is None else self.columns[k][rows]
            )
            parts.append(part)
            self.too_large[slice(None) if rows is None else rows] |= too_large
        parts.append(self.tail.pick(rows))
        return _assemble(len(self.too_large) if rows is None else len(rows), parts)


def _float_part(key: str, values: NDArray[np.float64]) -> tuple[_FloatPart, NDArray[np.bool_]]:
    """The field `key` of these values, and where a finite value is too large for the digit tables; a chunk
    of values at a time (its temporaries stay in the CPU's cache)."""
    head = f",{key}=".encode()
    n = len(values)
    words, lengths, too_large = np.empty(n, dtype="<u8"), np.empty(n, dtype=np.intp), np.empty(n, dtype=np.bool_)
    for begin in range(0, n, _CHUNK):
        chunk = slice(begin, begin + _CHUNK)
        words[chunk], lengths[chunk], too_large[chunk] = _decimal_words(values[chunk], len(head))
    return _FloatPart(head, words, lengths), too_large


def _decimal_words(
    values: NDArray[np.float64], head: int
) -> tuple[NDArray[np.uint64], NDArray[np.intp], NDArray[np.bool_]]:
    """Each value's `format_decimal` text in a uint64 (first character in the lowest byte), its field's
    length (`head` bytes more; 0 where NaN, ±inf or too large for the tables), and where a finite value is
    too large for them."""
    scaled = _scaled(values)
    units = np.fmin(np.abs(scaled), _TABLE_INTS * _SCALE).astype(np.intp)  # NaN, ±inf: the limit too
    whole = units // _SCALE
    ints = whole + (scaled < 0.0) * (_TABLE_INTS + 1)  # -0.0 (a negative value rounded to zero) has no sign
    decimals = units - whole * _SCALE
    words = _INT_WORDS[ints] | (_DECIMAL_WORDS[decimals] << _INT_BITS[ints])
    lengths = np.maximum(_INT_LENGTHS[ints] + (_DECIMAL_LENGTHS + head)[decimals], 0)
    too_large = (whole == _TABLE_INTS) & np.isfinite(values)
    return words, lengths, too_large


def _scaled(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """values × 10**LOOP_STATUS_DECIMALS rounded half to even as `format` rounds: on the exact product.
    `np.rint` of the float product agrees but where the product was rounded to within an ulp of a half:
    those few (an exact half, such as 21.0625 K from a 1/16 K sensor, is not among them) go to `format`."""
    with np.errstate(over="ignore", invalid="ignore"):
        product = values * _SCALE
        scaled: NDArray[np.float64] = np.rint(product)
        near = np.flatnonzero(np.abs(product - scaled) >= 0.4999)
    if len(near):
        inexact = near[_product_error(values[near], product[near]) != 0.0]
        texts = (f"{v:.{LOOP_STATUS_DECIMALS}f}".replace(".", "") for v in values[inexact].tolist())
        scaled[inexact] = [float(text) for text in texts]
    return scaled


def _product_error(values: NDArray[np.float64], product: NDArray[np.float64]) -> NDArray[np.float64]:
    """The rounding error of `product` = values × 10**LOOP_STATUS_DECIMALS, exactly (Dekker's product:
    `values` split into halves of 26 bits, each times the scale exactly); 0.0 where it was exact."""
    split = values * 134_217_729.0  # 2**27 + 1
    high = split - (split - values)
    low = values - high
    error: NDArray[np.float64] = (high * _SCALE - product) + low * _SCALE
    return error


def _assemble(n: int, parts: Sequence[_Part | _FloatPart]) -> list[str]:
    """The n lines made of these parts, in order (the first: the tags, after the pickle item's head).

    The lines are written as a pickle of a list of str, which `pickle.loads` reads: it makes the str objects
    knowing their lengths (a `split` would look for the line ends; the pickle holds nothing but str: only
    this function writes it). A block of lines at a time, each line's pieces are put in a row of a block
    (`_Blocks`), then each piece is copied, as one numpy element of _PIECE bytes, to where it starts in the
    output: line after line, piece after piece, so a piece's padding lands where a later piece (of its
    line or of the next) starts, and that overwrites it (numpy assigns a fancy index's elements in their
    order). The output holds the lines' text and nothing else."""
    if not n:
        return []
    blocks = _Blocks(n, parts)
    total = len(_PICKLE_START) + sum(int(lengths.sum()) for lengths in blocks.lengths) + len(_PICKLE_END)
    out = np.empty(total + blocks.slots * _PIECE, dtype=np.uint8)
    # element i of `targets`: the _PIECE bytes from out[i] on (elements overlap)
    targets = np.ndarray((len(out) - _PIECE + 1,), dtype=f"V{_PIECE}", buffer=out, strides=(1,))
    pieces = blocks.block.view(targets.dtype).reshape(-1)
    end = len(_PICKLE_START)
    for begin in range(0, n, _BLOCK_LINES):
        starts, end = blocks.fill(slice(begin, min(n, begin + _BLOCK_LINES)), end)
        targets[starts] = pieces[: len(starts)]
    out[: len(_PICKLE_START)] = np.frombuffer(_PICKLE_START, dtype=np.uint8)
    out[end:total] = np.frombuffer(_PICKLE_END, dtype=np.uint8)
    decoded: list[str] = pickle.loads(out[:total].data)
    return decoded


class _Blocks:
    """`_assemble`'s lines, a block at a time: a row per line, a slot of _PIECE bytes per piece."""

    def __init__(self, n: int, parts: Sequence[_Part | _FloatPart]) -> None:
        self.parts = parts
        self.sizes = [1 if isinstance(p, _FloatPart) else p.table.dtype.itemsize // _PIECE for p in parts]
        self.first = list(itertools.accumulate(self.sizes, initial=0))
        self.slots = self.first.pop()
        self.block = np.empty((min(n, _BLOCK_LINES), self.slots * _PIECE), dtype=np.uint8)
        self.views = []  # where each part goes in the block
        for part, slot in zip(parts, self.first, strict=True):
            at = slot * _PIECE
            if isinstance(part, _FloatPart):  # the head, the same in every block, then the value
                self.block[:, at : at + len(part.head)] = np.frombuffer(part.head, dtype=np.uint8)
                self.views.append(self._column(np.dtype("<u8"), at + len(part.head)))
            else:
                self.views.append(self._column(part.table.dtype, at))
        self.item_lengths = self._column(np.dtype("<u4"), 1)  # after the pickle opcode that starts a line
        # each part's length per line
        self.lengths = [
            p.lengths if isinstance(p, _FloatPart) or p.index is None else p.lengths[p.index] for p in parts
        ]

    def _column(self, dtype: np.dtype[Any], offset: int) -> NDArray[Any]:
        """Bytes `offset` on of every row of the block, as one `dtype` element each."""
        block = self.block
        return np.ndarray((len(block),), dtype=dtype, buffer=block, offset=offset, strides=(block.shape[1],))

    def fill(self, lines: slice, end: int) -> tuple[NDArray[np.intp], int]:
        """Put these lines' pieces in the block, the first line starting at `end` in the output: where each
        piece starts in the output (line after line), and where the last line ends."""
        m = lines.stop - lines.start
        starts = np.empty((self.slots, m), dtype=np.intp)  # a row per slot: each written at once
        at = np.zeros(m, dtype=np.intp)  # where the next piece starts in its line
        for part, view, lengths, slot, size in zip(
            self.parts, self.views, self.lengths, self.first, self.sizes, strict=True
        ):
            if isinstance(part, _FloatPart):
                view[:m] = part.words[lines]
            else:
                view[:m] = part.table[lines if part.index is None else part.index[lines]]
            for chunk in range(size):  # a long text's later pieces start _PIECE bytes apart
                np.add(at, chunk * _PIECE, out=starts[slot + chunk])
            at += lengths[lines]
        self.item_lengths[:m] = at - len(_ITEM_HEAD)
        ends = np.cumsum(at)
        starts += ends - at + end
        return starts.T.reshape(-1), end + int(ends[-1])


def encode_loop_status(
    station: str,
    district: str,
    loop: str,
    ts_s: float,
    *,
    status: str,
    company: str = "",
    compliant: bool | None = None,
    required_supply_temp: float | None = None,
    required_return_temp: float | None = None,
    estimated_indoor_temp: float | None = None,
    delta_t: float | None = None,
    verdict: str | None = None,
    measured_indoor_temp: float | None = None,
    indoor_sensors: int = 0,
    indoor_below_target: int = 0,
    indoor_below_refund: int = 0,
    flags: Mapping[str, bool] | None = None,
    interval_s: float | None = None,
    precision: str = "ms",
) -> str:
    """One `loop_status` line, through `LoopStatusEncoder`; None or non-finite floats are left out, and the
    sensor counts where no sensor reports; `flags` by LOOP_STATUS_FLAGS name (all or none); `interval_s`:
    the seconds the point stands for (the evaluator's `evaluate_every`)."""
    counts = [float(c) if indoor_sensors else None for c in (indoor_sensors, indoor_below_target, indoor_below_refund)]
    values = (required_supply_temp, required_return_temp, estimated_indoor_temp, delta_t, measured_indoor_temp, *counts)
    floats = [[math.nan if v is None else float(v)] for v in values]
    code = -1 if compliant is None else int(compliant)
    encoder = LoopStatusEncoder([(station, district, loop)], precision, {station: company})
    verdicts = None if verdict is None else [VERDICTS.index(verdict)]
    columns = None if flags is None else [[flags[k]] for k in LOOP_STATUS_FLAGS]
    return encoder.encode(ts_s, [STATUS_NAMES.index(status)], [code], floats, verdicts, columns, interval_s)[0]


def encode_alert_event(event: AlertEvent, precision: str = "ms") -> str:
    """One `alert_events` line (CONTRACT section 4) for one alert transition, at `event.ts`."""
    fields: dict[str, float | bool | str | int] = {
        "state": event.state,
        "message": event.message,
        "alert_id": event.alert_id,
    }
    if event.value is not None:
        fields["value"] = float(event.value)
    if event.threshold is not None:
        fields["threshold"] = float(event.threshold)
    # how long the alert had been firing at this event: the time to acknowledge or to resolve, in one field
    fields["age_s"] = round(max(0.0, float(event.ts - event.since)), 3)
    return encode_line(
        "alert_events",
        {
            "station": event.station,
            "district": event.district,
            "company": event.company,
            "loop": event.loop or "",
            "rule": event.rule,
            "severity": event.severity,
        },
        fields,
        to_precision(event.ts, precision),
    )
