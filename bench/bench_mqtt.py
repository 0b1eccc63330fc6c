"""Benchmark: MqttCollector (topic routing, payload parsing, line protocol) against a bare aiomqtt
consumer that only counts, fed the same messages by the same Mosquitto in the same run.

    .venv/bin/python bench/bench_mqtt.py [--messages 20000] [--rounds 2]

For each scenario and consumer: a persistent session is created (client id, subscription), N QoS 1
messages are published while the consumer is away (the broker queues them), then the consumer
connects and the clock runs until it has taken all N: pure consumer throughput, the publisher is not
in the measurement. The collector's sink encodes every batch to line protocol (TelemetryEncoder) and
hands it to an InfluxWriter without a url, as the service does: the lines go to the writer's spool
(fsync per flush), and the collector acknowledges each QoS 1 message only once its readings are
spooled (at least once), so the clock stops when every reading is stored and every message
acknowledged. The bare consumer acknowledges on arrival (paho's default). Writing to InfluxDB itself
is the writer's benchmark. Target: 20,000 messages/s, ratio to the bare consumer >= 0.6. Best of `rounds`.

Share-group scaling (first, `--share-group 1,2,3`; `--only-share-group` for it alone): 1, 2 and 3 collector
processes (each an MqttCollector with its own InfluxWriter spool, MQTT 5, its own client id) in one share group
`$share/bench/...`; the messages (`--messages` x the largest group) are queued while the members are away, the
members start together, and the clock stops when the last reading is stored and acknowledged. The curve is
messages/s per group size, and the ratio to one member measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from stationmon.adapters.influx import InfluxWriter
from stationmon.adapters.mqtt import MqttCollector
from stationmon.config import Config, parse_config_text
from stationmon.domain.lineproto import TelemetryEncoder
from stationmon.domain.model import Reading
from stationmon.metrics import Metrics

TARGET_RATE = 20_000.0
TARGET_RATIO = 0.6
STATIONS = 50
LOOPS = ("sec1", "sec2")
QUANTITIES = ("supply_temp", "return_temp", "flow", "supply_pressure")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client_options(protocol: str) -> dict[str, object]:
    """aiomqtt options for a persistent session in this protocol version."""
    if protocol == "5":
        return {"protocol": aiomqtt.ProtocolVersion.V5, "clean_start": False, "properties": _session_properties()}
    return {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": False}


def _config(
    port: int,
    protocol: str = "5",
    spool_dir: str = "/tmp/bench-mqtt-spool",
    client_id: str = "bench-collector",
    share_group: str = "",
) -> Config:
    stations = "\n".join(
        f'[[stations]]\nid = "st{i}"\n' + "".join(f'  [[stations.loops]]\n  id = "{lp}"\n' for lp in LOOPS)
        for i in range(STATIONS)
    )
    text = f"""
[influxdb]
api = "v1"
database = "bench"
spool_dir = "{spool_dir}"
flush_interval = "200ms"
[mqtt]
url = "mqtt://127.0.0.1:{port}"
client_id = "{client_id}"
protocol = "{protocol}"
share_group = "{share_group}"
[[mqtt.subscriptions]]
topic = "heat/{{station}}/{{loop}}/{{quantity}}"
[[mqtt.subscriptions]]
topic = "plc/{{station}}/{{loop}}"
format = "json_fields"
time = "ts"
{stations}
"""
    return parse_config_text(text, require_influxdb=False)


def _messages(scenario: str, n: int) -> list[tuple[str, bytes]]:
    out = []
    ts = int(time.time()) - 3600
    for i in range(n):
        station, loop = f"st{i % STATIONS}", LOOPS[(i // STATIONS) % 2]
        if scenario == "plain":
            q = QUANTITIES[(i // (2 * STATIONS)) % len(QUANTITIES)]
            out.append((f"heat/{station}/{loop}/{q}", f"{40 + (i % 997) / 100:.2f}".encode()))
        else:
            doc = {"supply_temp": 41.2 + i % 7, "return_temp": 34.1, "flow": 12.5, "ts": ts + i // 1000}
            out.append((f"plc/{station}/{loop}", json.dumps(doc).encode()))
    return out


class Broker:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
        self.port = _free_port()
        conf = self.dir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            "log_dest none",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _session_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    return props


async def _prepare_session(port: int, client_id: str, filters: Sequence[str], protocol: str) -> None:
    """Create the persistent session and its subscriptions, then leave."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=client_id, **_client_options(protocol)) as client:
        await client.subscribe([(f, 1) for f in filters])


def _publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish QoS 1 as fast as paho's threaded loop allows; return when the broker acknowledged all."""
    done = threading.Event()
    acked = 0

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1
        if acked == len(messages):
            done.set()

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1)
        if not done.wait(120):
            raise RuntimeError(f"only {acked} of {len(messages)} publishes acknowledged")
    finally:
        client.disconnect()
        client.loop_stop()


