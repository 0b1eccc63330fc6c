"""Line protocol (`encode_line`, `encode_alert_event`, the telemetry encoder) at its edges.

Each test names the one-line bug it catches. Expected lines are written out by hand from CONTRACT
section 4.
"""

from __future__ import annotations

import math

import pytest

from stationmon.domain.lineproto import (
    TelemetryEncoder,
    encode_alert_event,
    encode_line,
    format_field_value,
    to_precision,
)
from stationmon.domain.model import AlertEvent, Reading
from stationmon.domain.plant import Station

STATIONS = [Station(id="s1", district="d1", company="c1")]


def _event(ts: float, since: float) -> AlertEvent:
    return AlertEvent(
        ts=ts,
        station="s1",
        district="d1",
        company="c1",
        loop="sec1",
        rule="supply_low",
        severity="warning",
        state="firing",
        message="low",
        alert_id="a1",
        since=since,
    )


@pytest.mark.parametrize(
    ("ts", "since", "age"),
    [
        (100.0, 100.0, "0.0"),  # the firing event itself: a floor of 1.0 for 0.0 would report a second
        (100.25, 100.0, "0.25"),
        (101.23456, 100.0, "1.235"),  # milliseconds: three decimals, not four
        (99.0, 100.0, "0.0"),  # a clock stepped back: never negative
    ],
)
def test_alert_event_age_is_seconds_since_firing_to_the_millisecond(ts: float, since: float, age: str) -> None:
    line = encode_alert_event(_event(ts, since))
    assert f",age_s={age} " in line


def test_alert_event_time_is_in_the_requested_precision() -> None:
    """The write precision reaches the timestamp (the default "ms" for "s" would be 1000 times too late)."""
    line = encode_alert_event(_event(1700000000.4, 1700000000.0), precision="s")
    assert line == (
        "alert_events,company=c1,district=d1,loop=sec1,rule=supply_low,severity=warning,station=s1 "
        'state="firing",message="low",alert_id="a1",age_s=0.4 1700000000'
    )


def test_a_non_finite_field_is_left_out_and_the_fields_after_it_kept() -> None:
    """Skipping a NaN must go on to the next field (a `break` would drop every field after it)."""
    fields: dict[str, float | bool | str | int] = {"a": math.nan, "b": 1.5, "c": math.inf, "d": 2}
    assert encode_line("m", {}, fields, 7) == "m b=1.5,d=2i 7"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: encode_line("loop_status", {}, {"a": math.nan}, 1),
            ValueError,
            "a 'loop_status' point needs at least one field",
        ),
        (lambda: format_field_value(math.inf), ValueError, "line protocol cannot store inf"),
        (lambda: format_field_value([1.0]), TypeError, "unsupported field value type list"),  # type: ignore[arg-type]
        (lambda: TelemetryEncoder(STATIONS, "min"), ValueError, "unknown precision 'min'"),
    ],
)
def test_what_cannot_be_written_says_what_it_was(call: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        call()  # type: ignore[operator]
    assert str(caught.value) == message


def _received(value: float, ts: float, station: str = "s1") -> Reading:
    return Reading(station, "indoor_temp", value, ts, "sec1", "b1", "mqtt", None, True)


def test_a_received_reading_exactly_the_bump_window_behind_is_followed_not_bumped() -> None:
    """A clock stepped back by 60 s is followed: only a reading *less* than 60 s behind the series' last
    received one is bumped past it (`<=` would bump this one to 100.001)."""
    enc = TelemetryEncoder(STATIONS)
    assert enc.encode([_received(20.0, 100.0)])[0].endswith(" 100000")
    assert enc.encode([_received(20.5, 40.0)])[0].endswith(" 40000")
    assert enc.encode([_received(21.0, 40.0)])[0].endswith(" 40001")  # the same millisecond: bumped


def test_the_received_series_memory_is_bounded_and_forgets_at_the_bound() -> None:
    """At the bound, a new series clears what was remembered (so a series seen before is no longer bumped);
    before it, nothing is forgotten. `>` for `>=`, or the check on a known series, would grow past it."""
    enc = TelemetryEncoder(STATIONS, max_tracked_series=3)
    for station in ("s1", "s2", "s3"):
        enc.encode([_received(20.0, 100.0, station)])
    [again] = enc.encode([_received(21.0, 100.0, "s1")])  # known: bumped, nothing forgotten
    assert again.endswith(" 100001")
    enc.encode([_received(20.0, 100.0, "s4")])  # a fourth series: the memory of the three is dropped
    [after] = enc.encode([_received(22.0, 100.0, "s1")])
    assert after.endswith(" 100000")


def test_to_precision_defaults_to_milliseconds() -> None:
    """The write precision's default, "ms" (CONTRACT section 4), is to_precision's too."""
    assert to_precision(1700000000.0004) == 1700000000000
    assert to_precision(1.5) == to_precision(1.5, "ms") == 1500
