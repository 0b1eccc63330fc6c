"""Test-only servers beside the package's shared ones (stationmon.sim.servers): Alertmanager, pymodbus, TLS,
and a strict PLC (pyModbusTCP, the second Modbus implementation) that refuses reads of unmapped registers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stationmon.errors import StationmonError
from stationmon.sim import servers
from stationmon.sim.serve import shutdown_modbus_server
from stationmon.sim.servers import ServerProcess, free_port, http_ok, port_open

__all__ = ["AlertmanagerServer", "InfluxServer", "ModbusServer", "MosquittoServer", "StrictModbusServer", "TlsFiles"]


class InfluxServer(servers.InfluxServer):
    """The package's influxd, plus queries as rows and direct writes for the tests."""

    def query(self, db: str, q: str) -> list[dict[str, Any]]:
        """Run InfluxQL; rows of every series as dicts (tags included), time in epoch ms."""
        rows: list[dict[str, Any]] = []
        for result in self.post_query(q, db).get("results", []):
            if "error" in result:
                raise StationmonError(f"InfluxQL error: {result['error']}")
            for series in result.get("series", []):
                tags = series.get("tags", {})
                for values in series.get("values", []):
                    row = dict(zip(series["columns"], values, strict=True))
                    row.update(tags)
                    row.setdefault("_measurement", series.get("name"))
                    rows.append(row)
        return rows

    def write(self, db: str, lines: str) -> None:
        """Write line protocol (ms precision) directly."""
        url = f"{self.url}/write?db={urllib.parse.quote(db)}&precision=ms"
        with urllib.request.urlopen(urllib.request.Request(url, data=lines.encode(), method="POST"), timeout=30):
            pass


@dataclass
class TlsFiles:
    """Server-side TLS material for mosquitto (PEM paths); require_certificate for client certs."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = False


class MosquittoServer(servers.MosquittoServer):
    """The package's mosquitto, optionally with TLS on its listener (mqtts:// URL)."""

    def __init__(self, binary: str, workdir: Path, extra_conf: str = "", tls: TlsFiles | None = None) -> None:
        if tls:
            conf = [f"cafile {tls.ca_file}", f"certfile {tls.cert_file}", f"keyfile {tls.key_file}"]
            if tls.require_certificate:
                conf.append("require_certificate true")
            extra_conf = "\n".join([*conf, extra_conf] if extra_conf else conf)
        super().__init__(binary, workdir, extra_conf)
        self.tls = tls
        if tls:
            self.url = f"mqtts://{self.host}:{self.port}"


class AlertmanagerServer(ServerProcess):
    """prometheus-alertmanager with the given YAML, clustering off, on a free port."""

    def __init__(self, binary: str, workdir: Path, config_yaml: str) -> None:
        super().__init__("alertmanager", workdir)
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "alertmanager.yml"
        self.config_path.write_text(config_yaml, encoding="utf-8")

    def start(self) -> None:
        """Start it and wait until /-/ready answers."""
        argv = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir}/data",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]
        self._spawn(argv, lambda: http_ok(f"{self.url}/-/ready", 200))

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]


