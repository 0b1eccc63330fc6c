"""`stationmon simulate -c FILE [--duration S]`: serve the config's simulated stations until stopped.

Exit codes: 0 stopped; 2 bad config; 1 a station that cannot be served (its port is taken, say).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from stationmon.cli.common import load_or_report, run_until_signal
from stationmon.config import Config
from stationmon.errors import StationmonError
from stationmon.sim.runner import Simulator

__all__ = ["main"]


def main(args: argparse.Namespace) -> int:
    """Serve the stations of `[simulator]` until SIGINT, SIGTERM or --duration."""
    config = load_or_report(args.config, require_influxdb=False)
    if config is None:
        return 2
    try:
        asyncio.run(run_until_signal(lambda stop: _simulate(config, stop, args.duration)))
    except StationmonError as exc:
        print(f"stationmon simulate: {exc}", file=sys.stderr)
        return 1
    return 0


async def _simulate(config: Config, stop: asyncio.Event, duration: float | None) -> None:
    async with Simulator(config) as sim:
        for line in sim.describe():
            print(line, flush=True)
        if sim.publisher is not None and config.mqtt is not None:
            print(f"publishing MQTT to {config.mqtt.url}", flush=True)
        print("simulating; Ctrl-C stops", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=duration)
