"""The compliance report's numbers pinned figure by figure (issue 17: every mutant of domain/report killed).

One small site, every section 8 figure at every level (loop, station, company, district, site total),
expected values computed by hand in the comments; then the edges one at a time: gaps as unknown time,
zero monitored time, no alerts, alerts open at the period's end, the 24/48 h boundaries, the inspection
hours of a household-day, periods (season, -30d, RFC 3339, local midnight) and the sums InfluxDB gives.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator

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
    all_levels,
    build_tables,
    floor_hour,
    inspection_seconds_per_day,
    local_days,
    parse_time,
    plan_reads,
    refund_cny,
    season_days,
    season_start,
    shortage_intervals,
    site_total,
)
from stationmon.domain.report.figures import loop_figures
from stationmon.domain.report_tables import LEVELS, MEASURES, Row, columns

H = 3600.0
START = 1000 * H
STOP = START + 50 * H  # a 50-hour period: 180,000 s per loop
SITE = Site(
    name="Harbin",
    timezone="Asia/Harbin",
    indoor_target=20.0,
    indoor_refund_below=15.0,
    inspection_exclude=(DailyWindow(600, 840),),  # 10:00-14:00: an inspection day is 20 h = 72,000 s
    fee_per_m2=37.0,
)
# config order s2, s1, s3: loops and stations keep it, companies and districts are sorted by name
S2 = Station("s2", company="zeta", district="west", area_m2=2400.0, households=30, loops=(Loop("L1"), Loop("L2")))
S1 = Station(
    "s1", company="alpha", district="east", area_m2=1001.0, households=10, loops=(Loop("A1"), Loop("A2"), Loop("A3"))
)
S3 = Station("s3", company="alpha", district="west", loops=(Loop("B"),))  # no area, no households

A1 = AlertLife("s2", "L1", "supply_low", START, acknowledged=START + 1800, resolved=START + 4 * H + 100)
A2 = AlertLife("s2", "", "primary_shortage", START + H)  # open 49 h at the end
A3 = AlertLife("s1", "A2", "return_low", START + 2 * H, acknowledged=START + 2 * H + 1000)  # open exactly 48 h
A4 = AlertLife("s1", "", "primary_shortage", START + 20 * H)  # open 30 h


def _raw_b() -> LoopSums:
    """s3/B from raw points: 3 `ok` points of which 1 with interval_s 1200 s, the other 2 at 600 s each."""
    sums = LoopSums()
    sums.measures["ok"] = Measure(s=1200.0, c=3, n=3, ni=1)  # 1200 + 2 × 600 = 2400 s
    sums.measures["judged"] = Measure(s=1200.0, c=3, n=3, ni=1)  # 2400 s
    sums.measures["good_estimate"] = Measure(s=900.0, c=2, n=3, ni=1)  # 900 + 2/3 × 2 × 600 = 1700 s
    sums.measures["below_target"] = Measure(s=300.0, c=0.5, n=1, ni=1)  # no households: no household-days
    return sums


def _input(stations: tuple[Station, ...] = (S2, S1, S3), site: Site = SITE) -> ReportInput:
    return ReportInput(
        stations=stations,
        site=site,
        every_s=600.0,
        start=START,
        stop=STOP,
        season_days=180,
        loop_sums={
            ("s2", "L1"): LoopSums.from_rollup(
                {
                    "ok": 12345,
                    "noncompliant": 6000,
                    "beyond_design": 1000,
                    "judged": 15000,
                    "good_estimate": 9000,
                    "good_sensors": 1500,
                    "below_target": 7300,
                    "below_refund": 1800,
                }
            ),
            ("s2", "L2"): LoopSums.from_rollup(
                {
                    "ok": 18000,
                    "noncompliant": 9000,
                    "judged": 24000,
                    "good_estimate": 4000,
                    "good_sensors": 10000,
                    "below_target": 14400,
                }
            ),
            ("s3", "B"): _raw_b(),
            ("zz", "Q"): LoopSums.from_rollup({"ok": 99999}),  # not configured: not in any row
        },
        outdoor={
            "s2": OutdoorSums(t=-150.0, h=10.0, dh=350.0),
            "s1": OutdoorSums(t=-37.0, h=3.0, dh=117.25),
            "s3": OutdoorSums(),  # no outdoor hours
            "zz": OutdoorSums(t=100.0, h=1.0, dh=0.0),
        },
        heat_source_s={("s2", "L1"): 3000.0, ("s3", "B"): 1234.0},
        lives=[A1, A2, A3, A4],
    )


def _row(level: str, keys: tuple[str, ...], *measures: float | int | str | None) -> Row:
    """A row from its unit keys and its measures in section 8's order (see MEASURES)."""
    return dict(zip(columns(level), keys + measures, strict=True))


