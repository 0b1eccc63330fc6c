"""`stationmon demo`: a whole district on this machine, nothing to install beside the package.

N simulated stations (mixed floor and radiator loops, Modbus maps in several encodings, some stations
reporting over MQTT only, household indoor thermometers over MQTT), an embedded MQTT broker (amqtt)
unless --mqtt is given, a private InfluxDB when `influxd` is on PATH (else the local spool, said so),
the real service (collectors, rules, alerts, HTTP) with short rule timings so that the scheduled faults
raise alerts within the first 30 seconds, alerts printed as they fire and resolve, the status page on
--listen, and a short summary at the end. The config is built as TOML and validated by
stationmon.config like any user's, and written to the work directory for the curious.

The embedded broker speaks MQTT 3.1.1 only, so the demo's collector is configured with
`protocol = "3.1.1"`; `STATIONMON_DEMO_BROKER=mosquitto` runs a private mosquitto from PATH instead
(MQTT 5), and --mqtt URL uses the broker at URL (MQTT 5).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stationmon.config import Config, parse_config_text
from stationmon.domain.model import AlertEvent
from stationmon.errors import ConfigError, StationmonError

__all__ = ["DemoPlan", "build_demo_config", "cmd_demo", "demo_stations"]

log = logging.getLogger("stationmon.demo")

DISTRICTS = (
    ("daoli", "道里区"),
    ("nangang", "南岗区"),
    ("daowai", "道外区"),
    ("xiangfang", "香坊区"),
    ("songbei", "松北区"),
)
STREETS = (
    ("youyi", "友谊路"),
    ("jingwei", "经纬街"),
    ("anjing", "安静街"),
    ("zhongyang", "中央大街"),
    ("hongjun", "红军街"),
    ("xidazhi", "西大直街"),
    ("xuefu", "学府路"),
    ("hexing", "和兴路"),
    ("tongjiang", "通江街"),
    ("jingyu", "靖宇街"),
    ("zhujiang", "珠江路"),
    ("changjiang", "长江路"),
    ("huanghe", "黄河路"),
    ("haping", "哈平路"),
    ("xinyang", "新阳路"),
    ("jianguo", "建国街"),
)

# Faults by station index: (kind, loop index or None, start, duration). Chosen so every kind shows in the
# first 30 s, and the offline station comes back so a resolution shows too.
FAULT_PLAN = {
    1: ("undersupply", 0, "2s", "1h"),
    2: ("swapped_sensors", 0, "0s", "1h"),
    4: ("offline", None, "3s", "20s"),
    5: ("low_delta_t", 0, "0s", "1h"),
    7: ("flatline", 0, "0s", "1h"),
}


@dataclass(frozen=True, slots=True)
class DemoStation:
    """One generated station: its id, names and the shape of its telemetry."""

    index: int
    id: str
    name: str
    district: str
    kind: str  # "float_abcd", "int16_input", "float_cdab", "mqtt"


def demo_stations(n: int) -> list[DemoStation]:
    """N stations spread over Harbin's districts with Chinese names; the map kinds rotate."""
    kinds = ("float_abcd", "int16_input", "float_cdab", "mqtt")
    out = []
    for i in range(n):
        d_id, d_name = DISTRICTS[i % len(DISTRICTS)]
        s_id, s_name = STREETS[(i * 7) % len(STREETS)]
        number = 11 + (i * 37) % 380
        out.append(
            DemoStation(i, f"{d_id}-{s_id}-{number}", f"{s_name}{number}号换热站", d_name, kinds[i % len(kinds)])
        )
    return out


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """Where the demo's pieces listen."""

    workdir: Path
    http_listen: str
    mqtt_url: str
    influx_url: str | None
    mqtt_protocol: str
    modbus_ports: dict[str, int]


def _loops(st: DemoStation) -> list[tuple[str, str, float, float]]:
    if st.kind == "float_abcd":
        return [("high", "radiator", 75.0, 50.0), ("low", "floor", 50.0, 40.0)]
    if st.kind == "int16_input":
        return [("sec1", "radiator", 85.0, 60.0)]
    if st.kind == "float_cdab":
        return [("sec1", "floor", 45.0, 35.0)]
    return [("sec1", "radiator", 75.0, 50.0) if st.index % 8 == 3 else ("sec1", "floor", 50.0, 40.0)]


