"""Soak: an HA pair of `stationmon run` under faults for a while, then an account of every reading and alert.

    .venv/bin/python bench/soak.py [--minutes 30] [--stations 2000] [--json account.json]
    make soak ARGS="--minutes 5"

What runs (all real, on free ports in a temporary folder): influxd (1.x), mosquitto (persistent), Alertmanager
routing to a webhook receiver in this process, and two `stationmon run` replicas with one config (an HA pair,
`[cluster] notify = "alertmanager"`). The simulated stations live in this process: a quarter publish over
MQTT 5 (QoS 1, `json_fields` with the reading's own time; each replica has its own persistent session, or
one `--share-group`), the rest are Modbus TCP PLCs served by a minimal asyncio server that records which
poll slot it answered for which replica (replica A reaches the PLCs at 127.0.0.1, B at 127.0.0.2).

Faults, at fixed fractions of the run so a short run injects every kind:
- 10 % of the PLCs flap: a long outage (station_offline expected), then a short one (none expected);
- influxd stopped for 2 minutes (a fifteenth of shorter runs, at least 5 s);
- mosquitto restarted (SIGTERM, same port and persistence file);
- replica A killed with SIGKILL and restarted with its spool and state;
- a few PLCs serve a cold loop the whole run (supply_low expected).

The account: Modbus readings served (per station and slot: both replicas write the slot-stamped point, which
InfluxDB stores once), MQTT readings published (acknowledged by the broker), stored (queried from InfluxDB at
the end), lost, duplicated, not served (a flapping PLC's down slots); alerts expected vs delivered to the
webhook; RSS and open files of each replica over time with a least-squares slope. Exit status 1 if anything
was lost or duplicated, or an alert was missing or unexpected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.soak_judge import FLOORS, K_SD, MARGIN_S, HistoryCost, Verdict, history_cost, judge  # noqa: E402
from stationmon.adapters.modbus import station_phase  # noqa: E402
from stationmon.domain.durations import parse_duration  # noqa: E402
from stationmon.domain.vocabulary import RULE_NAMES  # noqa: E402
from stationmon.sim.servers import InfluxServer, MosquittoServer, find_binary, free_port, http_ok  # noqa: E402

STATIONS_PER_PORT = 200  # unit ids 1..200 on each server port
REPLICA_HOSTS = {"a": "127.0.0.1", "b": "127.0.0.2"}
DB = "soak"
# every rule but the two whose alerts the soak injects and expects
RULES_OFF = tuple(r for r in RULE_NAMES if r not in ("supply_low", "station_offline"))


_QUIET = logging.getLogger("soak.mqtt")  # aiomqtt warns about every batch of concurrent publishes
_QUIET.setLevel(logging.ERROR)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------
# The plan: stations, faults and timings, all as fractions of the run


@dataclass
class Plan:
    duration_s: float
    interval_s: float
    modbus: list[str]
    mqtt: list[str]
    flappers: list[str]
    cold: list[str]
    share_group: str
    seed: int
    history_window: str = "5m"  # [http] history_window of the replicas ("": stationmon's default, 6 h)
    downs: dict[str, list[tuple[float, float, bool]]] = field(default_factory=dict)  # (from, to, long) offsets

    @property
    def offline_after_s(self) -> float:
        return 6 * self.interval_s

    @property
    def backoff_cap_s(self) -> float:  # the poller's reconnect backoff cap (adapters/modbus.py)
        return max(self.interval_s, min(60.0, 10 * self.interval_s))

    @property
    def influx_down(self) -> tuple[float, float]:
        length = max(5.0, min(120.0, self.duration_s / 15))
        return 0.25 * self.duration_s, 0.25 * self.duration_s + length

    @property
    def broker_restart_at(self) -> float:
        return 0.45 * self.duration_s

    @property
    def kill(self) -> tuple[float, float]:
        return 0.6 * self.duration_s, 0.6 * self.duration_s + max(3.0, min(30.0, self.duration_s / 60))


def make_plan(args: argparse.Namespace) -> Plan:
    n = args.stations
    ids = [f"soak-{i:05d}" for i in range(n)]
    n_mqtt = round(n * args.mqtt_share)
    mqtt, modbus = ids[:n_mqtt], ids[n_mqtt:]
    rng = random.Random(args.seed)
    cold = modbus[: max(2, len(modbus) // 500)]
    rest = modbus[len(cold) :]
    flappers = sorted(rng.sample(rest, max(1, round(len(modbus) * 0.10))))
    plan = Plan(args.minutes * 60, args.interval, modbus, mqtt, flappers, cold, args.share_group, args.seed)
    plan.history_window = args.history_window
    iv = plan.interval_s
    long_s, short_s, up_s = plan.offline_after_s + 9 * iv, 1.5 * iv, plan.backoff_cap_s + 6 * iv
    lo, hi = 0.10 * plan.duration_s, 0.85 * plan.duration_s
    for sid in flappers:
        t, downs, long = lo + rng.uniform(0, up_s), [], True
        while t + (long_s if long else short_s) <= hi:
            end = t + (long_s if long else short_s)
            downs.append((t, end, long))
            t, long = end + up_s, not long
        plan.downs[sid] = downs
    return plan


# ----------------------------------------------------------------------------------------------------
# The Modbus PLCs: one asyncio server per 200 stations, on two loopback addresses (one per replica)


class Farm:
    """Answers FC 3 reads of 8 registers (outdoor, supply, return, flow as float32) for every Modbus station,
    and records per station which slot it served to which replica (bit 1: A, bit 2: B)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.t0 = 0.0
        self.stopped = False
        self.ports: list[int] = []
        self.servers: list[asyncio.Server] = []
        self.index = {sid: i for i, sid in enumerate(plan.modbus)}
        self.phase = {sid: station_phase(sid, plan.interval_s) for sid in plan.modbus}
        self.served: dict[str, dict[int, int]] = defaultdict(dict)
        self.late: dict[str, set[int]] = defaultdict(set)  # answered too late for the poller's deadline
        self.refused: dict[str, set[int]] = defaultdict(set)
        self.cold = set(plan.cold)
        self.rng = random.Random(plan.seed)

    def station(self, port_index: int, unit: int) -> str | None:
        i = port_index * STATIONS_PER_PORT + unit - 1
        return self.plan.modbus[i] if 0 <= i < len(self.plan.modbus) and 1 <= unit <= STATIONS_PER_PORT else None

    def up(self, sid: str, now: float) -> bool:
        offset = now - self.t0
        return not any(a <= offset < b for a, b, _ in self.plan.downs.get(sid, ()))

    def slot(self, sid: str, now: float) -> tuple[int, float]:
        """The poll slot a request at `now` belongs to (a poller may wake a little early) and its time."""
        iv = self.plan.interval_s
        k = math.floor((now - self.phase[sid]) / iv + 0.02)
        return k, k * iv + self.phase[sid]

    def registers(self, sid: str) -> bytes:
        noise = self.rng.uniform(-0.3, 0.3)
        supply, ret = (30.0, 26.0) if sid in self.cold else (55.0, 42.0)  # cold: a loop run far below its curve
        return struct.pack(">4f", -10.0 + noise / 3, supply + noise, ret + noise, 12.0 + noise / 10)

    def answer(self, port_index: int, replica: int, frame: bytes) -> bytes | None:
        tid, _, _, unit, fc, start, count = struct.unpack_from(">HHHBBHH", frame)
        sid = self.station(port_index, unit)
        now = time.time()
        if sid is None:
            return None
        k, at = self.slot(sid, now)
        if self.stopped or not self.up(sid, now):
            self.refused[sid].add(k)
            return None
        if fc != 3 or start != 0 or count != 8:
            body = bytes([unit, fc | 0x80, 2])
            return struct.pack(">HHH", tid, 0, len(body)) + body
        if now > at + 0.9 * self.plan.interval_s:
            self.late[sid].add(k)
        else:
            self.served[sid][k] = self.served[sid].get(k, 0) | replica
        body = bytes([unit, 3, 16]) + self.registers(sid)
        return struct.pack(">HHH", tid, 0, len(body)) + body

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for p in range(math.ceil(len(self.plan.modbus) / STATIONS_PER_PORT)):
            port = free_port()
            for name, host in REPLICA_HOSTS.items():
                replica = 1 if name == "a" else 2
                server = await loop.create_server(
                    lambda p=p, r=replica: _PlcProtocol(self, p, r),
                    host,
                    port,
                    backlog=4096,  # type: ignore[misc]
                )
                self.servers.append(server)
            self.ports.append(port)

    def close(self) -> None:
        for server in self.servers:
            server.close()


