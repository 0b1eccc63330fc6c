"""The simulated stations of a config's `[simulator]`, served until the context exits (simulate, demo, tests).

A background task advances the physics every `tick_s` on an injectable `clock`, closes the Modbus server of
a station under an `offline` fault, and publishes MQTT points and indoor sensors every `publish_interval`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from types import TracebackType

from stationmon.config import Config
from stationmon.errors import StationmonError
from stationmon.sim.physics import StationSim, ValueKey, register_image
from stationmon.sim.serve import MqttPublisher, StationModbusServer, mqtt_messages, sensor_topic_templates

__all__ = ["Simulator"]

log = logging.getLogger("stationmon.sim")


class Simulator:
    """Every simulated station of a config, served until the context exits."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        tick_s: float = 0.5,
        lag_s: float = 20.0,
        mqtt_client_id: str = "stationmon-sim",
    ) -> None:
        self.config = config
        self.clock = clock
        self.tick_s = tick_s
        self.lag_s = lag_s
        self.start_ts = 0.0
        self.stations: dict[str, StationSim] = {}
        self.values: dict[str, dict[ValueKey, float]] = {}
        self.images: dict[str, dict[str, dict[int, int]]] = {}
        self.servers: dict[str, StationModbusServer] = {}
        self.publisher: MqttPublisher | None = None
        self._mqtt_client_id = mqtt_client_id
        self._templates = sensor_topic_templates(config.mqtt)
        self._last_publish = -1e18
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0

    def _any_indoor_sensors(self) -> bool:
        return any(sim.indoor_sensors(lp.id) for sim in self.stations.values() for lp in sim.station.loops)

    async def __aenter__(self) -> Simulator:
        self.start_ts = self.clock()
        for station in self.config.stations:
            sim = StationSim(
                station,
                self.config.site,
                self.config.simulator,
                self.start_ts,
                lag_s=self.lag_s,
                outdoor_smoothing_s=self.config.rules.outdoor_smoothing_s or 1.0,
            )
            self.stations[station.id] = sim
            self._snapshot(station.id)
            if station.modbus is not None and station.modbus_points and station.modbus.transport == "tcp":
                sid = station.id
                self.servers[sid] = StationModbusServer(station, lambda sid=sid: self.images[sid])  # type: ignore[misc]
        if self.config.mqtt is not None and (
            any(s.mqtt_points for s in self.config.stations)
            or (
                self._templates
                and any(sim.indoor_sensors(lp.id) for sim in self.stations.values() for lp in sim.station.loops)
            )
        ):
            self.publisher = MqttPublisher(self.config.mqtt, self._mqtt_client_id)
        try:
            for sid, server in self.servers.items():
                if not self.stations[sid].offline(self.start_ts):
                    await server.start()
            await self.tick()
        except BaseException:
            await self._close()
            raise
        self._task = asyncio.create_task(self._run(), name="simulator")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for server in self.servers.values():
            await server.stop()
        if self.publisher is not None:
            await self.publisher.close()

    def _snapshot(self, sid: str) -> None:
        sim = self.stations[sid]
        self.values[sid] = values = sim.values()
        self.images[sid] = register_image(sim.station, values)

    async def tick(self) -> None:
        """Advance every station to `clock()`, apply offline faults, publish when due."""
        now = self.clock()
        self.ticks += 1
        for sid, sim in self.stations.items():
            sim.step(now)
            self._snapshot(sid)
            server = self.servers.get(sid)
            if server is None:
                continue
            if sim.offline(now):
                if server.serving:
                    log.info("simulator: station %s goes offline", sid)
                    await server.stop()
            elif not server.serving:
                try:
                    await server.start()
                    if self.ticks > 1:
                        log.info("simulator: station %s is back online", sid)
                except StationmonError as exc:
                    log.warning("%s", exc)
        if self.publisher is not None and now - self._last_publish >= self.config.simulator.publish_interval_s:
            self._last_publish = now
            await self.publisher.publish(self._messages(now))

    def _messages(self, now: float) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        for sid, sim in self.stations.items():
            if sim.offline(now):
                continue
            sensors = {loop.id: sim.indoor_sensors(loop.id) for loop in sim.station.loops}
            out.extend(mqtt_messages(sim.station, self.values[sid], now, sensors, self._templates))
        return out

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            await self.tick()

    def describe(self) -> list[str]:
        """One line per station: where it is served."""
        lines = []
        for sid, sim in self.stations.items():
            st = sim.station
            parts = [f"station {sid}"]
            if sid in self.servers and st.modbus is not None:
                parts.append(
                    f"modbus {st.modbus.host}:{st.modbus.port} device {st.modbus.device_id} "
                    f"({len(st.modbus_points)} points)"
                )
            if st.mqtt_points:
                parts.append(f"mqtt {len(st.mqtt_points)} points")
            sensors = sum(len(sim.indoor_sensors(lp.id)) for lp in st.loops)
            if self.publisher is not None and self._templates and sensors:
                parts.append(f"{sensors} indoor sensors")
            lines.append(", ".join(parts))
        return lines
