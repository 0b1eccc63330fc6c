"""The simulator over real sockets: its registers decode through stationmon's own Modbus collector to
the model's values, its MQTT points arrive through the MQTT collector, and each fault kind raises the
alert it should in the running service."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from stationmon.adapters.modbus import ModbusPoller
from stationmon.adapters.mqtt import MqttCollector
from stationmon.config import Config, parse_config_text
from stationmon.config.schema import STATION_FAULT_KINDS
from stationmon.domain.model import AlertEvent, Reading, StationState
from stationmon.metrics import Metrics
from stationmon.service import Service
from stationmon.sim.runner import Simulator
from tests.conftest import MosquittoServer
from tests.helpers import free_port, port_open, running_service, wait_until
from tests.stations_toml import loop_entry, outdoor, point_entry, station_toml, water

T0 = 1_764_000_000.0

# every type in every byte order, holding and input registers, scale and offset
_ENCODINGS = [
    ("int16", "ABCD", "holding", 0.1, 0.0),
    ("uint16", "BADC", "input", 0.01, 0.0),
    ("int32", "CDAB", "holding", 0.001, -50.0),
    ("uint32", "DCBA", "input", 0.001, 0.0),
    ("float32", "ABCD", "holding", 1.0, 0.0),
    ("float32", "CDAB", "input", 1.0, 0.0),
    ("float32", "BADC", "holding", 1.0, 0.0),
    ("float64", "DCBA", "holding", 1.0, 0.0),
    ("float64", "ABCD", "input", 1.0, 0.0),
]
_QUANTITIES = ["supply_temp", "return_temp", "flow", "heat_power", "supply_pressure", "return_pressure"]


def _encoding_config(port: int) -> Config:
    points = ['[[stations.points]]\nquantity = "outdoor_temp"\naddress = 0\ntype = "int16"\nscale = 0.1']
    address = {"holding": 10, "input": 10}
    for i, (dtype, order, register, scale, offset) in enumerate(_ENCODINGS):
        loop = "l1" if i < len(_QUANTITIES) else "l2"
        quantity = _QUANTITIES[i % len(_QUANTITIES)]
        points.append(
            f'[[stations.points]]\nloop = "{loop}"\nquantity = "{quantity}"\nregister = "{register}"\n'
            f'address = {address[register]}\ntype = "{dtype}"\nbyte_order = "{order}"\n'
            f"scale = {scale}\noffset = {offset}"
        )
        address[register] += 7  # gaps between points, as on a real PLC map
    return parse_config_text(
        f"""
[[stations]]
id = "enc"
[stations.modbus]
host = "127.0.0.1"
port = {port}
device_id = 7
interval = "200ms"
timeout = "150ms"
[[stations.loops]]
id = "l1"
emitter = "radiator"
[[stations.loops]]
id = "l2"
emitter = "floor"
{chr(10).join(points)}

