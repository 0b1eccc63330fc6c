"""`stationmon demo`: a whole district on this machine, nothing to install beside the package.

Simulated stations, an embedded MQTT broker (amqtt, MQTT 3.1.1 only: the collector is configured to match)
unless --mqtt URL or STATIONMON_DEMO_BROKER=mosquitto, a private InfluxDB when `influxd` is on PATH (else the
local spool), and the real service with short rule timings so the scheduled faults alert within 30 seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stationmon.adapters.http import stations_document
from stationmon.cli.common import bind_error, run_until_signal
from stationmon.config import Config, parse_config_text
from stationmon.domain.model import AlertEvent
from stationmon.domain.rules.messages import apart
from stationmon.errors import ConfigError, StationmonError
from stationmon.metrics import Counter as Readings
from stationmon.service import Service
from stationmon.sim.district import DemoPlan, build_demo_config, demo_stations
from stationmon.sim.physics import outdoor_temp_at
from stationmon.sim.runner import Simulator
from stationmon.sim.servers import InfluxServer, MosquittoServer, embedded_broker, find_binary, free_port

__all__ = ["main"]


def _say(text: str = "") -> None:
    print(text, flush=True)


def _error(text: str) -> int:
    print(f"stationmon demo: {text}", file=sys.stderr)
    return 2


@dataclass(frozen=True, slots=True)
class _Setup:
    """What the demo started and where everything listens."""

    plan: DemoPlan
    broker: str  # "amqtt" (embedded), "mosquitto" (private) or "external" (--mqtt)
    mqtt_port: int | None
    influxd: InfluxServer | None
    own_workdir: bool


def main(args: argparse.Namespace) -> int:
    """Run the simulated district until --duration or Ctrl-C; exit 0."""
    if not 1 <= args.stations <= 200:
        return _error(f"--stations: expected 1..200, got {args.stations}")
    if args.outdoor is not None and not -50.0 <= args.outdoor <= 45.0:
        return _error(f"--outdoor: expected -50..45 °C, got {args.outdoor:g}")
    host, _, port_text = str(args.listen).rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isascii() or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        return _error(f"--listen: expected HOST:PORT with a port 0..65535 (0: any free port), got {args.listen!r}")
    port = int(port_text) or free_port()
    if bind_error(host, port) is not None:
        new_port = free_port()
        _say(f"note: {host}:{port} is in use; the status page goes to {host}:{new_port} instead")
        port = new_port
    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="stationmon-demo-")) if own_workdir else Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.ExitStack() as servers:
            setup = _start_servers(args, f"{host}:{port}", workdir, own_workdir, servers)
            return _run(setup, int(args.stations), args.duration)
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _start_servers(
    args: argparse.Namespace, listen: str, workdir: Path, own_workdir: bool, servers: contextlib.ExitStack
) -> _Setup:
    """The MQTT broker and InfluxDB the demo needs; each stopped when `servers` closes."""
    broker, mqtt_port = ("external", None) if args.mqtt else ("amqtt", free_port())
    mosquitto = _start_mosquitto(workdir, servers) if mqtt_port is not None else None
    if mosquitto is not None:
        broker, mqtt_port = "mosquitto", mosquitto.port
    influxd = _start_influxd(workdir, servers)
    plan = DemoPlan(
        workdir=workdir,
        http_listen=listen,
        mqtt_url=args.mqtt or f"mqtt://127.0.0.1:{mqtt_port}",
        influx_url=influxd.url if influxd else None,
        mqtt_protocol="3.1.1" if broker == "amqtt" else "5",
        modbus_ports={},
        outdoor_temp=args.outdoor,
    )
    return _Setup(plan, broker, mqtt_port, influxd, own_workdir)


def _start_mosquitto(workdir: Path, servers: contextlib.ExitStack) -> MosquittoServer | None:
    """A private mosquitto when STATIONMON_DEMO_BROKER=mosquitto and one is installed."""
    binary = find_binary("mosquitto")
    if os.environ.get("STATIONMON_DEMO_BROKER", "") != "mosquitto" or binary is None:
        return None
    server = MosquittoServer(binary, workdir / "mosquitto", die_with_parent=True)
    try:
        server.start()
    except StationmonError as exc:
        _say(f"note: {exc}; using the embedded amqtt broker instead")
        return None
    servers.callback(server.stop)
    return server


def _start_influxd(workdir: Path, servers: contextlib.ExitStack) -> InfluxServer | None:
    """A private influxd with a `stationmon` database when `influxd` is on PATH."""
    binary = find_binary("influxd", sbin=False)
    if binary is None:
        return None
    server = InfluxServer(binary, workdir / "influxdb", die_with_parent=True)
    servers.callback(server.stop)
    try:
        server.start()
        server.create_database("stationmon")
    except (StationmonError, OSError) as exc:
        _say(f"note: {exc}; storing in the local spool instead")
        server.stop()
        return None
    return server


def _run(setup: _Setup, n: int, duration: float | None) -> int:
    """Write and load the demo's config, print the banner, run until the end; the exit code."""
    stations = demo_stations(n)
    ports = {st.id: free_port() for st in stations if st.kind != "mqtt"}
    plan = dataclasses.replace(setup.plan, modbus_ports=ports, http_token_file=_write_token(setup.plan.workdir))
    text = build_demo_config(stations, plan)
    config_path = plan.workdir / "demo.toml"
    config_path.write_text(text, encoding="utf-8")
    try:
        config = parse_config_text(text, str(config_path), require_influxdb=False)
    except ConfigError as exc:  # a bug in the demo itself: say exactly what
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    _banner(config, setup, duration)
    try:
        embedded = setup.mqtt_port if setup.broker == "amqtt" else None
        asyncio.run(run_until_signal(lambda stop: _run_demo(stop, config, embedded, duration, setup.influxd)))
        return 0
    except StationmonError as exc:
        print(f"stationmon demo: {exc}", file=sys.stderr)
        return 1