async def _bare(port: int, n: int, protocol: str) -> float:
    start = time.perf_counter()
    count = 0
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-bare", **_client_options(protocol)) as client:
        async for _ in client.messages:
            count += 1
            if count == n:
                break
    return time.perf_counter() - start


async def _collector(cfg: Config, n: int, expected_readings: int) -> tuple[float, int]:
    assert cfg.mqtt is not None
    encoder = TelemetryEncoder(cfg.stations)
    done = asyncio.Event()
    lines = 0
    readings = 0
    metrics = Metrics()
    shutil.rmtree(cfg.influxdb.spool_dir, ignore_errors=True)
    writer = InfluxWriter(cfg.influxdb, metrics)

    def sink(batch: Sequence[Reading]) -> None:
        nonlocal lines, readings
        encoded = encoder.encode(batch)
        writer.submit(encoded)
        lines += len(encoded)
        readings += len(batch)
        if readings >= expected_readings:
            # settled together with the collector's callback just after: its acknowledgements are sent by then
            writer.when_stored(lambda _stored: done.set())

    collector = MqttCollector(cfg.mqtt, cfg.stations, sink, metrics, when_stored=writer.when_stored)
    async with writer:
        start = time.perf_counter()
        task = asyncio.create_task(collector.run())
        try:
            await asyncio.wait_for(done.wait(), 120)
            elapsed = time.perf_counter() - start
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    shutil.rmtree(cfg.influxdb.spool_dir, ignore_errors=True)
    rejected = [line for line in metrics.render().splitlines() if line.startswith("stationmon_mqtt_rejected_total{")]
    bad = [line for line in rejected if float(line.rsplit(" ", 1)[1]) != 0]
    assert not bad, bad
    return elapsed, lines


async def _round(
    broker: Broker, cfg: Config, scenario: str, messages: list[tuple[str, bytes]], log: Callable[[str], None]
) -> tuple[float, float]:
    assert cfg.mqtt is not None
    n = len(messages)
    per_message = 1 if scenario == "plain" else 3
    filters = [f for f, _ in MqttCollector(cfg.mqtt, cfg.stations, lambda _: None, Metrics()).filters]

    protocol = cfg.mqtt.protocol
    await _prepare_session(broker.port, "bench-bare", filters, protocol)
    await asyncio.to_thread(_publish, broker.port, messages)
    bare_s = await _bare(broker.port, n, protocol)

    await _prepare_session(broker.port, "bench-collector", filters, protocol)
    await asyncio.to_thread(_publish, broker.port, messages)
    collector_s, lines = await _collector(cfg, n, n * per_message)
    log(
        f"  MQTT {protocol} {scenario}: bare {n / bare_s:,.0f} msg/s, "
        f"collector {n / collector_s:,.0f} msg/s ({lines:,} lines)"
    )
    return n / bare_s, n / collector_s


# ----------------------------------------------------------------------------------------------------
# Share-group scaling: 1, 2, 3 collector processes in one share group against one mosquitto

SHARE_GROUP = "bench"


async def _member(
    port: int, client_id: str, group: str, spool_dir: str, start_at: float, total: int
) -> dict[str, float]:
    """One share-group member (a child process): take what the broker hands it, store it, acknowledge it.
    Done when the group has taken `total` (each member writes its count to a file beside its spool) and
    its own readings are stored; reports its count and when its last reading was stored."""
    cfg = _config(port, "5", spool_dir, client_id=client_id, share_group=group)
    assert cfg.mqtt is not None
    encoder, metrics = TelemetryEncoder(cfg.stations), Metrics()
    shutil.rmtree(spool_dir, ignore_errors=True)
    writer = InfluxWriter(cfg.influxdb, metrics)
    state = {"readings": 0.0, "stored_at": 0.0, "arrived_at": 0.0}

    def stored(_ok: bool) -> None:
        state["stored_at"] = time.time()

    def sink(batch: Sequence[Reading]) -> None:
        writer.submit(encoder.encode(batch))
        state["readings"] += len(batch)
        state["arrived_at"] = time.time()
        writer.when_stored(stored)

    collector = MqttCollector(cfg.mqtt, cfg.stations, sink, metrics, when_stored=writer.when_stored)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    async with writer:
        task = asyncio.create_task(collector.run())
        mine = Path(f"{spool_dir}.count")
        try:
            while True:
                mine.write_text(str(int(state["readings"])))
                group = sum(int(p.read_text() or 0) for p in Path(spool_dir).parent.glob("spool-*.count"))
                if group >= total and state["stored_at"] >= state["arrived_at"]:
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    shutil.rmtree(spool_dir, ignore_errors=True)
    return state