def _station_toml(st: DemoStation, plan: DemoPlan) -> str:
    loops = _loops(st)
    lines = [
        "[[stations]]",
        f'id = "{st.id}"',
        f'name = "{st.name}"',
        f'district = "{st.district}"',
    ]
    if st.kind != "mqtt":
        order = "CDAB" if st.kind == "float_cdab" else "ABCD"
        lines += [
            "  [stations.modbus]",
            '  host = "127.0.0.1"',
            f"  port = {plan.modbus_ports[st.id]}",
            f"  device_id = {1 + st.index % 3}",
            '  interval = "2s"',
            '  timeout = "1s"',
            f'  byte_order = "{order}"',
        ]
    for lid, emitter, ds, dr in loops:
        min_floor = "\n  min_supply = 41.0\n  min_return = 34.0" if emitter == "floor" and ds == 50.0 else ""
        lines.append(
            f'  [[stations.loops]]\n  id = "{lid}"\n  emitter = "{emitter}"\n'
            f"  design_supply = {ds}\n  design_return = {dr}{min_floor}"
        )

    def point(quantity: str, loop: str | None, **kw: Any) -> str:
        body = [f'  quantity = "{quantity}"'] + ([f'  loop = "{loop}"'] if loop else [])
        body += [f"  {k} = {v!r}" if not isinstance(v, str) else f'  {k} = "{v}"' for k, v in kw.items()]
        return "  [[stations.points]]\n" + "\n".join(body)

    if st.kind == "float_abcd":
        lines.append(point("outdoor_temp", None, address=0, type="float32"))
        lines.append(point("primary_supply_temp", None, address=2, type="float32"))
        lines.append(point("primary_return_temp", None, address=4, type="float32"))
        for j, (lid, *_rest) in enumerate(loops):
            base = 100 + 10 * j
            lines.append(point("supply_temp", lid, address=base, type="float32"))
            lines.append(point("return_temp", lid, address=base + 2, type="float32"))
            lines.append(point("flow", lid, address=base + 4, type="float32"))
    elif st.kind == "int16_input":
        lines.append(point("outdoor_temp", None, register="input", address=0, type="int16", scale=0.1))
        lines.append(point("supply_temp", "sec1", register="input", address=10, type="int16", scale=0.1))
        lines.append(point("return_temp", "sec1", register="input", address=11, type="int16", scale=0.1))
        lines.append(point("flow", "sec1", register="input", address=12, type="uint16", scale=0.1))
        lines.append(point("heat_power", "sec1", address=200, type="float32"))
    elif st.kind == "float_cdab":
        lines.append(point("outdoor_temp", None, address=0, type="float32"))
        lines.append(point("supply_temp", "sec1", address=20, type="float32"))
        lines.append(point("return_temp", "sec1", address=22, type="float32"))
        lines.append(point("supply_pressure", "sec1", address=24, type="float32", byte_order="ABCD"))
        lines.append(point("return_pressure", "sec1", address=26, type="float32", byte_order="ABCD"))
        lines.append(point("flow", "sec1", address=28, type="float64"))
    else:
        lines.append(point("outdoor_temp", None, topic=f"plc/{st.id}/outdoor"))
        lines.append(
            point(
                "supply_temp",
                "sec1",
                topic=f"plc/{st.id}/sec1/supply",
                format="json",
                value="data.value",
                time="data.ts",
            )
        )
        lines.append(
            point(
                "return_temp",
                "sec1",
                topic=f"plc/{st.id}/sec1/return",
                format="json",
                value="data.value",
                time="data.ts",
            )
        )
        lines.append(point("flow", "sec1", topic=f"plc/{st.id}/sec1/flow"))
    return "\n".join(lines)


