"""The `stationmon` command line (CONTRACT section 1).

Exit codes: 0 success, 2 bad config or bad arguments. A bad config prints only
`FILE: key.path: what is wrong` lines on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from stationmon import __version__
from stationmon.config import Config, load_config
from stationmon.errors import ConfigError

__all__ = ["build_parser", "main"]

log = logging.getLogger("stationmon")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (default: info)",
    )
    p.add_argument("--log-format", default="text", choices=["text", "json"], help="log format (default: text)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="stationmon",
        description="Telemetry monitor for district-heating heat-exchange stations.",
    )
    parser.add_argument("--version", action="version", version=f"stationmon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run the service: collectors, storage, rules, alerts, HTTP API")
    p.add_argument("-c", "--config", required=True, metavar="FILE", help="TOML config file")
    _common(p)

    p = sub.add_parser("check-config", help="validate a config and print stations, loops, points, read plan")
    p.add_argument("-c", "--config", required=True, metavar="FILE", help="TOML config file")
    _common(p)

    p = sub.add_parser("demo", help="a whole simulated district on this machine, nothing to install")
    p.add_argument("--stations", type=int, default=12, metavar="N", help="number of stations (default 12)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this long")
    p.add_argument("--listen", default="127.0.0.1:9640", metavar="HOST:PORT", help="status page address")
    p.add_argument("--mqtt", default=None, metavar="URL", help="use this MQTT broker instead of an embedded one")
    p.add_argument("--workdir", default=None, metavar="DIR", help="where the demo keeps its spool and state")
    _common(p)

    p = sub.add_parser("simulate", help="only the simulated stations that FILE's [simulator] describes")
    p.add_argument("-c", "--config", required=True, metavar="FILE", help="TOML config file")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this long")
    _common(p)

    p = sub.add_parser("curve", help="the heating model: required temperatures, estimated indoor temperature")
    p.add_argument("--design", required=True, metavar="SUPPLY/RETURN", help="design temperatures, e.g. 75/50")
    p.add_argument(
        "--emitter", choices=["floor", "radiator"], default=None, help="emitter type (required unless --exponent)"
    )
    p.add_argument("--exponent", type=float, default=None, help="emitter exponent (overrides --emitter)")
    p.add_argument("--outdoor", type=float, required=True, metavar="C", help="outdoor temperature, °C")
    p.add_argument("--indoor-target", type=float, default=18.0, metavar="C", help="indoor target (default 18)")
    p.add_argument("--outdoor-design", type=float, default=-24.2, metavar="C", help="design outdoor (default -24.2)")
    p.add_argument("--measured", default=None, metavar="SUPPLY/RETURN", help="measured temperatures, e.g. 41/34")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("report", help="compliance report per station and loop, from InfluxDB")
    p.add_argument("-c", "--config", required=True, metavar="FILE", help="TOML config file")
    p.add_argument("--from", dest="from_", required=True, metavar="T", help="RFC 3339, now, or relative (-24h)")
    p.add_argument("--to", default="now", metavar="T", help="RFC 3339, now, or relative (default now)")
    p.add_argument("--format", choices=["csv", "html", "json"], default="csv", help="output format")
    p.add_argument("-o", "--output", default="-", metavar="FILE", help="write here (default stdout)")
    _common(p)
    return parser


def _load(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return None


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    from stationmon.summary import describe_config

    print(describe_config(config))
    return 0


def preflight(config: Config) -> list[str]:
    """What stops `run` before it starts, as config problems: an unwritable spool or state directory,
    an HTTP address already taken. Checked here rather than at config load so that `check-config`
    works on a machine other than the one that will run the service."""
    import os
    import socket
    from pathlib import Path

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
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        problems.append(f"{name}: http.listen: cannot listen on {host}:{port}: {exc.strerror or exc}")
    return problems


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    problems = preflight(config)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    from stationmon.errors import StationmonError
    from stationmon.service import Service

    try:
        service = Service(config)
    except StationmonError as exc:
        print(f"stationmon run: {exc}", file=sys.stderr)
        return 1
    for notice in config.notices:
        log.info("config: %s", notice)
    # Everything built so far (config, read plans, encoders) lives as long as the process: keep it out of
    # the collector's way, which at 1,000 polls/s cuts the p99 poll lateness markedly (bench_modbus.py).
    import gc

    gc.collect()
    gc.freeze()
    try:
        return asyncio.run(_run_until_signal(service.run))
    except StationmonError as exc:
        # a component that cannot start (another process holds the spool, say): one line, no traceback
        print(f"stationmon run: {exc}", file=sys.stderr)
        return 1


async def _run_until_signal(run: object) -> int:
    """Run `run(stop)` until SIGINT or SIGTERM sets `stop`."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(stop)  # type: ignore[operator]
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `stationmon` command."""
    parser = build_parser()
    args = parser.parse_args(_join_relative_times(list(sys.argv[1:] if argv is None else argv)))
    if args.command is None:
        parser.print_help()
        return 2
    if hasattr(args, "log_level"):
        from stationmon.logutil import setup_logging

        setup_logging(args.log_level, args.log_format)
    handlers = {
        "run": cmd_run,
        "check-config": cmd_check_config,
        "demo": _lazy("stationmon.demo", "cmd_demo"),
        "simulate": _lazy("stationmon.sim.runner", "cmd_simulate"),
        "curve": _lazy("stationmon.heating_cli", "cmd_curve"),
        "report": _lazy("stationmon.report", "cmd_report"),
    }
    try:
        return int(handlers[args.command](args))
    except KeyboardInterrupt:
        return 0


def _join_relative_times(argv: list[str]) -> list[str]:
    """`--from -24h` reads as an option to argparse; pass it on as `--from=-24h`."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in ("--from", "--to") and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _lazy(module: str, name: str):  # type: ignore[no-untyped-def]
    def call(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), name)(args))

    return call
