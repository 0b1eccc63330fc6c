"""The test harness: real servers from their own binaries on free ports in temporary folders.

- `influxdb` (session) / `influx_db` (a fresh database per test): Debian's influxd 1.6.7, v1 API.
- `mosquitto` / `mosquitto_factory`: Debian's mosquitto 2.x with persistence (queued QoS 1 survives).
- `alertmanager_factory`: Debian's prometheus-alertmanager with the test's YAML.
- `modbus_server_factory`: pymodbus's own async TCP server in the test's event loop.
- autouse leak checks: a test that leaves asyncio tasks or threads running fails.

A missing binary fails the fixture with the command that installs it; it never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.helpers import free_port, port_open, wait_until_sync

INSTALL_HINT = "apt-get update && apt-get install -y mosquitto influxdb prometheus-alertmanager"


def find_binary(*names: str) -> str:
    """Path of the first binary found (also in /usr/sbin), or fail with the install command."""
    for name in names:
        for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
            if candidate and os.access(candidate, os.X_OK):
                return candidate
    pytest.fail(f"{names[0]} is not installed: run `{INSTALL_HINT}` (or .ci/run)", pytrace=False)


class _Process:
    """A server process with its log in a file; stop() is SIGTERM, then SIGKILL after a deadline."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{name}.log"

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        try:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env, start_new_session=True
            )
        finally:
            log.close()

    def _wait_ready(self, ready: Callable[[], bool], timeout: float = 30.0) -> None:
        def check() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            return ready()

        try:
            wait_until_sync(check, timeout=timeout, message=f"{self.name} to be ready")
        except AssertionError:
            self.stop()
            raise RuntimeError(f"{self.name} did not become ready: {self.log_tail()}") from None

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process and wait for it (SIGKILL if it takes longer than 10 s)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.stop(signal.SIGKILL)


# ----------------------------------------------------------------------------------------------------
# InfluxDB 1.x


class InfluxServer(_Process):
    """Debian's influxd 1.6.7 on a free port; data kept across stop()/start()."""

    def __init__(self, workdir: Path) -> None:
        super().__init__("influxd", workdir)
        self.binary = find_binary("influxd")
        self.port = free_port()
        self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "influxdb.conf"
        self.config_path.write_text(
            f"""
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{workdir}/meta"
[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"
[coordinator]
  write-timeout = "10s"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  max-body-size = 0
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
"""
        )

    def start(self) -> None:
        """Start (or restart) the server and wait until /ping answers."""
        if self.running:
            return
        self._spawn([self.binary, "-config", str(self.config_path)])
        self._wait_ready(self._ping)

    def _ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as resp:
                return bool(resp.status == 204)
        except (OSError, urllib.error.URLError):
            return False

    def _post_query(self, q: str, db: str | None = None) -> dict[str, Any]:
        params = {"q": q, "epoch": "ms"}
        if db:
            params["db"] = db
        data = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=30) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def create_database(self, name: str) -> None:
        self._post_query(f'CREATE DATABASE "{name}"')

    def query(self, db: str, q: str) -> list[dict[str, Any]]:
        """Run InfluxQL; rows of every series as dicts (tags included), time in epoch ms."""
        doc = self._post_query(q, db)
        rows: list[dict[str, Any]] = []
        for result in doc.get("results", []):
            if "error" in result:
                raise RuntimeError(f"InfluxQL error: {result['error']}")
            for series in result.get("series", []):
                tags = series.get("tags", {})
                for values in series.get("values", []):
                    row = dict(zip(series["columns"], values, strict=True))
                    row.update(tags)
                    row.setdefault("_measurement", series.get("name"))
                    rows.append(row)
        return rows

    def write(self, db: str, lines: str) -> None:
        """Write line protocol (ms precision) directly, bypassing stationmon."""
        req = urllib.request.Request(
            f"{self.url}/write?db={urllib.parse.quote(db)}&precision=ms", data=lines.encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=30):
            pass


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    server = InfluxServer(tmp_path_factory.mktemp("influxd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influx_db(influxdb: InfluxServer) -> str:
    """A fresh database on the session's InfluxDB (restarted if an earlier test stopped it)."""
    influxdb.start()
    name = "t_" + uuid.uuid4().hex[:12]
    influxdb.create_database(name)
    return name


# ----------------------------------------------------------------------------------------------------
# Mosquitto


@dataclass
class TlsFiles:
    """Server-side TLS material for mosquitto (PEM paths); require_certificate for client certs."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = False


class MosquittoServer(_Process):
    """Debian's mosquitto on a free port, with persistence so queued QoS 1 messages survive restarts."""

    def __init__(self, workdir: Path, extra_conf: str = "", tls: TlsFiles | None = None) -> None:
        super().__init__("mosquitto", workdir)
        self.binary = find_binary("mosquitto")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.tls = tls
        self.url = f"{'mqtts' if tls else 'mqtt'}://{self.host}:{self.port}"
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {workdir}/",
            "autosave_interval 1",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "max_queued_messages 0",
        ]
        if os.geteuid() == 0:
            # as root mosquitto drops to user "mosquitto", who cannot write the persistence file here
            lines.append("user root")
        if tls:
            lines += [f"cafile {tls.ca_file}", f"certfile {tls.cert_file}", f"keyfile {tls.key_file}"]
            if tls.require_certificate:
                lines.append("require_certificate true")
        if extra_conf:
            lines.append(extra_conf)
        self.config_path = workdir / "mosquitto.conf"
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        """Start (or restart, same port and persistence file) and wait until it accepts connections."""
        if self.running:
            return
        self._spawn([self.binary, "-c", str(self.config_path)])
        self._wait_ready(lambda: port_open(self.port, self.host))


@pytest.fixture
def mosquitto_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., MosquittoServer]]:
    servers: list[MosquittoServer] = []

    def make(extra_conf: str = "", tls: TlsFiles | None = None) -> MosquittoServer:
        server = MosquittoServer(tmp_path_factory.mktemp("mosquitto"), extra_conf, tls)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., MosquittoServer]) -> MosquittoServer:
    return mosquitto_factory()