def build_demo_config(stations: list[DemoStation], plan: DemoPlan) -> str:
    """The demo's config as TOML text (validated by the caller through stationmon.config)."""
    spool = plan.workdir / "spool"
    if plan.influx_url:
        influx = f'url = "{plan.influx_url}"\napi = "v1"\ndatabase = "stationmon"\nspool_dir = "{spool}"'
    else:
        # no url: readings stay in the local spool
        influx = f'api = "v1"\ndatabase = "stationmon"\nspool_dir = "{spool}"'
    faults = []
    by_index = {st.index: st for st in stations}
    for index, (kind, loop_index, start, duration) in FAULT_PLAN.items():
        st = by_index.get(index)
        if st is None:
            continue
        loop = "" if loop_index is None else f'loop = "{_loops(st)[loop_index][0]}"\n'
        faults.append(
            f'[[simulator.faults]]\nstation = "{st.id}"\n{loop}kind = "{kind}"\n'
            f'start = "{start}"\nduration = "{duration}"'
        )
    return "\n\n".join(
        [
            f"""# Generated by `stationmon demo`: {len(stations)} simulated stations.
state_dir = "{plan.workdir}"

[site]
name = "哈尔滨 demo district"
timezone = "Asia/Shanghai"
indoor_target = 18.0
outdoor_design = -24.2

[influxdb]
{influx}
flush_interval = "1s"

[mqtt]
url = "{plan.mqtt_url}"
client_id = "stationmon-demo-{os.getpid()}"
protocol = "{plan.mqtt_protocol}"
clean_start = true

[[mqtt.subscriptions]]
topic = "heat/{{station}}/{{loop}}/indoor/{{sensor}}"
format = "plain"
quantity = "indoor_temp"

[http]
listen = "{plan.http_listen}"
history_window = "30m"      # the charts keep a point every 2.5 s, so a short demo draws lines

# Short timings so that alerts appear within the first 30 seconds (a real plant uses minutes).
[rules]
evaluate_every = "2s"
for = "5s"
clear_for = "8s"
offline_after = "8s"
season_start = "01-01"
season_end = "12-31"
outdoor_smoothing = "10m"

[rules.sensor_fault]
flatline_window = "12s"
flatline_tolerance = 0.02
max_rate_per_min = 60.0     # the simulated faults move the water within seconds, a real plant in minutes

[simulator]
seed = 8
noise = 0.1
publish_interval = "2s"
indoor_sensors_per_loop = 3""",
            *faults,
            *(_station_toml(st, plan) for st in stations),
        ]
    )


# ----------------------------------------------------------------------------------------------------
# The pieces the demo starts itself


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


class PrivateInfluxd:
    """`influxd` (1.x, API v1) in the work directory on free ports; stopped with the demo."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.dir = workdir / "influxdb"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        """Start it, wait for /ping, create the database; StationmonError if it does not come up."""
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "influxdb.conf"
        conf.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{_free_port()}"
[meta]
  dir = "{self.dir}/meta"
[data]
  dir = "{self.dir}/data"
  wal-dir = "{self.dir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
""",
            encoding="utf-8",
        )
        logfile = (self.dir / "influxd.log").open("wb")
        try:
            self.proc = subprocess.Popen(
                [self.binary, "-config", str(conf)], stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            logfile.close()
        deadline = time.monotonic() + timeout_s
        while not self._ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise StationmonError(f"influxd did not start (see {self.dir / 'influxd.log'})")
            time.sleep(0.1)
        self.query('CREATE DATABASE "stationmon"')

    def _ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as resp:
                return bool(resp.status == 204)
        except OSError:
            return False

    def query(self, q: str) -> bytes:
        """POST one InfluxQL statement to the stationmon database."""
        data = urllib.parse.urlencode({"q": q, "db": "stationmon"}).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=10) as resp:
            return bytes(resp.read())

    def count_points(self) -> int | None:
        """Telemetry points stored so far (None if it cannot say)."""
        import json

        try:
            doc = json.loads(self.query('SELECT count("supply_temp") FROM "telemetry"'))
            return int(doc["results"][0]["series"][0]["values"][0][1])
        except (OSError, KeyError, IndexError, ValueError, TypeError):
            return None

    def stop(self) -> None:
        """Terminate it and wait (kill after 10 s)."""
        _terminate(self.proc)
        self.proc = None


