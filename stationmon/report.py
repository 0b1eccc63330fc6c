"""`stationmon report`: compliance per station and loop over a period, read from InfluxDB."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from stationmon.config import Config, load_config
from stationmon.domain.report import build_report, parse_time, render
from stationmon.errors import ConfigError, StorageError

__all__ = ["cmd_report", "make_report"]


async def make_report(config: Config, start: float, stop: float, fmt: str) -> str:
    """Query InfluxDB and render the report."""
    from stationmon.adapters.influx_query import InfluxQuery

    aggregates = await InfluxQuery(config.influxdb).loop_aggregates(start, stop)
    rows = build_report(config.stations, aggregates, config.rules.evaluate_every_s)
    return render(rows, fmt, site=config.site, start=start, stop=stop)


def cmd_report(args: argparse.Namespace) -> int:
    """Entry point of `stationmon report`: 0 on success, 2 on bad arguments or config, 1 if InfluxDB fails."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    now = time.time()
    try:
        start = parse_time(args.from_, now)
        stop = parse_time(args.to, now)
    except ValueError as exc:
        print(f"stationmon report: {exc}", file=sys.stderr)
        return 2
    if stop <= start:
        print("stationmon report: --to must be later than --from", file=sys.stderr)
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