NO_ALERTS = (0, None, None, None, None, 0, 0)
# fee per household-day: 37 CNY/m² × (1200 m² / 15 households) / 180 days = 16.444 CNY
# L1: below target 7300 s × 15 households / 72,000 s = 1.5208 household-days; below the refund tier 1800 s: 0.375;
#     refund 16.444 × (0.5 × 1.1458 + 0.375) = 15.588. L2: 14,400 s: 3.0 days, none below the tier: 24.6667.
L1 = (1, 1200.0, 15.0, 0.1019, 3.43, 1.67, 44.9, 0.28, 0.7, 1.52, 0.38, 15.59, 0.83)  # 18,345 s of 180,000 judged
L2 = (1, 1200.0, 15.0, 0.15, 5.0, 2.5, 42.5, 0.0, 0.5833, 3.0, 0.0, 24.67, 0.0)  # good 14,000 of 24,000 s
# s1's loops: a third of 1001 m² and of 10 households each, no points at all: 50 unknown hours, nobody cold
A_LOOP = (1, 333.7, 3.3, 0.0, 0.0, 0.0, 50.0, 0.0, None, 0.0, 0.0, 0.0, 0.0)
B_LOOP = (1, None, None, 0.0133, 0.67, 0.0, 49.33, 0.0, 0.7083, None, None, None, 0.34)  # 2400 s; 1234 s shortage
S2_OUT = (-15.0, 350.0)
S1_OUT = (-12.33, 117.2)  # -37 / 3 hours; 117.25 degree-hours
S2_FIG = (2, 2400.0, 30, 0.126, 8.43, 4.17, 87.4, 0.28, 0.6282, 4.52, 0.38, 40.25, 0.83)  # 24,500 / 39,000 good
S1_FIG = (3, 1001.0, 10, 0.0, 0.0, 0.0, 150.0, 0.0, None, 0.0, 0.0, 0.0, 0.0)
S2_ALERTS = (2, 0.5, 0.5, 4.03, 4.03, 1, 1)  # A1 acknowledged after 30 min, resolved after 4 h 100 s; A2 open 49 h
S1_ALERTS = (2, 0.28, 0.28, None, None, 2, 0)  # A3 acknowledged after 1000 s; open 48 h (not past 48) and A4 30 h
# s2 and s3 together: 32,745 s ok, 15,000 noncompliant over 540,000 s; s3 has no area, so the rate weighs by time:
# (10,500 + 14,000 + 1,700) / (15,000 + 24,000 + 2,400) good; heat source (3000 + 1234) s
WEST = (3, 2400.0, 30, 0.0884, 9.1, 4.17, 136.74, 0.28, 0.6329, 4.52, 0.38, 40.25, 1.18)

