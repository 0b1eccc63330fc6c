"""Modbus RTU over a serial line: pymodbus's serial client on one end of a pty pair, a small RTU
device written from the spec on the other (CRC-16, 3.5-character framing by request length)."""

from __future__ import annotations

import asyncio
import os
import struct

import pytest

from stationmon.adapters.modbus import ModbusPoller
from stationmon.config import parse_config_text
from stationmon.domain.model import StationState
from stationmon.domain.registers import encode_value
from stationmon.metrics import Metrics
from tests.helpers import wait_until
from tests.integration.test_modbus import Collected, running


def crc16(data: bytes) -> int:
    """Modbus RTU CRC-16 (polynomial 0xA001, initial 0xFFFF), sent low byte first."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class PtyRtuDevice:
    """Answers FC 3/4 read requests for one device id on the master side of a pty."""

    def __init__(self, device_id: int, registers: dict[tuple[int, int], int]) -> None:
        self.device_id = device_id
        self.registers = registers
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.buffer = b""
        self.requests: list[tuple[int, int, int]] = []
        self.bad_crc = 0

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.master, self._readable)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)

    def _readable(self) -> None:
        try:
            self.buffer += os.read(self.master, 256)
        except OSError:
            return
        while len(self.buffer) >= 8:  # every read request is 8 bytes on the wire
            frame, self.buffer = self.buffer[:8], self.buffer[8:]
            if crc16(frame[:6]) != struct.unpack("<H", frame[6:])[0]:
                self.bad_crc += 1
                self.buffer = b""
                return
            unit, fc, start, count = struct.unpack(">BBHH", frame[:6])
            self.requests.append((fc, start, count))
            if unit != self.device_id:
                continue  # another device's request: a bus stays silent
            if fc in (3, 4):
                values = [self.registers.get((fc, a), 0) for a in range(start, start + count)]
                body = bytes([unit, fc, 2 * count]) + struct.pack(f">{count}H", *values)
            else:
                body = bytes([unit, fc | 0x80, 1])
            os.write(self.master, body + struct.pack("<H", crc16(body)))


async def test_rtu_over_serial_pty() -> None:
    registers: dict[tuple[int, int], int] = {}
    for i, r in enumerate(encode_value(48.5, "float32", "CDAB")):
        registers[(3, 10 + i)] = r
    registers[(4, 3)] = encode_value(-152, "int16", "ABCD")[0]
    device = PtyRtuDevice(5, registers)
    device.start()
    try:
        config = parse_config_text(
            f"""
[[stations]]
id = "old-station"
[stations.modbus]
transport = "rtu"
serial_port = "{device.path}"
baudrate = 19200
parity = "N"
device_id = 5
byte_order = "CDAB"
interval = "300ms"
timeout = "200ms"
[[stations.points]]
quantity = "primary_supply_temp"
address = 10
[[stations.points]]
quantity = "outdoor_temp"
register = "input"
address = 3
type = "int16"
scale = 0.1
""",
            require_influxdb=False,
        )
        st = config.stations[0]
        sink = Collected()
        state = StationState(st.id)
        async with running(ModbusPoller(st, sink, state, Metrics())):
            await wait_until(lambda: len(sink.batches) >= 2, message="two RTU polls over the pty")
        got = sink.latest()
        assert got["primary_supply_temp"].value == 48.5
        assert got["outdoor_temp"].value == pytest.approx(-15.2)
        assert {fc for fc, _, _ in device.requests} == {3, 4}
        assert device.bad_crc == 0
    finally:
        device.close()
