"""Benchmark: one evaluation tick over 100,000 loops (heating model, rules, alert state machine).

    .venv/bin/python bench/bench_evaluate.py [--loops 100000] [--per-station 10] [--ticks 15]

A synthetic district: `--loops` loops on stations of `--per-station` loops, a mix of floor (50/40,
45/35) and radiator (75/50, 95/70) designs, outdoor temperatures from -25 to +5 °C, water near the
curve with noise; 2 % of loops under-supplied, 0.5 % with a broken probe (850 °C), 0.2 % of stations
offline. Every tick brings new samples (so flatline/rate tracking works) and the alert book holds the
alerts of the previous ticks: the steady state of a running service.

Timed (the target, < 50 ms per tick): the held masks (`RuleEngine.held_of`) + `RuleEngine.evaluate`
(heating model incl. the Newton estimate, every rule, fault tracking, outdoor smoothing) +
`AlertBook.advance` (the alert book from the rules' columns, as the evaluator's tick).

The whole cycle (issue 15, target < 100 ms): gather the inputs (`InputGatherer`, arrays kept current
by `LatestValues.track` as readings arrive) + the tick + encode every `loop_status` line up to the
writer's buffer (`loop_status_block`, one `LineBlock`, then `submit` into a real `InfluxWriter` that is
not started), each tick's readings ingested before it (untimed; ingest cost per reading shown). Outside
the cycle, the writer's share per tick: cutting the batches and their bodies (the baseline: str lines
joined and encoded per batch, as the writer did before `LineBlock`).
Its baseline, same run, same readings: the code before issue 15, copied below (`Baseline*`): one
dict lookup per series per tick, and the line-by-line encoder. Both cycles' inputs are checked to be
the same, and the last cycle's lines to say the same (tags, time, fields; the new floats are the old
ones rounded to 0.001, and there is the new `interval_s` field). Medians of wall time
(`perf_counter`) and of process CPU time (`process_time`, less disturbed by other load).

The garbage collector is set as `stationmon run` sets it (`stationmon.runtime.settle_heap`: what was built
is frozen, the thresholds raised), once the district and the engines are built.

Baseline, same run, same data: a plain Python loop computing the same results loop by loop (math
module, scalar bisection to the same tolerance, dict state for flatline/rate) and feeding the same
alert book. The script checks both agree (statuses, conditions, required temperatures, estimates).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stationmon.adapters.influx import InfluxWriter
from stationmon.config import InfluxConfig
from stationmon.domain.alerts import AlertBook, AlertKey, Condition
from stationmon.domain.heating import FloatArray
from stationmon.domain.latest import LatestValues, SeriesKey
from stationmon.domain.lineproto import (
    LOOP_STATUS_DECIMALS,
    LOOP_STATUS_FLAGS,
    LOOP_STATUS_FLOATS,
    LoopStatusEncoder,
    escape_string_value,
    escape_tag,
    to_precision,
)
from stationmon.domain.model import Reading, StationState
from stationmon.domain.plant import DailyWindow, Setback
from stationmon.domain.rules import (
    SWAP_TOLERANCE_K,
    LoopTable,
    RuleEngine,
    RuleInputs,
    RuleResults,
    Series,
    in_heating_season,
)
from stationmon.domain.settings import RuleSettings, RulesSettings
from stationmon.domain.vocabulary import (
    PLAUSIBLE_RANGES,
    STATUS_NAMES,
    TEMPERATURE_SENTINELS,
    VALUE_SENTINELS,
    VERDICTS,
)
from stationmon.evaluator.core import loop_status_block
from stationmon.evaluator.gather import InputGatherer
from stationmon.metrics import Metrics
from stationmon.runtime import settle_heap

T0 = 1_760_000_000.0
STEP_S = 10.0
DESIGNS = [(50.0, 40.0, 1.1), (45.0, 35.0, 1.1), (75.0, 50.0, 1.3), (95.0, 70.0, 1.3)]
# every rule on, margin 1 K, hysteresis 0.5 K, for/clear_for 10 min, station_offline major; water
# judged on its 30 min running mean (timed), a midday setback site-wide
SETTINGS = RulesSettings(outdoor_smoothing_s=3600.0, setbacks=(Setback(DailyWindow(600, 900), 3.0),))
# the plain baseline judges raw water without setbacks: the agreement check runs the engine the same way
CHECK_SETTINGS = replace(SETTINGS, water_smoothing_s=0.0, setbacks=())
SENTINELS = VALUE_SENTINELS + TEMPERATURE_SENTINELS
WATER_RANGE = PLAUSIBLE_RANGES["supply_temp"]
OUTDOOR_RANGE = PLAUSIBLE_RANGES["outdoor_temp"]


class District:
    """The synthetic data: static table plus per-tick sample arrays."""

    def __init__(self, n_loops: int, per_station: int, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        ns = max(1, n_loops // per_station)
        self.table = LoopTable.build(
            ((f"st{s:06d}", f"d{s % 9}") for s in range(ns)),
            (
                (
                    f"st{i // per_station:06d}",
                    f"l{i % per_station}",
                    *DESIGNS[int(rng.integers(len(DESIGNS)))],
                    None,
                    None,
                )
                for i in range(n_loops)
            ),
        )
        t = self.table
        self.rng = rng
        self.outdoor = rng.uniform(-25.0, 5.0, ns)
        from stationmon.domain.heating import required_temps

        req_s, req_r = required_temps(self.outdoor[t.loop_station], t.design_supply, t.design_return, t.exponent)
        self.base_supply = req_s + rng.uniform(0.0, 3.0, n_loops)
        self.base_return = req_r + rng.uniform(0.0, 2.0, n_loops)
        under = rng.random(n_loops) < 0.02
        self.base_supply[under] -= 8.0
        self.base_return[under] -= 5.0
        self.broken = rng.random(n_loops) < 0.005
        self.offline = rng.random(ns) < 0.002

    def inputs(self, k: int) -> RuleInputs:
        """Tick k's samples: noisy values read 2 s before the tick."""
        t, rng = self.table, self.rng
        now = T0 + k * STEP_S
        ts = now - 2.0
        n, ns = t.n_loops, t.n_stations
        supply = self.base_supply + rng.normal(0.0, 0.1, n)
        supply[self.broken] = 850.0
        ret = self.base_return + rng.normal(0.0, 0.1, n)
        sample_ts = np.full(n, ts)
        station_ts = np.where(self.offline, T0 - 3600.0, ts)
        sample_ts[self.offline[t.loop_station]] = T0 - 3600.0
        return RuleInputs(
            now=now,
            supply=Series(supply, sample_ts.copy(), np.zeros(n, bool)),
            return_=Series(ret, sample_ts.copy(), np.zeros(n, bool)),
            flow=Series.empty(n),
            outdoor=Series(self.outdoor + rng.normal(0.0, 0.05, ns), station_ts.copy(), np.zeros(ns, bool)),
            primary_supply=Series.empty(ns),
            station_last_seen=station_ts.copy(),
            in_season=True,
        )

    def readings(self, k: int) -> list[Reading]:
        """Tick k's samples as the collectors deliver them: supply and return per loop, outdoor per
        station, and three household indoor sensors on every 50th loop (MQTT)."""
        t, inp = self.table, self.inputs(k)
        stations = [t.station_of(i) for i in range(t.n_loops)]
        out = []
        for quantity, series in (("supply_temp", inp.supply), ("return_temp", inp.return_)):
            values, times = series.value.tolist(), series.ts.tolist()
            out.extend(
                Reading(s, quantity, v, ts, loop=lp)
                for s, lp, v, ts in zip(stations, t.loop_ids, values, times, strict=True)
            )
        values, times = inp.outdoor.value.tolist(), inp.outdoor.ts.tolist()
        out.extend(Reading(s, "outdoor_temp", v, ts) for s, v, ts in zip(t.station_ids, values, times, strict=True))
        ts = inp.now - 5.0
        for i in range(0, t.n_loops, 50):
            for j in range(3):
                v = 19.0 + (i % 7) * 0.5 - j + 0.1 * k
                out.append(
                    Reading(stations[i], "indoor_temp", v, ts, loop=t.loop_ids[i], sensor=f"h{j}", source="mqtt")
                )
        return out