EXPECTED: dict[str, list[Row]] = {
    "loop": [
        _row("loop", ("s2", "L1", "zeta", "west"), *L1, 1, 0.5, 0.5, 4.03, 4.03, 0, 0, *S2_OUT),
        _row("loop", ("s2", "L2", "zeta", "west"), *L2, *NO_ALERTS, *S2_OUT),
        _row("loop", ("s1", "A1", "alpha", "east"), *A_LOOP, *NO_ALERTS, *S1_OUT),
        _row("loop", ("s1", "A2", "alpha", "east"), *A_LOOP, 1, 0.28, 0.28, None, None, 1, 0, *S1_OUT),
        _row("loop", ("s1", "A3", "alpha", "east"), *A_LOOP, *NO_ALERTS, *S1_OUT),
        _row("loop", ("s3", "B", "alpha", "west"), *B_LOOP, *NO_ALERTS, None, None),
    ],
    "station": [
        _row("station", ("s2", "zeta", "west"), *S2_FIG, *S2_ALERTS, *S2_OUT),
        _row("station", ("s1", "alpha", "east"), *S1_FIG, *S1_ALERTS, *S1_OUT),
        _row("station", ("s3", "alpha", "west"), *B_LOOP, *NO_ALERTS, None, None),
    ],
    "company": [
        # s1 + s3: 2400 s ok over 720,000 s; 0.0 household-days (s1's) and no households of s3's; the outdoor
        # mean over s1's 3 hours, degree-hours of the one station with outdoor data
        _row(
            "company", ("alpha",), 4, 1001.0, 10, 0.0033, 0.67, 0.0, 199.33, 0.0, 0.7083, 0.0, 0.0, 0.0, 0.34,
            *S1_ALERTS, *S1_OUT,
        ),
        _row("company", ("zeta",), *S2_FIG, *S2_ALERTS, *S2_OUT),
    ],
    "district": [
        _row("district", ("east",), *S1_FIG, *S1_ALERTS, *S1_OUT),
        _row("district", ("west",), *WEST, *S2_ALERTS, *S2_OUT),
    ],
}  # fmt: skip
# the whole site: 6 loops, 300 h; acknowledged after 1800 and 1000 s (median 1400 s = 0.39 h); open past 24 h:
# A2, A3, A4, past 48 h: A2; outdoor -187 over 13 hours, degree-hours (117.25 + 350) / 2 stations
TOTAL = _row(
    "district", ("-",), 6, 3401.0, 40, 0.0442, 9.1, 4.17, 286.74, 0.28, 0.6329, 4.52, 0.38, 40.25, 1.18,
    4, 0.39, 0.5, 4.03, 4.03, 3, 1, -14.38, 233.6,
)  # fmt: skip
del TOTAL["district"]


@pytest.mark.parametrize("level", LEVELS)
def test_every_figure_of_every_level(level: str) -> None:
    """Each section 8 figure of every row, by hand: a wrong sum, weight, rounding, order or alert routing
    (a loop's row with its own alerts, a station's with its station-level ones too) changes a value."""
    rows = all_levels(_input())[level]
    assert [list(r) for r in rows] == [list(columns(level))] * len(rows)  # the keys, in section 8's order
    assert rows == EXPECTED[level]


def test_site_total_row() -> None:
    """The html summary's city figures: every loop, every alert, the stations' outdoor hours."""
    inp = _input()
    assert site_total(inp, loop_figures(inp)) == TOTAL
    assert site_total(inp, []) == {}  # no loops: no row (the renderers then sum the districts)


def test_build_tables_carries_the_site_and_the_period() -> None:
    tables = build_tables(_input(), "district", {"source": "rollups"})
    assert tables.by == "district"
    assert tables.levels == EXPECTED and tables.total == TOTAL
    assert (tables.site, tables.timezone, tables.start, tables.stop) == ("Harbin", "Asia/Harbin", START, STOP)
    assert (tables.indoor_target, tables.indoor_refund_below, tables.fee_per_m2) == (20.0, 15.0, 37.0)
    assert tables.meta == {
        "compliance_weighting": "loops where a station has no area_m2",  # s3 has no area_m2
        "season_days": 180,
        "source": "rollups",
    }
    with_areas = build_tables(_input((S2, S1)), "loop")
    assert with_areas.meta == {"compliance_weighting": "area", "season_days": 180}
    empty = build_tables(_input(()), "station")
    assert (empty.levels, empty.total) == ({level: [] for level in LEVELS}, {})


def test_unknown_level_message_names_the_levels() -> None:
    with pytest.raises(ValueError) as err:
        build_tables(_input(), "city")
    assert str(err.value) == "unknown level 'city' (expected one of loop, station, company, district)"


