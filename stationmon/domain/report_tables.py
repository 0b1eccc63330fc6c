"""The compliance report as plain tables (CONTRACT section 8): what the report computes and the renderers print.

`domain.report` fills a `ReportTables` from InfluxDB aggregates; `domain.report_render` turns it into csv, json,
html or xlsx. Rows are dicts keyed by the section 8 keys (`columns(level)` gives them in order); a value is a
float, an int, a str, or None where it cannot be known (no judged time, no fee, no alerts to time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["LEVELS", "MEASURES", "UNIT_KEYS", "ReportTables", "columns"]

LEVELS = ("loop", "station", "company", "district")

# The keys that name a row at each level, before the measures.
UNIT_KEYS: dict[str, tuple[str, ...]] = {
    "loop": ("station", "loop", "company", "district"),
    "station": ("station", "company", "district"),
    "company": ("company",),
    "district": ("district",),
}

# Section 8's measures, in its order.
MEASURES = (
    "loops",
    "area_m2",
    "households",
    "monitored_share",
    "compliant_hours",
    "noncompliant_hours",
    "unknown_hours",
    "beyond_design_hours",
    "compliance_rate",
    "household_days_below_target",
    "household_days_below_refund",
    "refund_estimate_cny",
    "heat_source_hours",
    "alerts",
    "ack_p50_h",
    "ack_max_h",
    "resolve_p50_h",
    "resolve_max_h",
    "past_24h",
    "past_48h",
    "outdoor_mean",
    "degree_hours",
)

Row = dict[str, float | int | str | None]


def columns(level: str) -> tuple[str, ...]:
    """CSV columns and JSON keys of a row at `level`, in order."""
    return UNIT_KEYS[level] + MEASURES


@dataclass(frozen=True)
class ReportTables:
    """Every level of one report; `by` is the level the user asked for (csv and json print only that one)."""

    by: str
    levels: dict[str, list[Row]]  # every name of LEVELS -> its rows
    site: str = ""  # the site's name
    timezone: str = "Asia/Shanghai"
    start: float = 0.0  # Unix seconds
    stop: float = 0.0
    indoor_target: float = 18.0
    indoor_refund_below: float | None = None
    fee_per_m2: float | None = None
    meta: dict[str, float | int | str | None] = field(default_factory=dict)  # anything else worth printing
    # the whole site as one row of MEASURES (the summary's city figures); empty when not computed, then the
    # renderers sum what adds up over the districts and leave shares, means and times unknown
    total: Row = field(default_factory=dict)
