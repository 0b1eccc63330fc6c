"""Serving simulated stations: one pymodbus TCP server per station, MQTT publishing of MQTT points.

The I/O half of the simulator (the physics is in `physics.py`). Every pymodbus call of the simulator
sits in `StationModbusServer`; every aiomqtt call in `MqttPublisher`. Their errors become
`StationmonError`s here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from stationmon.config import MqttConfig
from stationmon.domain.plant import Point, Station
from stationmon.errors import StationmonError
from stationmon.sim.physics import StationSim

__all__ = ["MqttMessage", "MqttPublisher", "StationModbusServer", "mqtt_messages", "sensor_topic_templates"]

log = logging.getLogger("stationmon.sim")

RegisterImage = dict[str, dict[int, int]]
MqttMessage = tuple[str, bytes]


def _block_size(points: Iterable[Point], register: str) -> int:
    ends = [p.address + p.width for p in points if p.register == register and p.address is not None]
    return max(ends, default=1)


class StationModbusServer:
    """One station's Modbus TCP server on its configured host:port and device id.

    Every read is answered from `image()` at the moment of the request, so a poller sees the model's
    latest values. Registers between points read as 0, as on a real PLC.
    """

    def __init__(self, station: Station, image: Callable[[], RegisterImage]) -> None:
        if station.modbus is None:
            raise ValueError(f"station {station.id} has no [stations.modbus]")
        self.station = station
        self.host = station.modbus.host
        self.port = station.modbus.port
        self._image = image
        self._server: Any = None
        self.requests = 0

    @property
    def serving(self) -> bool:
        """True while the server accepts connections."""
        return self._server is not None

    async def _on_request(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        # pymodbus calls this before answering: put the model's current registers in place
        self.requests += 1
        block = "input" if function_code == 4 else "holding" if function_code in (3, 6, 16, 22, 23) else ""
        if not block:
            return None
        for addr, reg in self._image()[block].items():
            i = addr - start_address
            if 0 <= i < len(current_registers):
                current_registers[i] = reg
        return None

    def _device(self) -> Any:
        from pymodbus.simulator import DataType, SimData, SimDevice

        assert self.station.modbus is not None
        points = self.station.modbus_points
        bits = [SimData(address=0, count=16, values=False, datatype=DataType.BITS)]
        return SimDevice(
            id=self.station.modbus.device_id,
            simdata=(
                bits,
                list(bits),
                [SimData(0, count=_block_size(points, "holding"), values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=_block_size(points, "input"), values=0, datatype=DataType.REGISTERS)],
            ),
            action=self._on_request,
        )

    async def start(self) -> None:
        """Listen on the station's host:port; StationmonError if it cannot."""
        if self._server is not None:
            return
        from pymodbus.server import ModbusTcpServer

        server = ModbusTcpServer(self._device(), address=(self.host, self.port))
        try:
            await server.serve_forever(background=True)
        except (RuntimeError, OSError) as exc:
            with contextlib.suppress(Exception):
                await server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus is untyped here
            raise StationmonError(
                f"simulated station {self.station.id}: cannot listen on {self.host}:{self.port}: {exc}"
            ) from exc
        self._server = server

    async def stop(self) -> None:
        """Stop listening and drop every client connection, as a station that loses power."""
        server, self._server = self._server, None
        if server is not None:
            await shutdown_modbus_server(server)


async def shutdown_modbus_server(server: Any) -> None:
    """Shut a pymodbus server down and close every connection it accepted.

    pymodbus closes the connections it knows of, but one accepted just before shutdown can register
    after that and stay open until the garbage collector finds it.
    """
    # Stop accepting first and let accepts in flight finish: CPython 3.11's server asserts when an
    # accepted connection attaches after the server closed, and leaks that socket.
    listener = getattr(server, "transport", None)
    if isinstance(listener, asyncio.Server):
        loop = asyncio.get_running_loop()
        for sock in listener.sockets:
            loop.remove_reader(sock.fileno())
        await asyncio.sleep(0.01)
    known = list(getattr(server, "active_connections", {}).values())  # shutdown forgets them
    with contextlib.suppress(Exception):
        await server.shutdown()
    # asyncio finishes an accept in a task of its own: the protocol can exist before its transport
    # (and ModbusProtocol.close() then closes nothing, and never again), so close transports directly.
    for _ in range(5):
        await asyncio.sleep(0.002)
        for late in [*known, *getattr(server, "active_connections", {}).values()]:
            transport = getattr(late, "transport", None)
            if transport is not None:
                transport.close()


