"""The `stationmon` command line (CONTRACT section 1): one module per command, the parser here.

Exit codes: 0 success, 2 bad config or bad arguments. A bad config prints only
`FILE: key.path: what is wrong` lines on stderr, never a traceback. A command's module is imported only
when it runs, so `--help` and `curve` start without loading the service.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from stationmon import __version__
from stationmon.domain.vocabulary import DESIGN_INDOOR

__all__ = ["build_parser", "main"]


def _config_and_logging(p: argparse.ArgumentParser, *, config: bool = True) -> None:
    if config:
        p.add_argument("-c", "--config", required=True, metavar="FILE", help="TOML config file")
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (default: info)",
    )
    p.add_argument("--log-format", default="text", choices=["text", "json"], help="log format (default: text)")


def _shard_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="only the stations of shard I of N (crc32 of the id mod N); overrides [cluster] and STATIONMON_SHARD",
    )


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stations", type=int, default=12, metavar="N", help="number of stations, 1..200 (default 12)")
    p.add_argument(
        "--duration", type=float, default=None, metavar="SECONDS", help="stop after this long (default: at Ctrl-C)"
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:9640",
        metavar="HOST:PORT",
        help="status page address (default 127.0.0.1:9640; another free port if taken; port 0: any free port)",
    )
    p.add_argument(
        "--outdoor",
        type=float,
        default=None,
        metavar="C",
        help="hold the simulated outdoor temperature here (default: Harbin's winter by the clock, around -12)",
    )
    p.add_argument("--mqtt", default=None, metavar="URL", help="use this MQTT broker instead of an embedded one")
    p.add_argument(
        "--workdir",
        default=None,
        metavar="DIR",
        help="keep the config, spool, state and InfluxDB data here (default: a temporary folder removed at exit)",
    )
    _config_and_logging(p, config=False)


def _curve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--design", required=True, metavar="SUPPLY/RETURN", help="design temperatures, e.g. 75/50")
    p.add_argument(
        "--emitter", choices=["floor", "radiator"], default=None, help="emitter type (required unless --exponent)"
    )
    p.add_argument("--exponent", type=float, default=None, help="emitter exponent (overrides --emitter)")
    p.add_argument("--outdoor", type=float, required=True, metavar="C", help="outdoor temperature, °C")
    p.add_argument("--indoor-target", type=float, default=18.0, metavar="C", help="indoor target (default 18)")
    p.add_argument("--outdoor-design", type=float, default=-24.2, metavar="C", help="design outdoor (default -24.2)")
    p.add_argument("--design-indoor", type=float, default=DESIGN_INDOOR, metavar="C", help="design indoor (default 18)")
    p.add_argument("--measured", default=None, metavar="SUPPLY/RETURN", help="measured temperatures, e.g. 41/34")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _report_arguments(p: argparse.ArgumentParser) -> None:
    when = "RFC 3339, a date (2026-12-01: local midnight), now, or relative (-30d)"
    p.add_argument("--from", dest="from_", required=True, metavar="T", help=f"{when}, or season (its start)")
    p.add_argument("--to", default="now", metavar="T", help=f"{when} (default now)")
    p.add_argument(
        "--by",
        choices=["loop", "station", "company", "district"],
        default="station",
        help="one row per (default station)",
    )
    p.add_argument("--format", choices=["csv", "html", "json", "xlsx"], default="csv", help="output format")
    p.add_argument("--lang", choices=["zh", "en"], default="zh", help="headings of html and xlsx (default zh)")
    p.add_argument("-o", "--output", default="-", metavar="FILE", help="write here (default stdout)")
    p.add_argument(
        "--rollup",
        choices=["use", "rebuild", "off"],
        default="use",
        help="hourly/daily rollups in InfluxDB: use (and fill what is missing), rebuild, or off (raw points only)",
    )
    p.add_argument(
        "--rollup-rp",
        default="",
        metavar="RP",
        help="keep the rollups in this retention policy (1.x) or bucket (2.x); one with long shards is faster",
    )
    _config_and_logging(p)


def _simulate_arguments(p: argparse.ArgumentParser) -> None:
    _config_and_logging(p)
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this long")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="stationmon",
        description="Telemetry monitor for district-heating heat-exchange stations.",
    )
    parser.add_argument("--version", action="version", version=f"stationmon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run the service: collectors, storage, rules, alerts, HTTP API")
    _config_and_logging(run)
    _shard_argument(run)
    check = sub.add_parser("check-config", help="validate a config and print stations, loops, points, read plan")
    _config_and_logging(check)
    _shard_argument(check)
    check.add_argument(
        "--strict", action="store_true", help="secrets that are not set are errors (as for run), not warnings"
    )
    _demo_arguments(
        sub.add_parser(
            "demo",
            help="a whole simulated district on this machine, nothing to install",
            description="Simulated stations (Modbus TCP and MQTT), an MQTT broker, InfluxDB if influxd is on PATH "
            "(else the local spool) and the service with short rule timings: alerts print on the console, the "
            "status page is at --listen. SIGINT (Ctrl-C) or SIGTERM stops it and prints a summary of the run.",
        )
    )
    _simulate_arguments(
        sub.add_parser("simulate", help="only the simulated stations that FILE's [simulator] describes")
    )
    _curve_arguments(
        sub.add_parser("curve", help="the heating model: required temperatures, estimated indoor temperature")
    )
    _report_arguments(
        sub.add_parser("report", help="the compliance report by loop, station, company or district, from InfluxDB")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `stationmon` command."""
    parser = build_parser()
    args = parser.parse_args(_join_dashed_values(list(sys.argv[1:] if argv is None else argv)))
    if args.command is None:
        parser.print_help()
        return 2
    if hasattr(args, "log_level"):
        from stationmon.logutil import setup_logging

        setup_logging(args.log_level, args.log_format)
    # each command's module under stationmon.cli has a main(args)
    command = importlib.import_module(f"stationmon.cli.{args.command.replace('-', '_')}")
    try:
        return int(command.main(args))
    except KeyboardInterrupt:
        return 0


# options whose value may start with "-": relative times, negative temperatures and pairs (-999/-999)
_DASHED_VALUES = frozenset(
    ("--from", "--to", "--outdoor", "--measured", "--design", "--indoor-target", "--outdoor-design", "--design-indoor")
)


def _join_dashed_values(argv: list[str]) -> list[str]:
    """`--from -24h` or `--measured -999/-999` read as options to argparse; pass them on as `--from=-24h`."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if argv[i] in _DASHED_VALUES and nxt.startswith("-") and not nxt.startswith("--"):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out