def test_columns_are_the_unit_keys_then_section_8() -> None:
    assert columns("loop") == ("station", "loop", "company", "district", *MEASURES)
    assert columns("district") == ("district", *MEASURES)
    assert MEASURES[:3] == ("loops", "area_m2", "households") and MEASURES[-2:] == ("outdoor_mean", "degree_hours")


def _one_loop(sums: LoopSums, stop: float = START + 10 * H, area: float | None = 100.0) -> dict[str, Row]:
    st = Station("x", company="c", district="d", area_m2=area, households=2, loops=(Loop("x0"),))
    inp = ReportInput([st], Site(), 600.0, START, stop, 180, {("x", "x0"): sums}, {}, {}, [])
    return {level: rows[0] for level, rows in all_levels(inp).items()}


def test_overlapping_points_never_make_negative_unknown_time_or_a_rate_above_one() -> None:
    """A replayed spool can write points that overlap: 40,000 s ok + noncompliant over a 36,000 s loop-period
    leaves 0 unknown hours (not -1.11), a monitored share of 1.0 (not 1.11), and more good time than judged
    time is a rate of 1.0 (not 1.11)."""
    row = _one_loop(
        LoopSums.from_rollup({"ok": 20000, "noncompliant": 20000, "judged": 36000, "good_estimate": 30000,
                              "good_sensors": 10000})
    )["loop"]  # fmt: skip
    assert (row["unknown_hours"], row["monitored_share"], row["compliance_rate"]) == (0.0, 1.0, 1.0)


def test_no_judged_time_and_an_empty_period_are_unknown_not_zero() -> None:
    """Only offline points: no compliance rate (not 0 %); a period of no whole hour: no monitored share."""
    offline = _one_loop(LoopSums.from_rollup({"beyond_design": 1800}))["station"]
    assert (offline["compliance_rate"], offline["monitored_share"], offline["unknown_hours"]) == (None, 0.0, 10.0)
    assert offline["beyond_design_hours"] == 0.5
    empty = _one_loop(LoopSums(), stop=START)["station"]
    assert (empty["monitored_share"], empty["unknown_hours"], empty["compliance_rate"]) == (None, 0.0, None)


def test_any_judged_time_gives_a_rate() -> None:
    """Half a second of judged time (a point with interval_s 0.5, all good) is a rate of 100 %, not unknown."""
    row = _one_loop(LoopSums.from_rollup({"ok": 0.5, "judged": 0.5, "good_sensors": 0.5}), area=None)["loop"]
    assert row["compliance_rate"] == 1.0


def test_time_alone_weighs_when_a_station_lacks_area() -> None:
    """Two stations of one company, one without area_m2: each loop weighs by its time alone (a 1000 m² loop
    weighing 1000 times the other would give 30,000 / 32,000 good instead of (30,000 + 0) / (30,000 + 2,000))."""
    with_area = Station("a", company="c", district="d", area_m2=1000.0, loops=(Loop("a0"),))
    without = Station("b", company="c", district="d", loops=(Loop("b0"),))
    sums = {
        ("a", "a0"): LoopSums.from_rollup({"judged": 30000, "good_estimate": 24000}),
        ("b", "b0"): LoopSums.from_rollup({"judged": 2000}),
    }
    inp = ReportInput([with_area, without], Site(), 600.0, 0.0, 10 * H, 180, sums, {}, {}, [])
    assert all_levels(inp)["company"][0]["compliance_rate"] == round(24000 / 32000, 4)