# ----------------------------------------------------------------------------------------------------
# The evaluator's I/O side before issue 15, copied as the same-run baseline of the whole cycle

_BASELINE_COMPLIANT_FIELDS = ("", ",compliant=false", ",compliant=true")
_BASELINE_VERDICT_FIELDS = tuple(f",verdict={escape_string_value(v)}" for v in VERDICTS)


class BaselineLoopStatusEncoder:
    """The line-by-line `loop_status` encoder before issue 15 (stationmon/domain/lineproto.py then)."""

    def __init__(self, loops: Any, precision: str = "ms", companies: dict[str, str] | None = None) -> None:
        self.precision = precision
        company = companies or {}
        self.prefixes = [
            "loop_status"
            + "".join(
                f",{k}={escape_tag(v)}"
                for k, v in (("company", company.get(s, "")), ("district", d), ("loop", lp), ("station", s))
                if v
            )
            + " "
            for s, d, lp in loops
        ]
        self._status_fields = [f"status={escape_string_value(name)}" for name in STATUS_NAMES]

    def encode(
        self, ts_s: float, status: Any, compliant: Any, floats: Any, verdict: Any = None, flags: Any = None
    ) -> list[str]:
        ts = f" {to_precision(ts_s, self.precision)}"
        status_fields = self._status_fields
        cols = [(f",{key}=", values) for key, values in zip(LOOP_STATUS_FLOATS, floats, strict=False)]
        flag_cols = (
            [(f",{key}=true", f",{key}=false", v) for key, v in zip(LOOP_STATUS_FLAGS, flags, strict=True)]
            if flags is not None
            else []
        )
        lines = []
        for i, (prefix, code, ok) in enumerate(zip(self.prefixes, status, compliant, strict=True)):
            parts = [prefix, status_fields[code]]
            for key, values in cols:
                v = values[i]
                if v - v == 0.0:  # finite
                    parts.append(key)
                    parts.append(repr(v))
            parts.append(_BASELINE_COMPLIANT_FIELDS[ok + 1])
            if verdict is not None:
                parts.append(_BASELINE_VERDICT_FIELDS[verdict[i]])
            for yes, no, values in flag_cols:
                parts.append(yes if values[i] else no)
            parts.append(ts)
            lines.append("".join(parts))
        return lines


