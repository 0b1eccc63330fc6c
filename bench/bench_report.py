"""Benchmark: `stationmon report` over a simulated heating season of 1,000 stations (3 loops each).

Starts its own influxd 1.x in a temporary directory and measures, in one run:

1. One simulated day of raw points for every loop: `loop_status` every --interval seconds (300 s by default,
   1/30 of the volume of the default 10 s evaluate_every), outdoor temperatures every 5 minutes, alert events
   (including heat-source shortages), then
   a) the BASELINE: the report straight from raw points (`--rollup off`) over that day, and its cost per raw
      point, extrapolated linearly to a season at 10 s;
   b) the first report with rollups over that day: it builds the day's hourly and daily rollups from the raw
      points (what the first report over a period, or an hourly upkeep, pays once).
2. A season (183 days, 2025-10-20 .. 2026-04-20): that day's daily rollup copied to every other day, its hourly
   rollup to the two edge days, alert events spread over the season; then
   c) the season report by station (every level is computed) from the rollups: seconds, and the share spent
      waiting for InfluxDB (target: under 60 s);
   d) a period with partial days at both edges (hourly rollups there), as `--from -30d` gives.

The copying in step 2 stands in for 182 more days of raw points (4.7 billion at 10 s, which cannot be written
here): it measures the report's reading path at a season's size, not the upkeep of a season, which 1b
measures per day. The machine is shared with other work: absolute seconds are noisy, the ratios less so.

    .venv/bin/python bench/bench_report.py [--stations 1000] [--interval 300]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from stationmon.cli.report import make_report
from stationmon.config import Config, load_config
from stationmon.domain.report import parse_time
from stationmon.domain.report_render import render
from stationmon.sim.servers import InfluxServer

TZ = "Asia/Shanghai"
SEASON_START = parse_time("2025-10-20", 0.0, TZ)
SEASON_STOP = parse_time("2026-04-21", 0.0, TZ)  # the end of 20 April
RAW_DAY = parse_time("2026-01-15", 0.0, TZ)
DAY, H = 86400.0, 3600.0
SEASON_POINTS_10S = 8640 * 183  # loop_status points of one loop over a season at 10 s
TARGET_S = 60.0


def _post(server: InfluxServer, db: str, lines: list[str], rp: str = "") -> None:
    for i in range(0, len(lines), 50_000):
        body = "\n".join(lines[i : i + 50_000]).encode()
        url = f"{server.url}/write?db={db}&precision=ms" + (f"&rp={rp}" if rp else "")
        req = urllib.request.Request(url, data=body, method="POST")
        with urllib.request.urlopen(req, timeout=300):
            pass


def _config_text(url: str, db: str, stations: int, workdir: Path) -> str:
    parts = [
        '[site]\nname = "bench"\ntimezone = "Asia/Shanghai"\nindoor_target = 20.0\nindoor_refund_below = 16.0\n'
        'inspection_exclude = ["10:00-14:00"]\nfee_per_m2 = 38.0\n'
        f'[influxdb]\nurl = "{url}"\napi = "v1"\ndatabase = "{db}"\nspool_dir = "{workdir}/spool"\n'
    ]
    for i in range(stations):
        parts.append(
            f'[[stations]]\nid = "st{i:04d}"\ncompany = "co{i % 7}"\ndistrict = "di{i % 9}"\n'
            f"area_m2 = {60000 + 100 * (i % 50)}\nhouseholds = {1000 + i % 300}\n"
            + "".join(f'  [[stations.loops]]\n  id = "l{j}"\n' for j in range(3))
        )
    return "".join(parts)


def _loop_line(st: str, lp: str, ts: float, rnd: random.Random, interval: float, sensors: bool) -> str:
    local_hour = int((ts - RAW_DAY) // H) % 24
    insp = "false" if 10 <= local_hour < 14 else "true"
    roll = rnd.random()
    status = "ok" if roll < 0.8 else "noncompliant" if roll < 0.93 else "sensor_fault" if roll < 0.98 else "offline"
    fields = [f'status="{status}"', f"interval_s={interval}", f"inspection_hour={insp}", "setback=false"]
    fields.append(f"beyond_design={'true' if rnd.random() < 0.02 else 'false'}")
    if status in ("ok", "noncompliant") and sensors:
        below = rnd.randint(0, 6 if status == "noncompliant" else 2)
        fields += ['verdict="sensors"', "indoor_sensors=20", f"indoor_below_target={below}"]
        fields.append(f"indoor_below_refund={below // 3}")
    elif status in ("ok", "noncompliant"):
        fields += ['verdict="estimate"', f"estimated_indoor_temp={19.0 + 3 * rnd.random():.2f}"]
    else:
        fields.append('verdict="none"')
    tags = f"company=co{int(st[2:]) % 7},district=di{int(st[2:]) % 9},loop={lp},station={st}"
    return f"loop_status,{tags} {','.join(fields)} {round(ts * 1000)}"


def _raw_day(stations: int, interval: float) -> list[str]:
    rnd = random.Random(1)
    lines = []
    for i in range(stations):
        st = f"st{i:04d}"
        for j in range(3):
            sensors = (i + j) % 3 == 0
            ts = RAW_DAY
            while ts < RAW_DAY + DAY:
                lines.append(_loop_line(st, f"l{j}", ts, rnd, interval, sensors))
                ts += interval
        for k in range(288):
            temp = -18.0 + 6 * rnd.random()
            lines.append(
                f"telemetry,source=modbus,station={st} outdoor_temp={temp:.2f} {round((RAW_DAY + k * 300) * 1000)}"
            )
    return lines


def _alert(st: str, lp: str, rule: str, state: str, ts: float, n: int) -> str:
    loop = f",loop={lp}" if lp else ""
    return (
        f"alert_events{loop},rule={rule},severity=warning,station={st} "
        f'state="{state}",message="{rule}",alert_id="{st}.{lp}.{rule}.{n}" {round(ts * 1000)}'
    )


def _alerts(stations: int) -> list[str]:
    rnd = random.Random(2)
    lines = []
    for i in range(stations):
        st = f"st{i:04d}"
        for n in range(5):  # five alerts a station over the season
            fired = SEASON_START + rnd.random() * (SEASON_STOP - SEASON_START - 3 * DAY)
            lp = f"l{n % 3}"
            lines.append(_alert(st, lp, "supply_low", "firing", fired, n))
            lines.append(_alert(st, lp, "supply_low", "acknowledged", fired + rnd.random() * 4 * H, n))
            lines.append(_alert(st, lp, "supply_low", "resolved", fired + rnd.random() * 60 * H, n))
        if i % 10 == 0:  # a heat-source shortage of 3 h on the raw day at every tenth station
            start = RAW_DAY + (i % 20) * H
            lines.append(_alert(st, "", "primary_shortage", "firing", start, 99))
            lines.append(_alert(st, "", "primary_shortage", "resolved", start + 3 * H, 99))
    return lines


def _query(server: InfluxServer, db: str, q: str) -> list[dict[str, Any]]:
    rows = []
    for result in server.post_query(q, db).get("results", []):
        for series in result.get("series", []):
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                row.update(series.get("tags", {}))
                row["_m"] = series["name"]
                rows.append(row)
    return rows


_NOT_FIELDS = ("time", "_m", "level", "loop", "station", "target")


def _copy(server: InfluxServer, db: str, rp: str, measurement: str, src: float, dst: list[float], span: float) -> int:
    """Copy the points of `measurement` in [src, src + span) to each start in `dst`; the lines written."""
    start_ms, stop_ms = round(src * 1000), round((src + span) * 1000)
    source = f'"{rp}"."{measurement}"' if rp else f'"{measurement}"'
    rows = _query(server, db, f"SELECT * FROM {source} WHERE time >= {start_ms}ms AND time < {stop_ms}ms GROUP BY *")
    lines = []
    for target in dst:
        shift = round((target - src) * 1000)
        for row in rows:
            tags = ",".join(f"{k}={row[k]}" for k in ("level", "loop", "station", "target") if row.get(k))
            fields = ",".join(
                f"{k}={int(v)}i" if k == "rows" else f"{k}={float(v)!r}"
                for k, v in row.items()
                if k not in _NOT_FIELDS and v is not None
            )
            lines.append(f"{measurement},{tags} {fields} {row['time'] + shift}")
    _post(server, db, lines, rp)
    return len(lines)


def _timed(config: Config, start: float, stop: float, rollup: str, rp: str = "") -> tuple[float, float, Any]:
    began = time.perf_counter()
    tables = asyncio.run(make_report(config, start, stop, by="station", now=time.time(), rollup=rollup, rollup_rp=rp))
    render(tables, "csv", "zh")
    return time.perf_counter() - began, float(tables.meta["influx_seconds"] or 0), tables


def _season(server: InfluxServer, db: str, rp: str) -> int:
    days = []
    d = SEASON_START
    while d < SEASON_STOP:
        if d != RAW_DAY:
            days.append(d)
        d += DAY  # Asia/Shanghai has no daylight saving time
    n = _copy(server, db, rp, "report_loop_1d", RAW_DAY, days, DAY)
    n += _copy(server, db, rp, "report_outdoor_1d", RAW_DAY, days, DAY)
    n += _copy(server, db, rp, "report_rollup_marks", RAW_DAY, days, DAY)  # the day's 24 hour marks and day mark
    edges = [SEASON_START, SEASON_STOP - DAY]
    n += _copy(server, db, rp, "report_loop_1h", RAW_DAY, edges, DAY)
    n += _copy(server, db, rp, "report_outdoor_1h", RAW_DAY, edges, DAY)
    return n


LONG_RP = "rollups"  # a retention policy with 10-year shards: a season of rollups in one shard


def _line(name: str, seconds: float, influx_s: float) -> None:
    print(f"{name:62} {seconds:8.2f} {influx_s / seconds:11.0%}", flush=True)


def _season_runs(server: InfluxServer, config: Config, db: str, rp: str) -> float:
    """b) to d) with the rollups in `rp` ("": the database's default); the slowest season report's seconds."""
    where = f"retention policy {rp!r} (10-year shards)" if rp else "the default retention policy (7-day shards)"
    print(f"-- rollups in {where}")
    build_s, build_influx, _ = _timed(config, RAW_DAY, RAW_DAY + DAY, "use", rp)
    _line("b) first report with rollups, one day (builds them)", build_s, build_influx)
    began = time.perf_counter()
    copied = _season(server, db, rp)
    print(f"   ({copied:,} rollup points copied to the other days in {time.perf_counter() - began:.0f} s)")
    season_s, season_influx, tables = _timed(config, SEASON_START, SEASON_STOP, "use", rp)
    _line(f"c) season by station from rollups ({len(tables.levels['station'])} stations)", season_s, season_influx)
    again_s, again_influx, _ = _timed(config, SEASON_START, SEASON_STOP, "use", rp)
    _line("   the same again", again_s, again_influx)
    edge_s, edge_influx, _ = _timed(config, SEASON_START + 5 * H, SEASON_STOP - 3 * H, "use", rp)
    _line("d) season with partial days at both edges", edge_s, edge_influx)
    return max(season_s, again_s, edge_s)


def run(stations: int, interval: float) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench_report_"))
    server = InfluxServer(shutil.which("influxd") or "/usr/bin/influxd", workdir)
    server.start()
    try:
        db = "bench"
        server.create_database(db)
        path = workdir / "bench.toml"
        path.write_text(_config_text(server.url, db, stations, workdir), encoding="utf-8")
        config = load_config(str(path))
        began = time.perf_counter()
        raw = _raw_day(stations, interval)
        _post(server, db, raw)
        _post(server, db, _alerts(stations))
        loop_points = stations * 3 * round(DAY / interval)
        print(f"{stations} stations x 3 loops; one raw day: {len(raw):,} lines ({loop_points:,} loop_status at "
              f"{interval:g} s) written in {time.perf_counter() - began:.0f} s")  # fmt: skip
        raw_s, raw_influx, _ = _timed(config, RAW_DAY, RAW_DAY + DAY, "off")
        per_point = raw_s / loop_points
        season_raw = per_point * stations * 3 * SEASON_POINTS_10S
        print(f"{'':62} {'seconds':>8} {'in InfluxDB':>12}")
        _line(f"a) baseline: raw points, one day ({loop_points:,} points)", raw_s, raw_influx)
        server.post_query(
            f'CREATE RETENTION POLICY "{LONG_RP}" ON "{db}" DURATION INF REPLICATION 1 SHARD DURATION 520w'
        )
        slowest = {rp: _season_runs(server, config, db, rp) for rp in ("", LONG_RP)}
        worst = slowest[LONG_RP]
        billions = stations * 3 * SEASON_POINTS_10S / 1e9
        print(f"raw path: {per_point * 1e6:.1f} µs per loop_status point; a season at 10 s "
              f"({billions:.1f} billion points) would take about {season_raw / 3600:.0f} h")  # fmt: skip
        print(f"season report from rollups vs the raw path's extrapolation: {season_raw / worst:,.0f}x faster")
        default = slowest[""]
        verdict = "met" if default < TARGET_S else "MISSED"
        print(f"season report under {TARGET_S:.0f} s, rollups in the default policy: {verdict} ({default:.1f} s)")
        verdict = "met" if worst < TARGET_S else "MISSED"
        print(f"season report under {TARGET_S:.0f} s, rollups in their own retention policy: {verdict} ({worst:.1f} s)")
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=300.0, help="seconds between loop_status points")
    args = parser.parse_args()
    run(args.stations, args.interval)


if __name__ == "__main__":
    main()