# ----------------------------------------------------------------------------------------------------
# Prometheus Alertmanager


class AlertmanagerServer(_Process):
    """Debian's prometheus-alertmanager with the given YAML, clustering off, on a free port."""

    def __init__(self, workdir: Path, config_yaml: str) -> None:
        super().__init__("alertmanager", workdir)
        self.binary = find_binary("prometheus-alertmanager", "alertmanager")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "alertmanager.yml"
        self.config_path.write_text(config_yaml)

    def start(self) -> None:
        if self.running:
            return
        self._spawn(
            [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.path={self.workdir}/data",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ]
        )
        self._wait_ready(self._ready)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]


@pytest.fixture
def alertmanager_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], AlertmanagerServer]]:
    servers: list[AlertmanagerServer] = []

    def make(config_yaml: str) -> AlertmanagerServer:
        server = AlertmanagerServer(tmp_path_factory.mktemp("alertmanager"), config_yaml)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


# ----------------------------------------------------------------------------------------------------
# Modbus: pymodbus's own server, in the test's event loop


class ModbusTestServer:
    """A pymodbus TCP server with holding and input registers 0..65535 at zero-based protocol addresses.

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
        self.holding[address : address + len(values)] = list(values)
        blocks = self._blocks()
        if blocks is not None:
            blocks[0][address : address + len(values)] = list(values)

    def set_input(self, address: int, values: list[int]) -> None:
        self.input[address : address + len(values)] = list(values)
        blocks = self._blocks()
        if blocks is not None:
            blocks[1][address : address + len(values)] = list(values)

    def get_holding(self, address: int, count: int = 1) -> list[int]:
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
                raise RuntimeError(f"pymodbus server on {self.port} did not start")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop serving and drop every client connection, as a PLC reboot would."""
        if self.server is None:
            return
        blocks = self._blocks()
        if blocks is not None:  # keep what was written while running
            self.holding[:] = blocks[0][: self.SIZE]
            self.input[:] = blocks[1][: self.SIZE]
        from stationmon.sim.serve import shutdown_modbus_server

        await shutdown_modbus_server(self.server)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.server = None
        self._task = None


@pytest_asyncio.fixture
async def modbus_server_factory() -> AsyncIterator[Callable[..., Awaitable[ModbusTestServer]]]:
    servers: list[ModbusTestServer] = []

    async def make(
        holding: dict[int, int] | None = None,
        input: dict[int, int] | None = None,
        device_id: int = 1,
        port: int | None = None,
    ) -> ModbusTestServer:
        server = ModbusTestServer(holding or {}, input or {}, device_id, port or free_port())
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


# ----------------------------------------------------------------------------------------------------
# Leak checks


def _live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = _live_threads()
    yield
    deadline = time.monotonic() + 5
    while True:
        leaked = [t for t in _live_threads() - before if not t.name.startswith(("asyncio_", "ThreadPoolExecutor"))]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if leaked:
        pytest.fail(f"test leaked threads: {[t.name for t in leaked]}", pytrace=False)


@pytest_asyncio.fixture
async def _no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    me = asyncio.current_task()
    deadline = time.monotonic() + 5
    while True:
        leaked = [t for t in asyncio.all_tasks() - before if t is not me and not t.done()]
        if not leaked or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    if leaked:
        names = [t.get_name() for t in leaked]
        for t in leaked:
            t.cancel()
        pytest.fail(f"test leaked asyncio tasks: {names}", pytrace=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every async test the task-leak check, set up first so it is torn down last."""
    for item in items:
        fn = getattr(item, "function", None)
        if fn is not None and asyncio.iscoroutinefunction(fn):
            names = item.fixturenames  # type: ignore[attr-defined]
            if "_no_leaked_tasks" not in names:
                names.insert(0, "_no_leaked_tasks")