def _write_token(workdir: Path) -> Path:
    """A fresh bearer token for the page's acknowledge button, in a file only this user can read."""
    path = workdir / "http-token"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secrets.token_urlsafe(12) + "\n")
    return path


def _banner(config: Config, setup: _Setup, duration: float | None) -> None:
    plan = setup.plan
    loops = Counter(lp.emitter for s in config.stations for lp in s.loops)
    modbus = sum(1 for s in config.stations if s.modbus is not None)
    _say(
        f"stationmon demo: {len(config.stations)} simulated stations ({modbus} over Modbus TCP, "
        f"{len(config.stations) - modbus} over MQTT only), "
        f"{loops['radiator']} radiator and {loops['floor']} floor loop{'s' if loops.total() != 1 else ''}"
    )
    _say(f"  status page   {_page_url(plan.http_listen)}   (API: /api/v1/stations, /api/v1/alerts, /metrics)")
    if setup.broker == "mosquitto":
        _say(f"  MQTT          private mosquitto (from PATH) on 127.0.0.1:{setup.mqtt_port}")
    elif setup.broker == "amqtt":
        _say(f"  MQTT          embedded broker (amqtt, MQTT 3.1.1) on 127.0.0.1:{setup.mqtt_port}")
    else:
        _say(f"  MQTT          {plan.mqtt_url}")
    if setup.influxd is not None:
        _say(f"  storage       private InfluxDB (influxd from PATH) at {setup.influxd.url}, database stationmon")
    else:
        _say(f"  storage       no influxd on PATH: readings are kept in the local spool {config.influxdb.spool_dir}")
    kept = "removed at exit" if setup.own_workdir else "kept"
    _say(f"  work dir      {plan.workdir} ({kept}); config: {plan.workdir / 'demo.toml'}")
    sensors = sum(1 for s in config.stations for lp in s.loops if _simulated_sensors(config, s.id, lp.id))
    loops_total = sum(len(s.loops) for s in config.stations)
    _say(
        f"  households    thermometers on {sensors} of {loops_total} loops: their verdicts rest on the sensors, "
        "the others' on the estimate from the water"
    )
    if config.http.token is not None:
        _say(
            f"  acknowledge   token {config.http.token.get()} (the page's acknowledge button asks for it once per tab)"
        )
    if config.simulator.outdoor_temp is not None:
        _say(f"  weather       outdoor held at {config.simulator.outdoor_temp:g} °C (--outdoor)")
    else:
        now = outdoor_temp_at(time.time(), config.simulator.seed)
        _say(f"  weather       Harbin's winter by the clock (daily cycle around -12 °C, fronts): {now:.1f} °C now")
    faults = ", ".join(f"{f.kind} at {f.station}" for f in config.simulator.faults) or "none"
    _say(f"  faults        {faults}")
    _say(f"  running {'for ' + format(duration, 'g') + ' s' if duration else 'until Ctrl-C'}; alerts print below")
    _say()


def _page_url(listen: str) -> str:
    """The status page's URL to open on this machine: a wildcard address (0.0.0.0, ::) is no address to open."""
    host, _, port = listen.rpartition(":")
    if host.strip("[]") in ("0.0.0.0", "::"):
        return f"http://127.0.0.1:{port}/ (listening on every address, {listen})"
    return f"http://{listen}/"


def _simulated_sensors(config: Config, station: str, loop: str) -> int:
    """Household sensors the simulator publishes on one loop."""
    for settings in config.simulator.loops:
        if settings.station == station and settings.loop == loop and settings.indoor_sensors is not None:
            return settings.indoor_sensors
    return config.simulator.indoor_sensors_per_loop if config.mqtt is not None else 0