class _PlcProtocol(asyncio.Protocol):
    def __init__(self, farm: Farm, port_index: int, replica: int) -> None:
        self.farm, self.port_index, self.replica = farm, port_index, replica
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data
        out = []
        while len(buf) >= 12:
            frame, buf = buf[:12], buf[12:]
            reply = self.farm.answer(self.port_index, self.replica, frame)
            if reply is None:  # a PLC that is down: the connection drops
                self.transport.close()
                return
            out.append(reply)
        self.buffer = buf
        if out:
            self.transport.write(b"".join(out))


# ----------------------------------------------------------------------------------------------------
# MQTT stations: one aiomqtt publisher, QoS 1, each message retried until the broker acknowledges it


class Publisher:
    def __init__(self, plan: Plan, port: int) -> None:
        self.plan, self.port = plan, port
        self.confirmed: dict[str, set[int]] = defaultdict(set)
        self.attempted: dict[str, set[int]] = defaultdict(set)
        self.failures = 0
        self.stop = asyncio.Event()
        self.rng = random.Random(plan.seed + 1)

    def message(self, sid: str, ts_ms: int) -> tuple[str, bytes]:
        noise = self.rng.uniform(-0.3, 0.3)
        doc = {"supply_temp": round(55 + noise, 2), "return_temp": round(42 + noise, 2), "flow": 12.0, "ts": ts_ms}
        return f"plc/{sid}/sec1", json.dumps(doc).encode()

    async def run(self) -> None:
        import aiomqtt

        pending: list[tuple[str, int]] = []
        next_at = time.time()
        while not self.stop.is_set():
            try:
                client = aiomqtt.Client("127.0.0.1", self.port, identifier="soak-publisher", timeout=10, logger=_QUIET)
                async with client:
                    while not self.stop.is_set():
                        if time.time() >= next_at:
                            ts = int(time.time() * 1000)
                            pending += [(sid, ts + i % 1000) for i, sid in enumerate(self.plan.mqtt)]
                            next_at += self.plan.interval_s
                        pending = await self._publish(client, pending)
                        await _sleep_or(self.stop, max(0.05, next_at - time.time()))
            except Exception as exc:  # the broker restarts: reconnect and resend what was not acknowledged
                self.failures += 1
                log(f"publisher: {type(exc).__name__}: {exc}; {len(pending)} to resend")
                await _sleep_or(self.stop, 0.5)

    async def _publish(self, client: Any, pending: list[tuple[str, int]]) -> list[tuple[str, int]]:
        while pending:
            chunk = pending[:200]
            for sid, ts in chunk:
                self.attempted[sid].add(ts)

            async def one(sid: str, ts: int) -> None:
                topic, payload = self.message(sid, ts)
                await client.publish(topic, payload, qos=1, timeout=10)
                self.confirmed[sid].add(ts)

            await asyncio.gather(*(one(sid, ts) for sid, ts in chunk))
            pending = pending[len(chunk) :]
        return pending


