"""Gathering a report's sums from InfluxDB: rollups where they are stored, raw points where they are not.

Reading a season of raw `loop_status` (a point per loop every evaluate_every: billions at 10 s) cannot finish
in a minute, so the report keeps rollups in InfluxDB: `report_loop_1h` / `report_outdoor_1h` (one point per
loop or station and hour) and `report_loop_1d` / `report_outdoor_1d` (per local day, summed from the hours),
each tagged with the indoor target they were made for; `report_rollup_marks` records which buckets are
stored (a bucket without data still gets its mark). A report reads whole days from the daily rollup, the
other whole hours from the hourly one, and the last `ROLLUP_SETTLE_S` from raw points (late points may still
arrive there: those hours are never stored). A bucket missing from the rollups is computed from raw points
(in InfluxDB, per loop-hour) and stored, so the first report over a period pays for it once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stationmon.adapters.influx_query import InfluxQuery, rollup_lines
from stationmon.domain.report import (
    HOUR,
    AlertLife,
    Event,
    LoopSums,
    Measure,
    OutdoorSums,
    ReadPlan,
    alert_lives,
    plan_reads,
    shortage_intervals,
)

__all__ = ["ROLLUP_MODES", "ROLLUP_SETTLE_S", "Gathered", "gather"]

ROLLUP_SETTLE_S = 2 * HOUR
ROLLUP_MODES = ("use", "rebuild", "off")
LOOP_1H, LOOP_1D = "report_loop_1h", "report_loop_1d"
OUT_1H, OUT_1D = "report_outdoor_1h", "report_outdoor_1d"
MARKS = "report_rollup_marks"
_OPEN = ("firing", "escalated", "acknowledged")


@dataclass
class Gathered:
    """What the report's figures are computed from, and what gathering it cost."""

    loop_sums: dict[tuple[str, str], LoopSums] = field(default_factory=dict)
    outdoor: dict[str, OutdoorSums] = field(default_factory=dict)
    heat_source_s: dict[tuple[str, str], float] = field(default_factory=dict)
    lives: list[AlertLife] = field(default_factory=list)
    rollup_hours_written: int = 0
    rollup_days_written: int = 0


def _runs(starts: Iterable[float], step: float, longest: int) -> list[tuple[float, float]]:
    """Contiguous runs of bucket starts as [first, last + step), at most `longest` buckets each."""
    out: list[tuple[float, float]] = []
    for h in sorted(starts):
        if out and out[-1][1] == h and (out[-1][1] - out[-1][0]) / step < longest:
            out[-1] = (out[-1][0], h + step)
        else:
            out.append((h, h + step))
    return out


def _add_loops(into: dict[tuple[str, str], LoopSums], rows: Iterable[dict[str, Any]]) -> None:
    for row in rows:
        into.setdefault((str(row.get("station", "")), str(row.get("loop", ""))), LoopSums()).add(
            LoopSums.from_rollup(row)
        )


def _add_outdoor(into: dict[str, OutdoorSums], rows: Iterable[dict[str, Any]]) -> None:
    for row in rows:
        sums = OutdoorSums(float(row.get("t") or 0), float(row.get("h") or 0), float(row.get("dh") or 0))
        into.setdefault(str(row.get("station", "")), OutdoorSums()).add(sums)


async def _backfill_hours(q: InfluxQuery, hours: Sequence[float], target: float, every_s: float) -> None:
    tags = {"target": f"{target:g}"}
    for a, b in _runs(hours, HOUR, 24):
        loops = await q.loop_sums(a, b, target, hourly=True)
        outdoor = await q.outdoor_sums(a, b, target, hourly=True)
        lines = [
            rollup_lines(LOOP_1H, {**tags, "station": st, "loop": lp}, sums.rollup_fields(every_s), h)
            for (st, lp, h), sums in loops.items()
            if sums.rollup_fields(every_s)
        ]
        lines += [
            rollup_lines(OUT_1H, {**tags, "station": st}, {"t": o.t, "h": o.h, "dh": o.dh}, h)
            for (st, h), o in outdoor.items()
            if o.h > 0
        ]
        await q.write(lines)
        h = a
        marks = []
        while h < b:
            marks.append(rollup_lines(MARKS, {**tags, "level": "1h"}, {"rows": len(loops)}, h))
            h += HOUR
        await q.write(marks)  # after the rows: an interrupted backfill leaves no mark and is redone


async def _build_days(q: InfluxQuery, days: Sequence[tuple[float, float]], target: float) -> None:
    tags = {"target": f"{target:g}"}
    for d0, d1 in days:
        rows = await q.rollup_loop_sums(LOOP_1H, d0, d1, target)
        lines = []
        for row in rows:
            fields = LoopSums.from_rollup(row).rollup_fields(0.0)
            if fields:
                lines.append(
                    rollup_lines(LOOP_1D, {**tags, "station": row["station"], "loop": row["loop"]}, fields, d0)
                )
        for row in await q.rollup_outdoor_sums(OUT_1H, d0, d1, target):
            if row.get("h"):
                fields = {k: float(row.get(k) or 0) for k in ("t", "h", "dh")}
                lines.append(rollup_lines(OUT_1D, {**tags, "station": row["station"]}, fields, d0))
        await q.write(lines)
        await q.write([rollup_lines(MARKS, {**tags, "level": "1d"}, {"rows": len(rows)}, d0)])