def sensor_topic_templates(mqtt: MqttConfig | None) -> list[tuple[str, str, str, str]]:
    """Subscription templates that household indoor sensors can be published to:
    (topic template, format, value key, time key), those with {station}, {loop} and {sensor}."""
    if mqtt is None:
        return []
    out = []
    for sub in mqtt.subscriptions:
        levels = sub.topic.split("/")
        if "+" in levels or "#" in levels:
            continue
        if not all(f"{{{name}}}" in levels for name in ("station", "loop", "sensor")):
            continue
        if sub.quantity not in ("", "indoor_temp"):
            continue
        if sub.quantity == "" and "{quantity}" not in levels:
            continue
        out.append((sub.topic, sub.format, sub.value, sub.time))
    return out


def _put(doc: dict[str, Any], key: str, value: object) -> None:
    """Set dotted `key` ("data.value") in `doc`, making (or replacing non-table) parents as needed."""
    *parents, last = key.split(".")
    for part in parents:
        if not isinstance(doc.get(part), dict):
            doc[part] = {}
        doc = doc[part]
    doc[last] = value


def _payload(fmt: str, quantity: str, value: float, ts: float, value_key: str, time_key: str) -> bytes:
    value = round(value, 3)
    if fmt == "plain":
        return f"{value:g}".encode()
    doc: dict[str, Any] = {}
    _put(doc, quantity if fmt == "json_fields" else value_key or "value", value)
    if time_key:
        _put(doc, time_key, round(ts, 3))
    return json.dumps(doc).encode()


def mqtt_messages(
    station: Station,
    values: dict[tuple[str | None, str | None, str], float],
    ts: float,
    sensors: dict[str, list[str]],
    templates: Sequence[tuple[str, str, str, str]],
) -> list[MqttMessage]:
    """What a station publishes now: its MQTT points, and its indoor sensors on the first sensor
    template (`sensors`: loop id -> sensor names). Pure."""
    out: list[MqttMessage] = []
    for p in station.mqtt_points:
        assert p.topic is not None
        value = StationSim.value_of(values, p.loop, p.sensor, p.quantity)
        out.append((p.topic, _payload(p.format, p.quantity, value, ts, p.value_key, p.time_key)))
    if templates:
        topic, fmt, value_key, time_key = templates[0]
        for loop_id, names in sensors.items():
            for sensor in names:
                value = StationSim.value_of(values, loop_id, sensor, "indoor_temp")
                fields = {"station": station.id, "loop": loop_id, "sensor": sensor, "quantity": "indoor_temp"}
                full = re.sub(r"\{(\w+)\}", lambda m, f=fields: f[m[1]], topic)  # type: ignore[misc]
                out.append((full, _payload(fmt, "indoor_temp", value, ts, value_key, time_key)))
    return out


class MqttPublisher:
    """An aiomqtt client for the simulator's publications; reconnects quietly when the broker drops."""

    def __init__(self, mqtt: MqttConfig, client_id: str = "stationmon-sim") -> None:
        self.mqtt = mqtt
        self.client_id = client_id
        self._client: Any = None
        self.published = 0
        self.failures = 0

    async def _connect(self) -> None:
        import aiomqtt

        tls = aiomqtt.TLSParameters(ca_certs=self.mqtt.ca_file or None) if self.mqtt.tls else None
        client = aiomqtt.Client(
            self.mqtt.host,
            self.mqtt.port,
            identifier=self.client_id,
            username=self.mqtt.username or None,
            password=self.mqtt.password.get() if self.mqtt.password else None,
            tls_params=tls,
            timeout=5.0,
        )
        await client.__aenter__()
        self._client = client

    async def close(self) -> None:
        """Disconnect, if connected."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    async def publish(self, messages: Sequence[MqttMessage]) -> bool:
        """Publish (QoS 1); on a broker failure drop this batch and reconnect next time."""
        if not messages:
            return True
        try:
            if self._client is None:
                await self._connect()
            for topic, payload in messages:
                await self._client.publish(topic, payload, qos=1)
            self.published += len(messages)
            return True
        except Exception as exc:  # aiomqtt's and the socket's errors: the simulator keeps going
            self.failures += 1
            if self.failures == 1 or self.failures % 60 == 0:
                log.warning("simulator: MQTT %s: %s", self.mqtt.url, exc)
            await self.close()
            return False
