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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import orjson
from numpy.typing import ArrayLike, NDArray

from stationmon.domain.model import AlertEvent, Reading
from stationmon.domain.plant import Station
from stationmon.domain.vocabulary import STATUS_NAMES, VERDICTS

__all__ = [
    "LOOP_STATUS_FLAGS",
    "LOOP_STATUS_FLOATS",
    "PRECISION_FACTORS",
    "LoopStatusEncoder",
    "TelemetryEncoder",
    "encode_alert_event",
    "encode_line",
    "encode_loop_status",
    "escape_measurement",
    "escape_string_value",
    "escape_tag",
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
_COMPLIANT_FIELDS = ("", ",compliant=false", ",compliant=true")  # by compliant code + 1 (-1, 0, 1)
_VERDICT_FIELDS = tuple(f",verdict={escape_string_value(v)}" for v in VERDICTS)


class LoopStatusEncoder:
    """`loop_status` lines (CONTRACT section 4) for a fixed list of loops, one line per loop per call.

    Column-wise, for 100,000 loops a tick: each loop's tags are escaped once (`prefixes`); a float
    column is formatted by one `orjson` call (Ryu: the shortest round-trip digits, the same as `repr`
    where both write positional notation; `repr` writes the rest); the fields after the floats take
    few forms (compliant x verdict x flags), built once per call and picked by a numpy index.
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
        self._status_fields = np.array([f"status={escape_string_value(name)}" for name in STATUS_NAMES], dtype=object)

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
        columns: list[Iterable[str]] = [self.prefixes, self._status_fields[codes].tolist()]
        # runs of neighbouring columns finite on most loops (a list each) or on few (merged into one)
        runs: list[tuple[bool, list[tuple[str, NDArray[np.float64], NDArray[np.bool_]]]]] = []
        for key, values in zip(LOOP_STATUS_FLOATS, floats, strict=False):
            array = _column(values, np.float64, n, key)
            finite = np.isfinite(array)
            count = int(np.count_nonzero(finite))
            if count:
                dense = count > n // 4
                if not runs or runs[-1][0] != dense:
                    runs.append((dense, []))
                runs[-1][1].append((key, array, finite))
        for dense, run in runs:
            columns.extend(_dense_fields(n, run) if dense else [_merge_sparse(n, run)])
        columns.append(self._tails(ts_s, n, compliant, verdict, flags, interval_s))
        return list(map("".join, zip(*columns, strict=True)))

    def _tails(
        self,
        ts_s: float,
        n: int,
        compliant: ArrayLike,
        verdict: ArrayLike | None,
        flags: Sequence[ArrayLike] | None,
        interval_s: float | None,
    ) -> list[str]:
        """Per loop, what follows the floats: compliant, verdict, flags, interval_s, the timestamp."""
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
        table = np.array(["".join(parts) + end for parts in itertools.product(*choices)], dtype=object)
        tails: list[str] = table[code].tolist()
        return tails


def _column(values: ArrayLike, dtype: type[np.generic], n: int, name: str) -> NDArray[Any]:
    """One column as a flat array of n entries."""
    array = np.asarray(values, dtype=dtype).reshape(-1)
    if len(array) != n:
        raise ValueError(f"{name}: {len(array)} values for {n} loops")
    return array


_OPT_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_Col = tuple[str, NDArray[np.float64], NDArray[np.bool_]]  # a float column: key, values, where finite


def _odd(finite: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Of these finite values, those `repr` writes in exponent notation (outside [1e-4, 1e16)), unlike Ryu."""
    magnitude = np.abs(finite)
    odd: NDArray[np.bool_] = (magnitude >= 1e16) | ((magnitude < 1e-4) & (finite != 0.0))
    return odd


def _float_texts(finite: NDArray[np.float64]) -> list[str]:
    """These finite values as `repr` writes them: one orjson call for the column, split in C."""
    if not len(finite):
        return []
    texts = orjson.dumps(np.ascontiguousarray(finite), option=_OPT_NUMPY)[1:-1].decode().split(",")
    for j in np.flatnonzero(_odd(finite)).tolist():
        texts[j] = repr(float(finite[j]))
    return texts


def _dense_fields(n: int, run: list[_Col]) -> list[Iterable[str]]:
    """Columns finite on most loops: per column its `,key=` where finite and its values ("" elsewhere).

    (The key as a column of its own costs less than putting it before each value with a replace.)"""
    out: list[Iterable[str]] = []
    for key, array, finite in run:
        head = f",{key}="
        texts = _float_texts(array[finite])
        if len(texts) == n:
            out += [itertools.repeat(head, n), texts]
            continue
        gaps = np.flatnonzero(~finite).tolist()  # few: slices of the lists between them are copied in C
        heads, values, start = [head] * n, [], 0
        for k, gap in enumerate(gaps):
            heads[gap] = ""
            end = gap - k  # the finite values before this gap
            values += texts[start:end]
            values.append("")
            start = end
        values += texts[start:]
        out += [heads, values]
    return out


def _spread(n: int, where: NDArray[np.bool_], pieces: list[str]) -> NDArray[Any]:
    """n strings: `pieces` in order where `where` holds, "" elsewhere."""
    out = np.full(n, "", dtype=object)
    out[where] = pieces
    return out


def _merge_sparse(n: int, run: list[_Col]) -> list[str]:
    """Neighbouring columns finite on few loops as one column: their fields in order per loop, "" where none."""
    anywhere = np.logical_or.reduce([finite for _, _, finite in run])
    rows = np.flatnonzero(anywhere)
    merged = np.full(len(rows), "", dtype=object)
    for key, array, finite in run:
        head = f",{key}="
        fields = [head + text for text in _float_texts(array[finite])]
        merged = merged + _spread(len(rows), finite[rows], fields)
    out = np.full(n, "", dtype=object)
    out[rows] = merged
    fields_per_loop: list[str] = out.tolist()
    return fields_per_loop


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