def baseline_status_lines(encoder: BaselineLoopStatusEncoder, r: RuleResults, n_loops: int) -> list[str]:
    """`Evaluator.status_lines` before issue 15."""
    sensors = r.indoor_sensors
    with_sensors = sensors > 0
    counts = [np.where(with_sensors, c, np.nan) for c in (sensors, r.indoor_below_target, r.indoor_below_refund)]
    columns = (r.required_supply, r.required_return, r.estimated_indoor, r.delta_t, r.measured_indoor, *counts)
    floats = [a.tolist() for a in columns]
    inspection = np.full(n_loops, r.inspection_hour)
    flags = [a.tolist() for a in (r.beyond_design, r.setback, inspection)]
    return encoder.encode(r.now, r.status.tolist(), r.compliant().tolist(), floats, r.verdict.tolist(), flags)


class BaselineGatherer:
    """`InputGatherer` before issue 15: one dict lookup per series per tick."""

    def __init__(
        self, table: LoopTable, latest: LatestValues, station_states: dict[str, StationState], *, rules: RulesSettings
    ) -> None:
        self.table, self.latest, self.station_states, self.rules = table, latest, station_states, rules
        stations = [table.station_of(i) for i in range(table.n_loops)]
        self._keys: dict[str, list[SeriesKey]] = {
            q: [(s, lp, None, q) for s, lp in zip(stations, table.loop_ids, strict=True)]
            for q in ("supply_temp", "return_temp", "flow", "pump_running")
        }
        self._station_keys: dict[str, list[SeriesKey]] = {
            q: [(s, None, None, q) for s in table.station_ids] for q in ("outdoor_temp", "primary_supply_temp")
        }
        self._indoor_keys: list[SeriesKey] = []
        self._indoor_loop = np.zeros(0, dtype=np.int64)
        self._latest_size = -1

    def gather(self, now: float) -> RuleInputs:
        if len(self.latest.latest) != self._latest_size:
            self._find_indoor_sensors()
        rules = self.rules
        return RuleInputs(
            now=now,
            supply=self._series(self._keys["supply_temp"]),
            return_=self._series(self._keys["return_temp"]),
            flow=self._series(self._keys["flow"]),
            pump_running=self._series(self._keys["pump_running"]),
            outdoor=self._series(self._station_keys["outdoor_temp"]),
            primary_supply=self._series(self._station_keys["primary_supply_temp"]),
            station_last_seen=self._last_seen(),
            indoor=self._series(self._indoor_keys),
            indoor_loop=self._indoor_loop,
            in_season=in_heating_season(now, self.table.timezone, rules.season_start, rules.season_end),
            started_at=T0,
        )

    def _series(self, keys: list[SeriesKey]) -> Series:
        get, nan = self.latest.latest.get, math.nan
        samples = [get(k) for k in keys]
        n = len(samples)
        return Series(
            np.fromiter((nan if s is None else s.value for s in samples), np.float64, n),
            np.fromiter((nan if s is None else s.ts for s in samples), np.float64, n),
            np.fromiter((s is not None and s.fault is not None for s in samples), np.bool_, n),
        )

    def _last_seen(self) -> FloatArray:
        last_seen = np.full(self.table.n_stations, np.nan)
        for i, sid in enumerate(self.table.station_ids):
            seen = self.latest.last_seen.get(sid)
            state = self.station_states.get(sid)
            if state is not None and state.last_success is not None:
                seen = state.last_success if seen is None else max(seen, state.last_success)
            if seen is not None:
                last_seen[i] = seen
        return last_seen

    def _find_indoor_sensors(self) -> None:
        index = self.table.loop_index
        keys = [k for k in self.latest.latest if k[3] == "indoor_temp" and k[1] is not None and (k[0], k[1]) in index]
        self._indoor_keys = keys
        self._indoor_loop = np.array([index[(k[0], k[1] or "")] for k in keys], dtype=np.int64)
        self._latest_size = len(self.latest.latest)


