"""Section 8's figures at every level (loop, station, company, district) from the sums InfluxDB gave. Pure.

Time accounting: hours are loop-hours. A loop's period is the report's whole hours; a `loop_status` point
stands for its `interval_s` (else `evaluate_every`); time without points is unknown, as are sensor_fault,
offline and unknown statuses. Area and households of a station are split evenly over its loops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from stationmon.domain.plant import Site, Station
from stationmon.domain.report.alert_lives import AlertLife, alert_figures
from stationmon.domain.report.sums import LoopSums, OutdoorSums
from stationmon.domain.report_tables import LEVELS, UNIT_KEYS, Row

__all__ = [
    "LoopFigures",
    "ReportInput",
    "all_levels",
    "inspection_seconds_per_day",
    "level_rows",
    "loop_figures",
    "refund_cny",
]

HOUR = 3600.0
DAY = 86400.0


@dataclass(frozen=True)
class ReportInput:
    """Everything the figures are computed from."""

    stations: Sequence[Station]
    site: Site
    every_s: float  # evaluate_every: what a point without interval_s stands for
    start: float
    stop: float
    season_days: int
    loop_sums: Mapping[tuple[str, str], LoopSums]
    outdoor: Mapping[str, OutdoorSums]
    heat_source_s: Mapping[tuple[str, str], float]  # noncompliant seconds while primary_shortage held
    lives: Sequence[AlertLife]


@dataclass
class LoopFigures:
    """One loop's additive figures (seconds, household-days, CNY) and what it weighs."""

    station: Station
    loop: str
    period_s: float
    ok_s: float
    noncompliant_s: float
    beyond_design_s: float
    judged_s: float  # judged inspection-hour time
    good_s: float  # of which at or above indoor_target
    heat_source_s: float
    area_m2: float | None  # the loop's share of the station's area
    households: float | None
    days_below_target: float | None
    days_below_refund: float | None
    refund_cny: float | None


def inspection_seconds_per_day(site: Site) -> float:
    """Seconds of a day outside `inspection_exclude`: a household cold for all of them is cold one day."""
    excluded = sum(1 for minute in range(1440) if any(w.contains(minute) for w in site.inspection_exclude))
    return max(60.0, (1440 - excluded) * 60.0)


def refund_cny(
    fee_per_m2: float | None, area_m2: float | None, households: float | None, season_days: int, t: float, r: float
) -> float | None:
    """Refund for `t` household-days below target of which `r` below the refund tier: the daily fee per
    household is fee_per_m2 × (area / households) / season_days; 50 % back between the tiers, 100 % below."""
    if fee_per_m2 is None or not area_m2 or not households or season_days <= 0:
        return None
    daily_fee = fee_per_m2 * (area_m2 / households) / season_days
    return daily_fee * (0.5 * (t - r) + r)


def _household_days(
    inp: ReportInput, sums: LoopSums, area: float | None, homes: float | None, per_day: float
) -> tuple[float | None, float | None, float | None]:
    """A loop's household-days below target and below the refund tier, and their refund (None: no households)."""
    if not homes:
        return None, None, None
    t = sums.seconds("below_target", inp.every_s) * homes / per_day
    r = sums.seconds("below_refund", inp.every_s) * homes / per_day
    return t, r, refund_cny(inp.site.fee_per_m2, area, homes, inp.season_days, t, r)


def loop_figures(inp: ReportInput) -> list[LoopFigures]:
    """Every configured loop's figures, in config order."""
    per_day = inspection_seconds_per_day(inp.site)
    out = []
    for st in inp.stations:
        for lp in st.loops:
            area = st.area_m2 / len(st.loops) if st.area_m2 else None
            homes = st.households / len(st.loops) if st.households else None
            sums = inp.loop_sums.get((st.id, lp.id), LoopSums())

            def sec(name: str, s: LoopSums = sums) -> float:
                return s.seconds(name, inp.every_s)

            out.append(
                LoopFigures(
                    st, lp.id, inp.stop - inp.start, sec("ok"), sec("noncompliant"), sec("beyond_design"),
                    sec("judged"), sec("good_estimate") + sec("good_sensors"),
                    inp.heat_source_s.get((st.id, lp.id), 0.0), area, homes,
                    *_household_days(inp, sums, area, homes, per_day),
                )
            )  # fmt: skip
    return out