class PrivateMosquitto:
    """`mosquitto` from PATH on 127.0.0.1 and a free port, anonymous, no persistence; stopped with the demo.

    Used with STATIONMON_DEMO_BROKER=mosquitto: MQTT 5 (session expiry, shared subscriptions), which
    the embedded amqtt 0.12 refuses ("unsupported protocol version").
    """

    def __init__(self, binary: str, workdir: Path, port: int) -> None:
        self.binary = binary
        self.dir = workdir / "mosquitto"
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 15.0) -> None:
        """Start it and wait until it accepts connections; StationmonError if it does not."""
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"log_dest file {self.dir / 'mosquitto.log'}\n",
            encoding="utf-8",
        )
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise StationmonError(f"mosquitto did not start (see {self.dir / 'mosquitto.log'})")
            time.sleep(0.05)

    def stop(self) -> None:
        """Terminate it and wait (kill after 10 s)."""
        _terminate(self.proc)
        self.proc = None


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _terminate(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@contextlib.asynccontextmanager
async def embedded_broker(port: int) -> Any:
    """amqtt's broker on 127.0.0.1:port, anonymous, for the demo only."""
    from amqtt.broker import Broker

    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    try:
        await broker.start()
    except Exception as exc:  # amqtt's BrokerError and socket errors
        raise StationmonError(f"embedded MQTT broker on 127.0.0.1:{port}: {exc}") from exc
    try:
        yield broker
    finally:
        with contextlib.suppress(Exception):
            await broker.shutdown()


# ----------------------------------------------------------------------------------------------------
# Console


def _say(text: str = "") -> None:
    print(text, flush=True)


class AlertPrinter:
    """Prints alert transitions as they happen and counts them for the summary."""

    def __init__(self, config: Config, started: float) -> None:
        self.names = {s.id: s.name or s.id for s in config.stations}
        self.started = started
        self.counts: Counter[str] = Counter()

    def __call__(self, event: AlertEvent) -> None:
        self.counts[event.state] += 1
        where = self.names.get(event.station, event.station) + (f" / {event.loop}" if event.loop else "")
        value = "" if event.value is None else f" value {event.value:.1f}"
        threshold = "" if event.threshold is None else f" (threshold {event.threshold:.1f})"
        t = time.monotonic() - self.started
        _say(
            f"[{t:5.1f}s] ALERT {event.state.upper():<9} {event.severity:<8} {event.rule:<20} {where}:"
            f"{value}{threshold} {event.message}".rstrip()
        )


# ----------------------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """`stationmon demo`: run the simulated district until --duration or Ctrl-C; exit 0."""
    if not 1 <= args.stations <= 200:
        print(f"stationmon demo: --stations: expected 1..200, got {args.stations}", file=sys.stderr)
        return 2
    n = int(args.stations)
    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="stationmon-demo-")) if own_workdir else Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    influxd: PrivateInfluxd | None = None
    mosquitto: PrivateMosquitto | None = None
    try:
        host, _, port_text = str(args.listen).rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
            print(f"stationmon demo: --listen: expected HOST:PORT, got {args.listen!r}", file=sys.stderr)
            return 2
        port = int(port_text)
        if not _port_free(host, port):
            new_port = _free_port()
            _say(f"note: {host}:{port} is in use; the status page goes to {host}:{new_port} instead")
            port = new_port
        stations = demo_stations(n)
        mqtt_port = None if args.mqtt else _free_port()
        broker = "external"
        if mqtt_port is not None:
            broker = "amqtt"
            # Debian puts mosquitto in /usr/sbin, which is not on a normal user's PATH
            mosquitto_bin = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
            if os.environ.get("STATIONMON_DEMO_BROKER", "") != "mosquitto":
                mosquitto_bin = None
            if mosquitto_bin:
                mosquitto = PrivateMosquitto(mosquitto_bin, workdir, mqtt_port)
                try:
                    mosquitto.start()
                    broker = "mosquitto"
                except StationmonError as exc:
                    _say(f"note: {exc}; using the embedded amqtt broker instead")
                    mosquitto = None
        binary = shutil.which("influxd")
        if binary:
            influxd = PrivateInfluxd(binary, workdir)
            try:
                influxd.start()
            except StationmonError as exc:
                _say(f"note: {exc}; storing in the local spool instead")
                influxd = None
        plan = DemoPlan(
            workdir=workdir,
            http_listen=f"{host}:{port}",
            mqtt_url=args.mqtt or f"mqtt://127.0.0.1:{mqtt_port}",
            influx_url=influxd.url if influxd else None,
            mqtt_protocol="3.1.1" if broker == "amqtt" else "5",
            modbus_ports={st.id: _free_port() for st in stations if st.kind != "mqtt"},
        )
        text = build_demo_config(stations, plan)
        config_path = workdir / "demo.toml"
        config_path.write_text(text, encoding="utf-8")
        try:
            config = parse_config_text(text, str(config_path), require_influxdb=False)
        except ConfigError as exc:  # a bug in the demo itself: say exactly what
            for line in exc.problems:
                print(line, file=sys.stderr)
            return 1
        _banner(config, plan, broker, mqtt_port, influxd, own_workdir, args.duration)
        try:
            embedded = mqtt_port if broker == "amqtt" else None
            return asyncio.run(_run_demo(config, embedded, args.duration, influxd))
        except StationmonError as exc:
            print(f"stationmon demo: {exc}", file=sys.stderr)
            return 1
    finally:
        if influxd is not None:
            influxd.stop()
        if mosquitto is not None:
            mosquitto.stop()
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _banner(
    config: Config,
    plan: DemoPlan,
    broker: str,
    mqtt_port: int | None,
    influxd: PrivateInfluxd | None,
    own_workdir: bool,
    duration: float | None,
) -> None:
    loops = Counter(lp.emitter for s in config.stations for lp in s.loops)
    modbus = sum(1 for s in config.stations if s.modbus is not None)
    _say(
        f"stationmon demo: {len(config.stations)} simulated stations ({modbus} over Modbus TCP, "
        f"{len(config.stations) - modbus} over MQTT only), "
        f"{loops['radiator']} radiator and {loops['floor']} floor loops"
    )
    _say(f"  status page   http://{plan.http_listen}/   (API: /api/v1/stations, /api/v1/alerts, /metrics)")
    if broker == "mosquitto":
        _say(f"  MQTT          private mosquitto (from PATH) on 127.0.0.1:{mqtt_port}")
    elif broker == "amqtt":
        _say(f"  MQTT          embedded broker (amqtt, MQTT 3.1.1) on 127.0.0.1:{mqtt_port}")
    else:
        _say(f"  MQTT          {plan.mqtt_url}")
    if influxd is not None:
        _say(f"  storage       private InfluxDB (influxd from PATH) at {influxd.url}, database stationmon")
    else:
        _say(f"  storage       no influxd on PATH: readings are kept in the local spool {config.influxdb.spool_dir}")
    kept = "removed at exit" if own_workdir else "kept"
    _say(f"  work dir      {plan.workdir} ({kept}); config: {plan.workdir / 'demo.toml'}")
    faults = ", ".join(f"{f.kind} at {f.station}" for f in config.simulator.faults) or "none"
    _say(f"  faults        {faults}")
    _say(f"  running {'for ' + format(duration, 'g') + ' s' if duration else 'until Ctrl-C'}; alerts print below")
    _say()