# ----------------------------------------------------------------------------------------------------
# The plain-Python baseline: the same rules, loop by loop


def _sentinel_or_range(v: float, lo: float, hi: float) -> int:
    if math.isnan(v):
        return 1
    for s in SENTINELS:
        if abs(v - s) < 1e-3:
            return 4
    return 2 if v < lo or v > hi else 0


class PlainTracker:
    """Flatline and rate state of one series, as plain attributes."""

    __slots__ = ("anchor", "anchor_ts", "last_ts", "last_value", "rate_fault")

    def __init__(self) -> None:
        self.last_value = math.nan
        self.last_ts = math.nan
        self.anchor = math.nan
        self.anchor_ts = math.nan
        self.rate_fault = False

    def update(self, value: float, ts: float, usable: bool, sf: RuleSettings) -> int:
        new = not math.isnan(ts) and not (ts <= self.last_ts)
        if new:
            step = ts - self.last_ts
            self.rate_fault = bool(
                usable and step > 0 and abs(value - self.last_value) / step * 60.0 > sf.max_rate_per_min
            )
            if not usable or math.isnan(self.anchor) or abs(value - self.anchor) > sf.flatline_tolerance:
                self.anchor = value if usable else math.nan
                self.anchor_ts = ts
            self.last_value = value if usable else math.nan
            self.last_ts = ts
        flat = usable and not math.isnan(self.anchor) and ts - self.anchor_ts >= sf.flatline_window_s
        return (8 if flat else 0) | (16 if self.rate_fault and usable else 0)


def plain_estimate(s: float, r: float, t_o: float, ds: float, dr: float, m: float, tol: float = 1e-6) -> float:
    """Scalar Newton from t_o, as the vectorised version does."""
    t_m = 0.5 * (s + r)
    inv_a = 1.0 / (0.5 * (ds + dr) - 18.0)
    inv_b = 1.0 / (18.0 + 24.2)
    x = t_o
    for _ in range(50):
        u = max(t_m - x, 0.0) * inv_a
        um = u**m
        step = (um - (x - t_o) * inv_b) / ((m * inv_a * um / u if u > 0 else 0.0) + inv_b)
        x += step
        if abs(step) <= tol:
            break
    return x


