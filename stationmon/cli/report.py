"""`stationmon report -c FILE --from T [--to T] [--by LEVEL] [--format F] [--lang L] [-o FILE]`: the compliance
report (CONTRACT section 8) from InfluxDB.

Exit codes: 0 success; 2 bad arguments or config (or a format this build cannot render); 1 if InfluxDB fails.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

import aiohttp

from stationmon.adapters.influx_query import InfluxQuery
from stationmon.adapters.report_source import gather
from stationmon.cli.common import load_or_report
from stationmon.config import Config
from stationmon.domain.report import ReportInput, build_tables, floor_hour, parse_time, season_days
from stationmon.domain.report_render import render
from stationmon.domain.report_tables import ReportTables
from stationmon.errors import StorageError

__all__ = ["main", "make_report", "report_period"]

log = logging.getLogger(__name__)


def report_period(config: Config, text_from: str, text_to: str, now: float) -> tuple[float, float]:
    """--from and --to as whole-hour Unix times; ValueError with the message for the user."""
    tz, rules = config.site.timezone, config.rules
    season = (rules.season_start, rules.season_end)
    start = floor_hour(parse_time(text_from, now, tz, season))
    stop = floor_hour(min(parse_time(text_to, now, tz, season), now))
    if stop <= start:
        raise ValueError("the period from --from to --to holds no whole hour (reports count whole hours, up to now)")
    return start, stop


async def make_report(
    config: Config,
    start: float,
    stop: float,
    *,
    by: str = "station",
    now: float,
    rollup: str = "use",
    rollup_rp: str = "",
) -> ReportTables:
    """Gather the sums from InfluxDB and compute every level's figures; meta holds the timings."""
    began = time.perf_counter()
    site, rules = config.site, config.rules
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=config.influxdb.timeout_s, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        q = InfluxQuery(config.influxdb, session, rollup_rp)
        g = await gather(
            q,
            start,
            stop,
            now=now,
            target=site.indoor_target,
            timezone=site.timezone,
            every_s=rules.evaluate_every_s,
            rollup=rollup,
        )
    inp = ReportInput(
        stations=config.stations,
        site=site,
        every_s=rules.evaluate_every_s,
        start=start,
        stop=stop,
        season_days=season_days(start, site.timezone, rules.season_start, rules.season_end),
        loop_sums=g.loop_sums,
        outdoor=g.outdoor,
        heat_source_s=g.heat_source_s,
        lives=g.lives,
    )
    total = time.perf_counter() - began
    meta: dict[str, float | int | str | None] = {
        "seconds": round(total, 3),
        "influx_seconds": round(q.influx_s, 3),
        "rollup_hours_written": g.rollup_hours_written,
        "rollup_days_written": g.rollup_days_written,
    }
    return build_tables(inp, by, meta)


def _check_format(fmt: str, lang: str, by: str) -> str | None:
    """Why `fmt` cannot be rendered (None: it can), tried on an empty report before asking InfluxDB."""
    try:
        render(ReportTables(by=by, levels={lv: [] for lv in ("loop", "station", "company", "district")}), fmt, lang)
    except ValueError as exc:
        return str(exc)
    return None


def main(args: argparse.Namespace) -> int:
    """Write the report to --output (stdout by default)."""
    config = load_or_report(args.config)
    if config is None:
        return 2
    now = time.time()
    try:
        start, stop = report_period(config, args.from_, args.to, now)
    except ValueError as exc:
        print(f"stationmon report: {exc}", file=sys.stderr)
        return 2
    problem = _check_format(args.format, args.lang, args.by)
    if problem is not None:
        print(f"stationmon report: --format {args.format}: {problem}", file=sys.stderr)
        return 2
    if config.influxdb.url is None:
        print("stationmon report: the config has no [influxdb] url to read from", file=sys.stderr)
        return 2
    try:
        tables = asyncio.run(
            make_report(config, start, stop, by=args.by, now=now, rollup=args.rollup, rollup_rp=args.rollup_rp)
        )
    except StorageError as exc:
        hint = (
            " (storing rollups needs write access; --rollup off reads raw points only)" if "/write" in str(exc) else ""
        )
        print(f"stationmon report: InfluxDB failed: {exc}{hint}", file=sys.stderr)
        return 1
    log.info("report: %s", ", ".join(f"{k}={v}" for k, v in tables.meta.items()))
    data = render(tables, args.format, args.lang)
    if args.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(args.output).write_bytes(data)
    return 0