async def _ensure_rollups(
    q: InfluxQuery, plan: ReadPlan, start: float, stop: float, target: float, every_s: float, rebuild: bool
) -> tuple[int, int]:
    """Store the rollups `plan` reads that are missing (all of them if `rebuild`): (hours, days) written."""
    marks_d = set() if rebuild else await q.marks("1d", start, stop, target)
    days = [d for d in plan.days if d[0] not in marks_d]
    wanted = list(plan.hours)
    for d0, d1 in days:
        wanted.extend(d0 + i * HOUR for i in range(round((d1 - d0) / HOUR)))
    marks_h = set() if rebuild else await q.marks("1h", start, stop, target)
    hours = sorted(h for h in wanted if h not in marks_h)
    await _backfill_hours(q, hours, target, every_s)
    await _build_days(q, days, target)
    return len(hours), len(days)


async def _sums(
    q: InfluxQuery,
    g: Gathered,
    period: tuple[float, float],
    now: float,
    target: float,
    timezone: str,
    every_s: float,
    rollup: str,
) -> None:
    start, stop = period
    if rollup == "off":
        _merge_raw(g, await q.loop_sums(start, stop, target), await q.outdoor_sums(start, stop, target))
        return
    plan = plan_reads(start, stop, now, timezone, ROLLUP_SETTLE_S)
    g.rollup_hours_written, g.rollup_days_written = await _ensure_rollups(
        q, plan, start, stop, target, every_s, rollup == "rebuild"
    )
    await _read_rollups(q, g, plan, target)
    if plan.raw is not None:
        a, b = plan.raw
        _merge_raw(g, await q.loop_sums(a, b, target), await q.outdoor_sums(a, b, target))


async def _read_rollups(q: InfluxQuery, g: Gathered, plan: ReadPlan, target: float) -> None:
    """The stored days and hours of `plan`, one request after another (reading two halves of a season at once
    measured slower: both work the same shards)."""
    spans = [(LOOP_1H, OUT_1H, a, b) for a, b in _runs(plan.hours, HOUR, 1 << 30)]
    if plan.days:
        spans.append((LOOP_1D, OUT_1D, plan.days[0][0], plan.days[-1][1]))
    for loop_m, out_m, a, b in spans:
        _add_loops(g.loop_sums, await q.rollup_loop_sums(loop_m, a, b, target))
        _add_outdoor(g.outdoor, await q.rollup_outdoor_sums(out_m, a, b, target))


def _merge_raw(
    g: Gathered, loops: dict[tuple[str, str, float], LoopSums], outdoor: dict[tuple[str, float], OutdoorSums]
) -> None:
    for (st, lp, _), sums in loops.items():
        g.loop_sums.setdefault((st, lp), LoopSums()).add(sums)
    for (st, _), o in outdoor.items():
        g.outdoor.setdefault(st, OutdoorSums()).add(o)


def _events(rows: Iterable[dict[str, Any]]) -> list[Event]:
    return [
        Event(
            float(r["time"]) / 1000,
            str(r.get("station") or ""),
            str(r.get("loop") or ""),
            str(r.get("rule") or ""),
            str(r.get("state") or ""),
            str(r.get("alert_id") or ""),
        )
        for r in rows
    ]


async def _alerts(q: InfluxQuery, g: Gathered, start: float, stop: float, every_s: float) -> None:
    events = _events(await q.alert_events(start, stop))
    g.lives = alert_lives(events)
    before = await q.open_before(start, "primary_shortage")
    open_at_start = [str(r.get("station")) for r in before if not r.get("loop") and r.get("state") in _OPEN]
    intervals = shortage_intervals(events, open_at_start, start, stop)
    spans = [(st, a, b) for st, spans in sorted(intervals.items()) for a, b in spans]
    for (st, _, _), rows in zip(spans, await q.noncompliant_within(spans), strict=True):
        for row in rows:
            n = float(row.get("n") or 0)
            seconds = Measure(float(row.get("s") or 0), n, n, float(row.get("ni") or 0)).seconds(every_s)
            key = (st, str(row.get("loop") or ""))
            g.heat_source_s[key] = g.heat_source_s.get(key, 0.0) + seconds


async def gather(
    q: InfluxQuery,
    start: float,
    stop: float,
    *,
    now: float,
    target: float,
    timezone: str,
    every_s: float,
    rollup: str = "use",
) -> Gathered:
    """Everything the figures need over the whole-hour period [start, stop)."""
    if rollup not in ROLLUP_MODES:
        raise ValueError(f"unknown rollup mode {rollup!r} (expected one of {', '.join(ROLLUP_MODES)})")
    g = Gathered()
    await _sums(q, g, (start, stop), now, target, timezone, every_s, rollup)
    await _alerts(q, g, start, stop, every_s)
    return g
