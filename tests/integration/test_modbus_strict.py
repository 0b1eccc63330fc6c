"""Strict PLCs: a device that maps only some register blocks and answers exception 2 to any read that
strays into a gap or across a block boundary (pyModbusTCP's server, the second implementation, made
strict in tests/servers.py). The gap-filled plan must adapt, read every mapped point, and say so."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from stationmon.adapters.modbus import ModbusPoller
from stationmon.config import parse_config_text
from stationmon.domain.model import StationState
from stationmon.domain.plant import Station
from stationmon.domain.registers import encode_value, plan_reads
from stationmon.metrics import Metrics
from tests.helpers import free_port, wait_until
from tests.integration.test_modbus import Collected, running
from tests.servers import StrictModbusServer

# quantity -> (function code, address, type, value); all readable when read in the right pieces
MAPPED = {
    "supply_temp": (3, 100, "float32", 52.5),  # block 100..101
    "supply_pressure": (3, 104, "uint16", 45.0),  # block 104..104: a boundary right after it
    "flow": (3, 105, "float32", 88.25),  # block 105..106
    "return_temp": (3, 110, "float32", 41.0),  # block 110..111
    "outdoor_temp": (4, 7, "int16", -152.0),  # input block 7..7
    "primary_supply_temp": (4, 8, "float32", 95.5),  # input block 8..9
}
BLOCKS = {3: [(100, 101), (104, 104), (105, 106), (110, 111)], 4: [(7, 7), (8, 9)]}

POINTS = """
[[stations.loops]]
id = "sec1"
[[stations.points]]
loop = "sec1"
quantity = "supply_temp"
address = "40101"
[[stations.points]]
loop = "sec1"
quantity = "supply_pressure"
address = "40105"
type = "uint16"
[[stations.points]]
loop = "sec1"
quantity = "flow"
address = "40106"
[[stations.points]]
loop = "sec1"
quantity = "return_temp"
address = "40111"
[[stations.points]]
quantity = "outdoor_temp"
address = "30008"
type = "int16"
[[stations.points]]
quantity = "primary_supply_temp"
address = "30009"
"""


def station(port: int, points: str = POINTS) -> Station:
    text = f"""