def verdict_lines(doc: dict[str, Any]) -> list[str]:
    """What each loop's compliance verdict rests on (the evaluator's `verdict`: sensors, estimate,
    none), with the stations per verdict; loops whose status lacks a verdict count as none."""
    by_verdict: dict[str, list[str]] = {}
    for st in doc["stations"]:
        for lp in st["loops"]:
            where = f"{st['name'] or st['id']}/{lp['id']} {lp['status']}"
            by_verdict.setdefault(lp.get("verdict") or "none", []).append(where)
    lines = []
    for verdict, label in (("sensors", "by sensors"), ("estimate", "by estimate"), ("none", "not judged")):
        loops = by_verdict.get(verdict, [])
        if loops:
            shown = ", ".join(loops[:6]) + (f", ... ({len(loops) - 6} more)" if len(loops) > 6 else "")
            lines.append(f"  {label:<13} {len(loops)} loop{'s' if len(loops) != 1 else ''}: {shown}")
    return lines


class AlertPrinter:
    """Prints alert transitions as they happen and counts them for the summary."""

    def __init__(self, config: Config, started: float) -> None:
        self.names = {s.id: s.name or s.id for s in config.stations}
        self.started = started
        self.counts: Counter[str] = Counter()

    def __call__(self, event: AlertEvent) -> None:
        self.counts[event.state] += 1
        where = self.names.get(event.station, event.station) + (f" / {event.loop}" if event.loop else "")
        t = time.monotonic() - self.started
        _say(
            f"[{t:5.1f}s] ALERT {event.state.upper():<9} {event.severity:<8} {event.rule:<20} {where}:"
            f"{_figures(event)} {event.message}".rstrip()
        )


def _figures(event: AlertEvent) -> str:
    """ " value 40.96 (threshold 41.00)": as many decimals as tell the two apart (40.96 is not 41.0)."""
    value, threshold = event.value, event.threshold
    if value is not None and threshold is not None:
        v, t = apart(value, threshold)
        return f" value {v} (threshold {t})"
    if value is not None:
        return f" value {value:.1f}"
    return "" if threshold is None else f" (threshold {threshold:.1f})"


async def _run_demo(
    stop: asyncio.Event, config: Config, mqtt_port: int | None, duration: float | None, influxd: InfluxServer | None
) -> None:
    asyncio.get_running_loop().set_exception_handler(_quiet_cancellations)
    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        if mqtt_port is not None:
            await stack.enter_async_context(embedded_broker(mqtt_port))
        await stack.enter_async_context(
            Simulator(config, lag_s=30.0, mqtt_client_id=f"stationmon-demo-sim-{os.getpid()}")
        )
        service = Service(config)
        printer = AlertPrinter(config, started)
        service.on_event(printer)
        # The service gets a stop of its own, set only once the summary's view is taken: on the signal's
        # `stop` it would cancel its pollers, which mark their stations offline as they close, and the
        # summary would report the shutdown rather than the district.
        service_stop = asyncio.Event()
        run = asyncio.create_task(service.run(service_stop), name="service")
        waiter = asyncio.create_task(stop.wait(), name="demo-stop")
        try:
            await asyncio.wait({run, waiter}, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
            doc = stations_document(service)  # the last evaluation and the stations as they ran
        finally:
            service_stop.set()
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            await run  # re-raises a component's crash, after a clean stop of the rest
    _summary(service, doc, printer, time.monotonic() - started, influxd)


def _quiet_cancellations(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # amqtt's shutdown cancels its connection tasks while asyncio still holds callbacks for them, and
    # asyncio logs each as an error with a traceback; a cancelled task at shutdown is no error
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


def _stored_points(influxd: InfluxServer) -> int | None:
    """Supply readings stored so far (None if InfluxDB cannot say)."""
    try:
        result = influxd.post_query('SELECT count("supply_temp") FROM "telemetry"', "stationmon")["results"][0]
        return int(result["series"][0]["values"][0][1])
    except (OSError, StationmonError, KeyError, IndexError, ValueError, TypeError):
        return None


def _summary(
    service: Service, doc: dict[str, Any], printer: AlertPrinter, elapsed: float, influxd: InfluxServer | None
) -> None:
    statuses = Counter(st["status"] for st in doc["stations"])
    readings = service.metrics.get("stationmon_readings_total")
    by_source = {src: readings.value(src) for src in ("modbus", "mqtt")} if isinstance(readings, Readings) else {}
    _say()
    _say(f"demo summary after {elapsed:.0f} s:")
    _say(f"  stations      {', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}")
    _say(f"  readings      {int(sum(by_source.values()))} ({', '.join(f'{k} {int(v)}' for k, v in by_source.items())})")
    fired, resolved = printer.counts["firing"], printer.counts["resolved"]
    active = sum(st["active_alerts"] for st in doc["stations"])
    _say(f"  alerts        {fired} fired, {resolved} resolved, {active} active at the end")
    _say("  verdicts (what each loop's compliance rests on):")
    for line in verdict_lines(doc):
        _say("  " + line)
    if influxd is not None:
        points = _stored_points(influxd)
        _say(f"  storage       InfluxDB {influxd.url}: {points if points is not None else '?'} supply readings stored")
    else:
        _say(f"  storage       spool {service.config.influxdb.spool_dir}")
