"""Wiring: collectors -> pipeline -> storage, rules, alerts, HTTP, as tasks of one asyncio program.

Readings from every collector arrive at `Service.ingest` (sync, never blocks): they update the latest
values (for rules, API and status page) and are encoded to line protocol for the InfluxDB writer.
Shutdown order: collectors stop first, then evaluation, then the writer flushes (or spools) what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from stationmon.config import Config
from stationmon.domain.latest import LatestValues
from stationmon.domain.lineproto import TelemetryEncoder
from stationmon.domain.model import AlertEvent, Reading, StationState
from stationmon.metrics import Metrics

__all__ = ["Service"]

log = logging.getLogger("stationmon.service")


class Service:
    """The running stationmon: build once from a Config, then `await run(stop)`."""

    def __init__(self, config: Config, *, metrics: Metrics | None = None, clock: Callable[[], float] = time.time):
        self.config = config
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.started_at = clock()
        self.station_states: dict[str, StationState] = {s.id: StationState(s.id) for s in config.stations}
        self.latest = LatestValues(history_window_s=config.http.history_window_s)
        self.encoder = TelemetryEncoder(config.stations, precision=config.influxdb.precision)
        self._readings_total = self.metrics.counter(
            "stationmon_readings_total", "Readings received by source", ("source",)
        )
        self._readings_by_source = {src: self._readings_total.labels(src) for src in ("modbus", "mqtt", "sim")}
        self._event_listeners: list[Callable[[AlertEvent], None]] = []
        self.writer: Any = self._build_writer()
        self.collectors: list[Any] = self._build_collectors()
        self.evaluator: Any = self._build_evaluator()
        self.notifiers: list[Any] = self._build_notifiers()
        self.http: Any = self._build_http()

    # ------------------------------------------------------------------------------------------------
    # The pipeline

    def ingest(self, readings: Sequence[Reading]) -> None:
        """Take a batch of readings from a collector: latest values, then storage. Never blocks."""
        if not readings:
            return
        self.latest.update(readings)
        counter = self._readings_by_source.get(readings[0].source)
        if counter is None:
            counter = self._readings_by_source[readings[0].source] = self._readings_total.labels(readings[0].source)
        counter.inc(len(readings))
        self.writer.submit(self.encoder.encode(readings))

    def write_lines(self, lines: Sequence[str]) -> None:
        """Store already-encoded lines (loop_status, alert_events)."""
        self.writer.submit(lines)

    def emit_event(self, event: AlertEvent) -> None:
        """Hand one alert transition to every notifier and listener (console, InfluxDB)."""
        for listener in self._event_listeners:
            listener(event)

    def on_event(self, listener: Callable[[AlertEvent], None]) -> None:
        """Call `listener` for every alert transition (the demo prints them)."""
        self._event_listeners.append(listener)

    # ------------------------------------------------------------------------------------------------
    # Components: each builder owns one part of the wiring.

    def _build_writer(self) -> Any:
        from stationmon.adapters.influx import InfluxWriter

        return InfluxWriter(self.config.influxdb, self.metrics, clock=self.clock)

    def _build_collectors(self) -> list[Any]:
        from stationmon.adapters.modbus import ModbusPoller

        modbus_stations = [s for s in self.config.stations if s.modbus is not None and s.modbus_points]
        collectors: list[Any] = [
            ModbusPoller(
                station, self.ingest, self.station_states[station.id], self.metrics, fleet_size=len(modbus_stations)
            )
            for station in modbus_stations
        ]
        mqtt = self.config.mqtt
        if mqtt is not None and (mqtt.subscriptions or any(s.mqtt_points for s in self.config.stations)):
            from stationmon.adapters.mqtt import MqttCollector

            collectors.append(MqttCollector(mqtt, self.config.stations, self.ingest, self.metrics, clock=self.clock))
        return collectors

    def _build_evaluator(self) -> Any:
        from stationmon.evaluator import Evaluator

        return Evaluator(
            self.config,
            self.latest,
            self.station_states,
            self.metrics,
            write_lines=self.write_lines,
            emit_event=self.emit_event,
            clock=self.clock,
        )

    def _build_notifiers(self) -> list[Any]:
        from stationmon.domain.alert_wire import event_from_snapshot
        from stationmon.wiring import build_notifiers

        def active_alerts() -> list[AlertEvent]:
            book = getattr(self.evaluator, "alerts", None)
            if book is None:
                return []
            return [event_from_snapshot(a, self.clock()) for a in book.active_alerts()]

        notifiers = build_notifiers(self.config, self.metrics, active_alerts)
        for notifier in notifiers:
            self.on_event(notifier.notify)
        return notifiers

    def _build_http(self) -> Any:
        from stationmon.adapters.http import HttpServer

        return HttpServer(self)

    # ------------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run every component until `stop` is set, then stop them in order and flush storage."""
        log.info(
            "starting: %d stations, %d collectors, InfluxDB %s",
            len(self.config.stations),
            len(self.collectors),
            self.config.influxdb.url or "(none: spooling only)",
        )
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.writer)
            for notifier in self.notifiers:
                await stack.enter_async_context(notifier)
            if self.http is not None:
                await stack.enter_async_context(self.http)
            background: list[asyncio.Task[None]] = []
            try:
                for i, collector in enumerate(self.collectors):
                    background.append(asyncio.create_task(collector.run(), name=f"collector-{i}"))
                if self.evaluator is not None:
                    background.append(asyncio.create_task(self.evaluator.run(), name="evaluator"))
                await _wait_stop_or_failure(stop, background)
            finally:
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
        log.info("stopped")


async def _wait_stop_or_failure(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Wait for `stop`; a component that dies with an exception is a bug: re-raise it."""
    stop_task = asyncio.create_task(stop.wait(), name="stop")
    try:
        while True:
            pending = [stop_task, *[t for t in tasks if not t.done()]]
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if stop_task in done:
                return
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
    finally:
        stop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stop_task