[[stations]]
id = "strict-1"
[stations.modbus]
port = {port}
interval = "200ms"
timeout = "150ms"
{points}
"""
    return parse_config_text(text, require_influxdb=False).stations[0]


@pytest.fixture
def strict_plc() -> Iterator[StrictModbusServer]:
    values: dict[tuple[int, int], int] = {}
    for fc, address, dtype, value in MAPPED.values():
        for i, r in enumerate(encode_value(value, dtype, "ABCD")):
            values[(fc, address + i)] = r
    server = StrictModbusServer(BLOCKS, values, free_port())
    server.start()
    yield server
    server.stop()


def test_the_configured_plan_fills_gaps_and_crosses_blocks(strict_plc: StrictModbusServer) -> None:
    # what the strict PLC will refuse: one request over holding 100..111, one over input 7..9
    plan = plan_reads(station(strict_plc.port))
    assert [(r.register, r.start, r.count) for r in plan] == [("holding", 100, 12), ("input", 7, 3)]
    assert plan[0].gaps == ((102, 103), (107, 109))
    assert plan[1].gaps == ()


@pytest.mark.parametrize("client", ["auto", "pymodbus"])
async def test_gap_filled_plan_adapts_and_reads_every_mapped_point(
    strict_plc: StrictModbusServer, caplog: pytest.LogCaptureFixture, client: str
) -> None:
    st = station(strict_plc.port)
    sink = Collected()
    state = StationState(st.id)
    metrics = Metrics()
    poller = ModbusPoller(st, sink, state, metrics, client=client)
    with caplog.at_level(logging.WARNING, logger="stationmon.modbus"):
        async with running(poller):
            await wait_until(lambda: len(sink.batches) >= 4, message="four polls of the strict PLC")
    # the very first poll already had every point: the refused requests were split and read at once
    for batch in sink.batches:
        got = {r.quantity: r.value for r in batch}
        assert got == pytest.approx({q: v for q, (_, _, _, v) in MAPPED.items()})
    # gap-free runs first (100..101, 104..106, 110..111), then 104..106 crosses a block: single points
    assert [(r.register, r.start, r.count) for r in poller.plan] == [
        ("holding", 100, 2),
        ("holding", 104, 1),
        ("holding", 105, 2),
        ("holding", 110, 2),
        ("input", 7, 1),
        ("input", 8, 2),
    ]
    assert state.adapted_read_plan == tuple(r.describe() for r in poller.plan)
    # the working plan is remembered: the refused requests went out once, not on every poll
    assert strict_plc.requests.count((3, 100, 12)) == 1
    assert strict_plc.requests.count((3, 104, 3)) == 1
    assert strict_plc.requests.count((4, 7, 3)) == 1
    assert strict_plc.requests.count((3, 100, 2)) >= 4
    # logged once per adaptation, at WARNING, with the addresses; no ERROR for what was adapted
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3, warnings
    assert "refused holding 100..111, its unused registers 102..103, 107..109" in warnings[0]
    assert "holding 100..101 (sec1.supply_temp), holding 104..106, holding 110..111 (sec1.return_temp)" in warnings[0]
    assert "refused holding 104..106, 2 points in one request" in warnings[1]
    assert "holding 104..104 (sec1.supply_pressure), holding 105..106 (sec1.flow) from now on" in warnings[1]
    assert "refused input 7..9" in warnings[2]
    assert "exception 2 (illegal_address)" in warnings[2]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert metrics.get("stationmon_modbus_polls_total").value("ok") >= 4  # type: ignore[union-attr]
    assert metrics.get("stationmon_modbus_request_failures_total").value("illegal_address") == 3  # type: ignore[union-attr]


async def test_a_point_refused_alone_is_reported_by_address(
    strict_plc: StrictModbusServer, caplog: pytest.LogCaptureFixture
) -> None:
    # holding 120 is not mapped at all: after the split it fails alone, the others are read
    points = (
        POINTS
        + """
[[stations.points]]
loop = "sec1"
quantity = "heat_power"
address = 118
type = "int32"
"""
    )
    st = station(strict_plc.port, points)
    sink = Collected()
    state = StationState(st.id)
    metrics = Metrics()
    with caplog.at_level(logging.WARNING, logger="stationmon.modbus"):
        async with running(ModbusPoller(st, sink, state, metrics)):
            await wait_until(lambda: len(sink.batches) >= 3, message="three polls")
    for batch in sink.batches:
        assert {r.quantity for r in batch} == set(MAPPED)
    assert state.last_error == "holding 118..119 (sec1.heat_power): Modbus exception 2 (illegal_address)"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # first failure at ERROR, repeats at DEBUG
    assert "holding 118..119 (sec1.heat_power): Modbus exception 2 (illegal_address)" in errors[0]
    assert metrics.get("stationmon_modbus_polls_total").value("partial") >= 3  # type: ignore[union-attr]
    assert state.consecutive_failures == 0


async def test_a_lenient_device_keeps_the_planned_requests(strict_plc: StrictModbusServer) -> None:
    # the same PLC with one block over everything: nothing is refused, nothing is split
    strict_plc.blocks[3][:] = [(0, 200)]
    strict_plc.blocks[4][:] = [(0, 200)]
    st = station(strict_plc.port)
    sink = Collected()
    state = StationState(st.id)
    poller = ModbusPoller(st, sink, state, Metrics())
    async with running(poller):
        await wait_until(lambda: len(sink.batches) >= 2, message="two polls")
    assert poller.plan == plan_reads(st)
    assert state.adapted_read_plan == ()
    assert set(strict_plc.requests) == {(3, 100, 12), (4, 7, 3)}
