"""The telemetry encoder where the older tests never looked: each test names the one-line bug it catches."""

from __future__ import annotations

import pytest

from stationmon.domain.lineproto import TelemetryEncoder, to_precision
from stationmon.domain.model import Reading
from stationmon.domain.plant import Station

STATIONS = [Station(id="s1", district="d1", company="c1"), Station(id="s2", district="d2")]


@pytest.mark.parametrize(
    ("precision", "ts", "expected"),
    [
        ("ms", 1700000000.9996, 1700000001000),
        ("ms", 1700000000.0004, 1700000000000),
        ("s", 1700000000.6, 1700000001),
        ("us", 1.0000006, 1000001),
    ],
)
def test_timestamps_are_rounded_not_truncated(precision: str, ts: float, expected: int) -> None:
    """Catches `int(ts * factor)` (truncation) for `round(ts * factor)` in the encoder and `to_precision`:
    a reading at .9996 s belongs to the next millisecond, as the other measurements' lines have it."""
    [line] = TelemetryEncoder(STATIONS, precision).encode([Reading("s1", "flow", 12.0, ts, loop="a")])
    assert line.endswith(f" {expected}")
    assert to_precision(ts, precision) == expected


def test_a_received_reading_is_rounded_before_it_is_kept_distinct() -> None:
    """Catches truncation on the received path: received at 100.0006 s is millisecond 100001, and the
    next one at 100.0012 s (also 100001) is bumped one past it."""
    enc = TelemetryEncoder(STATIONS, "ms")
    lines = enc.encode(
        [
            Reading("s1", "indoor_temp", 20.0, 100.0006, loop="a", sensor="x", source="mqtt", received=True),
            Reading("s1", "indoor_temp", 20.1, 100.0012, loop="a", sensor="x", source="mqtt", received=True),
        ]
    )
    assert [line.rsplit(" ", 1)[1] for line in lines] == ["100001", "100002"]


# readings that differ from the first in exactly one part of the series key (station, loop, sensor, source)
SERIES = [
    (Reading("s1", "indoor_temp", 19.0, 10.0, loop="a", sensor="b1-101", source="mqtt"), "company=c1,district=d1"),
    (Reading("s1", "indoor_temp", 19.5, 10.0, loop="a", sensor="b1-102", source="mqtt"), "company=c1,district=d1"),
    (Reading("s1", "indoor_temp", 20.0, 10.0, loop="b", sensor="b1-101", source="mqtt"), "company=c1,district=d1"),
    (Reading("s1", "indoor_temp", 20.5, 10.0, loop="a", sensor="b1-101", source="modbus"), "company=c1,district=d1"),
    (Reading("s2", "indoor_temp", 21.0, 10.0, loop="a", sensor="b1-101", source="mqtt"), "district=d2"),
]


def _expected(r: Reading, site_tags: str) -> str:
    return (
        f"telemetry,{site_tags},loop={r.loop},sensor={r.sensor},source={r.source},station={r.station} "
        f"indoor_temp={r.value} 10000"
    )


def test_each_series_keeps_its_own_tags_batch_after_batch() -> None:
    """Catches the tag-prefix cache keyed without the sensor (or loop, source, station): the second
    indoor sensor of a loop would be written with the first one's tags, on the first one's line."""
    enc = TelemetryEncoder(STATIONS)
    want = [_expected(r, tags) for r, tags in SERIES]
    assert enc.encode([r for r, _ in SERIES]) == want
    # again, from the cache, one at a time and in the other order
    for (r, _), line in reversed(list(zip(SERIES, want, strict=True))):
        assert enc.encode([r]) == [line]


def test_a_loop_reading_and_a_sensor_reading_of_the_loop_keep_their_own_tags() -> None:
    """Catches the cache written or read under a key without the sensor: the loop's own series (no sensor)
    and one household sensor's series of the same loop and source would swap prefixes, in either order."""
    loop_reading = Reading("s1", "supply_temp", 45.0, 10.0, loop="a", source="mqtt")
    sensor_reading = Reading("s1", "indoor_temp", 19.0, 10.0, loop="a", sensor="b1-101", source="mqtt")
    loop_line = "telemetry,company=c1,district=d1,loop=a,source=mqtt,station=s1 supply_temp=45.0 10000"
    sensor_line = _expected(sensor_reading, "company=c1,district=d1")
    for order in ([loop_reading, sensor_reading], [sensor_reading, loop_reading]):
        enc = TelemetryEncoder(STATIONS)
        for r in order + order:
            assert enc.encode([r]) == [loop_line if r is loop_reading else sensor_line]


def test_a_station_reading_and_a_loop_reading_keep_their_own_tags() -> None:
    """Catches the cache read under a key without the loop: after the station's outdoor temperature (no
    loop tag) a loop's supply temperature would be written without its loop."""
    station_reading = Reading("s2", "outdoor_temp", -10.0, 10.0)
    loop_reading = Reading("s2", "supply_temp", 45.0, 10.0, loop="a")
    enc = TelemetryEncoder(STATIONS)
    assert enc.encode([station_reading]) == ["telemetry,district=d2,source=modbus,station=s2 outdoor_temp=-10.0 10000"]
    assert enc.encode([loop_reading]) == [
        "telemetry,district=d2,loop=a,source=modbus,station=s2 supply_temp=45.0 10000"
    ]