[simulator]
outdoor_temp = -12.5
noise = 0.0
""",
        require_influxdb=False,
    )


@pytest.mark.parametrize("client", ["auto", "pymodbus"])
async def test_registers_decode_through_the_collector_to_the_model_values(client: str) -> None:
    config = _encoding_config(free_port())
    station = config.stations[0]
    now = [T0]
    got: list[Reading] = []
    async with Simulator(config, clock=lambda: now[0]) as sim:
        # the clock stands still: the model's values are fixed while the collector reads them
        sim.tick_s = 3600.0
        now[0] = T0 + 120.0
        await sim.tick()
        poller = ModbusPoller(station, got.extend, StationState(station.id), Metrics(), client=client)
        task = asyncio.create_task(poller.run(), name="poller")
        try:
            await wait_until(lambda: len({(r.loop, r.quantity) for r in got}) == len(station.points), timeout=15)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        model = sim.values["enc"]
    latest = {(r.loop, r.quantity): r for r in got}
    for point in station.points:
        reading = latest[(point.loop, point.quantity)]
        assert reading.fault is None, (point, reading)
        want = model[(point.loop, None, point.quantity)]
        resolution = point.scale / 2 + 1e-9 if point.type.startswith(("int", "uint")) else 1e-4
        assert reading.value == pytest.approx(want, abs=resolution), (point.type, point.byte_order, point.register)
    assert latest[(None, "outdoor_temp")].value == pytest.approx(-12.5)


def _bare_station(sid: str, port: int) -> str:
    """A station of one loop "l" with one point, its supply_temp at 0; only the port set in [stations.modbus]."""
    points = water("l", supply=0, ret=None)
    return station_toml(
        sid, port=port, host=None, interval=None, timeout=None, loops=[loop_entry("l", None)], points=points
    )


async def test_offline_fault_closes_the_server_and_it_comes_back() -> None:
    port = free_port()
    text = f"""
{_bare_station("s", port)}
[simulator]
outdoor_temp = 0.0
[[simulator.faults]]
station = "s"
kind = "offline"
start = "10s"
duration = "20s"
"""
    config = parse_config_text(text, require_influxdb=False)
    now = [T0]
    async with Simulator(config, clock=lambda: now[0]) as sim:
        sim.tick_s = 3600.0
        assert await asyncio.to_thread(port_open, port)
        now[0] = T0 + 10.0
        await sim.tick()
        assert not await asyncio.to_thread(port_open, port)
        now[0] = T0 + 30.0
        await sim.tick()
        assert await asyncio.to_thread(port_open, port)


_MQTT_STATION = station_toml(
    "m",
    loops=[loop_entry("sec1", "floor")],
    points=[
        outdoor("plc/m/outdoor"),
        point_entry("supply_temp", "plc/m/sec1/supply", loop="sec1", format="json", value="data.value", time="data.ts"),
    ],
)


async def test_mqtt_points_and_indoor_sensors_arrive_through_the_mqtt_collector(
    mosquitto: MosquittoServer,
) -> None:
    config = parse_config_text(
        f"""
[mqtt]
url = "{mosquitto.url}"
client_id = "sim-test-collector"
[[mqtt.subscriptions]]
topic = "heat/{{station}}/{{loop}}/indoor/{{sensor}}"
quantity = "indoor_temp"

{_MQTT_STATION}

[simulator]
outdoor_temp = -5.0
noise = 0.0
publish_interval = "200ms"
indoor_sensors_per_loop = 2
""",
        require_influxdb=False,
    )
    got: list[Reading] = []
    collector = MqttCollector(config.mqtt, config.stations, got.extend, Metrics())  # type: ignore[arg-type]
    task = asyncio.create_task(collector.run(), name="mqtt-collector")
    try:
        await wait_until(lambda: collector.connected, timeout=15, message="collector connected")
        now = [T0]
        async with Simulator(config, clock=lambda: now[0], tick_s=0.1) as sim:

            def complete() -> bool:
                now[0] += 0.25  # time moves so the publisher publishes; fixed outdoor keeps values steady
                keys = {(r.loop, r.sensor, r.quantity) for r in got}
                return {(None, None, "outdoor_temp"), ("sec1", None, "supply_temp")} <= keys and {
                    ("sec1", "h01", "indoor_temp"),
                    ("sec1", "h02", "indoor_temp"),
                } <= keys

            await wait_until(complete, timeout=15, message="every MQTT point")
            model = sim.values["m"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    latest = {(r.loop, r.sensor, r.quantity): r for r in got}
    assert latest[(None, None, "outdoor_temp")].value == -5.0
    supply = latest[("sec1", None, "supply_temp")]
    assert supply.source == "mqtt"
    assert supply.value == pytest.approx(model[("sec1", None, "supply_temp")], abs=0.01)
    assert supply.ts >= T0  # the payload's own time, from the simulator's clock
    for sensor in ("h01", "h02"):
        assert 10.0 < latest[("sec1", sensor, "indoor_temp")].value < 30.0


# ----------------------------------------------------------------------------------------------------
# Each fault kind raises the alert it should

_FAULT_ALERTS = {
    "undersupply": "supply_low",
    "flatline": "sensor_fault",
    "swapped_sensors": "sensor_fault",
    "offline": "station_offline",
    "low_delta_t": "delta_t_low",
    "probe_sentinel": "sensor_fault",
    "outdoor_probe_fail": "sensor_fault",
    "pump_stop": "no_circulation",
}


def _fault_config(tmp_path: Path) -> Config:
    stations = []
    faults = []
    for kind in [*_FAULT_ALERTS, "none"]:
        sid = kind.replace("_", "-")
        points = [outdoor(), *water(flow=6), point_entry("pump_running", 8, loop="sec1")]
        stations.append(station_toml(sid, port=free_port(), interval="1s", timeout="500ms", points=points))
        if kind != "none":
            loop = "" if kind in STATION_FAULT_KINDS else 'loop = "sec1"\n'
            faults.append(
                f'[[simulator.faults]]\nstation = "{sid}"\n{loop}kind = "{kind}"\nstart = "2s"\nduration = "1h"'
            )
    return parse_config_text(
        f"""
