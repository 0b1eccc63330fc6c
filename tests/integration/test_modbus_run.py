"""RTU as a user runs it: `stationmon run -c FILE` as a subprocess reads a pymodbus RTU-over-TCP server (a
strict one: its register map has gaps) and a serial RTU device on a pty pair, and stops on SIGTERM
with exit 0 within the contract's 10 s. (The pollers are built inside the running loop: building a
pymodbus client before it failed with "no running event loop".)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from stationmon.domain.registers import encode_value
from tests.helpers import free_port, port_open, wait_until, write_config
from tests.integration.test_modbus_rtu import PtyRtuDevice
from tests.servers import InfluxServer

ROOT = Path(__file__).resolve().parents[2]
STOP_DEADLINE_S = 10.0  # CONTRACT section 1: run flushes and exits within 10 s of SIGTERM

POINTS = """
  [[stations.loops]]
  id = "sec1"
  emitter = "floor"
  design_supply = 50.0
  design_return = 40.0
  [[stations.points]]
  loop = "sec1"
  quantity = "supply_temp"
  address = "40101"
  [[stations.points]]
  loop = "sec1"
  quantity = "return_temp"
  address = "40105"
  [[stations.points]]
  quantity = "outdoor_temp"
  address = "30001"
  type = "int16"
  scale = 0.1
"""


def _config(tmp_path: Path, modbus: str, http_port: int, influxdb: InfluxServer, db: str) -> Path:
    return write_config(
        tmp_path,
        f"""
[influxdb]
url = "{influxdb.url}"
api = "v1"
database = "{db}"
spool_dir = "{tmp_path}/spool"
flush_interval = "200ms"

[http]
listen = "127.0.0.1:{http_port}"

[rules]
evaluate_every = "500ms"

[[stations]]
id = "old-station"
  [stations.modbus]
  interval = "300ms"
{modbus}
{POINTS}
""",
    )


@contextlib.asynccontextmanager
async def stationmon_run(config: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m stationmon run -c config` in this tree; SIGTERM on the way out, exit 0 within 10 s."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stationmon",
        "run",
        "-c",
        str(config),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), STOP_DEADLINE_S)
        except TimeoutError:
            proc.kill()
            _, err = await proc.communicate()
            raise AssertionError(f"stationmon did not stop within 10 s of SIGTERM: {err.decode()[-3000:]}") from None
    log = err.decode()
    assert proc.returncode == 0, log[-3000:]
    assert "Traceback" not in log


def _station(http_port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/v1/stations", timeout=2) as resp:
            doc = json.loads(resp.read())
    except OSError:
        return None
    stations: list[dict[str, Any]] = doc["stations"]
    return stations[0]


async def _strict_rtu_server(port: int) -> Any:
    """pymodbus's TCP server with RTU framing, device 7, mapping only holding 100..101, 104..105, input 0."""
    from pymodbus.framer import FramerType
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import SimData, SimDevice
    from pymodbus.simulator.simutils import DataType

    bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
    holding = [
        SimData(100, values=encode_value(45.5, "float32", "ABCD"), datatype=DataType.REGISTERS),
        SimData(104, values=encode_value(37.25, "float32", "ABCD"), datatype=DataType.REGISTERS),
    ]
    inputs = [SimData(0, values=encode_value(-87, "int16", "ABCD"), datatype=DataType.REGISTERS)]
    device = SimDevice(id=7, simdata=(bits, list(bits), holding, inputs))
    return ModbusTcpServer(device, framer=FramerType.RTU, address=("127.0.0.1", port))


async def test_run_reads_a_strict_rtu_over_tcp_server_into_influxdb(
    tmp_path: Path, influxdb: InfluxServer, influx_db: str
) -> None:
    port, http_port = free_port(), free_port()
    server = await _strict_rtu_server(port)
    serve = asyncio.create_task(server.serve_forever(), name="rtu-over-tcp-server")
    try:
        await wait_until(lambda: asyncio.to_thread(port_open, port), message="the RTU-over-TCP server")
        modbus = f'  transport = "rtu-over-tcp"\n  host = "127.0.0.1"\n  port = {port}\n  device_id = 7'
        async with stationmon_run(_config(tmp_path, modbus, http_port, influxdb, influx_db)):

            def stored() -> list[dict[str, Any]]:
                q = "SELECT supply_temp, return_temp, outdoor_temp, source FROM telemetry"
                rows = influxdb.query(influx_db, q)
                loop_rows = [r for r in rows if r["supply_temp"] is not None and r["return_temp"] is not None]
                station_rows = [r for r in rows if r["outdoor_temp"] is not None]
                return [loop_rows[-1], station_rows[-1]] if loop_rows and station_rows else []

            loop_row, station_row = await wait_until(
                lambda: asyncio.to_thread(stored), timeout=30, message="RTU readings in InfluxDB"
            )
            assert loop_row["supply_temp"] == 45.5 and loop_row["return_temp"] == 37.25
            assert station_row["outdoor_temp"] == pytest.approx(-8.7)
            assert loop_row["source"] == "modbus"
            # the gap 102..103 is not mapped: the API shows the plan the device made stationmon adopt
            doc = await wait_until(lambda: asyncio.to_thread(_station, http_port), message="/api/v1/stations")
            assert doc["online"] is True
            assert doc["connection"]["adapted_read_plan"] == [
                "holding 100..101 (2 registers): sec1.supply_temp",
                "holding 104..105 (2 registers): sec1.return_temp",
                "input 0..0 (1 register): outdoor_temp",
            ]
    finally:
        await server.shutdown()
        serve.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await serve


async def test_run_reads_a_serial_rtu_device_on_a_pty_pair(
    tmp_path: Path, influxdb: InfluxServer, influx_db: str
) -> None:
    registers: dict[tuple[int, int], int] = {}
    for address, value in ((100, 48.5), (104, 39.0)):
        for i, r in enumerate(encode_value(value, "float32", "ABCD")):
            registers[(3, address + i)] = r
    registers[(4, 0)] = encode_value(-152, "int16", "ABCD")[0]
    device = PtyRtuDevice(5, registers)
    device.start()
    http_port = free_port()
    try:
        modbus = f'  transport = "rtu"\n  serial_port = "{device.path}"\n  baudrate = 19200\n  device_id = 5'
        async with stationmon_run(_config(tmp_path, modbus, http_port, influxdb, influx_db)):

            def read() -> dict[str, Any] | None:
                doc = _station(http_port)
                if not doc or "outdoor_temp" not in doc["values"] or not doc["loops"][0]["values"]:
                    return None
                return doc

            doc = await wait_until(lambda: asyncio.to_thread(read), timeout=30, message="serial readings in the API")
            assert doc["values"]["outdoor_temp"]["value"] == pytest.approx(-15.2)
            loop_values = doc["loops"][0]["values"]
            assert loop_values["supply_temp"]["value"] == 48.5
            assert loop_values["return_temp"]["value"] == 39.0
            assert doc["connection"]["online"] is True
        assert {fc for fc, _, _ in device.requests} == {3, 4}
        assert device.bad_crc == 0
    finally:
        device.close()