def test_area_weighs_when_every_station_has_one() -> None:
    """Both stations with area_m2: each loop's judged and good time weighs by its area, so the big estate's
    cold rooms count for more. 1000 m² judged 30,000 s of which 24,000 good, 100 m² judged 2,000 s all
    good: (1000 x 24,000 + 100 x 2,000) / (1000 x 30,000 + 100 x 2,000), not the time-weighted 26,000 / 32,000.

    Catches the area weight dropped (every loop weighing 1 although every station has an area)."""
    big = Station("a", company="c", district="d", area_m2=1000.0, loops=(Loop("a0"),))
    small = Station("b", company="c", district="d", area_m2=100.0, loops=(Loop("b0"),))
    sums = {
        ("a", "a0"): LoopSums.from_rollup({"judged": 30000, "good_estimate": 24000}),
        ("b", "b0"): LoopSums.from_rollup({"judged": 2000, "good_sensors": 2000}),
    }
    inp = ReportInput([big, small], Site(), 600.0, 0.0, 10 * H, 180, sums, {}, {}, [])
    rate = all_levels(inp)["company"][0]["compliance_rate"]
    assert rate == round((1000 * 24000 + 100 * 2000) / (1000 * 30000 + 100 * 2000), 4)
    assert rate != round(26000 / 32000, 4)


def test_households_split_and_station_without_loops() -> None:
    """A station's households split evenly over its loops (the `/` of a loop's share); a station without loops
    has no rows."""
    st = Station("x", area_m2=900.0, households=9, loops=(Loop("x0"), Loop("x1"), Loop("x2")))
    bare = Station("y", area_m2=50.0, households=1)
    inp = ReportInput([bare, st], SITE, 600.0, 0.0, 10 * H, 180, {}, {}, {}, [])
    figures = loop_figures(inp)
    assert all(f.heat_source_s == 0.0 for f in figures)  # no primary_shortage time given: none
    assert [(f.loop, f.area_m2, f.households) for f in figures] == [("x0", 300.0, 3.0), ("x1", 300.0, 3.0),
                                                                    ("x2", 300.0, 3.0)]  # fmt: skip


@pytest.mark.parametrize(
    ("windows", "seconds"),
    [
        ((), 24 * H),
        ((DailyWindow(600, 840),), 20 * H),  # 10:00-14:00
        ((DailyWindow(1320, 360),), 16 * H),  # 22:00-06:00 wraps midnight: minute 1439 is excluded, 1440 no minute
        ((DailyWindow(600, 840), DailyWindow(720, 900)), 19 * H),  # overlapping windows exclude 10:00-15:00 once
        ((DailyWindow(0, 0),), 60.0),  # everything excluded: one minute, never a division by zero
    ],
)
def test_inspection_seconds_per_day(windows: tuple[DailyWindow, ...], seconds: float) -> None:
    assert inspection_seconds_per_day(Site(inspection_exclude=windows)) == seconds


def test_a_household_cold_all_inspection_hours_is_one_household_day() -> None:
    """72,000 s below target (every inspection second of a 20-hour day) × 2 households: 2 household-days;
    counting the excluded hours (86,400 s a day) would say 1.67."""
    site = Site(inspection_exclude=(DailyWindow(600, 840),), fee_per_m2=36.0)
    st = Station("x", area_m2=200.0, households=2, loops=(Loop("x0"),))
    sums = LoopSums.from_rollup({"below_target": 72000, "below_refund": 36000})
    inp = ReportInput([st], site, 600.0, 0.0, 24 * H, 180, {("x", "x0"): sums}, {}, {}, [])
    row = all_levels(inp)["loop"][0]
    assert (row["household_days_below_target"], row["household_days_below_refund"]) == (2.0, 1.0)
    # 36 × 100 m² / 180 days = 20 CNY a household-day: 0.5 × 20 × (2 - 1) + 20 × 1
    assert row["refund_estimate_cny"] == 30.0


def test_household_days_from_points_without_interval_s() -> None:
    """Older points without interval_s stand for evaluate_every (600 s) each, at the measure's mean share:
    4 points with shares summing to 2.0 are 1200 s below target; × 60 households / 72,000 s = 1.0 household-day."""
    st = Station("x", area_m2=6000.0, households=60, loops=(Loop("x0"),))
    sums = LoopSums()
    sums.measures["below_target"] = Measure(s=0.0, c=2.0, n=4, ni=0)
    sums.measures["below_refund"] = Measure(s=0.0, c=1.0, n=4, ni=0)  # 600 s: 0.5 household-days
    inp = ReportInput([st], SITE, 600.0, 0.0, 24 * H, 180, {("x", "x0"): sums}, {}, {}, [])
    row = all_levels(inp)["loop"][0]
    assert (row["household_days_below_target"], row["household_days_below_refund"]) == (1.0, 0.5)