class PlainEvaluator:
    """The whole tick in plain Python."""

    def __init__(self, table: LoopTable, params: RulesSettings) -> None:
        self.t, self.p = table, params
        self.sup = [PlainTracker() for _ in range(table.n_loops)]
        self.ret = [PlainTracker() for _ in range(table.n_loops)]
        self.out = [PlainTracker() for _ in range(table.n_stations)]
        self.mean = [math.nan] * table.n_stations
        self.mean_ts = [math.nan] * table.n_stations

    def tick(self, inp: RuleInputs) -> tuple[list[str], list[float], list[float], dict[AlertKey, Condition]]:
        t, p, now = self.t, self.p, inp.now
        sf = p.rule("sensor_fault")
        conditions: dict[AlertKey, Condition] = {}
        offline, outdoor_bad, t_o_st = [], [], []
        for s in range(t.n_stations):
            age = now - inp.station_last_seen[s]
            off = age > p.offline_after_s
            offline.append(off)
            if off:
                conditions[("station_offline", t.station_ids[s], None)] = Condition(age, p.offline_after_s)
            v, ts = float(inp.outdoor.value[s]), float(inp.outdoor.ts[s])
            fresh = now - ts <= p.offline_after_s
            bits = _sentinel_or_range(v, *OUTDOOR_RANGE)
            bits |= self.out[s].update(v, ts, bits == 0, sf)
            ok = fresh and bits == 0
            if (ok and ts > self.mean_ts[s]) or (ok and math.isnan(self.mean_ts[s])):
                keep = (
                    0.0
                    if math.isnan(self.mean[s])
                    else math.exp(-max(ts - self.mean_ts[s], 0.0) / p.outdoor_smoothing_s)
                )
                self.mean[s] = v + keep * ((self.mean[s] if not math.isnan(self.mean[s]) else 0.0) - v)
                self.mean_ts[s] = ts
            outdoor_bad.append(fresh and bits != 0)
            t_o_st.append(self.mean[s] if ok else math.nan)
        statuses, req_supply, estimates = [], [], []
        margin = {name: p.rule(name).margin for name in ("supply_low", "return_low", "indoor_estimate_low")}
        low, high = p.rule("delta_t_low"), p.rule("delta_t_high")
        for i in range(t.n_loops):
            s = int(t.loop_station[i])
            station, loop = t.station_ids[s], t.loop_ids[i]
            sv, st_ = float(inp.supply.value[i]), float(inp.supply.ts[i])
            rv, rt = float(inp.return_.value[i]), float(inp.return_.ts[i])
            s_fresh, r_fresh = now - st_ <= p.offline_after_s, now - rt <= p.offline_after_s
            sb = _sentinel_or_range(sv, *WATER_RANGE)
            rb = _sentinel_or_range(rv, *WATER_RANGE)
            sb |= self.sup[i].update(sv, st_, sb == 0, sf)
            rb |= self.ret[i].update(rv, rt, rb == 0, sf)
            if s_fresh and r_fresh and sb == 0 and rb == 0 and sv - rv < -SWAP_TOLERANCE_K:
                sb |= 32
                rb |= 32
            sb = sb if s_fresh else 0
            rb = rb if r_fresh else 0
            s_ok, r_ok = s_fresh and sb == 0, r_fresh and rb == 0
            online = not offline[s]
            t_o = t_o_st[s]
            ds, dr, m = float(t.design_supply[i]), float(t.design_return[i]), float(t.exponent[i])
            if math.isnan(t_o):
                rs = rr = exp_dt = est = math.nan
            else:
                q = max((18.0 - t_o) / (18.0 + 24.2), 0.0)
                base = 18.0 + (0.5 * (ds + dr) - 18.0) * q ** (1.0 / m)
                exp_dt = (ds - dr) * q
                rs, rr = base + 0.5 * exp_dt, base - 0.5 * exp_dt
                est = plain_estimate(sv, rv, t_o, ds, dr, m) if s_ok and r_ok else math.nan
            req_supply.append(rs)
            estimates.append(est)
            active: list[tuple[str, float, float]] = []
            if online:
                for rule, v, ok, req in (("supply_low", sv, s_ok, rs), ("return_low", rv, r_ok, rr)):
                    thr = req - margin[rule]
                    if ok and not math.isnan(thr) and v < thr:
                        active.append((rule, v, thr))
                thr = 18.0 - margin["indoor_estimate_low"]
                if not math.isnan(est) and est < thr:
                    active.append(("indoor_estimate_low", est, thr))
                if s_ok and r_ok and not math.isnan(exp_dt):
                    dt = sv - rv
                    if exp_dt >= low.min_expected_delta_t and dt < low.ratio * exp_dt:
                        active.append(("delta_t_low", dt, low.ratio * exp_dt))
                    if exp_dt >= high.min_expected_delta_t and dt > high.ratio * exp_dt:
                        active.append(("delta_t_high", dt, high.ratio * exp_dt))
                if sb or rb:
                    active.append(("sensor_fault", sv if sb else rv, math.nan))
            for rule, v, thr in active:
                conditions[(rule, station, loop)] = Condition(v, thr)
            if offline[s]:
                status = "offline"
            elif sb or rb or outdoor_bad[s]:
                status = "sensor_fault"
            elif any(a[0] in ("supply_low", "return_low", "indoor_estimate_low") for a in active):
                status = "noncompliant"
            elif not (s_ok and r_ok and not math.isnan(t_o)):
                status = "unknown"
            else:
                status = "ok"
            statuses.append(status)
        return statuses, req_supply, estimates, conditions