class ModbusServer:
    """pymodbus's TCP server with holding and input registers 0..65535 at zero-based protocol addresses.

    Register values live in lists this object owns, so they survive stop()/start() like a PLC's memory.
    """

    SIZE = 65536

    def __init__(self, holding: dict[int, int], input_: dict[int, int], device_id: int, port: int) -> None:
        self.holding = [0] * self.SIZE
        self.input = [0] * self.SIZE
        self.device_id = device_id
        self.port = port
        self.host = "127.0.0.1"
        self.server: Any = None
        self._task: asyncio.Task[None] | None = None
        for addr, value in holding.items():
            self.holding[addr] = value
        for addr, value in input_.items():
            self.input[addr] = value

    def _blocks(self) -> tuple[list[int], list[int]] | None:
        if self.server is None:
            return None
        runtime = self.server.context.devices[self.device_id]
        return runtime.block["h"][2], runtime.block["i"][2]

    def set_holding(self, address: int, values: list[int]) -> None:
        """Write holding registers from `address` on (while serving, too)."""
        self.holding[address : address + len(values)] = list(values)
        blocks = self._blocks()
        if blocks is not None:
            blocks[0][address : address + len(values)] = list(values)

    def set_input(self, address: int, values: list[int]) -> None:
        """Write input registers from `address` on (while serving, too)."""
        self.input[address : address + len(values)] = list(values)
        blocks = self._blocks()
        if blocks is not None:
            blocks[1][address : address + len(values)] = list(values)

    def get_holding(self, address: int, count: int = 1) -> list[int]:
        """Holding registers as served now (a client may have written them)."""
        blocks = self._blocks()
        regs = blocks[0] if blocks is not None else self.holding
        return list(regs[address : address + count])

    def _device(self) -> Any:
        from pymodbus.simulator import SimData, SimDevice
        from pymodbus.simulator.simutils import DataType

        bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
        return SimDevice(
            id=self.device_id,
            simdata=(
                bits,
                list(bits),
                [SimData(0, values=list(self.holding), datatype=DataType.REGISTERS)],
                [SimData(0, values=list(self.input), datatype=DataType.REGISTERS)],
            ),
        )

    async def start(self) -> None:
        """Start serving (again, on the same port) and wait until it accepts connections."""
        from pymodbus.server import ModbusTcpServer

        if self.server is not None:
            return
        self.server = ModbusTcpServer(self._device(), address=(self.host, self.port))
        self._task = asyncio.create_task(self.server.serve_forever(), name=f"modbus-server-{self.port}")
        deadline = time.monotonic() + 10
        while not await asyncio.to_thread(port_open, self.port):
            if self._task.done():
                self._task.result()
            if time.monotonic() > deadline:
                raise StationmonError(f"pymodbus server on {self.port} did not start")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop serving and drop every client connection, as a PLC reboot would."""
        if self.server is None:
            return
        blocks = self._blocks()
        if blocks is not None:  # keep what was written while running
            self.holding[:] = blocks[0][: self.SIZE]
            self.input[:] = blocks[1][: self.SIZE]
        await shutdown_modbus_server(self.server)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.server = None
        self._task = None


def _strict_data_bank(blocks: dict[int, list[tuple[int, int]]], requests: list[tuple[int, int, int]]) -> Any:
    """A pyModbusTCP DataBank that answers a read only inside one mapped block (else exception 2)."""
    from pyModbusTCP.server import DataBank

    class StrictDataBank(DataBank):  # type: ignore[misc]
        def _inside(self, fc: int, address: int, number: int) -> bool:
            requests.append((fc, address, number))
            return any(lo <= address and address + number - 1 <= hi for lo, hi in blocks.get(fc, []))

        def get_holding_registers(self, address: int, number: int = 1, srv_info: Any = None) -> Any:
            if srv_info is not None and not self._inside(3, address, number):
                return None  # pyModbusTCP answers None with exception 2 (illegal data address)
            return super().get_holding_registers(address, number, srv_info)

        def get_input_registers(self, address: int, number: int = 1, srv_info: Any = None) -> Any:
            if srv_info is not None and not self._inside(4, address, number):
                return None
            return super().get_input_registers(address, number, srv_info)

    return StrictDataBank()


class StrictModbusServer:
    """A strict PLC on pyModbusTCP's server (threads): its register map is a list of blocks per function
    code, (first, last) inclusive, as a Siemens data block or many Chinese controllers map them. A read
    that strays outside one block, a gap or a block boundary, gets exception 2 (illegal data address).

    `requests` records every (function code, start, count) the server was asked.
    """

    def __init__(self, blocks: dict[int, list[tuple[int, int]]], values: dict[tuple[int, int], int], port: int) -> None:
        from pyModbusTCP.server import ModbusServer as PyModbusTcpServer

        self.blocks = blocks
        self.requests: list[tuple[int, int, int]] = []
        self.bank = _strict_data_bank(blocks, self.requests)
        for (fc, address), value in values.items():
            setter = self.bank.set_holding_registers if fc == 3 else self.bank.set_input_registers
            setter(address, [value])
        self.port = port
        self.host = "127.0.0.1"
        self.server = PyModbusTcpServer(host=self.host, port=port, no_block=True, data_bank=self.bank)

    def start(self) -> None:
        """Serve in pyModbusTCP's own thread."""
        self.server.start()

    def stop(self) -> None:
        """Stop serving and join its threads."""
        self.server.stop()