def test_refund_needs_fee_area_households_and_a_season() -> None:
    assert refund_cny(36.0, 100.0, 1.0, 1, 1.0, 0.0) == 1800.0  # a one-day season: the whole fee a day
    assert refund_cny(36.0, 100.0, 1.0, 0, 1.0, 0.0) is None  # no season: no daily fee (not a division by 0)
    assert refund_cny(36.0, 0.0, 1.0, 180, 1.0, 0.0) is None
    assert refund_cny(36.0, 100.0, None, 180, 1.0, 0.0) is None
    assert refund_cny(36.0, 100.0, 0.0, 180, 1.0, 0.0) is None


# alerts


def test_alert_figures_open_exactly_24_or_48_hours_is_not_past() -> None:
    """past_24h/past_48h count alerts open *more* than 24/48 h; response times are from the firing time."""
    stop = 500 * H
    lives = [
        AlertLife("s", "l", "a", 100 * H, resolved=124 * H),  # exactly 24 h
        AlertLife("s", "l", "b", 100 * H, acknowledged=100 * H + 1000, resolved=124 * H + 1),  # just over
        AlertLife("s", "l", "c", stop - 48 * H),  # open exactly 48 h at the end
        AlertLife("s", "l", "d", stop - 48 * H - 1),  # just over
    ]
    assert alert_figures(lives, stop) == {
        "alerts": 4,
        "ack_p50_h": 0.28,  # 1000 s
        "ack_max_h": 0.28,
        "resolve_p50_h": 24.0,
        "resolve_max_h": 24.0,
        "past_24h": 3,
        "past_48h": 1,
    }
    assert alert_figures([], stop) == {
        "alerts": 0, "ack_p50_h": None, "ack_max_h": None, "resolve_p50_h": None, "resolve_max_h": None,
        "past_24h": 0, "past_48h": 0,
    }  # fmt: skip


def test_alert_lives_without_ids_pair_by_station_loop_and_rule() -> None:
    """Two rules of one loop interleaved: each resolve closes its own alert, not the last one fired."""
    events = [
        Event(10.0, "s", "l", "supply_low", "firing"),
        Event(20.0, "s", "l", "return_low", "firing"),
        Event(30.0, "s", "l", "supply_low", "resolved"),
        Event(40.0, "s", "m", "return_low", "acknowledged"),  # another loop's: fired before the period
    ]
    assert alert_lives(events) == [
        AlertLife("s", "l", "supply_low", 10.0, resolved=30.0),
        AlertLife("s", "l", "return_low", 20.0),
    ]


def test_alert_lives_with_ids_pair_by_id_not_by_key() -> None:
    """A late acknowledgement of an alert that resolved belongs to it, not to the next alert of the same rule."""
    events = [
        Event(10.0, "s", "l", "supply_low", "firing", "id1"),
        Event(20.0, "s", "l", "supply_low", "resolved", "id1"),
        Event(30.0, "s", "l", "supply_low", "firing", "id2"),
        Event(40.0, "s", "l", "supply_low", "acknowledged", "id1"),
    ]
    assert alert_lives(events) == [
        AlertLife("s", "l", "supply_low", 10.0, resolved=20.0),
        AlertLife("s", "l", "supply_low", 30.0),
    ]


