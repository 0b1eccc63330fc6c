"""At least once through a crash: QoS 1 readings stream into `stationmon run`, it is killed with SIGKILL
while it holds readings not yet stored, it is started again, and every reading is in InfluxDB once.

Each reading is its own point (JSON payload with its own timestamp and value), so InfluxDB cannot merge
two readings into one, and a reading stored twice (a resent message) is the same point, stored once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as paho

from tests.conftest import InfluxServer, MosquittoServer
from tests.helpers import free_port, wait_until, write_config
from tests.integration.test_influx import points_accepted

READINGS = 3000
RATE_PER_S = 1000.0
STATION = "crash-1"


def _config(tmp_path: Path, influx: InfluxServer, db: str, broker: MosquittoServer, http_port: int) -> Path:
    return write_config(
        tmp_path,
        f"""
[influxdb]
url = "{influx.url}"
api = "v1"
database = "{db}"
spool_dir = "{tmp_path}/spool"
flush_interval = "1s"

[mqtt]
url = "{broker.url}"
client_id = "stationmon-crash-test"
[[mqtt.subscriptions]]
topic = "heat/{{station}}/{{loop}}/{{quantity}}"
format = "json"
value = "v"
time = "ts"

[http]
listen = "127.0.0.1:{http_port}"

[[stations]]
id = "{STATION}"
  [[stations.loops]]
  id = "sec1"
""",
    )


class _Publisher(threading.Thread):
    """Publishes READINGS QoS 1 readings at RATE_PER_S: value i at its own time (1 s apart, in the past)."""

    def __init__(self, broker: MosquittoServer) -> None:
        super().__init__(name="crash-publisher", daemon=True)
        self.broker = broker
        self.published = 0
        self.acked = 0
        self.done = threading.Event()
        self.base_s = int(time.time()) - 2 * 3600

    def run(self) -> None:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="crash-publisher")
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)

        def on_publish(*_: object) -> None:
            self.acked += 1
            if self.acked == READINGS:
                self.done.set()

        client.on_publish = on_publish
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        try:
            started = time.monotonic()
            for i in range(READINGS):
                payload = json.dumps({"v": float(i), "ts": (self.base_s + i) * 1000})
                client.publish(f"heat/{STATION}/sec1/supply_temp", payload, qos=1)
                self.published = i + 1
                ahead = started + (i + 1) / RATE_PER_S - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)  # pacing the publisher, not waiting for a condition
            self.done.wait(60)
        finally:
            client.disconnect()
            client.loop_stop()


def _start(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "stationmon", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )


def _metric(http_port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{}"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def _mqtt_connected(http_port: int) -> bool:
    try:
        return _metric(http_port, "stationmon_mqtt_connected") == 1.0
    except OSError:
        return False


async def test_sigkill_mid_stream_loses_no_qos1_reading_and_stores_each_once(  # type: ignore[no-untyped-def]
    tmp_path, influxdb, influx_db, mosquitto
):
    http_port = free_port()
    config = _config(tmp_path, influxdb, influx_db, mosquitto, http_port)

    def stored() -> int:
        rows = influxdb.query(influx_db, "SELECT count(supply_temp) FROM telemetry")
        return int(rows[0]["count"]) if rows else 0

    first = _start(config)
    publisher = _Publisher(mosquitto)
    try:
        await wait_until(lambda: _mqtt_connected(http_port), timeout=30, message="stationmon subscribed")
        publisher.start()
        await wait_until(
            lambda: publisher.published >= READINGS // 2 and stored() > 0, timeout=60, message="half published"
        )
        received = _metric(http_port, "stationmon_mqtt_messages_total")
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
    stored_at_kill = stored()
    # the kill came while readings were received but not stored: the window this test is about
    assert received > stored_at_kill, (received, stored_at_kill)
    assert stored_at_kill < READINGS

    second = _start(config)
    try:
        await wait_until(publisher.done.is_set, timeout=60, message="the broker acknowledged every publish")
        await wait_until(lambda: stored() >= READINGS, timeout=60, message=f"{READINGS} readings in InfluxDB")
        rows = influxdb.query(influx_db, "SELECT supply_temp FROM telemetry")
        values = sorted(r["supply_temp"] for r in rows)
        assert values == [float(i) for i in range(READINGS)]  # each reading once, none missing
        times = {r["time"] for r in rows}
        assert len(times) == READINGS

        def settled() -> dict[str, float] | None:
            f = _figures(http_port)
            done = f["influx_buffered_lines"] == 0 and f["influx_lines_queued_total"] == f["influx_lines_written_total"]
            return f if done else None

        second_figures = await wait_until(
            settled, timeout=30, message="the second process's storage settled", seen=lambda: _figures(http_port)
        )
    finally:
        second.send_signal(signal.SIGTERM)
        _out, err = second.communicate(timeout=20)
        publisher.join(10)
    assert second.returncode == 0, err.decode()[-3000:]
    assert b"Traceback" not in err
    # InfluxDB's accepted points, less the evaluator's own (loop_status, ...: written once, never resent)
    others = [m["name"] for m in influxdb.query(influx_db, "SHOW MEASUREMENTS") if m["name"] != "telemetry"]
    evaluator_points = sum(len(influxdb.query(influx_db, f'SELECT * FROM "{m}"')) for m in others)
    _assert_each_once(second_figures, points_accepted(influxdb, influx_db) - evaluator_points, stored_at_kill)


def _figures(http_port: int) -> dict[str, float]:
    """The second process's MQTT and storage figures (label values summed)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    names = ("mqtt_messages_total", "mqtt_rejected_total", "readings_total", "influx_lines_written_total")
    names += ("influx_lines_queued_total",)
    names += ("influx_lines_dropped_total", "influx_lines_dead_lettered_total", "influx_buffered_lines")
    out = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0].removeprefix("stationmon_")
        if name in out and not line.startswith("#"):
            out[name] += float(line.rsplit(" ", 1)[1])
    return out


def _assert_each_once(second: dict[str, float], accepted: int, stored_at_kill: int) -> None:
    """Exactly once where it must be, at least once where the kill makes it so, every duplicate explained.

    The second process wrote each message it received exactly once (one reading each; its accounting
    closes with nothing dropped or held; its other lines are the evaluator's). InfluxDB accepted
    `accepted` telemetry points in all: the first process's writes and the second's. Those beyond
    READINGS are duplicates: readings the first stored but had not acknowledged when it was killed
    (PUBACK follows storage), which the broker sent again to the second."""
    assert second["mqtt_rejected_total"] == 0, second
    assert second["influx_lines_dropped_total"] == second["influx_lines_dead_lettered_total"] == 0, second
    assert second["influx_buffered_lines"] == 0, second
    assert second["influx_lines_queued_total"] == second["influx_lines_written_total"], second
    assert second["readings_total"] == second["mqtt_messages_total"], second
    written_by_first = accepted - second["readings_total"]
    duplicates = accepted - READINGS
    assert written_by_first >= stored_at_kill, (written_by_first, stored_at_kill)
    # at least once: each duplicate was redelivered to the second, and the first wrote it before the kill
    assert 0 <= duplicates <= min(second["mqtt_messages_total"], written_by_first), (duplicates, second)
    print(f"InfluxDB accepted {accepted} points for {READINGS} readings: {duplicates} redelivered after the kill")