async def _sleep_or(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


# ----------------------------------------------------------------------------------------------------
# Alertmanager's webhook receiver


class Hook:
    def __init__(self) -> None:
        self.port = free_port()
        self.notifications: list[dict[str, Any]] = []
        self.runner: Any = None

    async def start(self) -> None:
        from aiohttp import web

        async def receive(request: web.Request) -> web.Response:
            body = await request.json()
            now = time.time()
            for alert in body.get("alerts", []):
                self.notifications.append(
                    {
                        "status": alert["status"],
                        "alertname": alert["labels"].get("alertname", ""),
                        "station": alert["labels"].get("station", ""),
                        "starts_at": datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00")).timestamp(),
                        "received": now,
                    }
                )
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hook", receive)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def alertmanager_yaml(hook_port: int) -> str:
    return f"""route:
  receiver: soak
  group_by: [alertname, station]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 24h
receivers:
  - name: soak
    webhook_configs:
      - url: http://127.0.0.1:{hook_port}/hook
        send_resolved: true
"""


class Alertmanager:
    def __init__(self, workdir: Path, yaml: str) -> None:
        binary = find_binary("prometheus-alertmanager", "alertmanager")
        if binary is None:
            raise SystemExit("prometheus-alertmanager is not installed (make deps)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "am.yml").write_text(yaml)
        self.log = open(workdir / "alertmanager.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'am.yml'}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_sync(lambda: http_ok(f"{self.url}/-/ready", 200), 30, "alertmanager ready")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def _wait_sync(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


# ----------------------------------------------------------------------------------------------------
# The replicas


def station_toml(plan: Plan, sid: str, host: str, farm: Farm) -> str:
    text = f'[[stations]]\nid = "{sid}"\ndistrict = "soak"\n'
    if sid in farm.index:
        i = farm.index[sid]
        text += (
            f'  [stations.modbus]\n  host = "{host}"\n  port = {farm.ports[i // STATIONS_PER_PORT]}\n'
            f'  device_id = {i % STATIONS_PER_PORT + 1}\n  interval = "{plan.interval_s:g}s"\n'
            f'  timeout = "{min(2.0, plan.interval_s / 2):g}s"\n  jitter = "{plan.interval_s:g}s"\n'
        )
    text += '  [[stations.loops]]\n  id = "sec1"\n  emitter = "floor"\n  design_supply = 50.0\n  design_return = 40.0\n'
    if sid in farm.index:
        for address, (loop, quantity) in enumerate(
            ((None, "outdoor_temp"), ("sec1", "supply_temp"), ("sec1", "return_temp"), ("sec1", "flow"))
        ):
            where = f'  loop = "{loop}"\n' if loop else ""
            text += f'  [[stations.points]]\n{where}  quantity = "{quantity}"\n  address = {2 * address}\n'
            text += '  type = "float32"\n'
    return text


def replica_config(plan: Plan, name: str, workdir: Path, urls: dict[str, str], farm: Farm) -> tuple[Path, int]:
    port = free_port()
    share = f'share_group = "{plan.share_group}"\n' if plan.share_group else ""
    rules_off = "".join(f"[rules.{rule}]\nenabled = false\n" for rule in RULES_OFF)
    iv = plan.interval_s
    history = f'history_window = "{plan.history_window}"' if plan.history_window else ""
    head = f"""state_dir = "{workdir / name / "state"}"

[influxdb]
url = "{urls["influx"]}"
api = "v1"
database = "{DB}"
spool_dir = "{workdir / name / "spool"}"
flush_interval = "1s"

[mqtt]
url = "{urls["mqtt"]}"
client_id = "soak-{name}"
{share}
[[mqtt.subscriptions]]
topic = "plc/{{station}}/{{loop}}"
format = "json_fields"
time = "ts"

[http]
listen = "127.0.0.1:{port}"
{history}

[[alerting.alertmanager]]
url = "{urls["am"]}"
resend_interval = "{max(2.0, 2 * iv):g}s"

[cluster]
notify = "alertmanager"

[rules]
evaluate_every = "{iv:g}s"
for = "0s"
clear_for = "0s"
offline_after = "{plan.offline_after_s:g}s"
season_start = "01-01"
season_end = "12-31"
outdoor_smoothing = "0s"
water_smoothing = "0s"

{rules_off}
"""
    host = REPLICA_HOSTS[name]
    body = "\n".join(station_toml(plan, sid, host, farm) for sid in [*plan.mqtt, *plan.modbus])
    (workdir / name).mkdir(parents=True, exist_ok=True)
    path = workdir / name / "stationmon.toml"
    path.write_text(head + body, encoding="utf-8")
    return path, port


LATENESS_BUCKET = "stationmon_modbus_poll_lateness_seconds_bucket"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """The process's own CPU time (user + system, /proc/<pid>/stat), not its children's nor the simulator's."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """The process's resident memory, MB (VmRSS of /proc/<pid>/status); StopIteration if it has none."""
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024


COUNTERS = (
    "stationmon_influx_lines_written_total",
    "stationmon_influx_lines_queued_total",
    "stationmon_mqtt_messages_total",
    "stationmon_readings_total",
)


class Replica:
    def __init__(self, name: str, config: Path, port: int, workdir: Path) -> None:
        self.name, self.config, self.port, self.workdir = name, config, port, workdir
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.lives: list[dict[str, float]] = []  # the last scrape of each process's counters
        self.samples: list[tuple[float, str, float, int, float]] = []  # (time, life, RSS MB, open files, CPU s)
        self.starts: dict[str, float] = {}  # life -> when its process was started
        self.lateness: dict[str, dict[str, float]] = {}  # life -> poll lateness histogram (le -> count)

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.workdir / f"{self.name}.log", "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stationmon", "run", "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.lives.append({})
        self.starts[self.life] = time.time()

    @property
    def life(self) -> str:
        return f"{self.name}{len(self.lives)}"

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
        out: dict[str, float] = defaultdict(float)
        buckets = self.lateness.setdefault(self.life, {})
        for line in text.splitlines():
            if line.startswith(LATENESS_BUCKET):
                buckets[line.split('le="', 1)[1].split('"', 1)[0]] = float(line.rsplit(" ", 1)[1])
            if line.startswith("stationmon_"):
                name = line.split("{", 1)[0].split(" ", 1)[0]
                out[name] += float(line.rsplit(" ", 1)[1])
        return out

    def scrape(self) -> dict[str, float] | None:
        try:
            m = self.metrics()
        except OSError:
            return None
        self.lives[-1] = {k: m.get(k, 0.0) for k in COUNTERS}
        return m

    def sample(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pid = self.proc.pid
        try:
            rss = rss_mb(pid)
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            cpu = cpu_seconds(pid)
        except (OSError, StopIteration):
            return
        self.samples.append((time.time(), self.life, rss, fds, cpu))

    def healthy(self) -> bool:
        return http_ok(self.url + "/healthz", 200)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9


# ----------------------------------------------------------------------------------------------------
# The run


class Soak:
    def __init__(self, plan: Plan, workdir: Path, sample_s: float) -> None:
        self.plan, self.workdir, self.sample_s = plan, workdir, sample_s
        self.farm = Farm(plan)
        self.hook = Hook()
        self.influx: InfluxServer | None = None
        self.broker: MosquittoServer | None = None
        self.am: Alertmanager | None = None
        self.replicas: dict[str, Replica] = {}
        self.publisher: Publisher | None = None
        self.events: list[tuple[float, str]] = []
        self.t0 = self.t_end = self.t_start = 0.0
        self.exit_codes: dict[str, int] = {}

    def event(self, what: str) -> None:
        self.events.append((time.time(), what))
        log(what)

    def _binary(self, *names: str) -> str:
        found = find_binary(*names)
        if found is None:
            raise SystemExit(f"{names[0]} is not installed (make deps)")
        return found

    async def setup(self) -> None:
        self.influx = InfluxServer(self._binary("influxd"), self.workdir / "influxd")
        await asyncio.to_thread(self.influx.start)
        self.influx.create_database(DB)
        self.broker = MosquittoServer(self._binary("mosquitto"), self.workdir / "mosquitto")
        await asyncio.to_thread(self.broker.start)
        await self.hook.start()
        self.am = await asyncio.to_thread(Alertmanager, self.workdir / "am", alertmanager_yaml(self.hook.port))
        await self.farm.start()
        urls = {"influx": self.influx.url, "mqtt": self.broker.url, "am": self.am.url}
        for name in REPLICA_HOSTS:
            cfg, port = replica_config(self.plan, name, self.workdir, urls, self.farm)
            self.replicas[name] = Replica(name, cfg, port, self.workdir)
        self.t_start = time.time()
        for r in self.replicas.values():
            r.start()
        for r in self.replicas.values():
            await _wait(r.healthy, 120, f"replica {r.name} healthy")
        self.publisher = Publisher(self.plan, self.broker.port)

    async def at(self, offset: float) -> None:
        await asyncio.sleep(max(0.0, self.t0 + offset - time.time()))

    async def faults(self) -> None:
        assert self.influx is not None and self.broker is not None
        a, b = self.plan.influx_down
        await self.at(a)
        self.event(f"influxd stopped for {b - a:.0f} s")
        await asyncio.to_thread(self.influx.stop)
        await self.at(b)
        await asyncio.to_thread(self.influx.start)
        self.event("influxd started")
        await self.at(self.plan.broker_restart_at)
        self.event("mosquitto restarting")
        await asyncio.to_thread(self.broker.stop)
        await asyncio.to_thread(self.broker.start)
        self.event("mosquitto restarted")
        kill, back = self.plan.kill
        await self.at(kill)
        a_replica = self.replicas["a"]
        await asyncio.to_thread(a_replica.scrape)  # its counters die with it
        a_replica.kill()
        self.event(f"replica a killed with SIGKILL, restart in {back - kill:.0f} s")
        await self.at(back)
        a_replica.start()
        await _wait(a_replica.healthy, 120, "replica a healthy again")
        self.event("replica a restarted")

    async def sampler(self) -> None:
        while True:
            for r in self.replicas.values():
                r.sample()
                await asyncio.to_thread(r.scrape)
            await asyncio.sleep(self.sample_s)

    async def run(self) -> dict[str, Any]:
        await self.setup()
        assert self.publisher is not None
        self.t0 = self.farm.t0 = time.time()
        self.event(
            f"load on: {len(self.plan.modbus)} Modbus + {len(self.plan.mqtt)} MQTT stations, "
            f"{len(self.plan.flappers)} flapping, {len(self.plan.cold)} cold, {self.plan.duration_s:.0f} s"
        )
        pub = asyncio.create_task(self.publisher.run())
        sampler = asyncio.create_task(self.sampler())
        faults = asyncio.create_task(self.faults())
        try:
            await self.at(self.plan.duration_s)
            await faults
            self.farm.stopped = True
            self.publisher.stop.set()
            sampler.cancel()  # resources are sampled under load only
            await pub
            self.t_end = time.time()
            self.event("load off: draining")
            await self.drain()
        finally:
            for task in (pub, sampler, faults):
                task.cancel()
            await asyncio.gather(pub, sampler, faults, return_exceptions=True)
        for r in self.replicas.values():
            r.scrape()
            self.exit_codes[r.name] = await asyncio.to_thread(r.stop)
        self.event(f"replicas stopped: exit {self.exit_codes}")
        return self.account()

    async def drain(self) -> None:
        """Wait until both replicas have written everything (spool and buffer empty, counters still)."""
        await asyncio.sleep(self.plan.interval_s + 2)
        last: tuple[float, ...] = ()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            ms = [await asyncio.to_thread(r.scrape) for r in self.replicas.values()]
            if all(m is not None for m in ms):
                pending = sum(m["stationmon_influx_spool_lines"] + m["stationmon_influx_buffered_lines"] for m in ms)
                now = tuple(m[k] for m in ms for k in ("stationmon_mqtt_messages_total", "stationmon_readings_total"))
                if pending == 0 and now == last:
                    return
                last = now
            await asyncio.sleep(3)
        log("drain: still writing after 300 s; accounting anyway")

    async def close(self) -> None:
        for r in self.replicas.values():
            if r.proc is not None and r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait(10)
        self.farm.close()
        await self.hook.close()
        for server in (self.am, self.broker, self.influx):
            if server is not None:
                await asyncio.to_thread(server.stop)


async def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.5)


# ----------------------------------------------------------------------------------------------------
# The account


def _series(influx: InfluxServer, q: str) -> list[tuple[dict[str, str], list[list[Any]]]]:
    out = []
    for result in influx.post_query(q, DB).get("results", []):
        if "error" in result:
            raise RuntimeError(f"InfluxQL: {result['error']}: {q}")
        for s in result.get("series", []):
            out.append((s.get("tags", {}), s["values"]))
    return out


def stored_times(influx: InfluxServer, field_: str, source: str, t_from: float, t_to: float) -> dict[str, list[int]]:
    """Per station, the stored times (epoch ms) of `field_` from `source`, queried in 5-minute windows."""
    out: dict[str, list[int]] = defaultdict(list)
    t = int(t_from * 1000)
    while t < t_to * 1000:
        end = t + 300_000
        q = (
            f"SELECT {field_} FROM telemetry WHERE source = '{source}' AND time >= {t}ms AND time < {end}ms "
            "GROUP BY station"
        )
        for tags, values in _series(influx, q):
            out[tags["station"]].extend(int(v[0]) for v in values if v[1] is not None)
        t = end
    return out


def stored_counts(influx: InfluxServer, t_from: float, t_to: float) -> dict[str, float]:
    window = f"time >= {int(t_from * 1000)}ms AND time < {int(t_to * 1000)}ms"
    q = f"SELECT count(*) FROM telemetry WHERE {window} GROUP BY source"
    out: dict[str, float] = {}
    for tags, values in _series(influx, q):
        out[tags["source"]] = sum(v for v in values[0][1:] if v)
    q = f"SELECT count(status) FROM loop_status WHERE {window}"
    out["loop_status"] = sum(values[0][1] for _, values in _series(influx, q))
    return out


def modbus_account(soak: Soak, influx: InfluxServer, t_from: float, t_to: float) -> dict[str, Any]:
    farm, plan = soak.farm, soak.plan
    kill_at = soak.t0 + plan.kill[0]
    acc = defaultdict(int)
    for field_ in ("supply_temp", "outdoor_temp"):  # the loop's line and the station's line
        for what in ("lost", "lost in the killed replica's memory (served to it alone)"):
            acc[f"{field_} {what}"] = 0  # every category in the account, zero or not
        for what in ("off the slot grid (duplicates)", "stored, never served (duplicates)"):
            acc[f"{field_} {what}"] = 0
        times = stored_times(influx, field_, "modbus", t_from, t_to)
        for sid in plan.modbus:
            phase, iv = farm.phase[sid], plan.interval_s
            stored = set()
            for ms in times.get(sid, []):
                k = (ms / 1000 - phase) / iv
                if abs(k - round(k)) > 0.001:
                    acc[f"{field_} off the slot grid (duplicates)"] += 1
                stored.add(round(k))
            served = farm.served.get(sid, {})
            for k in served.keys() - stored:
                only_a = served[k] == 1
                if only_a and kill_at - 3.0 <= k * iv + phase <= kill_at:
                    acc[f"{field_} lost in the killed replica's memory (served to it alone)"] += 1
                else:
                    acc[f"{field_} lost"] += 1
            acc[f"{field_} stored, never served (duplicates)"] += len(stored - served.keys() - farm.late[sid])
            acc[f"{field_} lines expected"] += len(served)
            acc[f"{field_} lines stored"] += len(stored & served.keys())
    acc["polls served (station, slot)"] = sum(len(s) for s in farm.served.values())
    acc["polls served to both replicas"] = sum(1 for s in farm.served.values() for m in s.values() if m == 3)
    acc["polls answered after the poller's deadline (not expected)"] = sum(len(s) for s in farm.late.values())
    acc["slots not served (PLC down or load off)"] = sum(len(s) for s in farm.refused.values())
    return dict(acc)


def mqtt_account(soak: Soak, influx: InfluxServer, t_from: float, t_to: float) -> dict[str, Any]:
    assert soak.publisher is not None
    pub = soak.publisher
    times = stored_times(influx, "supply_temp", "mqtt", t_from, t_to)
    acc = defaultdict(int)
    for sid in soak.plan.mqtt:
        stored, confirmed, attempted = set(times.get(sid, [])), pub.confirmed[sid], pub.attempted[sid]
        acc["messages published (acknowledged by the broker)"] += len(confirmed)
        acc["messages sent but not acknowledged (broker restart)"] += len(attempted - confirmed)
        acc["messages stored"] += len(stored & attempted)
        acc["messages lost"] += len(confirmed - stored)
        acc["stored, never published (duplicates)"] += len(stored - attempted)
    acc["publisher reconnects"] = pub.failures
    return dict(acc)


def alert_account(soak: Soak) -> dict[str, Any]:
    plan, t0, iv = soak.plan, soak.t0, soak.plan.interval_s
    expected: list[tuple[str, str, float, float]] = [("supply_low", sid, 0.0, soak.t_end) for sid in plan.cold]
    for sid, downs in plan.downs.items():
        for a, b, long in downs:
            if long:
                hi = t0 + b + plan.backoff_cap_s + plan.offline_after_s + 3 * iv
                expected.append(("station_offline", sid, t0 + a, hi))
    firing = {
        (n["alertname"], n["station"], round(n["starts_at"], 3))
        for n in soak.hook.notifications
        if n["status"] == "firing" and n["starts_at"] <= soak.t_end
    }

    def matches(key: tuple[str, str, float], exp: tuple[str, str, float, float]) -> bool:
        return key[0] == exp[0] and key[1] == exp[1] and exp[2] <= key[2] <= exp[3]

    delivered = [e for e in expected if any(matches(k, e) for k in firing)]
    unexpected = sorted(k for k in firing if not any(matches(k, e) for e in expected))
    resolved = sum(
        1
        for name, sid, lo, _ in expected
        if name == "station_offline"
        and any(
            n["status"] == "resolved" and n["station"] == sid and n["received"] > lo for n in soak.hook.notifications
        )
    )
    return {
        "expected": len(expected),
        "delivered": len(delivered),
        "missing": [e[:2] for e in expected if e not in delivered][:20],
        "unexpected": [list(k) for k in unexpected][:20],
        "unexpected_count": len(unexpected),
        "firing notifications": len(firing),
        "station_offline resolved after recovery": resolved,
        "notifications": len(soak.hook.notifications),
    }


def series_count(plan: Plan) -> int:
    """Series a replica keeps a history of: 4 points per Modbus station, 3 fields per MQTT station."""
    return 4 * len(plan.modbus) + 3 * len(plan.mqtt)


def history_account(plan: Plan) -> dict[str, Any]:
    """The status page's history per replica: at the soak's window and at the default 6 h (measured)."""
    out: dict[str, Any] = {}
    n = series_count(plan)
    window_s = parse_duration(plan.history_window) if plan.history_window else 6 * 3600.0
    for name, w in (("soak", window_s), ("default 6h", 6 * 3600.0)):
        c: HistoryCost = history_cost(w, plan.interval_s)
        out[name] = {
            "window_s": w,
            "points_per_series": c.points,
            "bytes_per_series": round(c.bytes_per_series),
            "bytes_per_point": round(c.bytes_per_point, 1),
            "full_after_s": c.fill_s,
            "series": n,
            "mb_per_replica": round(c.mb(n), 1),
        }
    return out


def lateness_quantiles(buckets: dict[str, float]) -> dict[str, float]:
    """p50 and p99 poll lateness (the upper bound of the histogram bucket holding it), and the polls counted."""
    pairs = sorted((math.inf if le == "+Inf" else float(le), n) for le, n in buckets.items())
    total = pairs[-1][1] if pairs else 0.0
    out = {"polls": total}
    for name, q in (("p50_s", 0.5), ("p99_s", 0.99)):
        out[name] = next((le for le, n in pairs if n >= q * total), math.nan) if total else math.nan
    return out


def life_cpu(rows: list[tuple[float, float, int, float]], start: float) -> float:
    """Cores a life used (CPU seconds per second), from a minute after its start (start-up excluded)."""
    after = [(t, c) for t, _, _, c in rows if t >= start + 60]
    if len(after) < 2 or after[-1][0] <= after[0][0]:
        return math.nan
    return (after[-1][1] - after[0][1]) / (after[-1][0] - after[0][0])


def verdict_dict(v: Verdict) -> dict[str, Any]:
    return {k: (round(x, 3) if isinstance(x, float) else x) for k, x in vars(v).items()}


def resource_account(soak: Soak, fill_s: float) -> dict[str, Any]:
    """Per replica process: RSS, open files and CPU over time; RSS and open files judged over the steady phase."""
    out: dict[str, Any] = {}
    lives: dict[str, list[tuple[float, float, int, float]]] = defaultdict(list)
    starts: dict[str, float] = {}
    for r in soak.replicas.values():
        for ts, life, rss, fds, cpu in r.samples:
            lives[life].append((ts - soak.t0, rss, fds, cpu))
        starts |= {life: t - soak.t0 for life, t in r.starts.items()}
    for life, rows in lives.items():
        start = starts.get(life, rows[0][0])
        rss = judge([(t, m) for t, m, _, _ in rows], start, fill_s, FLOORS["rss"])
        fds = judge([(t, float(f)) for t, _, f, _ in rows], start, 0.0, FLOORS["fds"])
        replica = soak.replicas[life[0]]
        out[life] = {
            "samples": len(rows),
            "started_s": round(start, 1),
            "rss_mb_first_last_max": [round(rows[0][1], 1), round(rows[-1][1], 1), round(max(r[1] for r in rows), 1)],
            "fds_first_last_max": [rows[0][2], rows[-1][2], max(r[2] for r in rows)],
            "rss": verdict_dict(rss),
            "fds": verdict_dict(fds),
            "cpu_cores": round(life_cpu(rows, start), 3),
            "lateness": lateness_quantiles(replica.lateness.get(life, {})),
            "table": [(round(t / 60, 1), round(m, 1), f) for t, m, f, _ in rows],
        }
    return out


def account_of(soak: Soak) -> dict[str, Any]:
    assert soak.influx is not None
    influx = soak.influx
    t_from, t_to = soak.t_start - 60, time.time() + 60
    written = {
        name: sum(life.get("stationmon_influx_lines_written_total", 0.0) for life in r.lives)
        for name, r in soak.replicas.items()
    }
    deliveries = sum(
        life.get("stationmon_mqtt_messages_total", 0.0) for r in soak.replicas.values() for life in r.lives
    )
    history = history_account(soak.plan)
    return {
        "plan": {
            "started_utc": datetime.fromtimestamp(soak.t0, UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
            "cpus": os.cpu_count(),
            "minutes": round(soak.plan.duration_s / 60, 2),
            "stations": len(soak.plan.modbus) + len(soak.plan.mqtt),
            "modbus": len(soak.plan.modbus),
            "mqtt": len(soak.plan.mqtt),
            "flapping": len(soak.plan.flappers),
            "cold": len(soak.plan.cold),
            "interval_s": soak.plan.interval_s,
            "share_group": soak.plan.share_group,
            "history_window": soak.plan.history_window or "6h (stationmon's default)",
        },
        "events": [(round(t - soak.t0, 1), what) for t, what in soak.events],
        "modbus": modbus_account(soak, influx, t_from, t_to),
        "mqtt": mqtt_account(soak, influx, t_from, t_to),
        "stored_readings": stored_counts(influx, t_from, t_to),
        "writes": {
            "lines written (InfluxDB acknowledged), per replica, sum over its processes": written,
            "mqtt deliveries to the replicas (sum over processes)": deliveries,
        },
        "alerts": alert_account(soak),
        "history": history,
        "resources": resource_account(soak, history["soak"]["full_after_s"]),
        "exit_codes": soak.exit_codes,
    }


Soak.account = account_of  # type: ignore[attr-defined]


def totals(acc: dict[str, Any]) -> dict[str, int]:
    mb, mq = acc["modbus"], acc["mqtt"]
    lost = sum(v for k, v in mb.items() if k.endswith(" lost")) + mq["messages lost"]
    dup = sum(v for k, v in mb.items() if "(duplicates)" in k) + mq["stored, never published (duplicates)"]
    explained = sum(v for k, v in mb.items() if "killed replica" in k)
    return {"lost": lost, "duplicates": dup, "lost_explained": explained}


def print_account(acc: dict[str, Any]) -> None:
    p, mb, mq, al = acc["plan"], acc["modbus"], acc["mqtt"], acc["alerts"]
    t = totals(acc)
    served_readings = 4 * mb["polls served (station, slot)"]
    published_readings = 3 * mq["messages published (acknowledged by the broker)"]
    stored = acc["stored_readings"]
    print(
        f"\nSoak account: {p['minutes']:g} min, {p['stations']:,} stations "
        f"({p['modbus']:,} Modbus, {p['mqtt']:,} MQTT),"
    )
    print(f"  poll interval {p['interval_s']:g} s, {p['flapping']} PLCs flapping, {p['cold']} cold loops, HA pair;")
    print(f"  status-page history_window {p['history_window']}")
    print(f"  started {p['started_utc']}, {p['cpus']} CPUs, load average at the end {p['load_average_at_end']}")
    print("faults (seconds into the run):")
    for when, what in acc["events"]:
        print(f"  {when:>8.1f}  {what}")
    print("readings:")
    print(
        f"  Modbus served     {served_readings:>10,}  ({mb['polls served (station, slot)']:,} polls x 4 points; "
        f"{mb['polls served to both replicas']:,} polls served to both replicas)"
    )
    print(f"  Modbus stored     {int(stored.get('modbus', 0)):>10,}")
    print(
        f"  MQTT published    {published_readings:>10,}  ({mq['messages published (acknowledged by the broker)']:,} "
        "messages x 3 fields)"
    )
    print(f"  MQTT stored       {int(stored.get('mqtt', 0)):>10,}")
    print(f"  lost              {t['lost']:>10,}")
    print(f"  duplicates        {t['duplicates']:>10,}")
    print(
        f"  not served        {mb['slots not served (PLC down or load off)']:>10,}  polls refused by a down PLC "
        "(not lost: never read)"
    )
    for k, v in {**mb, **mq}.items():
        if v and ("killed replica" in k or "not acknowledged" in k or "deadline" in k):
            print(f"  explained: {k}: {v:,}")
    w = acc["writes"]
    written = w["lines written (InfluxDB acknowledged), per replica, sum over its processes"]
    print(
        f"  lines written by the replicas: {', '.join(f'{n} {int(v):,}' for n, v in written.items())} "
        f"(each point by both replicas; loop_status {int(stored.get('loop_status', 0)):,} stored);"
    )
    print(
        f"  MQTT deliveries to the replicas {int(w['mqtt deliveries to the replicas (sum over processes)']):,} for "
        f"{mq['messages published (acknowledged by the broker)']:,} published (redeliveries stored once: same time)"
    )
    print("alerts:")
    print(
        f"  expected {al['expected']}, delivered {al['delivered']}, unexpected {al['unexpected_count']} "
        f"(station_offline resolved after recovery: {al['station_offline resolved after recovery']})"
    )
    for m in al["missing"]:
        print(f"  missing: {m}")
    for u in al["unexpected"]:
        print(f"  unexpected: {u}")
    print_history(acc["history"], p["interval_s"])
    print_resources(acc["resources"])
    print(f"replica exit codes: {acc['exit_codes']}")
    print(
        f"RESULT: lost = {t['lost']}, duplicates = {t['duplicates']}, alerts expected = {al['expected']}, "
        f"delivered = {al['delivered']}, unexpected = {al['unexpected_count']}; "
        + "; ".join(f"{life}: {v}" for life, v in verdicts(acc).items())
    )


def print_history(hist: dict[str, Any], interval_s: float) -> None:
    print(
        f"status-page history per replica (measured: the real LatestValues under tracemalloc, a reading per "
        f"{interval_s:g} s per series):"
    )
    for name, h in hist.items():
        full = h["full_after_s"]
        when = f"{full / 3600:.1f} h" if full >= 5400 else f"{full / 60:.1f} min"
        print(
            f"  {name} window ({h['window_s'] / 60:g} min): {h['points_per_series']} points a series, at its peak "
            f"{when} after start; {h['series']:,} series x {h['bytes_per_series']:,} B ({h['bytes_per_point']} B a "
            f"point) = {h['mb_per_replica']:.1f} MB"
        )


def _judged(v: dict[str, Any], unit: str) -> str:
    return Verdict(**v).describe(unit)


def print_resources(res: dict[str, Any]) -> None:
    print(
        f"memory and open files per replica process, judged over its steady phase (history at its peak + "
        f"{MARGIN_S:g} s, and not before the middle of the life):"
    )
    print(
        f"  within noise = |slope x span| <= {K_SD:g} x residual sd + floor ({FLOORS['rss']:g} MB of RSS, "
        f"{FLOORS['fds']:g} open file); a life too short for a steady phase is not judged"
    )
    for life, r in res.items():
        (m0, m1, mmax), (f0, f1, fmax), late = r["rss_mb_first_last_max"], r["fds_first_last_max"], r["lateness"]
        print(
            f"  {life} (started {r['started_s'] / 60:.1f} min): RSS {m0} -> {m1} MB (max {mmax}), "
            f"{r['samples']} samples"
        )
        print(f"      RSS: {_judged(r['rss'], 'MB')}")
        print(f"      open files {f0} -> {f1} (max {fmax}): {_judged(r['fds'], 'files')}")
        cpu = "n/a (lived under a minute)" if math.isnan(r["cpu_cores"]) else f"{r['cpu_cores']:.3f} cores"
        print(
            f"      CPU {cpu} after its first minute; poll lateness p50 <= {late['p50_s']:g} s, "
            f"p99 <= {late['p99_s']:g} s ({int(late['polls']):,} polls)"
        )
    rows: dict[float, dict[str, tuple[float, int]]] = defaultdict(dict)
    for life, r in res.items():
        for minute, rss, fds in r["table"]:
            rows[round(minute)][life] = (rss, fds)
    lives = list(res)
    print("  minute " + "".join(f"{life + ' MB':>10}{'files':>7}" for life in lives))
    for minute in sorted(rows):
        cells = "".join(
            f"{rows[minute][lf][0]:>10.1f}{rows[minute][lf][1]:>7}" if lf in rows[minute] else f"{'':>17}"
            for lf in lives
        )
        print(f"  {minute:>6} {cells}")


def verdicts(acc: dict[str, Any]) -> dict[str, str]:
    """Per life, its memory and open-file verdicts in a word each."""
    return {
        life: f"RSS {r['rss']['status'].split(':')[0]}, files {r['fds']['status'].split(':')[0]}"
        for life, r in acc["resources"].items()
    }


def failed(acc: dict[str, Any]) -> bool:
    t, al = totals(acc), acc["alerts"]
    bad_exit = any(code != 0 for code in acc["exit_codes"].values())
    growing = any(r[k]["status"] == "NOT within noise" for r in acc["resources"].values() for k in ("rss", "fds"))
    bad = t["lost"] or t["duplicates"] or al["delivered"] != al["expected"] or al["unexpected_count"]
    return bool(bad or bad_exit or growing)


async def main_async(args: argparse.Namespace) -> int:
    plan = make_plan(args)
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    log(f"work folder {workdir}")
    sample_s = args.sample or max(1.0, min(15.0, plan.duration_s / 60))
    soak = Soak(plan, workdir, sample_s)
    try:
        acc = await soak.run()
    finally:
        await soak.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print_account(acc)
    if args.json:
        Path(args.json).write_text(json.dumps(acc, indent=1, default=str))
    return 1 if failed(acc) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--stations", type=int, default=2000)
    parser.add_argument("--mqtt-share", type=float, default=0.25, help="share of stations that publish over MQTT")
    parser.add_argument("--interval", type=float, default=10.0, help="poll, publish and evaluation interval (s)")
    parser.add_argument("--share-group", default="", help="one MQTT share group for the pair (default: a session each)")
    parser.add_argument("--sample", type=float, default=0.0, help="RSS sampling period (s; default duration/60)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument(
        "--history-window",
        default="5m",
        help="the replicas' [http] history_window (default 5m: full within the run, so memory can be judged; "
        "'' for stationmon's 6h, whose cost the account prints anyway)",
    )
    parser.add_argument("--json", default="", help="also write the account as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, data) afterwards")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
