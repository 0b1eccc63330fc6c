"""The test harness: real servers from their own binaries on free ports in temporary folders.

The servers are stationmon.sim.servers (the demo starts the same ones) and tests/servers.py (test-only);
these fixtures start them for a test or a session and stop them afterwards.
- `influxdb` (session) / `influx_db` (a fresh database per test): Debian's influxd 1.6.7, v1 API.
- `mosquitto` / `mosquitto_factory`: Debian's mosquitto 2.x with persistence (queued QoS 1 survives).
- `alertmanager_factory`: Debian's prometheus-alertmanager with the test's YAML.
- `modbus_server_factory`: pymodbus's own async TCP server in the test's event loop.
- autouse leak checks: a test that leaves asyncio tasks or threads running fails.

A missing binary fails the fixture with the command that installs it; it never skips.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import pytest_asyncio

from stationmon.sim.servers import find_binary
from tests.helpers import free_port
from tests.servers import AlertmanagerServer, InfluxServer, MosquittoServer, TlsFiles
from tests.servers import ModbusServer as ModbusTestServer

__all__ = ["AlertmanagerServer", "InfluxServer", "ModbusTestServer", "MosquittoServer", "TlsFiles"]

INSTALL_HINT = "apt-get update && apt-get install -y mosquitto influxdb prometheus-alertmanager"


def require_binary(*names: str) -> str:
    """Path of the first binary found (also in /usr/sbin), or fail with the install command."""
    found = find_binary(*names)
    if found is None:
        pytest.fail(f"{names[0]} is not installed: run `{INSTALL_HINT}` (or .ci/run)", pytrace=False)
    return found


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    server = InfluxServer(require_binary("influxd"), tmp_path_factory.mktemp("influxd"))
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


@pytest.fixture
def mosquitto_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., MosquittoServer]]:
    servers: list[MosquittoServer] = []

    def make(extra_conf: str = "", tls: TlsFiles | None = None) -> MosquittoServer:
        server = MosquittoServer(require_binary("mosquitto"), tmp_path_factory.mktemp("mosquitto"), extra_conf, tls)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., MosquittoServer]) -> MosquittoServer:
    return mosquitto_factory()


@pytest.fixture
def alertmanager_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], AlertmanagerServer]]:
    servers: list[AlertmanagerServer] = []

    def make(config_yaml: str) -> AlertmanagerServer:
        binary = require_binary("prometheus-alertmanager", "alertmanager")
        server = AlertmanagerServer(binary, tmp_path_factory.mktemp("alertmanager"), config_yaml)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


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
