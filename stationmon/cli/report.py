"""`stationmon report -c FILE --from T [--to T]`: compliance per station and loop over a period, from InfluxDB.

Exit codes: 0 success; 2 bad arguments or config; 1 if InfluxDB fails.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from stationmon.adapters.influx_query import InfluxQuery
from stationmon.cli.common import load_or_report
from stationmon.config import Config
from stationmon.domain.report import build_report, parse_time, render
from stationmon.errors import StorageError

__all__ = ["main", "make_report"]


async def make_report(config: Config, start: float, stop: float, fmt: str) -> str:
    """Query InfluxDB and render the report."""
    aggregates = await InfluxQuery(config.influxdb).loop_aggregates(start, stop)
    rows = build_report(config.stations, aggregates, config.rules.evaluate_every_s)
    return render(rows, fmt, site=config.site, start=start, stop=stop)


def _period(args: argparse.Namespace) -> tuple[float, float]:
    """--from and --to as Unix times; ValueError with the message for the user."""
    now = time.time()
    start, stop = parse_time(args.from_, now), parse_time(args.to, now)
    if stop <= start:
        raise ValueError("--to must be later than --from")
    return start, stop


def main(args: argparse.Namespace) -> int:
    """Write the report to --output (stdout by default)."""
    config = load_or_report(args.config)
    if config is None:
        return 2
    try:
        start, stop = _period(args)
    except ValueError as exc:
        print(f"stationmon report: {exc}", file=sys.stderr)
        return 2
    if config.influxdb.url is None:
        print("stationmon report: the config has no [influxdb] url to read from", file=sys.stderr)
        return 2
    try:
        text = asyncio.run(make_report(config, start, stop, args.format))
    except StorageError as exc:
        print(f"stationmon report: {exc}", file=sys.stderr)
        return 1
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0