async def _run_demo(
    config: Config, mqtt_port: int | None, duration: float | None, influxd: PrivateInfluxd | None
) -> int:
    from stationmon.adapters.http import stations_document
    from stationmon.service import Service
    from stationmon.sim.runner import Simulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.set_exception_handler(_quiet_cancellations)
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
        run = asyncio.create_task(service.run(stop), name="service")
        waiter = asyncio.create_task(stop.wait(), name="demo-stop")
        try:
            await asyncio.wait({run, waiter}, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
            doc = stations_document(service)
        finally:
            stop.set()
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            await run  # re-raises a component's crash, after a clean stop of the rest
    _summary(service, doc, printer, time.monotonic() - started, influxd)
    return 0


def _quiet_cancellations(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # amqtt's shutdown cancels its connection tasks while asyncio still holds callbacks for them, and
    # asyncio logs each as an error with a traceback; a cancelled task at shutdown is no error
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


def _summary(
    service: Any, doc: dict[str, Any], printer: AlertPrinter, elapsed: float, influxd: PrivateInfluxd | None
) -> None:
    statuses = Counter(st["status"] for st in doc["stations"])
    readings = service.metrics.get("stationmon_readings_total")
    by_source = {src: readings.value(src) for src in ("modbus", "mqtt")} if readings is not None else {}
    _say()
    _say(f"demo summary after {elapsed:.0f} s:")
    _say(f"  stations      {', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}")
    _say(f"  readings      {int(sum(by_source.values()))} ({', '.join(f'{k} {int(v)}' for k, v in by_source.items())})")
    fired, resolved = printer.counts["firing"], printer.counts["resolved"]
    active = sum(st["active_alerts"] for st in doc["stations"])
    _say(f"  alerts        {fired} fired, {resolved} resolved, {active} active at the end")
    if influxd is not None:
        points = influxd.count_points()
        _say(f"  storage       InfluxDB {influxd.url}: {points if points is not None else '?'} supply readings stored")
    else:
        _say(f"  storage       spool {service.config.influxdb.spool_dir}")
