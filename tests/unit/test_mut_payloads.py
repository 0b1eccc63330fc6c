"""Payload parsing, Modbus framing and durations at their edges: each test names the bug it catches.

The reasons are the `reason` label of stationmon_mqtt_rejected_total (CONTRACT section 2), so the exact
string is what an operator's dashboard counts.
"""

from __future__ import annotations

import pytest

from stationmon.domain.durations import parse_duration
from stationmon.domain.mbap import BadResponse, Frame, Registers, encode_read_request, parse_read_response
from stationmon.domain.model import Reading
from stationmon.domain.payloads import PayloadSpec, Route, parse_payload, parse_time

NOW = 1_764_000_000.0  # 2025-11-24T16:00:00Z
EARLIEST = 946_684_800.0  # 2000-01-01T00:00:00Z
PLAIN = Route("s1", "sec1", "supply_temp", None, PayloadSpec("plain"))
JSON = Route("s1", "sec1", "supply_temp", None, PayloadSpec("json"))
JSON_SENSOR = Route("s1", "sec1", "indoor_temp", "flat-3", PayloadSpec("json"))
FIELDS_SENSOR = Route("s1", "sec1", None, "flat-3", PayloadSpec("json_fields"))
FIELDS = Route("s1", "sec1", None, None, PayloadSpec("json_fields"))


@pytest.mark.parametrize(
    ("payload", "route"),
    [
        (b"-inf", PLAIN),  # a check against (inf, +inf) lets -inf through as a value
        (b"-1e999", PLAIN),
        (b'{"value": -Infinity}', JSON),
        (b'{"value": -1e999}', JSON),
        (b'{"value": "-inf"}', JSON),
    ],
)
def test_negative_infinity_is_rejected_as_infinite(payload: bytes, route: Route) -> None:
    assert parse_payload(payload, route, NOW) == ([], "infinite")


@pytest.mark.parametrize("text", ["1_000", "٤١", "１２"])
def test_a_json_string_float_reads_but_a_sensor_must_not_send_is_not_a_number(text: str) -> None:
    """float() takes "1_000" and non-ASCII digits; the strict pattern refuses them with `not_a_number` (as
    for a plain payload: float() of bytes refuses non-ASCII digits itself)."""
    payload = ('{"value": "' + text + '"}').encode()
    assert parse_payload(payload, JSON, NOW) == ([], "not_a_number")


def test_the_default_payload_bound_is_64_kib() -> None:
    """CONTRACT's default max_payload_bytes: 65,536 bytes are parsed, one more is `oversized`."""
    payload = b"41.5" + b" " * (65536 - 4)
    assert parse_payload(payload, PLAIN, NOW)[1] is None
    assert parse_payload(payload + b" ", PLAIN, NOW) == ([], "oversized")


def test_a_plain_route_without_a_quantity_is_bad_quantity() -> None:
    """The router never builds one; the guard still answers with a counted reason, not a crash."""
    route = Route("s1", "sec1", None, None, PayloadSpec("plain"))
    assert parse_payload(b"41.5", route, NOW) == ([], "bad_quantity")


def test_the_sensor_of_the_topic_is_kept_by_both_json_formats() -> None:
    """An indoor reading without its sensor would merge every flat's series into one."""
    assert parse_payload(b'{"value": 21.5}', JSON_SENSOR, NOW) == (
        [Reading("s1", "indoor_temp", 21.5, NOW, "sec1", "flat-3", "mqtt", None, True)],
        None,
    )
    assert parse_payload(b'{"indoor_temp": 21.5, "time": 1763999000}', FIELDS_SENSOR, NOW) == (
        [Reading("s1", "indoor_temp", 21.5, 1763999000.0, "sec1", "flat-3", "mqtt", None, False)],
        None,
    )


@pytest.mark.parametrize(
    "payload",
    [
        b'{"time": 1763999000, "supply_temp": 41.5, "return_temp": 34.0}',  # the time key first
        b'{"device": "plc-7", "supply_temp": 41.5, "return_temp": 34.0, "time": 1763999000}',  # metadata first
        b'{"ok": true, "tags": ["a"], "supply_temp": 41.5, "return_temp": 34.0, "time": 1763999000}',
    ],
)
def test_fields_after_the_time_key_or_metadata_are_read(payload: bytes) -> None:
    """Skipping the time key or a non-number field must go on to the next key (a `break` would drop them)."""
    got, why = parse_payload(payload, FIELDS, NOW)
    assert why is None
    assert [(r.quantity, r.value, r.ts) for r in got] == [
        ("supply_temp", 41.5, 1763999000.0),
        ("return_temp", 34.0, 1763999000.0),
    ]


def test_max_future_reaches_the_payload_time_check() -> None:
    """A payload 20 minutes ahead is fine where max_future_s allows an hour (the default is 10 minutes)."""
    payload = f'{{"value": 1, "time": {NOW + 1200:.0f}}}'.encode()
    assert parse_payload(payload, JSON, NOW) == ([], "bad_time")
    got, why = parse_payload(payload, JSON, NOW, max_future_s=3600)
    assert why is None and got[0].ts == NOW + 1200


@pytest.mark.parametrize(
    ("raw", "max_future_s", "expected"),
    [
        (EARLIEST, 600.0, EARLIEST),  # 2000-01-01T00:00:00Z itself is a set clock (`<` for `<=` refuses it)
        ("2000-01-01T00:00:00Z", 600.0, EARLIEST),
        (EARLIEST - 1, 600.0, None),
        (NOW + 600, 600.0, NOW + 600),  # exactly max_future_s ahead is still accepted
        (NOW + 30, 30.0, NOW + 30),
        (NOW + 31, 30.0, None),
    ],
)
def test_parse_time_bounds_are_inclusive(raw: object, max_future_s: float, expected: float | None) -> None:
    assert parse_time(raw, NOW, max_future_s) == expected


# ------------------------------------------------------------------------------------------ Modbus


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1, 1, 6, 0, 1), "function code 6: only reads (3, 4) are sent"),
        ((1, 1, 3, 0, 126), "cannot read 126 registers from 0"),
        ((1, 1, 3, 65535, 2), "cannot read 2 registers from 65535"),
        ((65536, 1, 3, 0, 1), "transaction id 65536 or unit id 1 out of range"),
        ((1, 256, 3, 0, 1), "transaction id 1 or unit id 256 out of range"),
    ],
)
def test_a_request_that_cannot_be_sent_says_why(args: tuple[int, int, int, int, int], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        encode_read_request(*args)
    assert str(caught.value) == message


def test_unit_id_255_is_a_valid_address() -> None:
    """255 is the last unit id (some gateways use it for the device itself): `<` for `<=` refuses it."""
    assert encode_read_request(1, 255, 3, 0, 1) == bytes.fromhex("0001 0000 0006 ff 03 0000 0001")


def test_a_bad_answer_shows_the_unit_and_the_first_seven_pdu_bytes() -> None:
    """The log shows enough of a bad answer to tell what came back, and no more (one hex run, then ...)."""
    frame = Frame(1, 9, bytes([3, 20]) + bytes(range(1, 21)))  # 10 registers where 2 were asked
    assert parse_read_response(frame, 9, 3, 2) == BadResponse("bad answer to FC 3 for 2 registers: 0903140102030405...")
    assert parse_read_response(frame, 9, 3, 10) == Registers(bytes(range(1, 21)))


# ------------------------------------------------------------------------------------------ durations


@pytest.mark.parametrize("text", ["10 sec", "5", "1h30", "-5s"])
def test_a_bad_duration_names_itself(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(f"  {text} ")
    assert str(caught.value) == text
