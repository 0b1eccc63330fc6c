"""`stationmon run -c FILE`: the service until SIGINT or SIGTERM, then flush and exit.

Exit codes: 0 clean stop; 2 bad config, an unwritable spool or state directory, or a taken HTTP address;
1 a component that cannot start (another process holds the spool, say).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from stationmon.cli.common import bind_error, load_or_report, run_until_signal
from stationmon.config import Config
from stationmon.errors import StationmonError
from stationmon.runtime import settle_heap
from stationmon.service import Service

__all__ = ["main", "preflight"]

log = logging.getLogger("stationmon")


def preflight(config: Config) -> list[str]:
    """What stops `run` before it starts, as config problems: an unwritable spool or state directory,
    an HTTP address already taken. Checked here rather than at config load so that `check-config`
    works on a machine other than the one that will run the service."""
    name = Path(config.path).name
    problems = []
    for key, directory in (("influxdb.spool_dir", config.influxdb.spool_dir), ("state_dir", config.state_dir)):
        path = Path(directory).expanduser()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problems.append(f"{name}: {key}: cannot create {path}: {exc.strerror or exc}")
            continue
        if not os.access(path, os.W_OK | os.X_OK):
            problems.append(f"{name}: {key}: {path} is not writable by this user")
    host, port = config.http.host, config.http.port
    if (err := bind_error(host, port)) is not None:
        problems.append(f"{name}: http.listen: cannot listen on {host}:{port}: {err.strerror or err}")
    return problems


def main(args: argparse.Namespace) -> int:
    """Run the service until SIGINT or SIGTERM."""
    config = load_or_report(args.config, shard=args.shard)
    if config is None:
        return 2
    problems = preflight(config)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    try:
        service = Service(config)
    except StationmonError as exc:
        print(f"stationmon run: {exc}", file=sys.stderr)
        return 1
    for notice in config.notices:
        log.info("config: %s", notice)
    # Everything built so far (config, read plans, encoders) lives as long as the process: keep it out of
    # the collector's way, which at 1,000 polls/s cuts the p99 poll lateness markedly (bench_modbus.py);
    # and collect less often (see stationmon/runtime.py: the evaluation tick and ingestion at 100,000 loops)
    settle_heap()
    try:
        asyncio.run(run_until_signal(service.run))
    except StationmonError as exc:
        # a component that cannot start (another process holds the spool, say): one line, no traceback
        print(f"stationmon run: {exc}", file=sys.stderr)
        return 1
    return 0
