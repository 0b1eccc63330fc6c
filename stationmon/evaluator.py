"""The periodic evaluation: latest values -> rules -> alert state machine -> events and `loop_status`.

Every `rules.evaluate_every` the evaluator gathers the latest values of every loop into arrays, lets
`RuleEngine` judge all loops at once, advances the `AlertBook` (the pure state machine), hands each
transition to `emit_event` (notifiers) and writes `loop_status` and `alert_events` lines through
`write_lines`. The alert state (and the outdoor running mean) is saved to `rules.state_file`, or
`<state_dir>/alerts.json`, written to a temporary file and renamed over the old one, so a restart
neither forgets a firing alert nor fires it anew. Under `run()` the state is snapshotted on the event
loop and written by a worker thread, one write at a time; `tick(now)` alone writes it at once.
This module is the only part of judgement with I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stationmon.config import Config
from stationmon.domain.alerts import AlertBook, AlertKey
from stationmon.domain.latest import LatestValues, SeriesKey
from stationmon.domain.lineproto import (
    encode_alert_event,
    escape_measurement,
    escape_string_value,
    escape_tag,
    to_precision,
)
from stationmon.domain.model import AlertEvent, StationState
from stationmon.domain.rules import (
    STATUS_NAMES,
    LoopTable,
    RuleEngine,
    RuleInputs,
    RuleParams,
    RuleResults,
    Series,
    in_heating_season,
)
from stationmon.logutil import FailureLog
from stationmon.metrics import Metrics

__all__ = [
    "STATE_FILE_VERSION",
    "ConditionStatus",
    "Evaluator",
    "LoopStatus",
    "LoopStatusEncoder",
    "LoopStatusView",
]

log = logging.getLogger("stationmon.evaluator")

STATE_FILE_VERSION = 1
SAVE_EVERY_S = 300.0  # the outdoor running mean changes slowly: save it at least this often
_EVAL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True, slots=True)
class ConditionStatus:
    """One rule holding for a loop right now."""

    rule: str
    value: float | None
    threshold: float | None
    message: str


@dataclass(frozen=True, slots=True)
class LoopStatus:
    """The latest judgement of one loop (what `loop_status` stores, plus the reasons)."""

    station: str
    loop: str
    district: str
    ts: float
    status: str
    compliant: bool | None
    required_supply_temp: float | None
    required_return_temp: float | None
    estimated_indoor_temp: float | None
    delta_t: float | None
    expected_delta_t: float | None
    outdoor_temp: float | None  # the smoothed value the curve used
    conditions: tuple[ConditionStatus, ...]

    @property
    def reasons(self) -> list[str]:
        """One line per active condition, e.g. "supply_low: supply 38.0 °C below 40.4 °C (...)"."""
        return [f"{c.rule}: {c.message}" for c in self.conditions]


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


class LoopStatusView(Mapping[tuple[str, str], LoopStatus]):
    """Read-only {(station, loop): LoopStatus} over the latest results, built per entry on access.

    Building 100,000 objects every tick would cost more than judging the loops, and the API reads a few.
    """

    def __init__(self, results: RuleResults | None) -> None:
        self._results = results

    def __getitem__(self, key: tuple[str, str]) -> LoopStatus:
        r = self._results
        if r is None:
            raise KeyError(key)
        i = r.table.loop_index[key]
        conditions = []
        for rule, check in r.loop_checks.items():
            if check.active[i]:
                cond = r.lookup((rule, key[0], key[1]))
                if cond is not None:
                    conditions.append(ConditionStatus(rule, cond.value, cond.threshold, cond.message))
        s = int(r.table.loop_station[i])
        for rule, check in r.station_checks.items():
            if check.active[s]:
                cond = r.lookup((rule, key[0], None))
                if cond is not None:
                    conditions.append(ConditionStatus(rule, cond.value, cond.threshold, cond.message))
        return LoopStatus(
            station=key[0],
            loop=key[1],
            district=r.table.districts[s],
            ts=r.now,
            status=STATUS_NAMES[int(r.status[i])],
            compliant=_compliant(int(r.status[i])),
            required_supply_temp=_opt(float(r.required_supply[i])),
            required_return_temp=_opt(float(r.required_return[i])),
            estimated_indoor_temp=_opt(float(r.estimated_indoor[i])),
            delta_t=_opt(float(r.delta_t[i])),
            expected_delta_t=_opt(float(r.expected_delta_t[i])),
            outdoor_temp=_opt(float(r.outdoor[i])),
            conditions=tuple(conditions),
        )

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._results.table.loop_index if self._results is not None else ())

    def __len__(self) -> int:
        return self._results.table.n_loops if self._results is not None else 0

    def counts(self) -> dict[str, int]:
        """Loops per status."""
        r = self._results
        if r is None:
            return {}
        found = np.bincount(r.status.astype(np.int64), minlength=len(STATUS_NAMES))
        return {name: int(found[i]) for i, name in enumerate(STATUS_NAMES)}


def _tag_prefix(measurement: str, tags: Mapping[str, str]) -> str:
    # as lineproto.encode_line does it: tags sorted by key, empty values left out
    return escape_measurement(measurement) + "".join(
        f",{escape_tag(k)}={escape_tag(tags[k])}" for k in sorted(tags) if tags[k]
    )


def _compliant(code: int) -> bool | None:
    name = STATUS_NAMES[code]
    return True if name == "ok" else False if name == "noncompliant" else None


class LoopStatusEncoder:
    """`loop_status` lines for every loop, exactly as `lineproto.encode_loop_status` writes them.

    At 100,000 loops the generic encoder costs about a second per tick; a loop's tags never change,
    so their escaped prefix is built once and only the fields are formatted per tick.
    """

    def __init__(self, table: LoopTable, precision: str = "ms") -> None:
        self.precision = precision
        self.prefixes = [
            _tag_prefix("loop_status", {"station": table.station_of(i), "district": table.districts[s], "loop": lp})
            for i, (lp, s) in enumerate(zip(table.loop_ids, table.loop_station.tolist(), strict=True))
        ]
        self._status_fields = [f"status={escape_string_value(name)}" for name in STATUS_NAMES]
        self._compliant_fields = {
            STATUS_NAMES.index("ok"): ",compliant=true",
            STATUS_NAMES.index("noncompliant"): ",compliant=false",
        }

    def encode(self, r: RuleResults) -> list[str]:
        """The lines of one evaluation, stamped with its time."""
        ts = str(to_precision(r.now, self.precision))
        status_fields, compliant_fields = self._status_fields, self._compliant_fields
        cols = [
            (f",{key}=", a.tolist())
            for key, a in (
                ("required_supply_temp", r.required_supply),
                ("required_return_temp", r.required_return),
                ("estimated_indoor_temp", r.estimated_indoor),
                ("delta_t", r.delta_t),
            )
        ]
        lines = []
        for i, (prefix, code) in enumerate(zip(self.prefixes, r.status.tolist(), strict=True)):
            parts = [prefix, " ", status_fields[code]]
            for key, values in cols:
                v = values[i]
                if v - v == 0.0:  # finite: line protocol has no NaN
                    parts.append(key)
                    parts.append(repr(v))
            parts.append(compliant_fields.get(code, ""))
            parts.append(" ")
            parts.append(ts)
            lines.append("".join(parts))
        return lines


class Evaluator:
    """Judges every loop every `rules.evaluate_every`; owns the alert state and its file."""

    def __init__(
        self,
        config: Config,
        latest: LatestValues,
        station_states: dict[str, StationState],
        metrics: Metrics,
        *,
        write_lines: Callable[[Sequence[str]], None],
        emit_event: Callable[[AlertEvent], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.latest = latest
        self.station_states = station_states
        self.write_lines = write_lines
        self.emit_event = emit_event
        self.clock = clock
        self.table = LoopTable.from_config(config)
        self.engine = RuleEngine(self.table, RuleParams.from_rules_config(config.rules))
        self.alerts = AlertBook.from_rules_config(config.rules)
        self.results: RuleResults | None = None
        self.started_at = clock()
        self.last_tick: float | None = None
        self.last_duration_s: float | None = None
        self.state_path = Path(config.rules.state_file or Path(config.state_dir) / "alerts.json")
        self._save_log = FailureLog(log, f"alert state {self.state_path}")
        self._tick_log = FailureLog(log, "evaluation")
        self._last_saved: float | None = None  # when the state was last saved (or handed to the writer)
        # While run() runs, the state file is written by a worker thread: one write in flight at most,
        # and the newest snapshot taken meanwhile waits in _save_next (older ones are dropped).
        self._save_in_background = False
        self._save_next: dict[str, Any] | None = None
        self._save_task: asyncio.Task[None] | None = None
        self._file_lock = threading.Lock()  # one writer of the temp file, whatever the caller
        self._pending_events: list[AlertEvent] = []
        self._status_encoder = LoopStatusEncoder(self.table, config.influxdb.precision)

        t = self.table
        stations = [t.station_of(i) for i in range(t.n_loops)]
        self._keys = {
            q: [(s, lp, None, q) for s, lp in zip(stations, t.loop_ids, strict=True)]
            for q in ("supply_temp", "return_temp", "flow")
        }
        self._station_keys = {
            q: [(s, None, None, q) for s in t.station_ids] for q in ("outdoor_temp", "primary_supply_temp")
        }
        self._indoor_keys: list[SeriesKey] = []
        self._indoor_loop = np.zeros(0, dtype=np.int64)
        self._latest_size = -1

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
        self._load_state()

    # ------------------------------------------------------------------------------------------------
    # Public

    @property
    def loop_status(self) -> LoopStatusView:
        """{(station, loop): LoopStatus} of the last evaluation."""
        return LoopStatusView(self.results)

    async def run(self) -> None:
        """Evaluate every `evaluate_every` until cancelled; save the state on the way out.

        While it runs, the state file is written in a worker thread (see `_save`), so a slow disk or a
        large alert state does not hold up polling; the final state is written before it returns.
        """
        every = self.config.rules.evaluate_every_s
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        self._save_in_background = True
        try:
            while True:
                try:
                    self.tick(self.clock())
                    self._tick_log.success()
                except Exception as exc:  # one bad tick must not stop judging; the next may work
                    log.debug("evaluation failed", exc_info=True)
                    self._tick_log.failure(f"{type(exc).__name__}: {exc}")
                next_at += every
                delay = next_at - loop.time()
                if delay < 0:  # fell behind (a slow tick, a suspended host): skip, don't burst
                    next_at = loop.time() + every
                    delay = every
                await asyncio.sleep(delay)
        finally:
            if self.alerts.dirty or self.results is not None:
                self._save(self.clock())
            await self._saves_finished()
            self._save_in_background = False

    def tick(self, now: float) -> list[AlertEvent]:
        """Judge every loop at `now`: update results, alerts, lines, state file; return the events."""
        started = time.perf_counter()
        inputs = self.gather(now)
        held = self.engine.held_masks(self.alerts.held_keys())
        results = self.engine.evaluate(inputs, held)
        self.results = results
        events = self._pending_events + self.alerts.update(now, results.conditions(), results.lookup)
        self._pending_events = []
        self.last_tick = now
        self.last_duration_s = time.perf_counter() - started
        self._eval_seconds.observe(self.last_duration_s)
        lines = self.status_lines(results)
        for event in events:
            self._events_total.labels(event.rule, event.state).inc()
            lines.append(encode_alert_event(event, self.config.influxdb.precision))
        if lines:
            self.write_lines(lines)
        for event in events:
            self._emit(event)
        if self.alerts.dirty or self._last_saved is None or now - self._last_saved >= SAVE_EVERY_S:
            self._save(now)
        return events

    def acknowledge(self, alert_id: str, who: str, comment: str | None = None) -> AlertEvent | None:
        """Acknowledge a firing alert now: the event goes to notifiers and `alert_events`; None if unknown.

        A repeat returns the existing acknowledgement and changes, records and sends nothing.
        """
        existing = self.alerts.acknowledgement(alert_id)
        if existing is not None:
            return existing
        now = self.clock()
        event = self.alerts.acknowledge(alert_id, who, comment, now)
        if event is None:
            return None
        self._events_total.labels(event.rule, event.state).inc()
        self.write_lines([encode_alert_event(event, self.config.influxdb.precision)])
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
            "state_file": str(self.state_path),
            "state_file_ok": not self._save_log.failing,
        }

    # ------------------------------------------------------------------------------------------------
    # Inputs

    def gather(self, now: float) -> RuleInputs:
        """The latest values of every loop and station as arrays."""
        get = self.latest.latest.get
        nan = math.nan

        def series(keys: Sequence[SeriesKey]) -> Series:
            samples = [get(k) for k in keys]
            n = len(samples)
            return Series(
                np.fromiter((nan if s is None else s.value for s in samples), np.float64, n),
                np.fromiter((nan if s is None else s.ts for s in samples), np.float64, n),
                np.fromiter((s is not None and s.fault is not None for s in samples), np.bool_, n),
            )

        if len(self.latest.latest) != self._latest_size:
            self._find_indoor_sensors()
        last_seen = np.full(self.table.n_stations, np.nan)
        for i, sid in enumerate(self.table.station_ids):
            seen = self.latest.last_seen.get(sid)
            state = self.station_states.get(sid)
            if state is not None and state.last_success is not None:
                seen = state.last_success if seen is None else max(seen, state.last_success)
            if seen is not None:
                last_seen[i] = seen
        rules = self.config.rules
        return RuleInputs(
            now=now,
            supply=series(self._keys["supply_temp"]),
            return_=series(self._keys["return_temp"]),
            flow=series(self._keys["flow"]),
            outdoor=series(self._station_keys["outdoor_temp"]),
            primary_supply=series(self._station_keys["primary_supply_temp"]),
            station_last_seen=last_seen,
            indoor=series(self._indoor_keys),
            indoor_loop=self._indoor_loop,
            in_season=in_heating_season(now, self.config.site.timezone, rules.season_start, rules.season_end),
            started_at=self.started_at,
        )

    def _find_indoor_sensors(self) -> None:
        # household sensors appear over MQTT as they report; rescan only when a new series appeared
        index = self.table.loop_index
        keys = [k for k in self.latest.latest if k[3] == "indoor_temp" and k[1] is not None and (k[0], k[1]) in index]
        self._indoor_keys = keys
        self._indoor_loop = np.array([index[(k[0], k[1])] for k in keys], dtype=np.int64)  # type: ignore[index]
        self._latest_size = len(self.latest.latest)

    # ------------------------------------------------------------------------------------------------
    # Outputs

    def status_lines(self, r: RuleResults) -> list[str]:
        """One `loop_status` line per loop."""
        return self._status_encoder.encode(r)

    def _emit(self, event: AlertEvent) -> None:
        try:
            self.emit_event(event)
        except Exception:  # a notifier bug must not lose the other notifiers' events or the state
            log.exception("alert event listener failed for %s %s", event.alert_id, event.state)

    # ------------------------------------------------------------------------------------------------
    # State file

    def state_document(self, now: float) -> dict[str, Any]:
        """The state file's content as of now: a snapshot of plain values, shared with nothing live."""
        return {
            "version": STATE_FILE_VERSION,
            "saved_at": now,
            "alerts": self.alerts.to_dict(),
            "outdoor_mean": self.engine.smoothing_state(),
        }

    def save_state(self, now: float) -> None:
        """Write the alert state now, in this thread (temp file + rename); failures are logged, not raised.

        Outside `run()`; while it runs, saves go through the background writer so they stay in order.
        """
        doc = self.state_document(now)
        self.alerts.dirty = False
        self._last_saved = now
        self._saved(self._write_state_file(doc))

    def _save(self, now: float) -> None:
        """Save the state: at once outside run(); inside, snapshot now and write in a worker thread."""
        if not self._save_in_background:
            self.save_state(now)
            return
        self._save_next = self.state_document(now)
        self.alerts.dirty = False
        self._last_saved = now
        if self._save_task is None or self._save_task.done():
            self._save_task = asyncio.get_running_loop().create_task(self._write_saves(), name="evaluator-save")

    async def _write_saves(self) -> None:
        # Writes the newest snapshot until none is waiting; changes that come in during a write are
        # written together once it is done.
        while self._save_next is not None:
            doc, self._save_next = self._save_next, None
            try:
                error = await asyncio.to_thread(self._write_state_file, doc)
            except RuntimeError as exc:  # no worker thread to be had (the loop's executor shut down)
                error = str(exc)
            self._saved(error)

    async def _saves_finished(self) -> None:
        """Wait until the state handed to the writer is on disk, even if cancelled again meanwhile."""
        task = self._save_task
        while task is not None and not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                continue  # shutting down: the final state must still reach the disk first
        self._save_task = None

    def _saved(self, error: str | None) -> None:
        if error is None:
            self._save_log.success()
            return
        self._save_log.failure(f"cannot save: {error}")
        self.alerts.dirty = True  # try again at the next tick

    def _write_state_file(self, doc: dict[str, Any]) -> str | None:
        """Write `doc` to the state file atomically (temp file, fsync, rename); the error, or None."""
        path = self.state_path
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with self._file_lock:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(doc, f, ensure_ascii=False, allow_nan=False)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except (OSError, ValueError, TypeError) as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                return str(exc)
        return None

    def _load_state(self) -> None:
        path = self.state_path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("%s: cannot read alert state, starting without: %s", path, exc)
            return
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict) or doc.get("version") != STATE_FILE_VERSION:
                raise ValueError(f"not a stationmon alert state of version {STATE_FILE_VERSION}")
            restored = self.alerts.load_dict(doc["alerts"])
            smoothing = doc.get("outdoor_mean")
            if isinstance(smoothing, dict):
                self.engine.load_smoothing_state(smoothing)
        except (ValueError, KeyError, TypeError) as exc:
            aside = path.with_name(f"{path.name}.corrupt-{int(self.clock())}")
            with contextlib.suppress(OSError):
                path.rename(aside)
            log.error("%s: unreadable alert state (%s); moved to %s, starting without", path, exc, aside.name)
            return
        now = self.clock()
        self._pending_events = self.alerts.retain(self._known_key, now, "no longer in the configuration")
        log.info("%s: restored %d alerts", path, restored)

    def _known_key(self, key: AlertKey) -> bool:
        _, station, loop = key
        if station not in self.table.station_index:
            return False
        return loop is None or (station, loop) in self.table.loop_index
