"""The Modbus poller against real servers: pymodbus's (TCP and RTU-over-TCP) and pyModbusTCP's."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from stationmon.adapters.modbus import ModbusPoller
from stationmon.config import parse_config_text
from stationmon.domain.model import Reading, StationState
from stationmon.domain.plant import Station
from stationmon.domain.registers import encode_value
from stationmon.metrics import Metrics
from tests.helpers import free_port, port_open, wait_until

# Every type and byte order at once, holding and input registers, scale and offset.
POINTS = """
[[stations.loops]]
id = "sec1"
[[stations.points]]
loop = "sec1"
quantity = "supply_temp"
address = 100
[[stations.points]]
loop = "sec1"
quantity = "return_temp"
address = 102
byte_order = "CDAB"
[[stations.points]]
loop = "sec1"
quantity = "supply_pressure"
address = 104
type = "uint16"
scale = 0.01
[[stations.points]]
loop = "sec1"
quantity = "flow"
address = 105
type = "float64"
byte_order = "DCBA"
[[stations.points]]
loop = "sec1"
quantity = "heat_power"
address = 109
type = "int32"
byte_order = "BADC"
[[stations.points]]
quantity = "outdoor_temp"
register = "input"
address = 7
type = "int16"
scale = 0.1
[[stations.points]]
quantity = "primary_supply_temp"
register = "input"
address = 8
type = "uint32"
byte_order = "CDAB"
scale = 0.001
offset = -10.0
"""

# quantity -> (register, address, type, byte order, raw value, expected value)
VALUES: dict[str, tuple[str, int, str, str, float, float]] = {
    "supply_temp": ("holding", 100, "float32", "ABCD", 41.5, 41.5),
    "return_temp": ("holding", 102, "float32", "CDAB", 34.25, 34.25),
    "supply_pressure": ("holding", 104, "uint16", "ABCD", 45, 0.45),
    "flow": ("holding", 105, "float64", "DCBA", 123.456, 123.456),
    "heat_power": ("holding", 109, "int32", "BADC", -70000, -70000.0),
    "outdoor_temp": ("input", 7, "int16", "ABCD", -123, -12.3),
    "primary_supply_temp": ("input", 8, "uint32", "CDAB", 95_500, 85.5),
}


def station_config(port: int, extra: str = "", points: str = POINTS, interval: str = "200ms") -> Station:
    """One station on 127.0.0.1:port with a short interval."""
    text = f"""
