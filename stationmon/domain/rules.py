"""Loop rules: judge every loop of every station at once, from arrays of the latest values.

The caller (the evaluator) gathers the latest supply/return/flow/indoor values per loop and the
outdoor/primary values per station into `RuleInputs`; `RuleEngine.evaluate` returns `RuleResults`:
per loop a status, the required temperatures, the estimated indoor temperature, ΔT, and one `Check`
per rule (active, judged, value, threshold). `RuleResults.conditions()` turns the active checks into
the sparse `Condition`s the alert state machine takes.

What is judged when (CONTRACT section 5, DOMAIN.md):
- `station_offline`: always; no reading from the station for `offline_after`.
- `sensor_fault`: always while the station is online: collector-flagged values, out of physical
  range, PLC sentinels, flatline, implausible rate of change, supply below return with flow, primary
  supply below secondary supply. Loop sensors give a loop alert, station sensors (outdoor, primary)
  a station-level one.
- compliance rules (supply_low, return_low, indoor_estimate_low, indoor_low, delta_t_low,
  delta_t_high): only inside the heating season, only while the station is online, and only on the
  sensors they read being fresh and fault-free. `supply_low`/`return_low` still judge the fixed
  `min_supply`/`min_return` floor when the outdoor sensor is faulty (the floor does not read it).
  Outside the season they count as judged and clear, so alerts left firing at its end resolve.
Hysteresis: for keys with a pending or firing alert (`held`), a condition holds until the value is
`hysteresis` K past the threshold, so a loop hovering at the threshold does not flap.

Pure: no I/O, the time is `RuleInputs.now`. The engine keeps per-series state for flatline, rate of
change and the running mean of the outdoor temperature, all as arrays.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stationmon.domain.alerts import AlertKey, Condition
from stationmon.domain.heating import (
    FloatArray,
    estimate_indoor_temp,
    relative_load,
    running_mean_update,
)
from stationmon.domain.vocabulary import EMITTER_EXPONENTS

__all__ = [
    "FAULT_FLAGGED",
    "FAULT_FLATLINE",
    "FAULT_PRIMARY",
    "FAULT_RANGE",
    "FAULT_RATE",
    "FAULT_SENTINEL",
    "FAULT_SWAPPED",
    "INDOOR_MAX_AGE_S",
    "LOOP_RULES",
    "SENTINELS",
    "STATION_RULES",
    "STATUS_NAMES",
    "Check",
    "LoopTable",
    "RuleEngine",
    "RuleInputs",
    "RuleParams",
    "RuleResults",
    "SensorTracker",
    "Series",
    "describe_faults",
    "in_heating_season",
    "range_faults",
]

BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]
FaultArray = NDArray[np.uint16]

STATUS_NAMES = ("ok", "noncompliant", "sensor_fault", "offline", "unknown")
_OK, _NONCOMPLIANT, _SENSOR_FAULT, _OFFLINE, _UNKNOWN = range(5)

LOOP_RULES = (
    "supply_low",
    "return_low",
    "indoor_estimate_low",
    "indoor_low",
    "delta_t_low",
    "delta_t_high",
    "sensor_fault",
)
STATION_RULES = ("station_offline", "sensor_fault")
_COMPLIANCE = ("supply_low", "return_low", "indoor_estimate_low", "indoor_low")
_SEASONAL = (*_COMPLIANCE, "delta_t_low", "delta_t_high")  # judged only inside the heating season

FAULT_FLAGGED = 1  # the collector flagged it (NaN, decode error, its own checks)
FAULT_RANGE = 2  # outside the physical range
FAULT_SENTINEL = 4  # a value PLCs send for a broken probe
FAULT_FLATLINE = 8  # has not moved by more than the tolerance for the whole window
FAULT_RATE = 16  # changed faster than any real loop can
FAULT_SWAPPED = 32  # supply below return while water flows
FAULT_PRIMARY = 64  # primary supply below this secondary supply
_FAULT_TEXT = (
    (FAULT_FLAGGED, "flagged by the collector"),
    (FAULT_RANGE, "out of range"),
    (FAULT_SENTINEL, "sentinel value"),
    (FAULT_FLATLINE, "flatline"),
    (FAULT_RATE, "implausible rate of change"),
    (FAULT_SWAPPED, "supply below return with flow"),
    (FAULT_PRIMARY, "primary supply below secondary supply"),
)

SENTINELS = (-999.0, 32767.0, -32768.0, 850.0, 3276.7, -3276.8)
WATER_RANGE = (0.0, 130.0)
OUTDOOR_RANGE = (-50.0, 45.0)
INDOOR_RANGE = (-10.0, 45.0)
INDOOR_MAX_AGE_S = 3600.0  # household thermometers report rarely; older values do not count
SWAP_TOLERANCE_K = 0.2  # supply below return by more than sensor noise
PRIMARY_TOLERANCE_K = 0.5
MIN_FLOW = 0.05  # m³/h: less than this counts as no flow


def describe_faults(bits: int) -> str:
    """Human words for a fault bit set, e.g. "flatline, out of range"."""
    return ", ".join(text for bit, text in _FAULT_TEXT if bits & bit) or "ok"


def range_faults(values: FloatArray, lo: float, hi: float) -> FaultArray:
    """Sentinel and out-of-range bits per value (NaN gives FAULT_FLAGGED)."""
    v = np.asarray(values, dtype=np.float64)
    bits = np.zeros(v.shape, dtype=np.uint16)
    with np.errstate(invalid="ignore"):
        outside = np.flatnonzero((v < lo) | (v > hi) | np.isnan(v))
    if outside.size:
        # sentinels lie outside every physical range: only the few outside values need the test
        odd = v[outside]
        sentinel = np.zeros(odd.shape, dtype=bool)
        for s in SENTINELS:
            sentinel |= np.abs(odd - s) < 1e-3
        bits[outside] = np.where(np.isnan(odd), FAULT_FLAGGED, np.where(sentinel, FAULT_SENTINEL, FAULT_RANGE))
    return bits


def in_heating_season(now: float, timezone: str, start: tuple[int, int], end: tuple[int, int]) -> bool:
    """True if local date of `now` is within start..end (MM, DD), both inclusive; may wrap new year."""
    local = dt.datetime.fromtimestamp(now, zoneinfo.ZoneInfo(timezone))
    md = (local.month, local.day)
    if start <= end:
        return start <= md <= end
    return md >= start or md <= end


# ----------------------------------------------------------------------------------------------------
# Inputs


@dataclass(slots=True)
class Series:
    """Latest value of one quantity for many loops/stations/sensors; ts NaN: never read."""

    value: FloatArray
    ts: FloatArray
    flagged: BoolArray

    @classmethod
    def empty(cls, n: int) -> Series:
        """n series never read."""
        return cls(np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=bool))

    @classmethod
    def of(cls, value: Iterable[float], ts: Iterable[float], flagged: Iterable[bool] | None = None) -> Series:
        """From sequences (flagged defaults to all False)."""
        v = np.asarray(list(value) if not isinstance(value, np.ndarray) else value, dtype=np.float64)
        t = np.asarray(list(ts) if not isinstance(ts, np.ndarray) else ts, dtype=np.float64)
        f = np.zeros(v.shape, dtype=bool) if flagged is None else np.asarray(list(flagged), dtype=bool)
        return cls(v, t, f)

    def age(self, now: float) -> FloatArray:
        """Seconds since each value was read (inf if never)."""
        return np.where(np.isnan(self.ts), np.inf, now - self.ts)


@dataclass(frozen=True, slots=True, eq=False)
class LoopTable:
    """Static per-loop and per-station arrays, built once from the config."""

    station_ids: tuple[str, ...]
    districts: tuple[str, ...]
    loop_ids: tuple[str, ...]
    loop_station: IntArray
    design_supply: FloatArray
    design_return: FloatArray
    exponent: FloatArray
    min_supply: FloatArray  # NaN: no fixed floor
    min_return: FloatArray
    indoor_target: float = 18.0
    outdoor_design: float = -24.2
    design_indoor: float = 18.0
    loop_index: Mapping[tuple[str, str], int] = field(default_factory=dict)
    station_index: Mapping[str, int] = field(default_factory=dict)

    @property
    def n_loops(self) -> int:
        return len(self.loop_ids)

    @property
    def n_stations(self) -> int:
        return len(self.station_ids)

    @classmethod
    def build(
        cls,
        stations: Iterable[tuple[str, str]],
        loops: Iterable[tuple[str, str, float, float, float, float | None, float | None]],
        *,
        indoor_target: float = 18.0,
        outdoor_design: float = -24.2,
        design_indoor: float = 18.0,
    ) -> LoopTable:
        """From (station id, district) and (station id, loop id, design supply, design return,
        exponent, min supply, min return) rows."""
        st = list(stations)
        station_index = {sid: i for i, (sid, _) in enumerate(st)}
        rows = list(loops)
        return cls(
            station_ids=tuple(s for s, _ in st),
            districts=tuple(d for _, d in st),
            loop_ids=tuple(r[1] for r in rows),
            loop_station=np.array([station_index[r[0]] for r in rows], dtype=np.int64),
            design_supply=np.array([r[2] for r in rows], dtype=np.float64),
            design_return=np.array([r[3] for r in rows], dtype=np.float64),
            exponent=np.array([r[4] for r in rows], dtype=np.float64),
            min_supply=np.array([np.nan if r[5] is None else r[5] for r in rows], dtype=np.float64),
            min_return=np.array([np.nan if r[6] is None else r[6] for r in rows], dtype=np.float64),
            indoor_target=indoor_target,
            outdoor_design=outdoor_design,
            design_indoor=design_indoor,
            loop_index={(r[0], r[1]): i for i, r in enumerate(rows)},
            station_index=station_index,
        )

    @classmethod
    def from_config(cls, config: Any) -> LoopTable:
        """From a `stationmon.config.Config`."""
        return cls.build(
            ((s.id, s.district) for s in config.stations),
            (
                (
                    s.id,
                    lp.id,
                    lp.design_supply,
                    lp.design_return,
                    lp.exponent or EMITTER_EXPONENTS.get(lp.emitter, 1.3),
                    lp.min_supply,
                    lp.min_return,
                )
                for s in config.stations
                for lp in s.loops
            ),
            indoor_target=config.site.indoor_target,
            outdoor_design=config.site.outdoor_design,
            design_indoor=config.site.design_indoor,
        )

    def station_of(self, loop: int) -> str:
        """Station id of loop index `loop`."""
        return self.station_ids[int(self.loop_station[loop])]


@dataclass(slots=True)
class RuleInputs:
    """Everything one evaluation reads; loop arrays have n_loops entries, station ones n_stations."""

    now: float
    supply: Series
    return_: Series
    flow: Series
    outdoor: Series
    primary_supply: Series
    station_last_seen: FloatArray  # NaN: never
    indoor: Series = field(default_factory=lambda: Series.empty(0))
    indoor_loop: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    in_season: bool = True
    started_at: float | None = None  # a station never seen counts as seen then (for offline_after)


@dataclass(frozen=True, slots=True)
class RuleParams:
    """The numbers the rules use, taken from `stationmon.config.RulesSettings`."""

    enabled: frozenset[str]
    margin: Mapping[str, float]
    hysteresis: Mapping[str, float]
    offline_after_s: float = 60.0
    indoor_min_sensors: int = 1
    indoor_min_share: float = 0.0
    delta_t_low_ratio: float = 0.5
    delta_t_high_ratio: float = 2.0
    delta_t_low_min_expected: float = 2.0
    delta_t_high_min_expected: float = 2.0
    flatline_window_s: float = 1800.0
    flatline_tolerance: float = 0.05
    max_rate_per_min: float = 5.0
    outdoor_smoothing_s: float = 3600.0

    @classmethod
    def from_rules_config(cls, rules: Any) -> RuleParams:
        """From a `stationmon.config.RulesSettings`."""
        names = list(rules.rules)
        sf = rules.rule("sensor_fault")
        return cls(
            enabled=frozenset(n for n in names if rules.rule(n).enabled),
            margin={n: rules.rule(n).margin for n in names},
            hysteresis={n: rules.rule(n).hysteresis for n in names},
            offline_after_s=rules.offline_after_s,
            indoor_min_sensors=rules.rule("indoor_low").min_sensors,
            indoor_min_share=rules.rule("indoor_low").min_share,
            delta_t_low_ratio=rules.rule("delta_t_low").ratio,
            delta_t_high_ratio=rules.rule("delta_t_high").ratio,
            delta_t_low_min_expected=rules.rule("delta_t_low").min_expected_delta_t,
            delta_t_high_min_expected=rules.rule("delta_t_high").min_expected_delta_t,
            flatline_window_s=sf.flatline_window_s,
            flatline_tolerance=sf.flatline_tolerance,
            max_rate_per_min=sf.max_rate_per_min,
            outdoor_smoothing_s=rules.outdoor_smoothing_s,
        )


# ----------------------------------------------------------------------------------------------------
# Per-series state: flatline and rate of change


class SensorTracker:
    """Flatline and rate-of-change detection for n series, O(1) state per series.

    Flatline: the value has stayed within `tolerance` of an anchor for `window_s` (the anchor moves
    whenever a sample leaves that band), so max - min < 2 x tolerance over the window, seen in at least
    `MIN_FLAT_SAMPLES` samples with no gap longer than a quarter of the window: two readings either
    side of an outage are no evidence of a stuck sensor. Rate: the
    last step between two samples, spread over at least `RATE_WINDOW_S`, was faster than
    `max_rate_per_min`; it holds until the next sample.
    """

    def __init__(self, n: int, *, window_s: float, tolerance: float, max_rate_per_min: float | None) -> None:
        self.window_s = window_s
        self.tolerance = tolerance
        self.max_rate_per_min = max_rate_per_min
        self.last_value = np.full(n, np.nan)
        self.last_ts = np.full(n, np.nan)
        self.anchor = np.full(n, np.nan)
        self.anchor_ts = np.full(n, np.nan)
        self.rate_fault = np.zeros(n, dtype=bool)
        self.samples = np.zeros(n, dtype=np.int64)  # samples since the anchor was set
        self.max_gap_s = window_s / 4

    MIN_FLAT_SAMPLES = 4
    RATE_WINDOW_S = 60.0

    def update(self, value: FloatArray, ts: FloatArray, usable: BoolArray) -> FaultArray:
        """Take the latest samples (only newer ones change state); return flatline/rate bits."""
        with np.errstate(invalid="ignore", divide="ignore"):
            new = ~np.isnan(ts) & ~(ts <= self.last_ts)
            if self.max_rate_per_min is not None:
                step_s = ts - self.last_ts
                # over at least a minute: at a 1 s poll a 0.1 K step of an int16 x 0.1 probe is
                # 6 K/min between two samples, but only 0.1 K/min of real change
                rate = np.abs(value - self.last_value) / np.maximum(step_s, self.RATE_WINDOW_S) * 60.0
                jumped = usable & (step_s > 0) & (rate > self.max_rate_per_min)
                self.rate_fault = np.where(new, jumped, self.rate_fault)
            gap = ~(ts - self.last_ts <= self.max_gap_s)  # NaN (first sample) counts as a gap
            moved = new & (~usable | gap | np.isnan(self.anchor) | (np.abs(value - self.anchor) > self.tolerance))
            self.anchor = np.where(moved, np.where(usable, value, np.nan), self.anchor)
            self.anchor_ts = np.where(moved, ts, self.anchor_ts)
            self.samples = np.where(moved, 1, np.where(new, self.samples + 1, self.samples))
            self.last_value = np.where(new, np.where(usable, value, np.nan), self.last_value)
            self.last_ts = np.where(new, ts, self.last_ts)
            flat = (
                usable
                & ~np.isnan(self.anchor)
                & (ts - self.anchor_ts >= self.window_s)
                & (self.samples >= self.MIN_FLAT_SAMPLES)
            )
        bits = np.zeros(value.shape, dtype=np.uint16)
        bits[flat] |= FAULT_FLATLINE
        bits[self.rate_fault & usable] |= FAULT_RATE
        return bits


# ----------------------------------------------------------------------------------------------------
# Results


@dataclass(slots=True)
class Check:
    """One rule over every loop (or station): where it holds, where it was judged, value/threshold."""

    rule: str
    active: BoolArray
    judged: BoolArray
    value: FloatArray
    threshold: FloatArray

    @classmethod
    def off(cls, rule: str, n: int) -> Check:
        """A disabled rule: never judged."""
        z = np.zeros(n, dtype=bool)
        return cls(rule, z, z, np.full(n, np.nan), np.full(n, np.nan))


_QUANTITY_WORD = {"supply_low": "supply", "return_low": "return"}


@dataclass(slots=True)
class RuleResults:
    """One evaluation of every loop; `status` holds indexes into STATUS_NAMES."""

    table: LoopTable
    now: float
    in_season: bool
    status: NDArray[np.int8]
    outdoor: FloatArray  # smoothed, per loop
    supply: FloatArray  # the measured values judged (NaN where unusable)
    return_: FloatArray
    required_supply: FloatArray
    required_return: FloatArray
    estimated_indoor: FloatArray
    delta_t: FloatArray
    expected_delta_t: FloatArray
    supply_faults: FaultArray
    return_faults: FaultArray
    outdoor_faults: FaultArray  # per station
    primary_faults: FaultArray  # per station
    indoor_valid: IntArray
    indoor_low: IntArray
    curve_used: dict[str, BoolArray]  # supply_low/return_low: threshold from the curve (else the floor)
    loop_checks: dict[str, Check]
    station_checks: dict[str, Check]
    margins: Mapping[str, float] = field(default_factory=dict)

    def status_name(self, i: int) -> str:
        """Status word of loop i."""
        return STATUS_NAMES[int(self.status[i])]

    def compliant(self) -> NDArray[np.int8]:
        """Per loop: 1 compliant (ok), 0 not (noncompliant), -1 not judged."""
        return np.where(self.status == _OK, 1, np.where(self.status == _NONCOMPLIANT, 0, -1)).astype(np.int8)

    # -- to the alert state machine -----------------------------------------------------------------

    def conditions(self) -> dict[AlertKey, Condition]:
        """Every active check as a sparse {(rule, station, loop): Condition} (messages built lazily)."""
        out: dict[AlertKey, Condition] = {}
        t = self.table
        for rule, check in self.station_checks.items():
            for s in np.flatnonzero(check.active).tolist():
                out[(rule, t.station_ids[s], None)] = self._station_condition(rule, s, True)
        stations, loops, districts = t.station_ids, t.loop_ids, t.districts
        for rule, check in self.loop_checks.items():
            idx = np.flatnonzero(check.active)
            if not idx.size:
                continue
            # plain lists: indexing numpy arrays one element at a time costs more than the rest
            values = check.value[idx].tolist()
            thresholds = check.threshold[idx].tolist()
            owners = t.loop_station[idx].tolist()
            sensors = self._sensors_of(rule, idx)
            describe = self._loop_message
            fault = rule == "sensor_fault"
            for i, value, threshold, s, reads in zip(idx.tolist(), values, thresholds, owners, sensors, strict=True):
                out[(rule, stations[s], loops[i])] = Condition(
                    _nan_none(value) if fault else value,
                    None if fault else threshold,
                    "",
                    districts[s],
                    reads,
                    describe=partial(describe, rule, i, True),
                )
        return out

    def lookup(self, key: AlertKey) -> Condition | None:
        """The judged Condition of `key` (active or clear), None if not judged (or unknown key)."""
        rule, station, loop = key
        t = self.table
        if loop is None:
            s = t.station_index.get(station)
            check = self.station_checks.get(rule)
            if s is None or check is None or not check.judged[s]:
                return None
            return self._station_condition(rule, s, bool(check.active[s]))
        i = t.loop_index.get((station, loop))
        check = self.loop_checks.get(rule)
        if i is None or check is None or not check.judged[i]:
            return None
        value, threshold = float(check.value[i]), float(check.threshold[i])
        fault = rule == "sensor_fault"
        return Condition(
            _nan_none(value) if fault else value,
            None if fault else threshold,
            "",
            t.districts[int(t.loop_station[i])],
            self._sensors_of(rule, np.array([i]))[0],
            describe=partial(self._loop_message, rule, i, bool(check.active[i])),
        )

    def _sensors_of(self, rule: str, idx: IntArray) -> list[frozenset[str]]:
        """Per loop in `idx`: the sensors the rule read (sensor_fault: the faulty ones)."""
        if rule == "sensor_fault":
            codes = ((self.supply_faults[idx] != 0) * 1 + (self.return_faults[idx] != 0) * 2).tolist()
            return [_FAULT_SETS[c] for c in codes]
        if rule in ("supply_low", "return_low"):
            word = _QUANTITY_WORD[rule]
            used = self.curve_used.get(rule)
            with_curve, floor_only = frozenset({f"{word}_temp", "outdoor_temp"}), frozenset({f"{word}_temp"})
            if used is None:
                return [floor_only] * len(idx)
            return [with_curve if u else floor_only for u in used[idx].tolist()]
        return [_RULE_READS[rule]] * len(idx)

    def _station_condition(self, rule: str, s: int, active: bool) -> Condition:
        check = self.station_checks[rule]
        value, threshold = float(check.value[s]), float(check.threshold[s])
        district = self.table.districts[s]
        if rule == "station_offline":
            msg = (
                f"no reading for {_dur(value)} (offline after {_dur(threshold)})"
                if active
                else f"reading again (last {_dur(value)} ago)"
            )
            return Condition(value, threshold, msg, district)
        faults = {"outdoor_temp": int(self.outdoor_faults[s]), "primary_supply_temp": int(self.primary_faults[s])}
        bad = frozenset(q for q, b in faults.items() if b)
        msg = "; ".join(f"{q}: {describe_faults(b)}" for q, b in faults.items() if b) or "sensors ok"
        return Condition(_nan_none(value), None, msg, district, bad)

    def _loop_message(self, rule: str, i: int, active: bool) -> str:
        if not self.in_season and rule in _SEASONAL:
            return "outside the heating season"
        check = self.loop_checks[rule]
        value, threshold = float(check.value[i]), float(check.threshold[i])
        if rule == "sensor_fault":
            faults = {"supply_temp": int(self.supply_faults[i]), "return_temp": int(self.return_faults[i])}
            return "; ".join(f"{q}: {describe_faults(b)}" for q, b in faults.items() if b) or "sensors ok"
        outdoor = float(self.outdoor[i])
        if rule in ("supply_low", "return_low"):
            word = _QUANTITY_WORD[rule]
            used = self.curve_used.get(rule)
            if used is not None and used[i]:
                required = float(self.required_supply[i] if rule == "supply_low" else self.required_return[i])
                margin = self.margins.get(rule, 0.0)
                why = f"required {required:.1f} °C at outdoor {outdoor:.1f} °C less margin {margin:g} K"
            else:
                why = "the fixed minimum"
            verb = "below" if active else "back above"
            return f"{word} {value:.1f} °C {verb} {threshold:.1f} °C ({why})"
        if rule == "indoor_estimate_low":
            verb = "below" if active else "back above"
            return (
                f"estimated indoor {value:.1f} °C {verb} {threshold:.1f} °C "
                f"(supply/return {float(self.supply[i]):.1f}/{float(self.return_[i]):.1f} °C "
                f"at outdoor {outdoor:.1f} °C)"
            )
        if rule == "indoor_low":
            n_low, n = int(self.indoor_low[i]), int(self.indoor_valid[i])
            return f"{n_low} of {n} indoor sensors below {threshold:.1f} °C (lowest {value:.1f} °C)"
        expected = float(self.expected_delta_t[i])
        if rule == "delta_t_low":
            what = "below" if active else "back above"
            return f"ΔT {value:.1f} K {what} {threshold:.1f} K (expected {expected:.1f} K: overflow or bypass)"
        what = "above" if active else "back below"
        return f"ΔT {value:.1f} K {what} {threshold:.1f} K (expected {expected:.1f} K: too little flow)"


_WATER_AND_OUTDOOR = frozenset({"supply_temp", "return_temp", "outdoor_temp"})
_RULE_READS = {
    "indoor_estimate_low": _WATER_AND_OUTDOOR,
    "indoor_low": frozenset({"indoor_temp"}),
    "delta_t_low": _WATER_AND_OUTDOOR,
    "delta_t_high": _WATER_AND_OUTDOOR,
}
_FAULT_SETS: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset({"supply_temp"}),
    frozenset({"return_temp"}),
    frozenset({"supply_temp", "return_temp"}),
)


def _nan_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def _dur(seconds: float) -> str:
    if math.isinf(seconds) or math.isnan(seconds):
        return "ever"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


# ----------------------------------------------------------------------------------------------------
# The engine


class RuleEngine:
    """Evaluates every rule over every loop; keeps the per-series state between evaluations."""

    def __init__(self, table: LoopTable, params: RuleParams) -> None:
        self.table = table
        self.params = params
        p = params
        n, ns = table.n_loops, table.n_stations
        kw: dict[str, Any] = {"window_s": p.flatline_window_s, "tolerance": p.flatline_tolerance}
        self.supply_tracker = SensorTracker(n, max_rate_per_min=p.max_rate_per_min, **kw)
        self.return_tracker = SensorTracker(n, max_rate_per_min=p.max_rate_per_min, **kw)
        self.outdoor_tracker = SensorTracker(ns, max_rate_per_min=p.max_rate_per_min, **kw)
        self.outdoor_mean = np.full(ns, np.nan)
        self.outdoor_mean_ts = np.full(ns, np.nan)

    # -- smoothing state survives restarts through the evaluator's state file ------------------------

    def smoothing_state(self) -> dict[str, list[float | None]]:
        """Running mean of the outdoor temperature per station, JSON-able."""
        return {
            sid: [_nan_none(float(m)), _nan_none(float(t))]
            for sid, m, t in zip(self.table.station_ids, self.outdoor_mean, self.outdoor_mean_ts, strict=True)
            if not math.isnan(m)
        }

    def load_smoothing_state(self, data: Mapping[str, Any]) -> None:
        """Restore what `smoothing_state` returned (unknown stations and bad entries are skipped)."""
        for sid, pair in data.items():
            s = self.table.station_index.get(sid)
            try:
                mean, ts = float(pair[0]), float(pair[1])
            except (TypeError, ValueError, IndexError):
                continue
            if s is not None and math.isfinite(mean) and math.isfinite(ts):
                self.outdoor_mean[s], self.outdoor_mean_ts[s] = mean, ts

    def held_masks(self, keys: Iterable[AlertKey]) -> dict[str, BoolArray]:
        """Boolean masks per rule of the loops whose alert is pending or firing."""
        index = self.table.loop_index
        by_rule: dict[str, list[int]] = {}
        for rule, station, loop in keys:
            if loop is not None:
                i = index.get((station, loop))
                if i is not None:
                    by_rule.setdefault(rule, []).append(i)
        masks: dict[str, BoolArray] = {}
        for rule, found in by_rule.items():
            mask = masks[rule] = np.zeros(self.table.n_loops, dtype=bool)
            mask[np.array(found, dtype=np.int64)] = True
        return masks

    def evaluate(self, inp: RuleInputs, held: Mapping[str, BoolArray] | None = None) -> RuleResults:
        """Judge every loop and station now."""
        t, p = self.table, self.params
        held = held or {}
        now = inp.now
        n, ns = t.n_loops, t.n_stations
        st = t.loop_station
        fresh_after = p.offline_after_s

        # -- stations: offline, outdoor and primary sensors ------------------------------------------
        last_seen = np.asarray(inp.station_last_seen, dtype=np.float64)
        if inp.started_at is not None:
            last_seen = np.where(np.isnan(last_seen), inp.started_at, last_seen)
        station_age = np.where(np.isnan(last_seen), np.inf, now - last_seen)
        offline = station_age > p.offline_after_s
        offline_check = Check(
            "station_offline",
            offline.copy(),
            np.ones(ns, dtype=bool),
            station_age,
            np.full(ns, p.offline_after_s),
        )
        outdoor = inp.outdoor
        outdoor_fresh = outdoor.age(now) <= fresh_after
        outdoor_bits = range_faults(outdoor.value, *OUTDOOR_RANGE)
        outdoor_bits[outdoor.flagged] |= FAULT_FLAGGED
        outdoor_bits |= self.outdoor_tracker.update(outdoor.value, outdoor.ts, outdoor_bits == 0)
        outdoor_bits[~outdoor_fresh] = 0  # stale: unknown, not faulty
        outdoor_ok = outdoor_fresh & (outdoor_bits == 0)
        self.outdoor_mean, self.outdoor_mean_ts = running_mean_update(
            self.outdoor_mean,
            self.outdoor_mean_ts,
            np.where(outdoor_ok, outdoor.value, np.nan),
            outdoor.ts,
            p.outdoor_smoothing_s,
        )
        outdoor_smooth_st = np.where(outdoor_ok, self.outdoor_mean, np.nan)

        # -- loops: water sensors --------------------------------------------------------------------
        sup, ret, flow = inp.supply, inp.return_, inp.flow
        sup_fresh = sup.age(now) <= fresh_after
        ret_fresh = ret.age(now) <= fresh_after
        sup_bits = range_faults(sup.value, *WATER_RANGE)
        ret_bits = range_faults(ret.value, *WATER_RANGE)
        sup_bits[sup.flagged] |= FAULT_FLAGGED
        ret_bits[ret.flagged] |= FAULT_FLAGGED
        sup_bits |= self.supply_tracker.update(sup.value, sup.ts, sup_bits == 0)
        ret_bits |= self.return_tracker.update(ret.value, ret.ts, ret_bits == 0)
        with np.errstate(invalid="ignore"):
            flow_known = (flow.age(now) <= fresh_after) & ~flow.flagged & ~np.isnan(flow.value)
            # constant-flow plants often have no flow meter: unknown flow counts as flowing
            flowing = ~flow_known | (flow.value > MIN_FLOW)
            delta_t = sup.value - ret.value
            both = sup_fresh & ret_fresh & (sup_bits == 0) & (ret_bits == 0)
            swapped = both & flowing & (delta_t < -SWAP_TOLERANCE_K)
            prim = inp.primary_supply
            prim_fresh = prim.age(now) <= fresh_after
            prim_bits = range_faults(prim.value, *WATER_RANGE)
            prim_bits[prim.flagged] |= FAULT_FLAGGED
            prim_bits[~prim_fresh] = 0
            prim_ok = (prim_fresh & (prim_bits == 0))[st]
            below_primary = prim_ok & sup_fresh & (sup_bits == 0) & (prim.value[st] < sup.value - PRIMARY_TOLERANCE_K)
        sup_bits[swapped] |= FAULT_SWAPPED
        ret_bits[swapped] |= FAULT_SWAPPED
        sup_bits[below_primary] |= FAULT_PRIMARY
        sup_bits[~sup_fresh] = 0
        ret_bits[~ret_fresh] = 0
        sup_ok = sup_fresh & (sup_bits == 0)
        ret_ok = ret_fresh & (ret_bits == 0)
        loop_offline = offline[st]
        online = ~loop_offline
        season = inp.in_season

        # -- heating model: one vectorised pass ------------------------------------------------------
        t_o = outdoor_smooth_st[st]
        q = relative_load(
            t_o, indoor_target=t.indoor_target, outdoor_design=t.outdoor_design, design_indoor=t.design_indoor
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            base = t.indoor_target + (0.5 * (t.design_supply + t.design_return) - t.design_indoor) * np.power(
                q, 1.0 / t.exponent
            )
            expected_dt = (t.design_supply - t.design_return) * q
        req_supply = base + 0.5 * expected_dt
        req_return = base - 0.5 * expected_dt
        water_ok = sup_ok & ret_ok
        est_in = np.where(
            water_ok & ~np.isnan(t_o),
            estimate_indoor_temp(
                np.where(water_ok, sup.value, np.nan),
                np.where(water_ok, ret.value, np.nan),
                t_o,
                t.design_supply,
                t.design_return,
                t.exponent,
                outdoor_design=t.outdoor_design,
                design_indoor=t.design_indoor,
            ),
            np.nan,
        )

        def enabled(rule: str) -> bool:
            return rule in p.enabled

        def hyst(rule: str) -> FloatArray | float:
            mask = held.get(rule)
            return 0.0 if mask is None else np.where(mask, p.hysteresis.get(rule, 0.0), 0.0)

        checks: dict[str, Check] = {}
        curve_used: dict[str, BoolArray] = {}
        judge = season & online

        # supply_low / return_low: the curve minus margin, or the fixed floor, whichever is higher
        for rule, value, value_ok, required, floor in (
            ("supply_low", sup.value, sup_ok, req_supply, t.min_supply),
            ("return_low", ret.value, ret_ok, req_return, t.min_return),
        ):
            if not enabled(rule):
                checks[rule] = Check.off(rule, n)
                continue
            with np.errstate(invalid="ignore"):
                threshold = np.fmax(required - p.margin.get(rule, 1.0), floor)
                judged = judge & value_ok & ~np.isnan(threshold)
                active = judged & (value < threshold + hyst(rule))
                # the threshold came from the curve (reads outdoor_temp), not from the fixed floor
                curve_used[rule] = ~np.isnan(required) & ~(threshold > required - p.margin.get(rule, 1.0))
            checks[rule] = Check(rule, active, judged, np.asarray(value, dtype=np.float64), threshold)
        rule = "indoor_estimate_low"
        if enabled(rule):
            threshold = np.full(n, t.indoor_target - p.margin.get(rule, 1.0))
            judged = judge & ~np.isnan(est_in)
            with np.errstate(invalid="ignore"):
                active = judged & (est_in < threshold + hyst(rule))
            checks[rule] = Check(rule, active, judged, est_in, threshold)
        else:
            checks[rule] = Check.off(rule, n)

        rule = "indoor_low"
        indoor_valid = np.zeros(n, dtype=np.int64)
        indoor_low = np.zeros(n, dtype=np.int64)
        if enabled(rule):
            threshold = np.full(n, t.indoor_target - p.margin.get(rule, 1.0))
            ind, il = inp.indoor, inp.indoor_loop
            ind_bits = range_faults(ind.value, *INDOOR_RANGE)
            ind_ok = (ind.age(now) <= INDOOR_MAX_AGE_S) & (ind_bits == 0) & ~ind.flagged
            h = hyst(rule)
            sensor_thr = threshold[il] + (h[il] if isinstance(h, np.ndarray) else h)
            with np.errstate(invalid="ignore"):
                low = ind_ok & (ind.value < sensor_thr)
            indoor_valid = np.bincount(il[ind_ok], minlength=n).astype(np.int64)
            indoor_low = np.bincount(il[low], minlength=n).astype(np.int64)
            lowest = np.full(n, np.inf)
            np.minimum.at(lowest, il[ind_ok], ind.value[ind_ok])
            lowest[np.isinf(lowest)] = np.nan
            judged = judge & (indoor_valid > 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                share_ok = (p.indoor_min_share <= 0.0) | (
                    indoor_low / np.maximum(indoor_valid, 1) >= p.indoor_min_share
                )
            active = judged & (indoor_low >= p.indoor_min_sensors) & share_ok
            checks[rule] = Check(rule, active, judged, lowest, threshold)
        else:
            checks[rule] = Check.off(rule, n)

        for rule, ratio, min_expected, low in (
            ("delta_t_low", p.delta_t_low_ratio, p.delta_t_low_min_expected, True),
            ("delta_t_high", p.delta_t_high_ratio, p.delta_t_high_min_expected, False),
        ):
            if not enabled(rule):
                checks[rule] = Check.off(rule, n)
                continue
            threshold = ratio * expected_dt
            with np.errstate(invalid="ignore"):
                judged = judge & water_ok & flowing & ~np.isnan(expected_dt) & (expected_dt >= min_expected)
                if low:
                    active = judged & (delta_t < threshold + hyst(rule))
                else:
                    active = judged & (delta_t > threshold - hyst(rule))
            checks[rule] = Check(rule, active, judged, delta_t, threshold)

        # sensor faults: judged while the station is online (a dead station is station_offline)
        loop_fault = online & ((sup_bits != 0) | (ret_bits != 0))
        station_fault = ~offline & ((outdoor_bits != 0) | (prim_bits != 0))
        if enabled("sensor_fault"):
            checks["sensor_fault"] = Check(
                "sensor_fault",
                loop_fault,
                online.copy(),
                np.where(sup_bits != 0, sup.value, np.where(ret_bits != 0, ret.value, np.nan)),
                np.full(n, np.nan),
            )
            station_sf = Check(
                "sensor_fault",
                station_fault,
                ~offline,
                np.where(outdoor_bits != 0, outdoor.value, np.where(prim_bits != 0, prim.value, np.nan)),
                np.full(ns, np.nan),
            )
        else:
            checks["sensor_fault"] = Check.off("sensor_fault", n)
            station_sf = Check.off("sensor_fault", ns)
        if not enabled("station_offline"):
            offline_check = Check.off("station_offline", ns)

        if not season:
            # the season is over: compliance conditions are gone (judged clear), so alerts still
            # firing from the season resolve after clear_for instead of lasting all summer
            for rule in _SEASONAL:
                if rule in p.enabled:
                    checks[rule].judged = online.copy()

        # -- status: offline > sensor_fault > noncompliant > unknown > ok ----------------------------
        noncompliant = np.zeros(n, dtype=bool)
        for rule in _COMPLIANCE:
            noncompliant |= checks[rule].active
        curve_inputs_ok = sup_ok & ret_ok & ~np.isnan(t_o)
        status = np.full(n, _OK, dtype=np.int8)
        status[~(season & curve_inputs_ok)] = _UNKNOWN
        status[noncompliant] = _NONCOMPLIANT
        status[online & ((sup_bits != 0) | (ret_bits != 0) | (outdoor_bits != 0)[st])] = _SENSOR_FAULT
        status[loop_offline] = _OFFLINE

        return RuleResults(
            table=t,
            now=now,
            in_season=season,
            status=status,
            outdoor=t_o,
            supply=np.where(sup_ok, sup.value, np.nan),
            return_=np.where(ret_ok, ret.value, np.nan),
            required_supply=req_supply,
            required_return=req_return,
            estimated_indoor=est_in,
            delta_t=np.where(sup_ok & ret_ok, delta_t, np.nan),
            expected_delta_t=expected_dt,
            supply_faults=sup_bits,
            return_faults=ret_bits,
            outdoor_faults=outdoor_bits,
            primary_faults=prim_bits,
            indoor_valid=indoor_valid,
            indoor_low=indoor_low,
            curve_used=curve_used,
            loop_checks=checks,
            station_checks={"station_offline": offline_check, "sensor_fault": station_sf},
            margins=dict(p.margin),
        )