def _sum_known(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class _Unit:
    keys: dict[str, str]
    loops: list[LoopFigures] = field(default_factory=list)


def _weight(f: LoopFigures, by_area: bool) -> float:
    """What a loop's time weighs in the compliance rate: its area, or 1 when the unit weighs by time alone."""
    return f.area_m2 if by_area and f.area_m2 else 1.0


def _time_figures(loops: Sequence[LoopFigures]) -> Row:
    period_h = sum(f.period_s for f in loops) / HOUR
    ok_h = sum(f.ok_s for f in loops) / HOUR
    nc_h = sum(f.noncompliant_s for f in loops) / HOUR
    by_area = all(f.area_m2 for f in loops)
    judged = sum(_weight(f, by_area) * f.judged_s for f in loops)
    good = sum(_weight(f, by_area) * f.good_s for f in loops)
    return {
        "monitored_share": _r(min(1.0, (ok_h + nc_h) / period_h), 4) if period_h else None,
        "compliant_hours": round(ok_h, 2),
        "noncompliant_hours": round(nc_h, 2),
        "unknown_hours": round(max(0.0, period_h - ok_h - nc_h), 2),
        "beyond_design_hours": round(sum(f.beyond_design_s for f in loops) / HOUR, 2),
        "compliance_rate": _r(min(1.0, good / judged), 4) if judged > 0 else None,
        "household_days_below_target": _r(_sum_known([f.days_below_target for f in loops]), 2),
        "household_days_below_refund": _r(_sum_known([f.days_below_refund for f in loops]), 2),
        "refund_estimate_cny": _r(_sum_known([f.refund_cny for f in loops]), 2),
        "heat_source_hours": round(sum(f.heat_source_s for f in loops) / HOUR, 2),
    }


def _unit_row(unit: _Unit, inp: ReportInput, lives: Sequence[AlertLife], outdoor: Sequence[OutdoorSums]) -> Row:
    """A unit's row; `area_m2` and `households` are its stations' (a loop's row replaces them by its share)."""
    stations = {f.station.id: f.station for f in unit.loops}
    row: Row = dict(unit.keys)
    row["loops"] = len(unit.loops)
    row["area_m2"] = _sum_known([s.area_m2 for s in stations.values()])
    row["households"] = _sum_known([s.households for s in stations.values()])
    row.update(_time_figures(unit.loops))
    row.update(alert_figures(lives, inp.stop))
    hours = sum(o.h for o in outdoor)
    with_data = [o for o in outdoor if o.h > 0]
    row["outdoor_mean"] = _r(sum(o.t for o in outdoor) / hours, 2) if hours else None
    row["degree_hours"] = _r(sum(o.dh for o in with_data) / len(with_data), 1) if with_data else None
    return row


_LEVEL_KEY: dict[str, Callable[[LoopFigures], dict[str, str]]] = {
    "loop": lambda f: {
        "station": f.station.id, "loop": f.loop, "company": f.station.company, "district": f.station.district
    },
    "station": lambda f: {"station": f.station.id, "company": f.station.company, "district": f.station.district},
    "company": lambda f: {"company": f.station.company},
    "district": lambda f: {"district": f.station.district},
}  # fmt: skip


def level_rows(inp: ReportInput, figures: Sequence[LoopFigures], level: str) -> list[Row]:
    """One row per unit of `level`: loops and stations in config order, companies and districts by name."""
    units: dict[tuple[str, ...], _Unit] = {}
    for f in figures:
        keys = _LEVEL_KEY[level](f)
        units.setdefault(tuple(keys[k] for k in UNIT_KEYS[level]), _Unit(keys)).loops.append(f)
    order = sorted(units) if level in ("company", "district") else list(units)
    by_loop: dict[tuple[str, str], list[AlertLife]] = {}
    by_station: dict[str, list[AlertLife]] = {}
    for a in inp.lives:
        by_loop.setdefault((a.station, a.loop), []).append(a)
        by_station.setdefault(a.station, []).append(a)
    rows = []
    for key in order:
        unit = units[key]
        station_ids = {f.station.id for f in unit.loops}
        if level == "loop":
            lives = by_loop.get((unit.loops[0].station.id, unit.loops[0].loop), [])
        else:
            lives = [a for s in sorted(station_ids) for a in by_station.get(s, [])]
        outdoor = [inp.outdoor[s] for s in sorted(station_ids) if s in inp.outdoor]
        row = _unit_row(unit, inp, lives, outdoor)
        if level == "loop":  # the loop's share of its station's
            row["area_m2"], row["households"] = _r(unit.loops[0].area_m2, 1), _r(unit.loops[0].households, 1)
        rows.append(row)
    return rows


def site_total(inp: ReportInput, figures: Sequence[LoopFigures]) -> Row:
    """The whole site as one row of measures (the html summary's city figures); empty without loops."""
    if not figures:
        return {}
    unit = _Unit({}, list(figures))
    outdoor = [inp.outdoor[s] for s in sorted({f.station.id for f in figures}) if s in inp.outdoor]
    return _unit_row(unit, inp, inp.lives, outdoor)


def all_levels(inp: ReportInput) -> dict[str, list[Row]]:
    """Rows of every level of LEVELS."""
    figures = loop_figures(inp)
    return {level: level_rows(inp, figures, level) for level in LEVELS}
