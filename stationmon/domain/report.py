"""Compliance reports: per station and loop, how much of a period each loop was compliant. Pure.

The share compliant is ok / (ok + noncompliant): time with a sensor fault, offline or unknown is
reported apart, since nothing can be said about compliance then.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from zoneinfo import ZoneInfo

from stationmon.domain.durations import parse_duration
from stationmon.domain.plant import Site, Station
from stationmon.domain.vocabulary import STATUS_NAMES

__all__ = [
    "STATUSES",
    "LoopAggregates",
    "ReportRow",
    "build_report",
    "parse_time",
    "render",
]

STATUSES = STATUS_NAMES


def parse_time(text: str, now: float) -> float:
    """Unix seconds from RFC 3339 ("2026-11-27T06:00:00+08:00"), "now", or relative ("-24h", "-7d")."""
    text = text.strip()
    if text == "now":
        return now
    try:
        if text[:1] in "+-" and len(text) > 1:
            seconds = parse_duration(text[1:])
            return now - seconds if text[0] == "-" else now + seconds
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"bad time {text!r} (expected RFC 3339, now, or relative such as -24h)") from None
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} needs a UTC offset (such as Z or +08:00)")
    return moment.timestamp()


@dataclass
class LoopAggregates:
    """What the database says about one loop over the period."""

    samples: dict[str, int] = field(default_factory=dict)  # status -> count of loop_status samples
    estimated_indoor_mean: float | None = None
    estimated_indoor_min: float | None = None
    required_supply_mean: float | None = None
    delta_t_mean: float | None = None
    supply_mean: float | None = None
    return_mean: float | None = None
    indoor_sensor_mean: float | None = None
    indoor_sensor_min: float | None = None
    alerts: dict[str, int] = field(default_factory=dict)  # rule -> alerts fired


@dataclass
class ReportRow:
    """One loop's line: CSV columns and JSON keys in this order."""

    station: str
    station_name: str
    district: str
    loop: str
    emitter: str
    design: str
    samples: int
    compliant_share: float | None
    hours_ok: float
    hours_noncompliant: float
    hours_sensor_fault: float
    hours_offline: float
    hours_unknown: float
    mean_supply_temp: float | None
    mean_return_temp: float | None
    mean_required_supply_temp: float | None
    mean_estimated_indoor_temp: float | None
    min_estimated_indoor_temp: float | None
    mean_indoor_sensor_temp: float | None
    min_indoor_sensor_temp: float | None
    mean_delta_t: float | None
    alerts_fired: int
    alerts_by_rule: str
    verdict: str


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def build_report(
    stations: Iterable[Station], aggregates: Mapping[tuple[str, str], LoopAggregates], sample_interval_s: float
) -> list[ReportRow]:
    """One row per loop of `stations`; a `loop_status` sample stands for `sample_interval_s`."""
    rows = []
    hours_per_sample = sample_interval_s / 3600.0
    for station in stations:
        for loop in station.loops:
            agg = aggregates.get((station.id, loop.id), LoopAggregates())
            n = {s: agg.samples.get(s, 0) for s in STATUSES}
            total = sum(n.values())
            judged = n["ok"] + n["noncompliant"]
            share = n["ok"] / judged if judged else None
            if total == 0:
                verdict = "no data"
            elif share is None:
                verdict = "not judged"
            elif share >= 0.99:
                verdict = "compliant"
            elif share >= 0.9:
                verdict = "mostly compliant"
            else:
                verdict = "noncompliant"
            rows.append(
                ReportRow(
                    station=station.id,
                    station_name=station.name,
                    district=station.district,
                    loop=loop.id,
                    emitter=loop.emitter,
                    design=f"{loop.design_supply:g}/{loop.design_return:g}",
                    samples=total,
                    compliant_share=None if share is None else round(share, 4),
                    hours_ok=round(n["ok"] * hours_per_sample, 2),
                    hours_noncompliant=round(n["noncompliant"] * hours_per_sample, 2),
                    hours_sensor_fault=round(n["sensor_fault"] * hours_per_sample, 2),
                    hours_offline=round(n["offline"] * hours_per_sample, 2),
                    hours_unknown=round(n["unknown"] * hours_per_sample, 2),
                    mean_supply_temp=_round(agg.supply_mean),
                    mean_return_temp=_round(agg.return_mean),
                    mean_required_supply_temp=_round(agg.required_supply_mean),
                    mean_estimated_indoor_temp=_round(agg.estimated_indoor_mean),
                    min_estimated_indoor_temp=_round(agg.estimated_indoor_min),
                    mean_indoor_sensor_temp=_round(agg.indoor_sensor_mean),
                    min_indoor_sensor_temp=_round(agg.indoor_sensor_min),
                    mean_delta_t=_round(agg.delta_t_mean),
                    alerts_fired=sum(agg.alerts.values()),
                    alerts_by_rule=" ".join(f"{rule}={count}" for rule, count in sorted(agg.alerts.items())),
                    verdict=verdict,
                )
            )
    return rows


