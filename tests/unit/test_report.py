"""The compliance report's pure arithmetic: periods and dates, time accounting, weighting, refunds, alerts."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from stationmon.domain.plant import DailyWindow, Loop, Site, Station
from stationmon.domain.report import (
    AlertLife,
    Event,
    LoopSums,
    Measure,
    OutdoorSums,
    ReportInput,
    alert_figures,
    alert_lives,
    build_tables,
    inspection_seconds_per_day,
    local_days,
    parse_time,
    plan_reads,
    refund_cny,
    season_days,
    season_start,
    shortage_intervals,
)

SH = "Asia/Shanghai"
H = 3600.0


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


NOW = _ts("2026-12-03T10:30:00+08:00")
SEASON = ((10, 20), (4, 20))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-24h", NOW - 86400),
        ("-30d", NOW - 30 * 86400),
        ("2026-12-01", _ts("2026-12-01T00:00:00+08:00")),  # a date is local midnight
        ("2026-12-01T06:00:00Z", _ts("2026-12-01T14:00:00+08:00")),
        ("2026-12-01T06:00:00+08:00", _ts("2026-12-01T06:00:00+08:00")),
        ("season", _ts("2026-10-20T00:00:00+08:00")),
    ],
)
def test_parse_time(text: str, expected: float) -> None:
    assert parse_time(text, NOW, SH, SEASON) == expected


@pytest.mark.parametrize(("text", "message"), [("yesterday", "bad time"), ("2026-12-01T06:00", "UTC offset")])
def test_parse_time_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_time(text, NOW, SH)


def test_date_only_in_another_zone() -> None:
    assert parse_time("2026-12-01", NOW, "Europe/Berlin") == _ts("2026-12-01T00:00:00+01:00")


@pytest.mark.parametrize(
    ("now", "season", "start"),
    [
        ("2026-12-03T10:00:00+08:00", SEASON, "2026-10-20"),  # in a season over new year, begun this year
        ("2027-02-01T10:00:00+08:00", SEASON, "2026-10-20"),  # ... begun last year
        ("2026-07-01T10:00:00+08:00", SEASON, "2025-10-20"),  # out of season: the last one
        ("2026-10-20T00:00:00+08:00", SEASON, "2026-10-20"),  # its first minute
        ("2026-07-01T10:00:00+08:00", ((1, 1), (12, 31)), "2026-01-01"),  # all year
        ("2026-03-01T10:00:00+08:00", ((4, 1), (9, 30)), "2025-04-01"),  # a summer season, not yet begun
    ],
)
def test_season_start(now: str, season: tuple[tuple[int, int], tuple[int, int]], start: str) -> None:
    assert season_start(_ts(now), SH, season[0]) == _ts(f"{start}T00:00:00+08:00")


def test_season_days() -> None:
    assert season_days(_ts("2026-12-03T00:00:00+08:00"), SH, *SEASON) == 31 + 30 + 31 + 31 + 28 + 31 + 20 - 19
    assert season_days(_ts("2027-12-03T00:00:00+08:00"), SH, *SEASON) == 184  # 2028 is a leap year
    assert season_days(_ts("2026-12-03T00:00:00+08:00"), SH, (12, 1), (12, 31)) == 31


def test_local_days_follow_daylight_saving() -> None:
    start = _ts("2025-03-29T00:00:00+01:00")
    days = local_days(start, start + 3 * 86400 - 2 * H, "Europe/Berlin")
    assert [round((b - a) / H) for a, b in days] == [24, 23]  # 30 March has 23 hours; the 3rd day is not whole
    assert days[1][1] == _ts("2025-03-31T00:00:00+02:00")


def test_plan_reads_days_hours_and_unsettled_raw() -> None:
    day = _ts("2026-12-01T00:00:00+08:00")
    start, stop = day - 3 * H, day + 2 * 86400 + 5 * H  # 21:00 the day before .. 05:00 two days later
    plan = plan_reads(start, stop, stop + 0.5 * H, SH, 2 * H)
    assert plan.days == ((day, day + 86400), (day + 86400, day + 2 * 86400))
    # 3 hours before the first day, then the hours of the last day that settled (05:30 - 2 h: up to 03:00)
    assert plan.hours == (*(day - i * H for i in (3, 2, 1)), *(day + 2 * 86400 + i * H for i in range(3)))
    assert plan.raw == (day + 2 * 86400 + 3 * H, stop)
    settled = plan_reads(start, stop, stop + 10 * H, SH, 2 * H)
    assert settled.raw is None and len(settled.hours) == 3 + 5


def test_measure_seconds_with_and_without_interval_s() -> None:
    assert Measure(s=600.0, c=1, n=1, ni=1).seconds(10.0) == 600.0  # interval_s says 600 s
    assert Measure(s=0.0, c=3, n=3, ni=0).seconds(10.0) == 30.0  # evaluate_every for each
    assert Measure(s=600.0, c=3, n=3, ni=1).seconds(10.0) == 620.0  # mixed: exact for a status
    # a share: 4 points of which 2 carry interval_s (60 s each, shares 0.5 and 1.0); the others at the mean share
    assert Measure(s=90.0, c=3.0, n=4, ni=2).seconds(10.0) == pytest.approx(90.0 + 0.75 * 2 * 10.0)
    assert Measure().seconds(10.0) == 0.0


def test_inspection_day_and_refund_formula() -> None:
    site = Site(inspection_exclude=(DailyWindow(600, 840),))
    assert inspection_seconds_per_day(site) == 20 * H
    assert inspection_seconds_per_day(Site()) == 24 * H
    # 38 CNY/m² over 183 days, 80 m² per household: 16.61 CNY a day; 10 days below 20 of which 4 below 16
    daily = 38.0 * 80.0 / 183
    assert refund_cny(38.0, 160_000, 2000, 183, 10.0, 4.0) == pytest.approx(daily * (0.5 * 6 + 4))
    assert refund_cny(None, 160_000, 2000, 183, 10.0, 4.0) is None
    assert refund_cny(38.0, None, 2000, 183, 10.0, 4.0) is None


def test_alert_lives_pair_events_by_id_or_by_key() -> None:
    events = [
        Event(0.0, "s", "l", "supply_low", "firing"),
        Event(10.0, "s", "l", "supply_low", "acknowledged"),
        Event(20.0, "s", "l", "supply_low", "acknowledged"),  # only the first counts
        Event(30.0, "s", "l", "supply_low", "resolved"),
        Event(40.0, "s", "l", "supply_low", "resolved"),  # a repeat after it resolved
        Event(5.0, "s", "", "primary_shortage", "resolved", "s..primary_shortage.1"),  # fired before the period
        Event(50.0, "s", "", "primary_shortage", "firing", "id2"),
        Event(50.0, "s", "", "primary_shortage", "firing", "id2"),  # an HA pair wrote it twice
        Event(60.0, "s", "", "primary_shortage", "resolved", "id2"),
    ]
    lives = alert_lives(events)
    assert lives == [
        AlertLife("s", "l", "supply_low", 0.0, acknowledged=10.0, resolved=30.0),
        AlertLife("s", "", "primary_shortage", 50.0, resolved=60.0),
    ]


def test_alert_figures_percentiles_and_overdue() -> None:
    stop = 100 * H
    lives = [
        AlertLife("s", "l", "a", 0.0, acknowledged=1 * H, resolved=4 * H),
        AlertLife("s", "l", "b", 0.0, acknowledged=3 * H, resolved=30 * H),
        AlertLife("s", "l", "c", 0.0, acknowledged=8 * H, resolved=60 * H),
        AlertLife("s", "l", "d", 90 * H),  # open 10 h at the end
        AlertLife("s", "l", "e", 20 * H),  # open 80 h at the end
    ]
    figures = alert_figures(lives, stop)
    assert figures == {
        "alerts": 5,
        "ack_p50_h": 3.0,
        "ack_max_h": 8.0,
        "resolve_p50_h": 30.0,
        "resolve_max_h": 60.0,
        "past_24h": 3,
        "past_48h": 2,
    }
    assert alert_figures([], stop)["ack_p50_h"] is None


def test_shortage_intervals() -> None:
    events = [
        Event(5.0, "a", "", "primary_shortage", "resolved"),
        Event(20.0, "a", "", "primary_shortage", "firing"),
        Event(25.0, "a", "", "primary_shortage", "escalated"),
        Event(30.0, "a", "", "primary_shortage", "resolved"),
        Event(80.0, "b", "", "primary_shortage", "firing"),
        Event(50.0, "c", "l", "primary_shortage", "firing"),  # not station level
    ]
    assert shortage_intervals(events, ["a"], 0.0, 100.0) == {"a": [(0.0, 5.0), (20.0, 30.0)], "b": [(80.0, 100.0)]}


def _station(sid: str, company: str, area: float | None, loops: int = 1, households: int | None = None) -> Station:
    return Station(
        sid,
        company=company,
        district="d",
        area_m2=area,
        households=households,
        loops=tuple(Loop(f"{sid}{i}") for i in range(loops)),
    )


def _sums(ok_h: float, nc_h: float, judged_h: float, good_h: float) -> LoopSums:
    s = LoopSums()
    for name, hours in (("ok", ok_h), ("noncompliant", nc_h), ("judged", judged_h), ("good_estimate", good_h)):
        n = hours * 6  # a point every 10 minutes
        s.measures[name] = Measure(s=hours * H, c=n, n=n, ni=n)
    return s


def _input(stations: list[Station], sums: dict[tuple[str, str], LoopSums]) -> ReportInput:
    return ReportInput(
        stations=stations,
        site=Site(indoor_target=20.0, fee_per_m2=30.0),
        every_s=600.0,
        start=0.0,
        stop=10 * H,
        season_days=30,
        loop_sums=sums,
        outdoor={"x": OutdoorSums(t=-20.0, h=2.0, dh=42.0), "y": OutdoorSums(t=-5.0, h=1.0, dh=25.0)},
        heat_source_s={},
        lives=[],
    )


def test_gaps_are_unknown_time_and_compliance_is_area_weighted() -> None:
    stations = [_station("x", "c", 3000.0, loops=2, households=30), _station("y", "c", 1000.0)]
    sums = {("x", "x0"): _sums(6, 2, 8, 8), ("x", "x1"): _sums(4, 0, 4, 2), ("y", "y0"): _sums(0, 10, 10, 0)}
    levels = build_tables(_input(stations, sums), "station").levels
    x = levels["station"][0]
    # 20 loop-hours; 12 judged; the 8 hours without points are unknown
    assert (x["compliant_hours"], x["noncompliant_hours"], x["unknown_hours"]) == (10.0, 2.0, 8.0)
    assert x["monitored_share"] == 0.6
    assert x["compliance_rate"] == round(10 / 12, 4)  # equal areas within a station: time-weighted
    company = levels["company"][0]
    # x0, x1 weigh 1500 m² each, y0 1000 m²
    expected = (1500 * 8 + 1500 * 2 + 1000 * 0) / (1500 * 8 + 1500 * 4 + 1000 * 10)
    assert company["compliance_rate"] == round(expected, 4)
    assert (company["area_m2"], company["households"], company["loops"]) == (4000.0, 30, 3)
    assert company["outdoor_mean"] == round(-25.0 / 3, 2)
    assert company["degree_hours"] == (42.0 + 25.0) / 2  # the stations' mean, not their sum
    loop_row = levels["loop"][0]
    assert (loop_row["area_m2"], loop_row["households"]) == (1500.0, 15.0)


def test_stations_without_area_weigh_by_loop_time() -> None:
    stations = [_station("x", "c", None), _station("y", "c", 1000.0)]
    sums = {("x", "x0"): _sums(10, 0, 10, 10), ("y", "y0"): _sums(0, 10, 30, 0)}
    tables = build_tables(_input(stations, sums), "company")
    assert tables.levels["company"][0]["compliance_rate"] == round(10 / 40, 4)
    assert tables.meta["compliance_weighting"] == "loops where a station has no area_m2"
    assert tables.levels["company"][0]["refund_estimate_cny"] is None  # no households anywhere


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown level"):
        build_tables(_input([], {}), "city")


def test_zone_helper_is_consistent() -> None:
    assert dt.datetime.fromtimestamp(parse_time("2026-12-01", NOW, SH), ZoneInfo(SH)).hour == 0
