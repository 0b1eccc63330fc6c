"""What several commands share: loading a config with its problems on stderr, running until a signal."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from stationmon.config import Config, load_config, with_shard
from stationmon.domain.shards import parse_shard
from stationmon.errors import ConfigError

__all__ = ["bind_error", "load_or_report", "run_until_signal"]


def bind_error(host: str, port: int) -> OSError | None:
    """Why a TCP server could not listen on host:port now (None: it could)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        return exc
    return None


def load_or_report(
    path: str, *, require_influxdb: bool = True, require_secrets: bool = True, shard: str | None = None
) -> Config | None:
    """The config at `path` (with `--shard I/N` if given), or None after printing its problems on stderr."""
    try:
        config = load_config(path, require_influxdb=require_influxdb, require_secrets=require_secrets)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return None
    if shard is None:
        return config
    try:
        return with_shard(config, parse_shard(shard))
    except ValueError as exc:
        print(f"{Path(path).name}: --shard: {exc}", file=sys.stderr)
        return None


async def run_until_signal(run: Callable[[asyncio.Event], Awaitable[object]]) -> None:
    """Await `run(stop)`; SIGINT and SIGTERM set `stop`."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(stop)