# ----------------------------------------------------------------------------------------------------
# The whole cycle: gather + tick + encode, against the code before issue 15

PHASES = ("gather", "tick", "encode")
BATCH_SIZE = InfluxConfig().batch_size  # the writer's default


def _idle_writer() -> InfluxWriter:
    """A real writer, never started: `submit` only puts the lines in its buffer (the end of "encode")."""
    return InfluxWriter(InfluxConfig(spool_dir="/nonexistent", dead_letter_file="/nonexistent"), Metrics())


def old_writer_batches(lines: list[str]) -> None:
    """What the writer before LineBlock did with the lines after `submit`: cut batches of str lines, each
    joined and encoded to its body."""
    buffer = list(lines)
    while buffer:
        batch = buffer[:BATCH_SIZE]
        del buffer[:BATCH_SIZE]
        "\n".join(batch).encode("utf-8")


def new_writer_batches(writer: InfluxWriter) -> None:
    """What the writer does now with what `submit` buffered: cut batches (a block is sliced) and their bodies."""
    while writer.buffered_lines:
        batch, _, _ = writer._cut_batch()
        batch.body()


class Cycle:
    """One side of the comparison: its latest values, gatherer, engine, alert book and encoder."""

    def __init__(self, table: LoopTable, new: bool, states: dict[str, StationState]) -> None:
        self.new, self.table = new, table
        self.latest = LatestValues(history_window_s=60.0)
        self.engine = RuleEngine(table, SETTINGS)
        self.book = AlertBook(SETTINGS)
        loops = [
            (table.station_of(i), table.districts[int(s)], lp)
            for i, (lp, s) in enumerate(zip(table.loop_ids, table.loop_station.tolist(), strict=True))
        ]
        if new:
            self.gatherer: Any = InputGatherer(
                table, self.latest, states, timezone=table.timezone, rules=SETTINGS, started_at=T0
            )
            self.encoder: Any = LoopStatusEncoder(loops)
        else:
            self.gatherer = BaselineGatherer(table, self.latest, states, rules=SETTINGS)
            self.encoder = BaselineLoopStatusEncoder(loops)
        self.writer = _idle_writer()
        self.wall: dict[str, list[float]] = {p: [] for p in (*PHASES, "cycle", "ingest", "batches")}
        self.cpu: dict[str, list[float]] = {p: [] for p in (*PHASES, "cycle", "ingest", "batches")}

    def run(self, now: float, readings: list[Reading], timed: bool) -> tuple[RuleInputs, Any]:
        """Ingest the readings, then one cycle; its phases' times recorded if `timed`."""
        marks = [(time.perf_counter(), time.process_time())]
        self.latest.update(readings)
        marks.append((time.perf_counter(), time.process_time()))
        inp = self.gatherer.gather(now)
        marks.append((time.perf_counter(), time.process_time()))
        results = self.engine.evaluate(inp, self.engine.held_of(self.book))
        self.book.advance(now, results)
        marks.append((time.perf_counter(), time.process_time()))
        if self.new:
            lines: Any = loop_status_block(self.encoder, results, STEP_S)
        else:
            lines = baseline_status_lines(self.encoder, results, self.table.n_loops)
        self.writer.submit(lines)
        marks.append((time.perf_counter(), time.process_time()))
        if self.new:  # then, outside the cycle, the writer's batches of them
            new_writer_batches(self.writer)
        else:
            old_writer_batches(lines)
        marks.append((time.perf_counter(), time.process_time()))
        if not self.new:  # the old writer's batches were `old_writer_batches`: an empty writer for the next cycle
            self.writer = _idle_writer()
        if timed:
            for k, phase in enumerate(("ingest", *PHASES, "batches")):
                self.wall[phase].append(marks[k + 1][0] - marks[k][0])
                self.cpu[phase].append(marks[k + 1][1] - marks[k][1])
            self.wall["cycle"].append(marks[-2][0] - marks[1][0])
            self.cpu["cycle"].append(marks[-2][1] - marks[1][1])
        return inp, lines


def _same_inputs(a: RuleInputs, b: RuleInputs) -> bool:
    pairs = [
        (a.supply, b.supply),
        (a.return_, b.return_),
        (a.flow, b.flow),
        (a.outdoor, b.outdoor),
        (a.indoor, b.indoor),
    ]
    same = all(
        np.array_equal(x.value, y.value, equal_nan=True)
        and np.array_equal(x.ts, y.ts, equal_nan=True)
        and np.array_equal(x.flagged, y.flagged)
        for x, y in pairs
    )
    return (
        same
        and np.array_equal(a.station_last_seen, b.station_last_seen, equal_nan=True)
        and np.array_equal(a.indoor_loop, b.indoor_loop)
    )


