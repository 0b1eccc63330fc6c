"""Payload parsing: every format, every time form, garbage of every kind, and hypothesis fuzzing."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stationmon.domain.model import Reading
from stationmon.domain.payloads import (
    REJECT_REASONS,
    PayloadSpec,
    Route,
    parse_number,
    parse_payload,
    parse_time,
)

NOW = 1_764_000_000.0  # 2025-11-24T16:00:00Z
PLAIN = Route("s1", "sec1", "supply_temp", None, PayloadSpec("plain"))
INDOOR = Route("s1", "sec1", "indoor_temp", "flat-3", PayloadSpec("plain"))
JSON = Route("s1", "sec1", "supply_temp", None, PayloadSpec("json", "value", ""))
JSON_NESTED = Route("s1", None, "outdoor_temp", None, PayloadSpec("json", "data.t", "meta.ts"))
FIELDS = Route("s1", "sec1", None, None, PayloadSpec("json_fields", "value", "ts"))


def _r(
    quantity: str, value: float, ts: float | None = None, loop: str | None = "sec1", sensor: str | None = None
) -> Reading:
    """A reading as parsed; without `ts` the payload had no time: stamped NOW at receipt, marked received."""
    return Reading("s1", quantity, value, NOW if ts is None else ts, loop, sensor, "mqtt", None, ts is None)


@pytest.mark.parametrize(
    ("payload", "route", "readings", "reason"),
    [
        (b"41.2", PLAIN, [_r("supply_temp", 41.2)], None),
        (b" -3\n", PLAIN, [_r("supply_temp", -3.0)], None),
        (b"1e1", PLAIN, [_r("supply_temp", 10.0)], None),
        (b"21.5", INDOOR, [_r("indoor_temp", 21.5, sensor="flat-3")], None),
        (b'{"value": 41.2}', JSON, [_r("supply_temp", 41.2)], None),
        (b'{"value": "41.2"}', JSON, [_r("supply_temp", 41.2)], None),
        (b'{"value": 41, "time": 1764000000}', JSON, [_r("supply_temp", 41.0, 1764000000.0)], None),
        (b'{"value": 41, "time": 1763999999123}', JSON, [_r("supply_temp", 41.0, 1763999999.123)], None),
        (
            b'{"value": 41, "time": "2025-11-24T15:00:00+08:00"}',
            JSON,
            [_r("supply_temp", 41.0, datetime(2025, 11, 24, 7, tzinfo=UTC).timestamp())],
            None,
        ),
        (
            b'{"data": {"t": -12.5}, "meta": {"ts": "2025-11-24T15:59:00Z"}}',
            JSON_NESTED,
            [_r("outdoor_temp", -12.5, NOW - 60, loop=None)],
            None,
        ),
        (
            b'{"supply_temp": 41.2, "return_temp": 34.1, "ts": 1763999000, "device": "plc-7"}',
            FIELDS,
            [_r("supply_temp", 41.2, 1763999000.0), _r("return_temp", 34.1, 1763999000.0)],
            None,
        ),
        # unknown quantities of known stations are stored as they come
        (b'{"valve_position": 55}', FIELDS, [_r("valve_position", 55.0)], None),
        # one bad field does not cost the good ones
        (b'{"supply_temp": NaN, "return_temp": 34}', FIELDS, [_r("return_temp", 34.0)], "nan"),
        (b'{"SupplyTemp": 1, "return_temp": 34}', FIELDS, [_r("return_temp", 34.0)], "bad_quantity"),
        # garbage, every kind
        (b"", PLAIN, [], "empty"),
        (b"abc", PLAIN, [], "not_a_number"),
        (b"0x10", PLAIN, [], "not_a_number"),
        (b"1_000", PLAIN, [], "not_a_number"),
        (b"41,2", PLAIN, [], "not_a_number"),
        ("٤١".encode(), PLAIN, [], "not_a_number"),
        (b"\xff\xfe\x00", PLAIN, [], "not_a_number"),
        (b"nan", PLAIN, [], "nan"),
        (b"NaN", PLAIN, [], "nan"),
        (b"inf", PLAIN, [], "infinite"),
        (b"1e999", PLAIN, [], "infinite"),
        (b"9" * 70000, PLAIN, [], "oversized"),
        (b"{", JSON, [], "malformed_json"),
        (b'{"value": 1', JSON, [], "malformed_json"),
        (b"\xff\xfe{}", JSON, [], "malformed_json"),
        (b"[" * 60000, JSON, [], "malformed_json"),
        (b"[1, 2]", JSON, [], "not_an_object"),
        (b"41.2", JSON, [], "not_an_object"),
        (b'{"val": 1}', JSON, [], "missing_value"),
        (b'{"value": null}', JSON, [], "not_a_number"),
        (b'{"value": true}', JSON, [], "not_a_number"),
        (b'{"value": "warm"}', JSON, [], "not_a_number"),
        (b'{"value": [1]}', JSON, [], "not_a_number"),
        (b'{"value": NaN}', JSON, [], "nan"),
        (b'{"value": Infinity}', JSON, [], "infinite"),
        (b'{"value": ' + b"9" * 400 + b"}", JSON, [], "infinite"),
        (b'{"value": 1, "time": "yesterday"}', JSON, [], "bad_time"),
        (b'{"value": 1, "time": "2025-11-24T15:00:00"}', JSON, [], "bad_time"),  # no offset
        (b'{"value": 1, "time": 0}', JSON, [], "bad_time"),
        (b'{"value": 1, "time": -5}', JSON, [], "bad_time"),
        (b'{"value": 1, "time": true}', JSON, [], "bad_time"),
        (b'{"value": 1, "time": 1864000000}', JSON, [], "bad_time"),  # three years ahead
        (b'{"ts": 1764000000}', FIELDS, [], "no_values"),
        (b'{"name": "x", "ok": true}', FIELDS, [], "no_values"),
        (b'{"supply_temp": 1e400}', FIELDS, [], "infinite"),
    ],
)
def test_parse_payload(payload: bytes, route: Route, readings: list[Reading], reason: str | None) -> None:
    got, why = parse_payload(payload, route, NOW)
    assert (got, why) == (readings, reason)
    assert why is None or why in REJECT_REASONS


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1764000000, 1764000000.0),
        (1764000000.5, 1764000000.5),
        (1764000000123, 1764000000.123),
        (1764000000123456, 1764000000.123456),
        (1764000000123456789, 1764000000.1234567),
        ("1764000000", 1764000000.0),
        ("2025-11-24T16:00:00Z", NOW),
        ("2025-11-24T16:00:00.250+00:00", NOW + 0.25),
        ("2025-11-25T00:00:00+08:00", NOW),
        (NOW + 599, NOW + 599),  # small clock skew is fine
        (NOW + 601, None),
        (946684799, None),  # before 2000
        ("2025-11-24", None),
        ("", None),
        (None, None),
        ([], None),
        (float("nan"), None),
        (float("inf"), None),
        (10**400, None),
    ],
)
def test_parse_time(raw: object, expected: float | None) -> None:
    got = parse_time(raw, NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-6)


def test_time_key_defaults_to_time_and_falls_back_to_receive_time() -> None:
    assert parse_payload(b'{"value": 1}', JSON, NOW) == ([_r("supply_temp", 1.0)], None)
    route = Route("s1", "sec1", None, None, PayloadSpec("json_fields"))
    got, why = parse_payload(b'{"flow": 3, "time": 1763990000}', route, NOW)
    # the time key is the timestamp, not a quantity
    assert (got, why) == ([_r("flow", 3.0, 1763990000.0)], None)


def test_json_without_quantity_reads_its_keys() -> None:
    route = Route("s1", "sec1", None, None, PayloadSpec("json"))
    assert parse_payload(b'{"flow": 3}', route, NOW) == ([_r("flow", 3.0)], None)


def test_literal_dotted_key_wins_over_path() -> None:
    route = Route("s1", "sec1", "flow", None, PayloadSpec("json", "a.b"))
    assert parse_payload(b'{"a.b": 1, "a": {"b": 2}}', route, NOW)[0][0].value == 1.0
    assert parse_payload(b'{"a": {"b": 2}}', route, NOW)[0][0].value == 2.0
    assert parse_payload(b'{"a": {"c": 2}}', route, NOW) == ([], "missing_value")
    assert parse_payload(b'{"a": 5}', route, NOW) == ([], "missing_value")


def test_max_bytes_is_a_parameter() -> None:
    assert parse_payload(b"12345", PLAIN, NOW, max_bytes=4) == ([], "oversized")
    assert parse_payload(b"1234", PLAIN, NOW, max_bytes=4)[1] is None


@pytest.mark.parametrize("text", ["1", "-0.5", "+2.", ".5", "3e-2", " 4 "])
def test_parse_number_accepts_decimal_text(text: str) -> None:
    assert parse_number(text) == float(text)
    assert parse_number(text.encode()) == float(text)


# ----------------------------------------------------------------------------------------------------
# Hypothesis: nothing a device or an attacker can send crashes the parser or yields a bad reading.

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
_routes = st.sampled_from([PLAIN, INDOOR, JSON, JSON_NESTED, FIELDS])


def _check(readings: list[Reading], reason: str | None) -> None:
    assert reason is None or reason in REJECT_REASONS
    for r in readings:
        assert isinstance(r.value, float) and math.isfinite(r.value)
        assert math.isfinite(r.ts) and r.ts <= NOW + 600
        assert r.source == "mqtt" and r.station == "s1"
    if not readings:
        assert reason is not None  # nothing stored is always explained


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), _routes)
def test_random_bytes_never_crash(payload: bytes, route: Route) -> None:
    _check(*parse_payload(payload, route, NOW))


@settings(max_examples=400, deadline=None)
@given(_json_values, _routes)
def test_random_json_never_crashes(doc: object, route: Route) -> None:
    payload = json.dumps(doc, allow_nan=True).encode()
    _check(*parse_payload(payload, route, NOW))


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["supply_temp", "return_temp", "flow", "ts", "value", "time", "X", "data"]),
        _json_values,
        max_size=6,
    ),
    _routes,
)
def test_random_objects_with_known_keys_never_crash(doc: dict[str, object], route: Route) -> None:
    _check(*parse_payload(json.dumps(doc).encode(), route, NOW))


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_plain_numbers_round_trip(value: float) -> None:
    readings, reason = parse_payload(repr(value).encode(), PLAIN, NOW)
    assert reason is None and readings[0].value == value
