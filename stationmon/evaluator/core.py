"""The periodic evaluation: latest values -> rules -> alert book -> events, lines and the state file.

Every `rules.evaluate_every` the evaluator gathers the inputs (`InputGatherer`), lets `RuleEngine`
judge every loop at once, advances the `AlertBook` (the pure state machine), hands each transition to
`emit_event` (notifiers), writes `loop_status` and `alert_events` lines through `write_lines` and saves
the state (`StateFile`). This package is the only part of judgement with I/O.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stationmon.config import Config
from stationmon.domain.alerts import AlertBook, AlertKey
from stationmon.domain.latest import LatestValues
from stationmon.domain.lineproto import LineBlock, LoopStatusEncoder, encode_alert_event
from stationmon.domain.model import AlertEvent, StationState
from stationmon.domain.rules import LoopTable, RuleEngine, RuleResults
from stationmon.evaluator.gather import InputGatherer
from stationmon.evaluator.state_file import STATE_FILE_VERSION, StateFile
from stationmon.evaluator.status_view import LoopStatusView
from stationmon.logutil import FailureLog
from stationmon.metrics import Metrics

__all__ = ["Evaluator", "loop_status_block"]

log = logging.getLogger("stationmon.evaluator")

SAVE_EVERY_S = 300.0  # the outdoor running mean changes slowly: save it at least this often
_EVAL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Evaluator:
    """Judges every loop every `rules.evaluate_every`; owns the alert state and its file."""

    def __init__(
        self,
        config: Config,
        latest: LatestValues,
        station_states: Mapping[str, StationState],
        metrics: Metrics,
        *,
        write_lines: Callable[[Sequence[str] | LineBlock], None],
        emit_event: Callable[[AlertEvent], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.write_lines = write_lines
        self.emit_event = emit_event
        self.clock = clock
        self.table = LoopTable.from_plant(config.site, config.stations)
        self.engine = RuleEngine(self.table, config.rules)
        self.alerts = AlertBook(config.rules)
        self.results: RuleResults | None = None
        self.last_tick: float | None = None
        self.last_duration_s: float | None = None
        self.inputs = InputGatherer(
            self.table, latest, station_states, timezone=config.site.timezone, rules=config.rules, started_at=clock()
        )
        self.state_file = StateFile(
            Path(config.rules.state_file or Path(config.state_dir) / "alerts.json"), on_failure=self._unsaved
        )
        self._tick_log = FailureLog(log, "evaluation")
        self._last_saved: float | None = None  # when the state was last saved (or handed to the writer)
        self._pending_events: list[AlertEvent] = []  # resolved at load: sent with the first tick
        t = self.table
        self._status_encoder = LoopStatusEncoder(
            ((t.station_ids[s], t.districts[s], lp) for lp, s in zip(t.loop_ids, t.loop_station.tolist(), strict=True)),
            config.influxdb.precision,
            dict(zip(t.station_ids, t.companies, strict=True)),
        )
        self._register_metrics(metrics)
        self._load_state()

    def _register_metrics(self, metrics: Metrics) -> None:
        self._eval_seconds = metrics.histogram(
            "stationmon_evaluation_seconds", "Time to judge every loop once", buckets=_EVAL_BUCKETS
        ).labels()
        metrics.gauge(
            "stationmon_alerts", "Pending and firing alerts by rule and state", ("rule", "state")
        ).set_function(lambda: {k: float(v) for k, v in self.alerts.counts().items()})
        metrics.gauge("stationmon_loops", "Loops by status at the last evaluation", ("status",)).set_function(
            lambda: {(k,): float(v) for k, v in self.loop_status.counts().items()}
        )
        self._events_total = metrics.counter(
            "stationmon_alert_events_total", "Alert transitions by rule and state", ("rule", "state")
        )

    @property
    def loop_status(self) -> LoopStatusView:
        """{(station, loop): LoopStatus} of the last evaluation."""
        return LoopStatusView(self.results)

    async def run(self) -> None:
        """Evaluate at every multiple of `evaluate_every` on the wall clock until cancelled.

        Each tick judges as of its slot (`tick(slot)`), so replicas of an HA pair stamp `loop_status` and
        start alerts at the same instants and InfluxDB stores each point once. The first tick is the slot
        just begun; a slot missed (a slow tick, a suspended host) is skipped, not caught up.
        The state file is written off the event loop meanwhile."""
        every = self.config.rules.evaluate_every_s
        last_slot: float | None = None
        self.state_file.background = True
        try:
            while True:
                slot = math.floor(self.clock() / every) * every
                if slot != last_slot:
                    last_slot = slot
                    try:
                        self.tick(slot)
                        self._tick_log.success()
                    except Exception as exc:  # one bad tick must not stop judging; the next may work
                        log.debug("evaluation failed", exc_info=True)
                        self._tick_log.failure(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(max(0.0, slot + every - self.clock()))
        finally:
            if self.alerts.dirty or self.results is not None:
                self._save(self.clock())
            await self.state_file.finished()
            self.state_file.background = False

    def tick(self, now: float) -> list[AlertEvent]:
        """Judge every loop at `now`: update results, alerts, lines, state file; return the events."""
        started = time.perf_counter()
        results = self.engine.evaluate(self.inputs.gather(now), self.engine.held_of(self.alerts))
        self.results = results
        events = self._pending_events + self.alerts.advance(now, results)
        self._pending_events = []
        self.last_tick = now
        self.last_duration_s = time.perf_counter() - started
        self._eval_seconds.observe(self.last_duration_s)
        block = self.status_block(results)
        if len(block):
            self.write_lines(block)
        if events:
            self.write_lines([self._record(event) for event in events])
        for event in events:
            self._emit(event)
        if self.alerts.dirty or self._last_saved is None or now - self._last_saved >= SAVE_EVERY_S:
            self._save(now)
        return events

    def acknowledge(self, alert_id: str, who: str, comment: str | None = None) -> AlertEvent | None:
        """Acknowledge a firing alert now (event to notifiers and `alert_events`); None if unknown.

        A repeat returns the existing acknowledgement and changes, records and sends nothing."""
        existing = self.alerts.acknowledgement(alert_id)
        if existing is not None:
            return existing
        now = self.clock()
        event = self.alerts.acknowledge(alert_id, who, comment, now)
        if event is None:
            return None
        self.write_lines([self._record(event)])
        self._emit(event)
        self._save(now)
        return event

    def status(self) -> dict[str, Any]:
        """For /healthz: when it last judged, how long it took, alerts held."""
        late = self.last_tick is not None and self.clock() - self.last_tick > 3 * self.config.rules.evaluate_every_s
        return {
            "state": "failing" if self._tick_log.failing or late else "ok",
            "last_evaluation": self.last_tick,
            "duration_s": self.last_duration_s,
            "loops": self.table.n_loops,
            "alerts": len(self.alerts),
            "state_file": str(self.state_file.path),
            "state_file_ok": self.state_file.ok,
        }

    def status_block(self, r: RuleResults) -> LineBlock:
        """One `loop_status` line per loop, each standing for `evaluate_every` (`interval_s`)."""
        return loop_status_block(self._status_encoder, r, self.config.rules.evaluate_every_s)

    def _record(self, event: AlertEvent) -> str:
        """Count the event and return its `alert_events` line."""
        self._events_total.labels(event.rule, event.state).inc()
        return encode_alert_event(event, self.config.influxdb.precision)

    def _emit(self, event: AlertEvent) -> None:
        try:
            self.emit_event(event)
        except Exception:  # a notifier bug must not lose the other notifiers' events or the state
            log.exception("alert event listener failed for %s %s", event.alert_id, event.state)

    def _save(self, now: float) -> None:
        # a snapshot of plain values, shared with nothing live
        doc = {"version": STATE_FILE_VERSION, "saved_at": now, "alerts": self.alerts.to_dict()}
        doc["outdoor_mean"] = self.engine.smoothing_state()
        self.alerts.dirty = False  # before the write: a failed write sets it again (`_unsaved`)
        self._last_saved = now
        self.state_file.save(doc)

    def _unsaved(self) -> None:
        self.alerts.dirty = True  # try again at the next tick

    def _load_state(self) -> None:
        def restore(doc: Mapping[str, Any]) -> None:
            t = self.table
            restored = self.alerts.load_dict(doc["alerts"], dict(zip(t.station_ids, t.companies, strict=True)))
            smoothing = doc.get("outdoor_mean")
            if isinstance(smoothing, dict):
                self.engine.load_smoothing_state(smoothing)
            log.info("%s: restored %d alerts", self.state_file.path, restored)

        if self.state_file.load(restore, self.clock()):
            self._pending_events = self.alerts.retain(self._known_key, self.clock(), "no longer in the configuration")

    def _known_key(self, key: AlertKey) -> bool:
        _, station, loop = key
        return station in self.table.station_index and (loop is None or (station, loop) in self.table.loop_index)


def loop_status_block(encoder: LoopStatusEncoder, r: RuleResults, interval_s: float) -> LineBlock:
    """One `loop_status` line per loop of `r` (sensor counts only where fresh household sensors report)."""
    sensors = r.indoor_sensors
    with_sensors = sensors > 0
    counts = [np.where(with_sensors, c, np.nan) for c in (sensors, r.indoor_below_target, r.indoor_below_refund)]
    floats = (r.required_supply, r.required_return, r.estimated_indoor, r.delta_t, r.measured_indoor, *counts)
    flags = (r.beyond_design, r.setback, np.full(len(r.status), r.inspection_hour))
    return encoder.encode_block(r.now, r.status, r.compliant(), floats, r.verdict, flags, interval_s)