def test_shortage_intervals_open_states_clipping_and_empty_spans() -> None:
    events = [
        Event(10.0, "a", "", "primary_shortage", "acknowledged"),  # acknowledged is still open
        Event(30.0, "a", "", "primary_shortage", "resolved"),
        Event(50.0, "b", "", "primary_shortage", "firing"),
        Event(50.0, "b", "", "primary_shortage", "resolved"),
        Event(60.0, "c", "", "supply_low", "firing"),  # another rule
        Event(70.0, "d", "", "primary_shortage", "escalated"),
        Event(150.0, "d", "", "primary_shortage", "resolved"),  # after the end: clipped to it
    ]
    assert shortage_intervals(events, ["e"], 5.0, 100.0) == {
        "a": [(10.0, 30.0)],
        "b": [],  # fired and resolved at one instant: no time
        "d": [(70.0, 100.0)],
        "e": [(5.0, 100.0)],  # open when the period began, never resolved
    }
    assert shortage_intervals(events, [], 5.0, 100.0, rule="supply_low") == {"c": [(60.0, 100.0)]}


# sums


def test_measure_and_outdoor_sums_add_up() -> None:
    m = Measure(s=1.0, c=2.0, n=3.0, ni=4.0)
    m.add(Measure(s=10.0, c=20.0, n=30.0, ni=40.0))
    assert m == Measure(s=11.0, c=22.0, n=33.0, ni=44.0)
    o = OutdoorSums(t=-5.0, h=1.0, dh=25.0)
    o.add(OutdoorSums(t=-3.0, h=2.0, dh=46.0))
    assert o == OutdoorSums(t=-8.0, h=3.0, dh=71.0)


def test_outdoor_hour_degree_hours_below_target_only() -> None:
    assert OutdoorSums.from_hour(-4.5, 20.0) == OutdoorSums(t=-4.5, h=1.0, dh=24.5)
    assert OutdoorSums.from_hour(21.0, 20.0) == OutdoorSums(t=21.0, h=1.0, dh=0.0)  # a warm hour: none


def test_loop_sums_add_raw_and_resolved_seconds() -> None:
    """A day read from a rollup (seconds) plus raw hours (sums) gives the seconds of both."""
    rollup = LoopSums.from_rollup({"ok": 3000.0, "judged": 1000})
    raw = LoopSums()
    raw.measures["ok"] = Measure(s=600.0, c=2, n=2, ni=1)  # 600 + 1 × 60
    raw.exact_s["judged"] = 500.0
    total = LoopSums(measures={})  # a measure it lacks is created
    total.add(rollup)
    total.add(raw)
    assert total.seconds("ok", 60.0) == 3000.0 + 660.0
    assert total.seconds("judged", 60.0) == 1500.0
    assert total.seconds("noncompliant", 60.0) == 0.0
    assert total.measures["ok"] == Measure(s=600.0, c=2, n=2, ni=1)


def test_rollup_fields_round_trip() -> None:
    """Only measures with points or seconds go into a rollup point; reading it back gives the same seconds."""
    sums = LoopSums()
    sums.measures["ok"] = Measure(s=600.0, c=2, n=2, ni=1)
    sums.measures["noncompliant"] = Measure(s=0.0, c=0, n=1, ni=1)  # one point, of 0 s
    sums.exact_s["judged"] = 0.0
    fields = sums.rollup_fields(60.0)
    assert fields == {"ok": 660.0, "noncompliant": 0.0, "judged": 0.0}
    back = LoopSums.from_rollup({**fields, "beyond_design": None, "good_estimate": "7", "unknown_field": 5.0})
    assert back.exact_s == {"ok": 660.0, "noncompliant": 0.0, "judged": 0.0}
    assert {name: back.seconds(name, 60.0) for name in fields} == fields


# periods


NOW = dt.datetime.fromisoformat("2026-12-03T10:30:00+08:00").timestamp()


def _sh(text: str) -> float:
    return dt.datetime.fromisoformat(f"{text}+08:00").timestamp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  now ", NOW),  # spaces around are ignored
        ("+2h", NOW + 7200),
        ("-1h30m", NOW - 5400),
        ("2026-12-01t06:00:00z", _sh("2026-12-01T14:00:00")),  # RFC 3339 allows lower case
        ("2026-12-01 06:00:00Z", _sh("2026-12-01T14:00:00")),
    ],
)
def test_parse_time_forms(text: str, expected: float) -> None:
    assert parse_time(text, NOW, "Asia/Shanghai", ((10, 20), (4, 20))) == expected