def _fields(line: str) -> tuple[str, dict[str, str], str]:
    """(tags, fields, time) of a `loop_status` line (its string fields hold no comma, space or equals sign)."""
    head, fields, time = line.rsplit(" ", 2)
    return head, dict(field.split("=", 1) for field in fields.split(",")), time


def _same_line(new: str, old: str) -> bool:
    """The new line says what the old one said, its floats rounded to LOOP_STATUS_DECIMALS (and interval_s)."""
    (new_head, new_fields, new_time), (old_head, old_fields, old_time) = _fields(new), _fields(old)
    if (new_head, new_time, new_fields.pop("interval_s", None)) != (old_head, old_time, repr(STEP_S)):
        return False
    for key in LOOP_STATUS_FLOATS:
        if key in old_fields:  # the value the old line wrote, rounded as `format` rounds
            rounded = float(f"{float(old_fields.pop(key)):.{LOOP_STATUS_DECIMALS}f}")
            if key not in new_fields or float(new_fields.pop(key)) != rounded:
                return False
    return new_fields == old_fields


def whole_cycle(district: District, cycles: int) -> bool:
    """Time gather + tick + encode, new against baseline, on the same readings; print; True if they agree."""
    table = district.table
    states = {sid: StationState(sid) for sid in table.station_ids}
    for i, sid in enumerate(table.station_ids[::3]):  # a third of the stations polled over Modbus
        states[sid].last_success = T0 - 30.0 + (i % 20)
    sides = [Cycle(table, False, states), Cycle(table, True, states)]
    settle_heap()  # as `stationmon run` (and main() above) does
    agree = True
    for k in range(cycles + 1):
        readings = district.readings(k)
        now = T0 + k * STEP_S
        (old_inp, old_lines), (new_inp, new_lines) = (side.run(now, readings, timed=k > 0) for side in sides)
        agree = agree and _same_inputs(old_inp, new_inp) and len(new_lines) == len(old_lines)
        if k == cycles:  # every line of the last cycle, field by field (it takes a few seconds)
            agree = agree and all(map(_same_line, new_lines.lines(), old_lines))
    new = sides[1]
    print(
        f"whole cycle over {table.n_loops:,} loops (gather + tick + encode), median of {cycles} cycles;"
        " the baseline is the code before issue 15"
    )
    print(
        f"{'phase':<30}{'baseline ms':>12}{'new ms':>10}{'ratio':>8}{'  |':>4}"
        f"{'base CPU':>10}{'new CPU':>10}{'ratio':>8}"
    )
    for phase in (*PHASES, "cycle"):
        bw, nw = (statistics.median(side.wall[phase]) * 1000 for side in sides)
        bc, nc = (statistics.median(side.cpu[phase]) * 1000 for side in sides)
        print(f"{phase:<30}{bw:>12.1f}{nw:>10.1f}{bw / nw:>8.1f}{'  |':>4}{bc:>10.1f}{nc:>10.1f}{bc / nc:>8.1f}")
    bc, nc = (statistics.median(side.cpu["batches"]) * 1000 for side in sides)
    print(
        f"{'writer: batches + bodies':<30}{'':>30}{'  |':>4}{bc:>10.1f}{nc:>10.1f}{bc / nc:>8.1f}"
        f"   (cutting batches of {BATCH_SIZE:,} and their bodies, outside the cycle)"
    )
    n_read = len(district.readings(0))
    bi, ni = (statistics.median(side.cpu["ingest"]) / n_read * 1e9 for side in sides)
    print(
        f"{'ingest (CPU ns per reading)':<30}{bi:>12.0f}{ni:>10.0f}{bi / ni:>8.2f}"
        "   (keeping the arrays current costs this, outside the cycle)"
    )
    wall, cpu = (statistics.median(new.wall["cycle"]) * 1000, statistics.median(new.cpu["cycle"]) * 1000)
    verdict = "met" if wall < 100 else "MISSED"
    print(
        "inputs and lines agree with the baseline (lines: the same tags, time and fields, floats rounded to"
        f" {LOOP_STATUS_DECIMALS} decimals, but for the new interval_s): {agree}"
    )
    print(f"whole cycle < 100 ms: {verdict} (wall {wall:.1f} ms, CPU {cpu:.1f} ms; machine shared, see README)")
    return agree


