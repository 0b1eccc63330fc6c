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

import functools
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
        return cls(data, np.concatenate([np.zeros(0, dtype=np.int64), *ends]))

    def __len__(self) -> int:
        return len(self.ends)

    def __iter__(self) -> Iterator[str]:
        """The lines as str (see `lines`)."""
        return iter(self.lines())

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
        starts = [self.start, *ends][: len(ends)]
        data = self.data
        return [bytes(data[a : b - 1]).decode("utf-8", "surrogatepass") for a, b in zip(starts, ends, strict=True)]


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
_STATUS = [field.encode() for field in _STATUS_FIELDS]
_SCALE = 10**LOOP_STATUS_DECIMALS
_LIMIT = 1_000 * _SCALE  # `_decimal_table` holds the texts of values below 1,000 ("-999.999": 8 bytes, a uint64)
_MIN_END = 3  # bytes of the shortest end of a line: " 0\n" (the time and the newline)
_BLOCK_LINES = 4_096  # lines written at a time: their part of the output (about 1 MB) stays in the CPU's cache
_CHUNK = 8_192  # floats formatted at a time


def format_decimal(value: float) -> str:
    """A finite float as `loop_status` writes it: rounded to LOOP_STATUS_DECIMALS places (half to even, on the
    exact binary value, as `format` rounds), trailing zeros dropped but one kept ("45.25", "3.0", "850.0"),
    "0.0" for a negative value that rounds to zero."""
    text = f"{value:.{LOOP_STATUS_DECIMALS}f}".rstrip("0")
    if text.endswith("."):
        text += "0"
    return "0.0" if text == "-0.0" else text