def _fmt_time(ts: float, tz: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def render(rows: Sequence[ReportRow], fmt: str, *, site: Site, start: float, stop: float) -> str:
    """The report of `site` as "csv", "json" or "html"."""
    tz = ZoneInfo(site.timezone)
    if fmt == "json":
        return json.dumps(
            {
                "site": site.name,
                "from": _fmt_time(start, tz),
                "to": _fmt_time(stop, tz),
                "indoor_target": site.indoor_target,
                "loops": [asdict(r) for r in rows],
            },
            ensure_ascii=False,
            indent=2,
        )
    if fmt == "csv":
        out = io.StringIO()
        names = list(ReportRow.__dataclass_fields__)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        for r in rows:
            writer.writerow(["" if getattr(r, k) is None else getattr(r, k) for k in names])
        return out.getvalue()
    if fmt == "html":
        return _html(rows, site, _fmt_time(start, tz), _fmt_time(stop, tz))
    raise ValueError(f"unknown format {fmt!r}")


_VERDICT_CLASS = {"compliant": "ok", "mostly compliant": "warn", "noncompliant": "bad"}


def _cell(value: object) -> str:
    if value is None:
        return "<td class=na>–</td>"
    if isinstance(value, float):
        return f"<td class=num>{value:g}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def _mean_min(mean: float | None, low: float | None) -> str:
    return "–" if mean is None else f"{mean:g} / {low:g}"


def _html(rows: Sequence[ReportRow], site: Site, start: str, stop: str) -> str:
    head = (
        "<tr><th>station</th><th>district</th><th>loop</th><th>design</th><th>compliant</th>"
        "<th>h noncompliant</th><th>h fault</th><th>h offline</th><th>supply / return (mean)</th>"
        "<th>required supply</th><th>est. indoor mean / min</th><th>indoor sensors mean / min</th>"
        "<th>alerts</th><th>verdict</th></tr>"
    )
    body = []
    for r in rows:
        share = "–" if r.compliant_share is None else f"{100 * r.compliant_share:.1f} %"
        sr = "–" if r.mean_supply_temp is None else f"{r.mean_supply_temp:g} / {r.mean_return_temp or '–'}"
        body.append(
            "<tr>"
            + _cell(f"{r.station_name} ({r.station})" if r.station_name else r.station)
            + _cell(r.district)
            + _cell(f"{r.loop} ({r.emitter})")
            + _cell(r.design)
            + f"<td class=num>{share}</td>"
            + _cell(r.hours_noncompliant)
            + _cell(r.hours_sensor_fault)
            + _cell(r.hours_offline)
            + _cell(sr)
            + _cell(r.mean_required_supply_temp)
            + _cell(_mean_min(r.mean_estimated_indoor_temp, r.min_estimated_indoor_temp))
            + _cell(_mean_min(r.mean_indoor_sensor_temp, r.min_indoor_sensor_temp))
            + _cell(f"{r.alerts_fired} {r.alerts_by_rule}".strip())
            + f"<td class={_VERDICT_CLASS.get(r.verdict, 'na')}>{html.escape(r.verdict)}</td>"
            + "</tr>"
        )
    title = html.escape(f"{site.name or 'stationmon'}: compliance {start} – {stop}")
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #ccc; padding: 4px 8px; }}
th {{ background: #f3f3f3; }} td.num {{ text-align: right; }} td.na {{ color: #999; text-align: center; }}
td.ok {{ background: #d9f2d9; }} td.warn {{ background: #fff2cc; }} td.bad {{ background: #f8d0d0; }}
</style></head><body>
<h1>{title}</h1>
<p>Indoor target {site.indoor_target:g} °C, design outdoor temperature {site.outdoor_design:g} °C.
"Compliant" is the share of judged time (heating season, sensors sound, station online) in which the loop
met its heating curve and floors; hours with a sensor fault or offline are listed apart.</p>
<table>{head}{"".join(body)}</table>
</body></html>
"""
