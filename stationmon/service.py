"""Wiring: collectors -> pipeline -> storage, rules, alerts, HTTP, as tasks of one asyncio.TaskGroup.

Readings from every collector arrive at `Service.ingest` (sync, never blocks): they update the latest
values (for rules, API and status page) and are encoded to line protocol for the InfluxDB writer.
On `stop`, the HTTP server closes first (nothing reads the stations once their collectors stop: a closed
poller reads as an offline station), then the collectors and the evaluator are cancelled, the notifiers
close and the writer flushes (or spools) what it holds. `Service` is also what the HTTP server reads
(`adapters.http.StatusSource`).

Cluster (`[cluster]`, README "past one machine"): a Service sees only the stations its shard owns
(`shard_view`), subscribes only to their MQTT topics, and learns from Alertmanager what the other
replica of an HA pair did (acknowledgements, firing alerts' starts) before and while it judges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from stationmon.adapters.alertmanager import AlertmanagerNotifier, AlertmanagerState
from stationmon.adapters.http import HttpServer
from stationmon.adapters.influx import InfluxWriter
from stationmon.adapters.modbus import ModbusPoller
from stationmon.adapters.mqtt import MqttCollector
from stationmon.config import Config, shard_view
from stationmon.domain.alert_wire import event_from_snapshot
from stationmon.domain.alerts import AlertSnapshot
from stationmon.domain.latest import LatestValues
from stationmon.domain.lineproto import TelemetryEncoder
from stationmon.domain.model import AlertEvent, Reading, StationState
from stationmon.domain.plant import Station
from stationmon.domain.rules import station_online
from stationmon.domain.shards import narrowed_filters
from stationmon.domain.silences import adopt_acknowledgements
from stationmon.evaluator import Evaluator, LoopStatus
from stationmon.metrics import Metrics
from stationmon.wiring import build_notifiers

__all__ = ["Service"]

log = logging.getLogger("stationmon.service")


class Service:
    """The running stationmon: build once from a Config, then `await run(stop)`."""

    def __init__(self, config: Config, *, metrics: Metrics | None = None, clock: Callable[[], float] = time.time):
        self.all_stations = len(config.stations)
        self.config = config = shard_view(config)
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.started_at = clock()
        self.station_states: dict[str, StationState] = {s.id: StationState(s.id) for s in config.stations}
        self.latest = LatestValues(history_window_s=config.http.history_window_s)
        self.encoder = TelemetryEncoder(config.stations, precision=config.influxdb.precision)
        self._readings_total = self.metrics.counter(
            "stationmon_readings_total", "Readings received by source", ("source",)
        )
        # children made up front: every source shows in /metrics from the start, and ingest skips the lookup
        self._readings_by_source = {src: self._readings_total.labels(src) for src in ("modbus", "mqtt", "sim")}
        self._event_listeners: list[Callable[[AlertEvent], None]] = []
        self.writer = InfluxWriter(config.influxdb, self.metrics, clock=clock)
        # built in run(): pymodbus's clients bind to the loop they are made in
        self.pollers: list[ModbusPoller] = []
        self.mqtt: MqttCollector | None = None
        if config.mqtt is not None and (config.mqtt.subscriptions or any(s.mqtt_points for s in config.stations)):
            self.mqtt = MqttCollector(
                config.mqtt,
                config.stations,
                self.ingest,
                self.metrics,
                clock=clock,
                when_stored=self.writer.when_stored,  # QoS 1 acknowledged once stored: at least once
            )
            if config.cluster.spec.sharded:
                self.mqtt.filters = _shard_filters(self.mqtt, config)
        self.evaluator = Evaluator(
            config,
            self.latest,
            self.station_states,
            self.metrics,
            write_lines=self.writer.submit,
            emit_event=self.emit_event,
            clock=clock,
        )
        # Alertmanager gets the alerts restored from the state file again after a restart
        self.notifiers = build_notifiers(config, self.metrics, self._active_events, on_sync=self._learn)
        for notifier in self.notifiers:
            self.on_event(notifier.notify)
        self.http = HttpServer(self)

    def ingest(self, readings: Sequence[Reading]) -> None:
        """Take a batch of readings from a collector: latest values, then storage. Never blocks."""
        if not readings:
            return
        self.latest.update(readings)
        source = readings[0].source
        counter = self._readings_by_source.get(source)
        if counter is None:
            counter = self._readings_by_source[source] = self._readings_total.labels(source)
        counter.inc(len(readings))
        self.writer.submit(self.encoder.encode(readings))

    def emit_event(self, event: AlertEvent) -> None:
        """Hand one alert transition to every notifier and listener (console, InfluxDB)."""
        for listener in self._event_listeners:
            listener(event)

    def on_event(self, listener: Callable[[AlertEvent], None]) -> None:
        """Call `listener` for every alert transition (the demo prints them)."""
        self._event_listeners.append(listener)

    def _active_events(self) -> list[AlertEvent]:
        now = self.clock()
        return [event_from_snapshot(a, now) for a in self.evaluator.alerts.active_alerts()]

    def _learn(self, state: AlertmanagerState) -> None:
        """What Alertmanager says the replicas share: acknowledgements, and firing alerts' starts."""
        book = self.evaluator.alerts
        book.firing_elsewhere = state.firing_starts
        changed = adopt_acknowledgements(book, state.acknowledged, state.ended)
        if changed:
            log.info("alertmanager: %d acknowledgement(s) taken from other replicas or ended there", changed)

    def cluster_status(self) -> dict[str, object]:
        """For /healthz and the status page: which shard this instance shows, and who notifies."""
        c = self.config.cluster
        return {
            "state": "ok",
            "shard": c.shard,
            "shards": c.shards,
            "shard_source": c.shard_source,
            "stations": len(self.config.stations),
            "stations_all_shards": self.all_stations,
            "notify": c.notify,
        }

    def components(self) -> dict[str, Callable[[], Mapping[str, object]]]:
        """The components that describe their own health for /healthz, by name."""
        out: dict[str, Callable[[], Mapping[str, object]]] = {"storage": self.writer.status}
        out["cluster"] = self.cluster_status
        if self.mqtt is not None:
            out["collector:mqtt"] = self.mqtt.status
        out["evaluator"] = self.evaluator.status
        return out

    def station_online(self, station: Station, now: float) -> bool:
        """Whether a station is online at `now`: what /healthz, the metric and the API show.

        Online: its newest reading, from any collector, is at most `rules.offline_after` old, and, for a
        station polled over Modbus, the poller reports it answering (a failing poller makes it offline even
        while MQTT still brings its values). An MQTT-only station is online on its readings alone.
        """
        if not station_online(self.latest.last_seen.get(station.id), now, self.config.rules.offline_after_s):
            return False
        polled = station.modbus is not None and bool(station.modbus_points)
        return not polled or self.station_states[station.id].online

    def loop_status(self, station: str, loop: str) -> LoopStatus | None:
        """The evaluator's latest judgement of one loop; None before it first judged."""
        return self.evaluator.loop_status.get((station, loop))

    def active_alerts(self) -> list[AlertSnapshot]:
        """The firing alerts, oldest first."""
        return self.evaluator.alerts.active_alerts()

    def acknowledge(self, alert_id: str, by: str, comment: str | None) -> AlertEvent | None:
        """Acknowledge a firing alert (recorded, saved and sent to every listener); None if none has that id."""
        return self.evaluator.acknowledge(alert_id, by, comment)

    def _build_pollers(self) -> list[ModbusPoller]:
        """One poller per station read over Modbus; made inside the running loop."""
        polled = [s for s in self.config.stations if s.modbus is not None and s.modbus_points]
        return [
            ModbusPoller(s, self.ingest, self.station_states[s.id], self.metrics, fleet_size=len(polled))
            for s in polled
        ]

    async def run(self, stop: asyncio.Event) -> None:
        """Run every component until `stop` is set, then stop them in order and flush storage.

        A component that dies with an exception stops the others; its exception is raised here.
        """
        self.pollers = self._build_pollers()
        log.info(
            "starting: %d stations, %d collectors, InfluxDB %s",
            len(self.config.stations),
            len(self.pollers) + (self.mqtt is not None),
            self.config.influxdb.url or "(none: spooling only)",
        )
        crash: BaseException | None = None
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.writer)
            for notifier in self.notifiers:
                await stack.enter_async_context(notifier)
            readers = await stack.enter_async_context(contextlib.AsyncExitStack())
            await readers.enter_async_context(self.http)
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(p.run(), name=f"collector:{p.station.id}") for p in self.pollers]
                    if self.mqtt is not None:
                        tasks.append(group.create_task(self.mqtt.run(), name="collector:mqtt"))
                    tasks.append(group.create_task(self._evaluate(), name="evaluator"))
                    # the writer restarts its own tasks; this raises (and stops everything) once it gives up
                    tasks.append(group.create_task(self.writer.watch(), name="storage"))
                    await stop.wait()
                    # HTTP first: a poller marks its station offline as it closes, so the API, the status
                    # page, /healthz and /metrics would show the stop as every polled station going offline;
                    # and no acknowledgement can come after the evaluator's last save of the state file
                    await readers.aclose()
                    for task in tasks:
                        task.cancel()
            except BaseExceptionGroup as crashed:  # callers expect the component's own error
                crash = crashed.exceptions[0]
        if crash is not None:
            raise crash
        log.info("stopped")

    async def _evaluate(self) -> None:
        """The evaluator, once Alertmanager was asked which alerts fire since when (bounded by its timeout),
        so a restarted replica carries on their escalation clocks instead of starting them anew."""
        readers = [n for n in self.notifiers if isinstance(n, AlertmanagerNotifier)]
        if readers:
            wait_s = max(n.config.timeout_s for n in readers) * 2 + 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(n.synced.wait() for n in readers)), wait_s)
        await self.evaluator.run()


def _shard_filters(mqtt: MqttCollector, config: Config) -> list[tuple[str, int]]:
    """The MQTT filters of this shard's stations only (`domain.shards.narrowed_filters`)."""
    assert config.mqtt is not None
    router = mqtt.router
    ids = [s.id for s in config.stations]
    return narrowed_filters(
        router.templates, router.points, ids, point_qos=config.mqtt.qos, share_group=config.mqtt.share_group
    )
