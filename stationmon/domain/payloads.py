"""MQTT payloads -> readings. Pure: bytes and the receive time in, readings or a rejection reason out.

Formats are CONTRACT section 2's. A reading without a time of its own is stamped with the receive time
and marked `received`, so storage keeps a burst of them distinct (lineproto.TelemetryEncoder).
In `json_fields`, non-number values (strings, objects) are metadata
and skipped. A time before 2000 or more than `max_future_s` ahead of the receive time is `bad_time`:
a clock set wrong would otherwise hide every newer value behind it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stationmon.domain.model import Reading

__all__ = [
    "DEFAULT_MAX_FUTURE_S",
    "DEFAULT_TIME_KEY",
    "PAYLOAD_FORMATS",
    "QUANTITY_RE",
    "REJECT_REASONS",
    "ParseResult",
    "PayloadSpec",
    "Route",
    "parse_number",
    "parse_payload",
    "parse_time",
]

# Every reason a message (or one field of it) is not stored; the `reason` label of
# stationmon_mqtt_rejected_total.
REJECT_REASONS = (
    "oversized",  # payload longer than max_payload_bytes
    "empty",  # zero-length payload (a retained message being cleared)
    "not_a_number",  # plain payload or json value that is not a number
    "nan",  # NaN
    "infinite",  # +-Infinity or a number too large for a float
    "malformed_json",  # not valid JSON (or not UTF-8, or nested too deep)
    "not_an_object",  # json/json_fields payload that is valid JSON but not an object
    "missing_value",  # json: the value key is absent
    "no_values",  # json_fields: no numeric field at all
    "bad_time",  # the time field is present but not a usable time
    "bad_quantity",  # a quantity name (topic level or json_fields key) that is not snake_case
    "bad_sensor",  # an empty {sensor} level
    "unknown_station",  # {station} is not a configured station id
    "unknown_loop",  # {loop} is not a loop of that station
    "no_match",  # the topic matches no template (overlapping wildcards)
    "too_many_series",  # a new {sensor} or quantity past [mqtt] max_sensors_per_loop / max_quantities_per_loop
)

# plain: one number; json: an object with a value key; json_fields: an object, a quantity per key.
PAYLOAD_FORMATS = ("plain", "json", "json_fields")
DEFAULT_TIME_KEY = "time"
DEFAULT_MAX_FUTURE_S = 600.0
_EARLIEST_TS = 946684800.0  # 2000-01-01T00:00:00Z: anything earlier is a PLC clock never set
# A quantity name as topics and json_fields keys may carry it: snake_case (CONTRACT section 3).
QUANTITY_RE = re.compile(r"[a-z][a-z0-9_]*")
# ASCII only: `\d` and `\s` would also take "٤١" or "１２", which float() reads as 41 and 12.
_NUMERIC_STR_RE = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)


@dataclass(frozen=True, slots=True)
class PayloadSpec:
    """How to read one subscription's or point's payloads."""

    format: str = "plain"  # one of PAYLOAD_FORMATS
    value_key: str = "value"
    time_key: str = ""  # "" -> DEFAULT_TIME_KEY for the JSON formats


@dataclass(frozen=True, slots=True)
class Route:
    """Where one topic's readings belong: what the topic (or the point) says, and how to parse."""

    station: str
    loop: str | None
    quantity: str | None  # None: the quantities are the payload's keys (json_fields)
    sensor: str | None
    spec: PayloadSpec


# (readings to store, reason to count or None); both can be non-empty for json_fields.
ParseResult = tuple[list[Reading], str | None]


def parse_number(raw: bytes | str) -> float | str:
    """A strict decimal number (no `_`, no hex, no words) -> float, else a rejection reason."""
    try:
        value = float(raw)
    except (ValueError, TypeError):
        return "not_a_number"
    if value != value:
        return "nan"
    if value in (math.inf, -math.inf):
        # float() also reads "1e999" as inf: a number, but not one we can store
        return "infinite"
    # float() is lenient where a sensor payload must not be: "1_000", non-ASCII digits
    if isinstance(raw, bytes):
        if b"_" in raw:
            return "not_a_number"
    elif not _NUMERIC_STR_RE.fullmatch(raw):
        return "not_a_number"
    return value