# ----------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=100_000)
    ap.add_argument("--per-station", type=int, default=10)
    ap.add_argument("--ticks", type=int, default=15)
    ap.add_argument("--cycles", type=int, default=9, help="timed whole cycles (gather + tick + encode)")
    args = ap.parse_args()

    district = District(args.loops, args.per_station)
    table = district.table
    engine = RuleEngine(table, SETTINGS)
    book = AlertBook(SETTINGS)
    ticks = [district.inputs(k) for k in range(args.ticks + 1)]
    settle_heap()  # the garbage collector as `stationmon run` sets it once its service is built

    def vector_tick(inp: RuleInputs) -> tuple[Any, list[Any]]:
        held = engine.held_of(book)
        results = engine.evaluate(inp, held)
        events = book.advance(inp.now, results)
        return results, events

    vector_tick(ticks[0])  # warm up: numpy, caches, the alert book's first pending alerts
    times, cpu, n_events = [], [], 0
    for inp in ticks[1:]:
        t0, c0 = time.perf_counter(), time.process_time()
        _, events = vector_tick(inp)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        n_events += len(events)
    vec_ms, vec_cpu = statistics.median(times) * 1000, statistics.median(cpu) * 1000
    vec_min_ms, vec_min_cpu = min(times) * 1000, min(cpu) * 1000
    alerts = len(book)

    # the baseline: same ticks, same book type, plain Python; fewer ticks (it is slow), same state path
    plain = PlainEvaluator(table, CHECK_SETTINGS)
    plain_book = AlertBook(CHECK_SETTINGS)
    plain_ticks = min(3, args.ticks)
    plain_times, plain_cpu_times = [], []
    for k, inp in enumerate(ticks[: plain_ticks + 1]):
        t0, c0 = time.perf_counter(), time.process_time()
        statuses, req_supply, estimates, conds = plain.tick(inp)
        plain_book.update(inp.now, conds)
        if k:
            plain_times.append(time.perf_counter() - t0)
            plain_cpu_times.append(time.process_time() - c0)
    plain_ms, plain_cpu = statistics.median(plain_times) * 1000, statistics.median(plain_cpu_times) * 1000

    # agreement on the last baseline tick against a fresh vectorised engine that saw the same ticks
    check_engine = RuleEngine(table, CHECK_SETTINGS)
    for inp in ticks[:plain_ticks]:
        check_engine.evaluate(inp)
    check = check_engine.evaluate(ticks[plain_ticks])
    same_status = [STATUS_NAMES[c] for c in check.status.tolist()] == statuses
    same_conditions = set(check.conditions()) == set(conds)
    req = np.array(req_supply)
    est = np.array(estimates)
    close = bool(
        np.allclose(req, check.required_supply, equal_nan=True, atol=1e-9)
        and np.allclose(est, check.estimated_indoor, equal_nan=True, atol=1e-6)
    )
    counts = {name: int((check.status == i).sum()) for i, name in enumerate(STATUS_NAMES)}

    print(f"one tick over {table.n_loops:,} loops on {table.n_stations:,} stations; median of {len(times)} ticks")
    print(f"statuses: {counts}; alerts held: {alerts}; events over the timed ticks: {n_events}")
    print()
    # wall time (perf_counter) and process CPU time (process_time: less disturbed by other load)
    print(f"{'what':<58}{'ms/tick':>10}{'ratio':>9}{'  |':>4}{'CPU ms':>9}{'ratio':>8}")
    rows = (
        ("plain Python loop (baseline, same rules, same alert book)", plain_ms, plain_cpu),
        ("vectorised: model + rules + state machine (target < 50)", vec_ms, vec_cpu),
        ("  the same, fastest tick (least disturbed by other load)", vec_min_ms, vec_min_cpu),
    )
    for what, wall_ms, cpu_ms in rows:
        print(f"{what:<58}{wall_ms:>10.1f}{plain_ms / wall_ms:>9.1f}{'  |':>4}{cpu_ms:>9.1f}{plain_cpu / cpu_ms:>8.1f}")
    print()
    print(f"results agree: statuses {same_status}, conditions {same_conditions}, required/estimate {close}")
    print(f"target < 50 ms: {'met' if vec_ms < 50 else 'NOT met'}; speed-up x{plain_ms / vec_ms:.0f}")
    print()
    cycle_ok = whole_cycle(district, args.cycles)
    return 0 if same_status and same_conditions and close and cycle_ok else 1


if __name__ == "__main__":
    sys.exit(main())