@functools.cache
def _decimal_table() -> tuple[NDArray[np.uint64], NDArray[np.int8]]:
    """`format_decimal`'s text of every u / 10**LOOP_STATUS_DECIMALS for 0 <= u < _LIMIT (index u) as a
    uint64 (first character in the lowest byte: "0.0" to "999.999") and its length; made on first use (8 MB).
    Index _LIMIT: a value too large for the table (no text)."""
    ints = [str(i).encode() for i in range(_LIMIT // _SCALE)]
    decimals = [("." + (f"{i:0{LOOP_STATUS_DECIMALS}d}".rstrip("0") or "0")).encode() for i in range(_SCALE)]
    int_words, decimal_words = (
        np.array([int.from_bytes(t, "little") for t in texts], "<u8") for texts in (ints, decimals)
    )
    int_lengths, decimal_lengths = (np.array([len(t) for t in texts], np.int64) for texts in (ints, decimals))
    shifts = (int_lengths * 8).astype(np.uint64)
    words = (int_words[:, None] | (decimal_words[None, :] << shifts[:, None])).reshape(-1)
    lengths = (int_lengths[:, None] + decimal_lengths[None, :]).reshape(-1)
    return np.append(words, np.uint64(0)), np.append(lengths, 0).astype(np.int8)


class LoopStatusEncoder:
    """`loop_status` lines (CONTRACT section 4) for a fixed list of loops, one line per loop per call.

    Column-wise, for 100,000 loops a tick, as one `LineBlock`: each line's length is known from its pieces'
    (its tags, escaped once in `__init__`; its status; a field per finite float; the rest: compliant,
    verdict, flags, interval, the time and "\\n", a table built per call), so each piece's place in the
    output is too; a float's text is an entry of `_decimal_table` (`_decimal_words`). Then each kind of
    piece is written, for every line at once, at its place (a few bytes past a text may be written too,
    and a later piece overwrites them; see `_write`). A line with a float too large for the table is
    written by `format_decimal` (`_whole_line`) over what the columns wrote there."""

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
        prefixes = [p.encode("utf-8", "surrogatepass") for p in self.prefixes]
        # a prefix's padding stays in its line: the status and the end of the line follow it
        self._prefix = _Texts(prefixes, min(map(len, _STATUS)) + _MIN_END)
        # the first bytes of every line, written last over what the previous line's padding reached (`_write`)
        self._reach = min((len(p) for p in prefixes), default=len(b"loop_status "))
        self._heads = np.frombuffer(b"".join(p[: self._reach] for p in prefixes), dtype=f"V{self._reach}")
        self._status = _Texts(_STATUS, self._reach + _MIN_END)

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
        """`encode_block`'s lines as str."""
        return self.encode_block(ts_s, status, compliant, floats, verdict, flags, interval_s).lines()

    def encode_block(
        self,
        ts_s: float,
        status: ArrayLike,
        compliant: ArrayLike,
        floats: Sequence[ArrayLike],
        verdict: ArrayLike | None = None,
        flags: Sequence[ArrayLike] | None = None,
        interval_s: float | None = None,
    ) -> LineBlock:
        """One line per loop; `status` indexes into STATUS_NAMES, `compliant` 1/0/-1 (left out), `floats` one
        column per LOOP_STATUS_FLOATS name (the first ones at least; NaN left out), `verdict` indexes into
        VERDICTS, `flags` one column per LOOP_STATUS_FLAGS, `interval_s` the seconds each point stands for."""
        n = len(self.prefixes)
        codes = _column(status, np.intp, n, "status")
        tail_codes, tails = self._tails(ts_s, n, compliant, verdict, flags, interval_s)
        columns = [_column(values, np.float64, n, key) for key, values in zip(LOOP_STATUS_FLOATS, floats, strict=False)]
        fields = [_Field(key, values, self._reach) for key, values in zip(LOOP_STATUS_FLOATS, columns, strict=False)]
        tail = _Texts([t.encode() for t in tails], self._reach)
        sizes = self._prefix.lengths + self._status.lengths[codes] + tail.lengths[tail_codes]
        for field in fields:
            field.add_length(sizes)
        whole = np.unique(np.concatenate([np.zeros(0, dtype=np.intp), *(field.too_large for field in fields)]))
        texts = [self._whole_line(i, codes, columns, tails[tail_codes[i]]) for i in whole.tolist()]
        sizes[whole] = [len(t) for t in texts]
        ends = np.cumsum(sizes, dtype=np.int64)
        total = int(ends[-1]) if n else 0
        out = np.empty(total + self._reach, dtype=np.uint8)  # the last line's padding may reach past it
        self._write(out, ends - sizes, codes, fields, (tail, tail_codes))
        for i, text in zip(whole.tolist(), texts, strict=True):  # values too large for `_decimal_table`
            out[ends[i] - len(text) : ends[i]] = np.frombuffer(text, dtype=np.uint8)
        return LineBlock(out.data[:total], ends)

    def _write(
        self,
        out: NDArray[np.uint8],
        starts: NDArray[np.int64],
        codes: NDArray[np.intp],
        fields: Sequence[_Field],
        tail: tuple[_Texts, NDArray[np.intp]],
    ) -> None:
        """Write every line's pieces at their places, a block of lines at a time (its part of `out` stays in
        the CPU's cache), kind after kind, left to right. A text is written with the padding of its table
        (`_Texts`; a float field's up to 12 bytes, a left-out dense field's element whole): the padding lands
        on a later piece of its line, written after it, or past the line's end (a line ends with at least
        `_MIN_END` bytes of time and newline), at most `_reach` bytes (the shortest prefix) into the next
        line, whose first `_reach` bytes are written last. No two pieces written by one assignment overlap (a
        piece other than the prefix starts at least `_reach` + 11 bytes into its line, and a prefix's padding
        stays in its line), so every byte is what the last piece written over it says."""
        tail_texts, tail_codes = tail
        for begin in range(0, len(starts), _BLOCK_LINES):
            lines = slice(begin, begin + _BLOCK_LINES)
            at = starts[lines]
            self._prefix.put(out, at, lines)
            at = at + self._prefix.lengths[lines]
            self._status.put(out, at, codes[lines])
            at += self._status.lengths[codes[lines]]
            for field in fields:
                field.put(out, at, begin)
            tail_texts.put(out, at, tail_codes[lines])
            _elements(out, self._reach)[starts[lines]] = self._heads[lines]

    def _whole_line(self, i: int, codes: NDArray[np.intp], columns: list[NDArray[np.float64]], tail: str) -> bytes:
        """Line i written by `format_decimal` (a float too large for `_decimal_table`)."""
        values = [float(v[i]) for v in columns]
        fields = (f",{k}={format_decimal(v)}" for k, v in zip(LOOP_STATUS_FLOATS, values, strict=False) if v - v == 0.0)
        line: str = self.prefixes[i] + _STATUS_FIELDS[codes[i]] + "".join(fields) + tail
        return line.encode("utf-8", "surrogatepass")

    def _tails(
        self,
        ts_s: float,
        n: int,
        compliant: ArrayLike,
        verdict: ArrayLike | None,
        flags: Sequence[ArrayLike] | None,
        interval_s: float | None,
    ) -> tuple[NDArray[np.intp], list[str]]:
        """What follows the floats (compliant, verdict, flags, interval_s, the time, "\n"): its forms, and per
        loop the index of its form."""
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
        end += f" {to_precision(ts_s, self.precision)}\n"
        return code, ["".join(parts) + end for parts in itertools.product(*choices)]


def _column(values: ArrayLike, dtype: type[np.generic], n: int, name: str) -> NDArray[Any]:
    """One column as a flat array of n entries."""
    array = np.asarray(values, dtype=dtype).reshape(-1)
    if len(array) != n:
        raise ValueError(f"{name}: {len(array)} values for {n} loops")
    return array


def _words(size: int) -> int:
    """`size` bytes rounded up to whole words of 8 bytes."""
    return -(-size // 8) * 8


def _elements(out: NDArray[np.uint8], width: int) -> NDArray[np.void]:
    """`out` as overlapping elements of `width` bytes: element i is out[i : i + width]."""
    return np.ndarray((len(out) - width + 1,), dtype=f"V{width}", buffer=out, strides=(1,))


class _Texts:
    """Texts put at places by their codes (`put`), each as one element as wide as the longest text of its
    class rounded up to whole words of 8 bytes (numpy copies those faster), zero-padded: at most `slack`
    (at least 7) bytes written past a text; a class's texts in a table of theirs."""

    def __init__(self, texts: Sequence[bytes], slack: int) -> None:
        self.lengths = np.array([len(t) for t in texts], dtype=np.int64)
        self._class = np.zeros(len(texts), dtype=np.intp)  # each code's class
        self._rows = np.zeros(len(texts), dtype=np.intp)  # each code's row in its class's table
        self._tables: list[NDArray[np.void]] = []
        lengths = np.unique(self.lengths).tolist()
        while lengths:  # the shortest left and the lengths whose width is within `slack` of it
            members = [n for n in lengths if _words(n) <= lengths[0] + slack]
            codes = np.flatnonzero((self.lengths >= members[0]) & (self.lengths <= members[-1]))
            self._class[codes], self._rows[codes] = len(self._tables), np.arange(len(codes))
            width = _words(members[-1])
            padded = b"".join(texts[i].ljust(width, b"\0") for i in codes.tolist())
            self._tables.append(np.frombuffer(padded, dtype=f"V{width}"))
            lengths = lengths[len(members) :]

    def put(self, out: NDArray[np.uint8], at: NDArray[np.int64], codes: NDArray[np.intp] | slice) -> None:
        """Write the text of each code at out[at[i]] (`codes[i]`)."""
        if len(self._tables) == 1:  # the rows are the codes
            table = self._tables[0]
            _elements(out, table.dtype.itemsize)[at] = table[codes] if isinstance(codes, slice) else table.take(codes)
            return
        classes, rows = self._class[codes], self._rows[codes]
        for k, table in enumerate(self._tables):
            lines = np.flatnonzero(classes == k)
            _elements(out, table.dtype.itemsize)[at[lines]] = table[rows[lines]]


class _Field:
    """A float column's field (`,key=` and the value's text, see `_decimal_words`) on the lines where the
    value is finite and not too large for `_decimal_table` (`too_large`: those lines).

    Finite on most lines, and `reach` (see `LoopStatusEncoder._write`) enough for its padding, it is
    `dense`: written on every line, of length 0 where left out (the next piece overwrites it), without
    row indexes; else only on its lines (`rows`)."""

    def __init__(self, key: str, values: NDArray[np.float64], reach: int) -> None:
        head = f",{key}=".encode()
        width = _words(len(head) + 8)  # the head, then 8 bytes for the value's text (3 to 8 bytes: padding)
        finite = np.isfinite(values)
        count = int(np.count_nonzero(finite))
        self.dense = 2 * count >= len(values) and width - _MIN_END <= reach
        if self.dense:
            rows = np.arange(len(values))
            words, lengths, too_large = _formatted(
                values if count == len(values) else np.where(finite, values, 0.0), head
            )
            lengths[~finite | too_large] = 0
        else:
            rows = np.flatnonzero(finite)
            words, lengths, too_large = _formatted(values[rows], head)
        self.too_large = rows[too_large]  # the lines whose value is too large (the field is not written there)
        if len(self.too_large) and not self.dense:
            rows, words, lengths = rows[~too_large], words[~too_large], lengths[~too_large]
        self.rows, self.words, self.lengths = rows, words, lengths
        pieces = np.zeros((_BLOCK_LINES, width), dtype=np.uint8)  # a block's fields: the head is the same
        pieces[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
        self._pieces = pieces.view(f"V{width}").reshape(-1)
        self._texts = np.ndarray((_BLOCK_LINES,), dtype="<u8", buffer=pieces, offset=len(head), strides=(width,))

    def add_length(self, sizes: NDArray[np.int64]) -> None:
        """Add the field's length to the size of each line."""
        if self.dense:
            sizes += self.lengths
        else:
            sizes[self.rows] += self.lengths

    def put(self, out: NDArray[np.uint8], at: NDArray[np.int64], begin: int) -> None:
        """Write the field on its lines among lines `begin` on (`at`: where the field goes on each of them),
        and move their `at` past it."""
        if self.dense:
            first, last, rows = begin, begin + len(at), None
        else:
            first, last = np.searchsorted(self.rows, (begin, begin + len(at))).tolist()
            rows = self.rows[first:last] - begin
        places = at if rows is None else at[rows]
        self._texts[: last - first] = self.words[first:last]
        _elements(out, self._pieces.dtype.itemsize)[places] = self._pieces[: last - first]
        if rows is None:
            at += self.lengths[first:last]
        else:
            at[rows] = places + self.lengths[first:last]


def _formatted(
    values: NDArray[np.float64], head: bytes
) -> tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.bool_]]:
    """`_decimal_words` of finite values, a chunk at a time (its temporaries stay in the CPU's cache)."""
    words, lengths = np.empty(len(values), dtype="<u8"), np.empty(len(values), dtype=np.int64)
    too_large = np.empty(len(values), dtype=np.bool_)
    for begin in range(0, len(values), _CHUNK):
        chunk = slice(begin, begin + _CHUNK)
        words[chunk], lengths[chunk], too_large[chunk] = _decimal_words(values[chunk], len(head))
    return words, lengths, too_large


def _decimal_words(
    values: NDArray[np.float64], head: int
) -> tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.bool_]]:
    """Each finite value's `format_decimal` text in a uint64 (first character in the lowest byte), its
    field's length (`head` bytes more), and where it is too large for `_decimal_table` (no text there, and
    a length that means nothing)."""
    table, table_lengths = _decimal_table()
    scaled = _scaled(values)
    units = np.abs(scaled)
    np.minimum(units, _LIMIT, out=units)
    index = units.astype(np.intp)
    words = table[index]
    lengths = table_lengths[index].astype(np.int64)
    lengths += head
    if scaled.min() < 0.0:  # not -0.0 (a negative value rounded to zero): "0.0" has no sign
        negative = scaled < 0.0
        words = np.where(negative, (words << np.uint64(8)) | np.uint64(ord("-")), words)
        lengths += negative
    return words, lengths, index == _LIMIT


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