def test_parse_time_defaults_are_china_and_its_usual_season() -> None:
    assert parse_time("2026-12-01", NOW) == _sh("2026-12-01T00:00:00")
    assert parse_time("season", NOW) == _sh("2026-10-20T00:00:00")


@pytest.mark.parametrize("text", ["", "-", "+", "-x", "soon"])
def test_parse_time_bad_text_message(text: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_time(text, NOW, "Asia/Shanghai")
    assert str(err.value) == (
        f"bad time {text!r} (expected RFC 3339, a date such as 2026-12-01, now, season, or relative such as -30d)"
    )


def test_parse_time_without_offset_message() -> None:
    with pytest.raises(ValueError) as err:
        parse_time("2026-12-01T06:00:00", NOW, "Asia/Shanghai")
    assert str(err.value) == "time '2026-12-01T06:00:00' needs a UTC offset (such as Z or +08:00)"


def test_floor_hour_rounds_down_not_toward_zero() -> None:
    assert floor_hour(7199.9) == 3600.0
    assert floor_hour(7200.0) == 7200.0
    assert floor_hour(-1800.0) == -3600.0  # before 1970: down is more negative


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        ((10, 20), (4, 20), 183),  # over new year, 2026-10-20 .. 2027-04-20
        ((4, 1), (9, 30), 183),  # within one year: 2026-04-01 .. 2026-09-30
        ((12, 3), (12, 3), 1),  # one day, both ends included (as in_heating_season counts it)
    ],
)
def test_season_days(start: tuple[int, int], end: tuple[int, int], days: int) -> None:
    assert season_days(_sh("2026-12-03T12:00:00"), "Asia/Shanghai", start, end) == days


def test_season_start_on_its_first_day_and_the_day_before() -> None:
    assert season_start(_sh("2026-10-20T00:00:00"), "Asia/Shanghai", (10, 20)) == _sh("2026-10-20T00:00:00")
    assert season_start(_sh("2026-10-19T23:59:59"), "Asia/Shanghai", (10, 20)) == _sh("2025-10-20T00:00:00")


def test_local_days_include_a_day_starting_or_ending_exactly_at_the_bounds() -> None:
    d0 = _sh("2026-12-01T00:00:00")
    assert local_days(d0, d0 + 2 * 86400, "Asia/Shanghai") == [(d0, d0 + 86400), (d0 + 86400, d0 + 2 * 86400)]
    assert local_days(d0 + 1, d0 + 2 * 86400 - 1, "Asia/Shanghai") == []  # neither day whole


@pytest.fixture
def machine_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Set the process's own time zone (TZ) for a test; restored afterwards."""

    def set_zone(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield set_zone
    monkeypatch.undo()
    time.tzset()


def test_local_days_do_not_depend_on_the_machines_zone(machine_zone: Callable[[str], None]) -> None:
    """Midnight in Honolulu (UTC-10) is already the next day in Kiritimati (UTC+14): a report run on a machine
    set to Kiritimati must still count Honolulu's first day."""
    machine_zone("Pacific/Kiritimati")
    d0 = dt.datetime(2026, 12, 1, tzinfo=dt.timezone(dt.timedelta(hours=-10))).timestamp()
    assert local_days(d0, d0 + 2 * 86400, "Pacific/Honolulu") == [(d0, d0 + 86400), (d0 + 86400, d0 + 2 * 86400)]


def test_plan_reads_when_nothing_settled() -> None:
    """`now` within settle_s of the start: everything is read raw, no day or hour is stored."""
    d0 = _sh("2026-12-01T00:00:00")
    plan = plan_reads(d0, d0 + 86400, d0 + H, "Asia/Shanghai", 2 * H)
    assert (plan.days, plan.hours, plan.raw) == ((), (), (d0, d0 + 86400))
    settled = plan_reads(d0, d0 + 86400, d0 + 86400 + 2 * H, "Asia/Shanghai", 2 * H)  # settled exactly at stop
    assert (settled.days, settled.hours, settled.raw) == (((d0, d0 + 86400),), (), None)
