"""Line protocol encoding: escaping tables, golden cases, the telemetry encoder and the helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from stationmon.domain.lineproto import (
    TelemetryEncoder,
    encode_alert_event,
    encode_line,
    encode_loop_status,
    escape_measurement,
    escape_string_value,
    escape_tag,
    format_field_value,
    to_precision,
)
from stationmon.domain.model import AlertEvent, Reading
from stationmon.domain.plant import Station

CASES_DIR = Path(__file__).parent.parent / "testcases" / "lineproto"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if p.is_dir())


def load_value(value: Any) -> Any:
    """JSON cannot say 3i or NaN: {"int": 3} and {"float": "nan"} stand for them."""
    if isinstance(value, dict):
        return int(value["int"]) if "int" in value else float(value["float"])
    return value


def load_case(name: str) -> tuple[dict[str, Any], str]:
    doc = json.loads((CASES_DIR / name / "input.json").read_text("utf-8"))
    expected = (CASES_DIR / name / "expected.lp").read_text("utf-8").rstrip("\n")
    return doc, expected


@pytest.mark.parametrize("name", CASES)
def test_golden_case(name: str) -> None:
    doc, expected = load_case(name)
    fields = {k: load_value(v) for k, v in doc["fields"].items()}
    assert encode_line(doc["measurement"], doc["tags"], fields, doc["ts"]) == expected


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize(
    ("text", "tag", "measurement"),
    [
        ("plain", "plain", "plain"),
        ("a b", "a\\ b", "a\\ b"),
        ("a,b", "a\\,b", "a\\,b"),
        ("a=b", "a\\=b", "a=b"),
        ("x\ny", "x\\ y", "x\\ y"),
        ("c:\\dir", "c:\\dir", "c:\\dir"),
        ("end\\", "end\\ ", "end\\ "),
        ("道里区", "道里区", "道里区"),
        ('q"uote', 'q"uote', 'q"uote'),
    ],
)
def test_escape_names(text: str, tag: str, measurement: str) -> None:
    assert escape_tag(text) == tag
    assert escape_measurement(text) == measurement


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain", '"plain"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("a, b=c", '"a, b=c"'),
        ("two\nlines", '"two lines"'),
        ("中文", '"中文"'),
    ],
)
def test_escape_string_value(text: str, escaped: str) -> None:
    assert escape_string_value(text) == escaped


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.5, "1.5"), (2.0, "2.0"), (-0.1, "-0.1"), (1e20, "1e+20"), (True, "true"), (False, "false"), (7, "7i")],
)
def test_field_values(value: float | bool | int, text: str) -> None:
    assert format_field_value(value) == text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_field_value_is_refused(value: float) -> None:
    with pytest.raises(ValueError):
        format_field_value(value)


def test_line_without_fields_is_refused() -> None:
    with pytest.raises(ValueError):
        encode_line("m", {}, {"v": math.nan}, 1)


def test_line_without_timestamp() -> None:
    assert encode_line("m", {}, {"v": 1.0}, None) == "m v=1.0"


@pytest.mark.parametrize(
    ("precision", "expected"), [("s", 1700000000), ("ms", 1700000000123), ("us", 1700000000123457)]
)
def test_to_precision(precision: str, expected: int) -> None:
    assert to_precision(1700000000.1234567, precision) == expected


STATIONS = [Station(id="daoli-youyi-334", name="友谊路334号换热站", district="道里区")]


def test_telemetry_groups_series_and_timestamp() -> None:
    enc = TelemetryEncoder(STATIONS)
    ts = 1700000000.5
    lines = enc.encode(
        [
            Reading("daoli-youyi-334", "supply_temp", 41.2, ts, loop="sec1"),
            Reading("daoli-youyi-334", "return_temp", 34.0, ts, loop="sec1"),
            Reading("daoli-youyi-334", "outdoor_temp", -10.0, ts),
            Reading("daoli-youyi-334", "supply_temp", 41.3, ts + 10, loop="sec1"),
            Reading("daoli-youyi-334", "indoor_temp", 19.5, ts, loop="sec1", sensor="b3-402", source="mqtt"),
        ]
    )
    assert lines == [
        "telemetry,district=道里区,loop=sec1,source=modbus,station=daoli-youyi-334 "
        "supply_temp=41.2,return_temp=34.0 1700000000500",
        "telemetry,district=道里区,source=modbus,station=daoli-youyi-334 outdoor_temp=-10.0 1700000000500",
        "telemetry,district=道里区,loop=sec1,source=modbus,station=daoli-youyi-334 supply_temp=41.3 1700000010500",
        "telemetry,district=道里区,loop=sec1,sensor=b3-402,source=mqtt,station=daoli-youyi-334 "
        "indoor_temp=19.5 1700000000500",
    ]


@pytest.mark.parametrize(
    ("value", "fault", "fields"),
    [
        (-999.0, "sentinel", 'supply_temp_fault="sentinel",supply_temp_raw=-999.0'),
        (math.nan, "nan", 'supply_temp_fault="nan"'),
        (math.inf, None, 'supply_temp_fault="inf"'),
        (math.nan, None, 'supply_temp_fault="nan"'),
        (140.0, "out_of_range", 'supply_temp_fault="out_of_range",supply_temp_raw=140.0'),
    ],
)
def test_faulted_reading_is_never_stored_as_the_quantity(value: float, fault: str | None, fields: str) -> None:
    enc = TelemetryEncoder(STATIONS)
    [line] = enc.encode([Reading("daoli-youyi-334", "supply_temp", value, 1.0, loop="sec1", fault=fault)])
    assert line.split(" ")[1] == fields
    assert "supply_temp=" not in line


def test_unknown_station_has_no_district_and_precision_is_honoured() -> None:
    enc = TelemetryEncoder(STATIONS, precision="s")
    [line] = enc.encode([Reading("other station", "flow", 12, 1700000000.4, loop="l 1")])
    assert line == "telemetry,loop=l\\ 1,source=modbus,station=other\\ station flow=12.0 1700000000"


def test_loop_status_line() -> None:
    line = encode_loop_status(
        "s1",
        "道里区",
        "sec1",
        1700000000.0,
        status="noncompliant",
        compliant=False,
        required_supply_temp=39.9,
        required_return_temp=33.3,
        estimated_indoor_temp=None,
        delta_t=math.nan,
    )
    assert line == (
        "loop_status,district=道里区,loop=sec1,station=s1 "
        'status="noncompliant",required_supply_temp=39.9,required_return_temp=33.3,compliant=false 1700000000000'
    )


def test_alert_event_line() -> None:
    event = AlertEvent(
        alert_id="s1/sec1/supply_low/1700000000",
        rule="supply_low",
        station="s1",
        district="道里区",
        loop=None,
        severity="major",
        state="firing",
        ts=1700000600.0,
        since=1700000000.0,
        value=36.5,
        threshold=39.9,
        message='supply 36.5 °C below "required" 39.9',
    )
    assert encode_alert_event(event) == (
        "alert_events,district=道里区,rule=supply_low,severity=major,station=s1 "
        'state="firing",message="supply 36.5 °C below \\"required\\" 39.9",'
        'alert_id="s1/sec1/supply_low/1700000000",value=36.5,threshold=39.9,age_s=600.0 1700000600000'
    )


def test_company_is_a_tag_of_every_measurement() -> None:
    stations = [Station("s1", district="道里区", company="冰城 热力"), Station("s2")]
    lines = TelemetryEncoder(stations).encode(
        [Reading("s1", "supply_temp", 41.0, 1.0, loop="sec1"), Reading("s2", "supply_temp", 40.0, 1.0, loop="sec1")]
    )
    assert lines[0].startswith("telemetry,company=冰城\\ 热力,district=道里区,loop=sec1,source=modbus,station=s1 ")
    assert lines[1].startswith("telemetry,loop=sec1,source=modbus,station=s2 ")
    status = encode_loop_status("s1", "道里区", "sec1", 1.0, status="ok", company="冰城 热力")
    assert status.startswith("loop_status,company=冰城\\ 热力,district=道里区,loop=sec1,station=s1 ")
    event = AlertEvent("a", "supply_low", "s1", "道里区", "sec1", "warning", "firing", 1.0, 1.0, company="冰城 热力")
    assert encode_alert_event(event).startswith(
        "alert_events,company=冰城\\ 热力,district=道里区,loop=sec1,rule=supply_low,severity=warning,station=s1 "
    )


def _received(value: float, ts: float, quantity: str = "supply_temp", sensor: str | None = None) -> Reading:
    return Reading("s1", quantity, value, ts, "sec1", sensor, "mqtt", None, True)


@pytest.mark.parametrize("precision", ["s", "ms", "us", "ns"])
def test_received_readings_of_one_series_never_merge(precision: str) -> None:
    """18 plain readings in 10 ms (the broker's burst): 18 points, in order, in every precision."""
    encoder = TelemetryEncoder([Station(id="s1", district="d")], precision)
    readings = [_received(40.0 + i, 1_700_000_000.0 + i * 0.01 / 18) for i in range(18)]
    lines = encoder.encode(readings[:9]) + encoder.encode(readings[9:])  # across batches too
    stamps = [int(line.rsplit(" ", 1)[1]) for line in lines]
    assert [line.split(" ")[1] for line in lines] == [f"supply_temp={40.0 + i!r}" for i in range(18)]
    assert stamps == sorted(set(stamps)) and len(stamps) == 18
    assert stamps[0] == to_precision(1_700_000_000.0, precision)


def test_received_bump_is_per_series_and_keeps_a_message_on_one_line() -> None:
    encoder = TelemetryEncoder([Station(id="s1")], "ms")
    ts = 1_700_000_000.0
    first = encoder.encode([_received(1.0, ts), _received(2.0, ts, "return_temp")])
    again = encoder.encode([_received(3.0, ts), _received(4.0, ts, "return_temp"), _received(5.0, ts, sensor="f1")])
    assert [line.rsplit(" ", 1)[1] for line in first] == ["1700000000000"]  # one json_fields message, one line
    assert sorted(line.rsplit(" ", 1)[1] for line in again) == ["1700000000000", "1700000000001"]  # f1 is new


def test_timed_readings_still_overwrite_and_a_clock_step_back_is_followed() -> None:
    encoder = TelemetryEncoder([Station(id="s1")], "ms")
    timed = Reading("s1", "supply_temp", 1.0, 1_700_000_000.0, "sec1", None, "mqtt")
    assert len(encoder.encode([timed, timed])) == 1  # a resent reading with its own time is the same point
    encoder.encode([_received(1.0, 1_700_000_000.0)])
    back = encoder.encode([_received(2.0, 1_700_000_000.0 - 3600)])
    assert back[0].endswith(" 1699996400000")  # not pushed an hour ahead of its receive time


def test_alert_event_age_is_always_a_float_field() -> None:
    """InfluxDB refuses a batch mixing 1200i and 0.0 in one field: integer times must still write a float."""
    event = AlertEvent("a", "supply_low", "s1", "d", "sec1", "warning", "resolved", 1200, 0)
    assert ",age_s=1200.0 " in encode_alert_event(event)
