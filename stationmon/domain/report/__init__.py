"""The compliance report (CONTRACT section 8), pure: periods, the sums InfluxDB gives, alert lives, and the
figures of every level; `build_tables` makes the `ReportTables` the renderers print.

How the numbers are made is written down in the README ("The compliance report").
"""

from __future__ import annotations

from stationmon.domain.report.alert_lives import AlertLife, Event, alert_figures, alert_lives, shortage_intervals
from stationmon.domain.report.figures import (
    ReportInput,
    all_levels,
    inspection_seconds_per_day,
    level_rows,
    loop_figures,
    refund_cny,
    site_total,
)
from stationmon.domain.report.periods import (
    HOUR,
    ReadPlan,
    floor_hour,
    local_days,
    parse_time,
    plan_reads,
    season_days,
    season_start,
)
from stationmon.domain.report.sums import LOOP_MEASURES, LoopSums, Measure, OutdoorSums
from stationmon.domain.report_tables import LEVELS, ReportTables

__all__ = [
    "HOUR",
    "LOOP_MEASURES",
    "AlertLife",
    "Event",
    "LoopSums",
    "Measure",
    "OutdoorSums",
    "ReadPlan",
    "ReportInput",
    "alert_figures",
    "alert_lives",
    "all_levels",
    "build_tables",
    "floor_hour",
    "inspection_seconds_per_day",
    "local_days",
    "parse_time",
    "plan_reads",
    "refund_cny",
    "season_days",
    "season_start",
    "shortage_intervals",
    "site_total",
]


def build_tables(inp: ReportInput, by: str, meta: dict[str, float | int | str | None] | None = None) -> ReportTables:
    """Every level's rows for `inp`; `by` is the level asked for."""
    if by not in LEVELS:
        raise ValueError(f"unknown level {by!r} (expected one of {', '.join(LEVELS)})")
    site = inp.site
    figures = loop_figures(inp)
    weighting = "area" if all(s.area_m2 for s in inp.stations) else "loops where a station has no area_m2"
    return ReportTables(
        by=by,
        levels={level: level_rows(inp, figures, level) for level in LEVELS},
        total=site_total(inp, figures),
        site=site.name,
        timezone=site.timezone,
        start=inp.start,
        stop=inp.stop,
        indoor_target=site.indoor_target,
        indoor_refund_below=site.indoor_refund_below,
        fee_per_m2=site.fee_per_m2,
        meta={"compliance_weighting": weighting, "season_days": inp.season_days, **(meta or {})},
    )