[influxdb]
api = "v1"
database = "unused"
spool_dir = "{tmp_path / "spool"}"
[http]
listen = "127.0.0.1:{free_port()}"
[rules]
water_smoothing = "0s"
evaluate_every = "1s"
for = "3s"
clear_for = "5s"
offline_after = "5s"
season_start = "01-01"
season_end = "12-31"
[rules.sensor_fault]
flatline_window = "8s"
flatline_tolerance = 0.02
max_rate_per_min = 60.0
[simulator]
outdoor_temp = -10.0
noise = 0.1
{chr(10).join(faults)}
{"".join(stations)}
""",
        str(tmp_path / "faults.toml"),
        require_influxdb=False,
    )


async def test_each_fault_kind_raises_its_alert_and_the_healthy_station_none(tmp_path: Path) -> None:
    config = _fault_config(tmp_path)
    events: list[AlertEvent] = []
    async with Simulator(config, lag_s=10.0):
        service = Service(config)
        service.on_event(events.append)
        async with running_service(service):
            want = {(kind.replace("_", "-"), rule) for kind, rule in _FAULT_ALERTS.items()}

            def fired() -> bool:
                got = {(e.station, e.rule) for e in events if e.state == "firing"}
                assert want <= got, f"missing {sorted(want - got)}"
                return True

            await wait_until(fired, timeout=60, message="an alert per fault kind")
    assert not [e for e in events if e.station == "none"], "the healthy station raised an alert"
    # the fault alerts say why
    by = {(e.station, e.rule): e for e in events if e.state == "firing"}
    assert "flatline" in by[("flatline", "sensor_fault")].message
    assert "supply below return" in by[("swapped-sensors", "sensor_fault")].message


def test_simulate_command_serves_until_duration_and_exits_0(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.helpers import wait_until_sync, write_config

    port = free_port()
    path = write_config(tmp_path, _bare_station("cli", port))
    exe = str(Path(sys.executable).parent / "stationmon")
    proc = subprocess.Popen([exe, "simulate", "-c", str(path), "--duration", "4"], stdout=subprocess.PIPE, text=True)
    try:
        wait_until_sync(lambda: port_open(port), timeout=15, message="the simulated station's port")
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert f"station cli, modbus 127.0.0.1:{port} device 1 (1 points)" in out
    assert not port_open(port)

    bad = write_config(tmp_path, '[[stations]]\nid = "x"\n[simulator]\nnoise = "loud"\n', "bad.toml")
    done = subprocess.run([exe, "simulate", "-c", str(bad)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip() == "bad.toml: simulator.noise: expected a number, got string 'loud'"