def _to_unix(value: float) -> float:
    # Tell s, ms, µs, ns apart by magnitude: 1e11 s is the year 5138, 1e11 ms is 1973.
    if value < 1e11:
        return value
    if value < 1e14:
        return value / 1e3
    if value < 1e17:
        return value / 1e6
    return value / 1e9


def parse_time(value: Any, received_at: float, max_future_s: float = DEFAULT_MAX_FUTURE_S) -> float | None:
    """A payload time (Unix s/ms/µs/ns number or string, or RFC 3339) -> Unix seconds; None if unusable."""
    ts: float
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            ts = _to_unix(float(value))
        except OverflowError:
            return None
    elif isinstance(value, str):
        if _NUMERIC_STR_RE.fullmatch(value):
            ts = _to_unix(float(value))
        else:
            try:
                parsed = datetime.fromisoformat(value.strip())
            except ValueError:
                return None
            if parsed.tzinfo is None:
                # RFC 3339 requires an offset; a local time without one is ambiguous
                return None
            ts = parsed.timestamp()
    else:
        return None
    if not (_EARLIEST_TS <= ts <= received_at + max_future_s):  # also false for NaN
        return None
    return ts


def _lookup(obj: dict[str, Any], key: str) -> tuple[bool, Any]:
    # A literal key wins over a dotted path, so "a.b" works both as a key and as a path.
    if key in obj:
        return True, obj[key]
    if "." not in key:
        return False, None
    cur: Any = obj
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def _json_number(value: Any) -> float | str:
    if isinstance(value, bool):
        return "not_a_number"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (math.inf, -math.inf):
            return "infinite"
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return "infinite"
    if isinstance(value, str):
        return parse_number(value)
    return "not_a_number"


def _decode_json(payload: bytes) -> dict[str, Any] | str:
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return "malformed_json"
    if not isinstance(obj, dict):
        return "not_an_object"
    return obj


def _payload_time(
    obj: dict[str, Any], spec: PayloadSpec, received_at: float, max_future_s: float
) -> tuple[float | None, bool]:
    """(the payload's time or the receive time if it has none, whether it is the receive time)."""
    found, raw = _lookup(obj, spec.time_key or DEFAULT_TIME_KEY)
    if not found:
        return received_at, True
    return parse_time(raw, received_at, max_future_s), False


def parse_payload(
    payload: bytes,
    route: Route,
    received_at: float,
    *,
    max_bytes: int = 65536,
    max_future_s: float = DEFAULT_MAX_FUTURE_S,
) -> ParseResult:
    """Parse one message on `route` into readings (source "mqtt"); the reason is set if any part was bad."""
    if len(payload) > max_bytes:
        return [], "oversized"
    if not payload:
        return [], "empty"
    spec = route.spec
    fmt = spec.format
    if fmt == "plain":
        quantity = route.quantity
        if quantity is None:
            return [], "bad_quantity"  # the router never builds such a route; guard the type
        value = parse_number(payload)
        if isinstance(value, str):
            return [], value
        return [
            Reading(route.station, quantity, value, received_at, route.loop, route.sensor, "mqtt", None, True)
        ], None
    obj = _decode_json(payload)
    if isinstance(obj, str):
        return [], obj
    ts, received = _payload_time(obj, spec, received_at, max_future_s)
    if ts is None:
        return [], "bad_time"
    if fmt == "json" and route.quantity is not None:
        found, raw = _lookup(obj, spec.value_key)
        if not found:
            return [], "missing_value"
        value = _json_number(raw)
        if isinstance(value, str):
            return [], value
        return [
            Reading(route.station, route.quantity, value, ts, route.loop, route.sensor, "mqtt", None, received)
        ], None
    # json_fields (or json without a quantity: its quantities can only be its keys)
    time_key = spec.time_key or DEFAULT_TIME_KEY
    readings: list[Reading] = []
    reason: str | None = None
    for key, raw in obj.items():
        if key == time_key:
            continue
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            continue  # strings, objects, lists: metadata such as a device name, not a quantity
        value = _json_number(raw)
        if isinstance(value, str):
            reason = value
            continue
        if not QUANTITY_RE.fullmatch(key):
            reason = "bad_quantity"
            continue
        readings.append(Reading(route.station, key, value, ts, route.loop, route.sensor, "mqtt", None, received))
    if not readings and reason is None:
        reason = "no_values"
    return readings, reason
