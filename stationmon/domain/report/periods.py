"""The report's period: times as users write them, heating seasons, whole hours and local days. Pure.

A report covers whole hours: `--from` and `--to` are rounded down to the hour (the current, unfinished
hour is never in a report). Hours are UTC hours, which are local hours in every zone with a whole-hour
offset (China, and most of the world).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from stationmon.domain.durations import parse_duration

__all__ = [
    "HOUR",
    "ReadPlan",
    "floor_hour",
    "local_days",
    "parse_time",
    "plan_reads",
    "season_days",
    "season_start",
]

HOUR = 3600.0
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MonthDay = tuple[int, int]


def _local_midnight(day: dt.date, tz: ZoneInfo) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def season_start(now: float, timezone: str, start: MonthDay) -> float:
    """Local midnight starting the heating season `now` is in, or else the last one that began before `now`
    (the season starting on `start`, MM-DD: its end does not matter)."""
    tz = ZoneInfo(timezone)
    today = dt.datetime.fromtimestamp(now, tz).date()
    year = today.year if (today.month, today.day) >= start else today.year - 1
    return _local_midnight(dt.date(year, *start), tz)


def season_days(moment: float, timezone: str, start: MonthDay, end: MonthDay) -> int:
    """Length in days (both ends included) of the heating season that began last at or before `moment`."""
    tz = ZoneInfo(timezone)
    first = dt.datetime.fromtimestamp(season_start(moment, timezone, start), tz).date()
    last = dt.date(first.year + (1 if end < start else 0), *end)
    return (last - first).days + 1


def parse_time(
    text: str, now: float, timezone: str = "Asia/Shanghai", season: tuple[MonthDay, MonthDay] = ((10, 20), (4, 20))
) -> float:
    """Unix seconds from RFC 3339, a date (local midnight in `timezone`), "now", relative ("-24h", "-30d"),
    or "season" (the start of the current heating season); ValueError with a message for the user."""
    text = text.strip()
    if text == "now":
        return now
    if text == "season":
        return season_start(now, timezone, season[0])
    try:
        if text[:1] in ("+", "-"):  # "-" alone fails in parse_duration
            seconds = parse_duration(text[1:])
            return now - seconds if text[0] == "-" else now + seconds
        if _DATE_RE.match(text):
            return _local_midnight(dt.date.fromisoformat(text), ZoneInfo(timezone))
        moment = dt.datetime.fromisoformat(text.replace("z", "Z"))  # Python 3.11 reads Z, not z
    except ValueError:
        raise ValueError(
            f"bad time {text!r} (expected RFC 3339, a date such as 2026-12-01, now, season, or relative such as -30d)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} needs a UTC offset (such as Z or +08:00)")
    return moment.timestamp()


def floor_hour(ts: float) -> float:
    """`ts` rounded down to a whole hour."""
    return float(int(ts // HOUR) * HOUR)


def local_days(start: float, stop: float, timezone: str) -> list[tuple[float, float]]:
    """The whole local days (midnight to midnight, 23 or 25 hours on DST days) inside [start, stop)."""
    tz = ZoneInfo(timezone)
    day = dt.datetime.fromtimestamp(start, tz).date()
    days: list[tuple[float, float]] = []
    while True:
        d0 = _local_midnight(day, tz)
        day += dt.timedelta(days=1)
        d1 = _local_midnight(day, tz)
        if d1 > stop:
            return days
        if d0 >= start:
            days.append((d0, d1))


@dataclass(frozen=True)
class ReadPlan:
    """Where each part of a period is read from: daily rollups, hourly rollups, or raw points."""

    days: tuple[tuple[float, float], ...]  # whole local days, settled
    hours: tuple[float, ...]  # whole hours outside those days, settled (hour starts)
    raw: tuple[float, float] | None  # the recent hours not settled yet: read from raw points, not stored


def plan_reads(start: float, stop: float, now: float, timezone: str, settle_s: float) -> ReadPlan:
    """Split the whole-hour period [start, stop) for reading; hours ending within `settle_s` of `now` may still
    receive late points (a spool replay), so they are read raw and never stored as rollups."""
    settled = min(stop, floor_hour(now - settle_s))
    raw = (max(start, settled), stop) if settled < stop else None
    days = tuple(local_days(start, settled, timezone))  # none if settled <= start
    hours: list[float] = []
    h = start
    for d0, d1 in (*days, (settled, settled)):
        while h < d0:
            hours.append(h)
            h += HOUR
        h = max(h, d1)
    return ReadPlan(days, tuple(hours), raw)