def _member_process(
    port: int, client_id: str, group: str, spool_dir: str, start_at: float, total: int
) -> subprocess.Popen[str]:
    argv = [sys.executable, __file__, "--member", client_id, "--port", str(port), "--spool", spool_dir]
    argv += ["--group", group, "--total", str(total)]
    return subprocess.Popen(
        [*argv, "--start-at", f"{start_at:.3f}"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )


async def _share_round(broker: Broker, members: int, messages: list[tuple[str, bytes]], tag: str) -> float:
    """Messages/s for `members` collector processes in one share group, queued while they were away."""
    # a group of its own: the members of an earlier round keep their persistent sessions, and a share group
    # hands messages round robin to every session subscribed, connected or not (they would wait for them)
    group = f"{SHARE_GROUP}{tag}x{members}"
    cfg = _config(broker.port, "5", share_group=group)
    assert cfg.mqtt is not None
    filters = [f for f, _ in MqttCollector(cfg.mqtt, cfg.stations, lambda _: None, Metrics()).filters]
    ids = [f"bench-sg-{tag}-{members}-{i}" for i in range(members)]
    for client_id in ids:
        await _prepare_session(broker.port, client_id, filters, "5")
    await asyncio.to_thread(_publish, broker.port, messages)
    start_at = time.time() + 15.0  # every child imported and waiting, on a busy machine too
    for stale in broker.dir.glob("spool-*.count"):
        stale.unlink()
    n = len(messages)
    procs = [_member_process(broker.port, cid, group, str(broker.dir / f"spool-{cid}"), start_at, n) for cid in ids]
    results = []
    for proc in procs:
        out, _ = await asyncio.to_thread(proc.communicate, timeout=120)
        assert proc.returncode == 0, out
        results.append(json.loads(out.strip().splitlines()[-1]))
    taken = sum(r["readings"] for r in results)
    assert taken >= len(messages), (taken, len(messages))
    elapsed = max(r["stored_at"] for r in results) - start_at
    shares = ", ".join(f"{r['readings'] / taken:.2f}" for r in results)
    print(f"  share group of {members}: {len(messages) / elapsed:,.0f} msg/s (shares {shares})", file=sys.stderr)
    return len(messages) / elapsed


async def share_group_scaling(broker: Broker, n: int, rounds: int, sizes: Sequence[int]) -> dict[int, float]:
    messages = _messages("plain", n)
    best: dict[int, float] = {}
    for r in range(rounds):
        for members in sizes:
            best[members] = max(best.get(members, 0.0), await _share_round(broker, members, messages, str(r)))
    print(f"\nMQTT 5 share-group scaling, {n:,} plain QoS 1 messages, best of {rounds} (same mosquitto)")
    print(f"{'members':<10}{'msg/s':>10}{'vs 1 member':>14}")
    for members, rate in best.items():
        print(f"{members:<10}{rate:>10,.0f}{rate / best[sizes[0]]:>13.2f}x")
    return best


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--protocols", default="5,3.1.1", help="protocol versions to measure (default 5,3.1.1)")
    parser.add_argument("--share-group", default="1,2,3", help="share-group sizes to measure ('' to skip)")
    parser.add_argument("--only-share-group", action="store_true", help="measure only the share-group scaling")
    parser.add_argument("--member", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--spool", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.member:  # a child process of the share-group measurement
        state = await _member(args.port, args.member, args.group, args.spool, args.start_at, args.total)
        print(json.dumps(state))
        return 0
    broker = Broker()
    results: dict[str, tuple[float, float]] = {}
    try:
        sizes = [int(k) for k in args.share_group.split(",") if k]
        if sizes:
            await share_group_scaling(broker, args.messages * max(sizes), args.rounds, sizes)
        for protocol in [] if args.only_share_group else args.protocols.split(","):
            cfg = _config(broker.port, protocol, str(broker.dir / "spool"))
            for scenario in ("plain", "json_fields"):
                messages = _messages(scenario, args.messages)
                best = (0.0, 0.0)
                for _ in range(args.rounds):
                    bare, coll = await _round(broker, cfg, scenario, messages, lambda s: print(s, file=sys.stderr))
                    best = (max(best[0], bare), max(best[1], coll))
                results[f"MQTT {protocol} {scenario}"] = best
    finally:
        broker.stop()

    if not results:
        return 0
    print(f"\nMQTT ingestion, {args.messages:,} QoS 1 messages per run, best of {args.rounds} (same mosquitto)")
    print(f"{'scenario':<24}{'bare msg/s':>12}{'collector msg/s':>17}{'ratio':>8}{'target':>22}")
    ok = True
    for scenario, (bare, coll) in results.items():
        ratio = coll / bare
        met = coll >= TARGET_RATE and ratio >= TARGET_RATIO
        ok &= met
        target = f">= {TARGET_RATE:,.0f}, >= {TARGET_RATIO}"
        print(f"{scenario:<24}{bare:>12,.0f}{coll:>17,.0f}{ratio:>8.2f}{target:>18} {'ok' if met else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