[[stations]]
id = "st-1"
[stations.modbus]
host = "127.0.0.1"
port = {port}
interval = "{interval}"
timeout = "150ms"
{extra}
{points}
"""
    return parse_config_text(text, require_influxdb=False).stations[0]


def registers_for(values: dict[str, tuple[str, int, str, str, float, float]]) -> dict[str, dict[int, int]]:
    """{"holding": {address: register}, "input": {...}} holding every raw value encoded."""
    out: dict[str, dict[int, int]] = {"holding": {}, "input": {}}
    for register, address, dtype, order, raw, _ in values.values():
        for i, r in enumerate(encode_value(raw, dtype, order)):
            out[register][address + i] = r
    return out


class Collected:
    """A sink that keeps every batch."""

    def __init__(self) -> None:
        self.batches: list[list[Reading]] = []

    def __call__(self, readings: Sequence[Reading]) -> None:
        self.batches.append(list(readings))

    def latest(self) -> dict[str, Reading]:
        out: dict[str, Reading] = {}
        for batch in self.batches:
            for r in batch:
                out[r.quantity] = r
        return out


@contextlib.asynccontextmanager
async def running(poller: ModbusPoller) -> AsyncIterator[asyncio.Task[None]]:
    """Run the poller as a task; cancel it and wait for it on the way out."""
    task = asyncio.create_task(poller.run(), name=f"poller-{poller.station.id}")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert task.cancelled(), "the poller must stop only when cancelled"


def assert_values(got: dict[str, Reading], expected: dict[str, Any]) -> None:
    for quantity, (_, _, _, _, _, value) in expected.items():
        assert got[quantity].value == pytest.approx(value), quantity
        assert got[quantity].fault is None, quantity


@pytest.mark.parametrize("client", ["auto", "pymodbus"])
async def test_reads_every_type_and_byte_order_from_pymodbus(
    modbus_server_factory: Callable[..., Awaitable[Any]], client: str
) -> None:
    regs = registers_for(VALUES)
    server = await modbus_server_factory(holding=regs["holding"], input=regs["input"])
    station = station_config(server.port)
    sink = Collected()
    state = StationState(station.id)
    metrics = Metrics()
    poller = ModbusPoller(station, sink, state, metrics, client=client)
    before = time.time()
    async with running(poller):
        await wait_until(lambda: len(sink.batches) >= 2, message="two polls")
    got = sink.latest()
    assert set(got) == set(VALUES)
    assert_values(got, VALUES)
    for r in got.values():
        assert r.source == "modbus" and r.station == "st-1"
        assert before <= r.ts <= time.time()
    assert got["supply_temp"].loop == "sec1" and got["outdoor_temp"].loop is None
    # one batch per poll, every reading in it
    assert all(len(b) == len(VALUES) for b in sink.batches)
    assert state.last_success is not None and state.consecutive_failures == 0
    assert state.polls >= 2 and state.failures == 0
    text = metrics.render()
    assert 'stationmon_modbus_polls_total{result="ok"}' in text
    assert "stationmon_modbus_poll_lateness_seconds_count" in text
    # the poller stopped: nobody online any more
    assert not state.online
    assert metrics.get("stationmon_modbus_stations_online").value() == 0  # type: ignore[union-attr]


async def test_values_change_between_polls(modbus_server_factory: Callable[..., Awaitable[Any]]) -> None:
    regs = registers_for(VALUES)
    server = await modbus_server_factory(holding=regs["holding"], input=regs["input"])
    sink = Collected()
    poller = ModbusPoller(station_config(server.port), sink, StationState("st-1"), Metrics())
    async with running(poller):
        await wait_until(lambda: sink.batches, message="a first poll")
        server.set_holding(100, encode_value(55.0, "float32", "ABCD"))
        await wait_until(lambda: sink.latest()["supply_temp"].value == 55.0, message="the new value")


async def test_broken_probe_is_flagged_not_dropped(modbus_server_factory: Callable[..., Awaitable[Any]]) -> None:
    regs = registers_for(VALUES)
    server = await modbus_server_factory(holding=regs["holding"], input=regs["input"])
    server.set_input(7, [32767])  # int16 sentinel of a broken outdoor probe
    server.set_holding(100, encode_value(float("nan"), "float32", "ABCD"))
    sink = Collected()
    poller = ModbusPoller(station_config(server.port), sink, StationState("st-1"), Metrics())
    async with running(poller):
        await wait_until(lambda: sink.batches, message="a poll")
    got = sink.latest()
    assert got["outdoor_temp"].fault == "sentinel"
    assert got["supply_temp"].fault == "nan"
    assert got["return_temp"].fault is None


async def test_plc_stopped_and_restarted_mid_run(modbus_server_factory: Callable[..., Awaitable[Any]]) -> None:
    regs = registers_for(VALUES)
    server = await modbus_server_factory(holding=regs["holding"], input=regs["input"])
    sink = Collected()
    state = StationState("st-1")
    metrics = Metrics()
    poller = ModbusPoller(station_config(server.port), sink, state, metrics)
    async with running(poller):
        await wait_until(lambda: state.online, message="online")
        await server.stop()
        await wait_until(lambda: not state.online and state.consecutive_failures >= 3, message="offline")
        assert state.last_error
        polls_while_down = len(sink.batches)
        server.set_holding(100, encode_value(60.0, "float32", "ABCD"))
        await server.start()
        # backoff is capped at 10 intervals here (2 s): well inside the deadline
        await wait_until(lambda: state.online, timeout=15, message="back online after the restart")
        await wait_until(lambda: sink.latest()["supply_temp"].value == 60.0, message="fresh readings")
    assert len(sink.batches) > polls_while_down
    assert state.consecutive_failures == 0
    assert metrics.get("stationmon_modbus_connect_failures_total").value() >= 1  # type: ignore[union-attr]


async def test_rtu_over_tcp_against_pymodbus_rtu_framer() -> None:
    from pymodbus.framer import FramerType
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import SimData, SimDevice
    from pymodbus.simulator.simutils import DataType

    regs = registers_for(VALUES)
    holding = [0] * 300
    inputs = [0] * 300
    for a, v in regs["holding"].items():
        holding[a] = v
    for a, v in regs["input"].items():
        inputs[a] = v
    bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
    device = SimDevice(
        id=7,
        simdata=(
            bits,
            list(bits),
            [SimData(0, values=holding, datatype=DataType.REGISTERS)],
            [SimData(0, values=inputs, datatype=DataType.REGISTERS)],
        ),
    )
    port = free_port()
    server = ModbusTcpServer(device, framer=FramerType.RTU, address=("127.0.0.1", port))
    serve = asyncio.create_task(server.serve_forever(), name="rtu-server")
    try:
        await wait_until(lambda: asyncio.to_thread(port_open, port), message="RTU server")
        station = station_config(port, extra='transport = "rtu-over-tcp"\ndevice_id = 7')
        sink = Collected()
        state = StationState(station.id)
        async with running(ModbusPoller(station, sink, state, Metrics())):
            await wait_until(lambda: len(sink.batches) >= 2, message="two RTU polls")
        assert_values(sink.latest(), VALUES)
    finally:
        await server.shutdown()
        serve.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await serve


async def test_second_server_implementation_pymodbustcp() -> None:
    from pyModbusTCP.server import DataBank, ModbusServer

    regs = registers_for(VALUES)
    bank = DataBank()
    for a, v in regs["holding"].items():
        bank.set_holding_registers(a, [v])
    for a, v in regs["input"].items():
        bank.set_input_registers(a, [v])
    port = free_port()
    server = ModbusServer(host="127.0.0.1", port=port, no_block=True, data_bank=bank)
    server.start()
    try:
        station = station_config(port)
        sink = Collected()
        async with running(ModbusPoller(station, sink, StationState(station.id), Metrics())):
            await wait_until(lambda: len(sink.batches) >= 2, message="two polls from pyModbusTCP")
            bank.set_holding_registers(102, encode_value(30.5, "float32", "CDAB"))
            await wait_until(lambda: sink.latest()["return_temp"].value == 30.5, message="changed value")
        assert_values(sink.latest(), {k: v for k, v in VALUES.items() if k != "return_temp"})
    finally:
        server.stop()
