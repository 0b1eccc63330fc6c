"""The rule engine: facts once per evaluation, then every rule of the table, then each loop's verdict.

`station_offline` is always judged, `sensor_fault` while the station is online, the seasonal rules
only in season, online and on fresh, fault-free sensors (`supply_low`/`return_low` still judge their
fixed floor without an outdoor sensor). Out of season they count as judged and clear, so alerts left
firing at its end resolve. Per-series state (flatline, rate, running means) is kept as arrays.

Verdict: with at least `indoor_low.min_sensors` fresh household sensors a loop is `noncompliant` only
when `indoor_low` holds (the law judges the flats); otherwise the water-model rules decide.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from stationmon.domain import heating
from stationmon.domain.alerts import AlertBook, AlertKey
from stationmon.domain.heating import FloatArray
from stationmon.domain.plant import Setback
from stationmon.domain.rules.checks import INDOOR_MAX_AGE_S, Check, IndoorFacts, LoopFacts, StationFacts
from stationmon.domain.rules.faults import (
    FAULT_FLAGGED,
    FAULT_PRIMARY,
    FAULT_STALE,
    FAULT_SWAPPED,
    BoolArray,
    FaultArray,
    IntArray,
    SensorTracker,
    quantity_faults,
)
from stationmon.domain.rules.inputs import (
    LoopTable,
    RuleInputs,
    Series,
    local_minute,
    reading_age,
    station_online,
)
from stationmon.domain.rules.results import STATUS_CODES, RuleResults, _nan_none
from stationmon.domain.rules.table import LOOP_RULE_TABLE, STATION_RULE_TABLE
from stationmon.domain.settings import RulesSettings
from stationmon.domain.vocabulary import RULE_NAMES, SEASONAL_RULES, VERDICTS, WATER_MODEL_RULES

__all__ = ["PRIMARY_TOLERANCE_K", "STATION_HELD", "SWAP_TOLERANCE_K", "RuleEngine"]

SWAP_TOLERANCE_K = 0.2  # supply below return by more than sensor noise
PRIMARY_TOLERANCE_K = 0.5
STATION_HELD = "station:"  # prefix of the held masks of station-level rules
_NONE, _ESTIMATE, _SENSORS = (VERDICTS.index(v) for v in ("none", "estimate", "sensors"))


def _station_runs(loop_station: IntArray) -> tuple[IntArray, IntArray] | None:
    """Where each station's loops start and the station, if the loops are listed station by station (as the
    configuration lists them): per-station reductions are then one `reduceat`. None otherwise."""
    st = loop_station
    if not st.size or bool(np.any(st[1:] < st[:-1])):
        return None
    starts = np.flatnonzero(np.concatenate(([True], st[1:] != st[:-1])))
    return starts, st[starts]


def _sensor_faults(series: Series, quantity: str) -> FaultArray:
    bits = quantity_faults(series.value, quantity)
    bits[series.flagged] |= FAULT_FLAGGED
    return bits


class RuleEngine:
    """Evaluates every rule over every loop; keeps the per-series state between evaluations."""

    def __init__(self, table: LoopTable, settings: RulesSettings) -> None:
        self.table = table
        self.settings = settings
        self.rules = {name: settings.rule(name) for name in RULE_NAMES}
        self.fresh_s = self.rules["sensor_fault"].stale_after_s or settings.offline_after_s
        n, ns = table.n_loops, table.n_stations
        self.supply_tracker = self._tracker("supply_temp", n)
        self.return_tracker = self._tracker("return_temp", n)
        self.outdoor_tracker = self._tracker("outdoor_temp", ns)
        self.outdoor_mean = np.full(ns, np.nan)
        self.outdoor_mean_ts = np.full(ns, np.nan)
        self.water_mean = {q: (np.full(n, np.nan), np.full(n, np.nan)) for q in ("supply", "return")}
        self.setback_mean = np.full(ns, np.nan)
        self.setback_mean_ts = np.full(ns, np.nan)
        self._setback_k = np.zeros(ns)  # per station, this evaluation's (smoothed) setback
        self.min_flow = np.fmax(settings.min_flow, settings.min_flow_share * table.design_flow)
        self._setback_groups = self._group_setbacks()
        site = {"indoor_target": table.indoor_target, "outdoor_design": table.outdoor_design}
        self._design = heating.Design.of(
            table.design_supply, table.design_return, table.exponent, design_indoor=table.design_indoor, **site
        )
        self._held_keys: set[AlertKey] = set()  # the keys of the last `held_masks`, and their masks
        self._held: dict[str, BoolArray] = {}
        self._station_runs = _station_runs(table.loop_station)
        # per station: since when it answers (NaN: offline; -inf: since before the first evaluation)
        self._answering_since = np.full(ns, -np.inf)

    def _tracker(self, quantity: str, n: int) -> SensorTracker:
        """Flatline tolerance from the point (its own, or its register's step if coarser); the window grows
        with the tolerance: a probe that shows only 0.1 K steps needs twice as long to prove it is stuck."""
        sf = self.rules["sensor_fault"]
        tolerance: float | FloatArray = sf.flatline_tolerance
        window: float | FloatArray = sf.flatline_window_s
        facts = self.table.points.get(quantity)
        if facts is not None and len(facts.configured) == n:
            tol = np.where(
                np.isnan(facts.tolerance), np.maximum(sf.flatline_tolerance, facts.resolution), facts.tolerance
            )
            if sf.flatline_tolerance > 0:
                window = sf.flatline_window_s * np.maximum(1.0, tol / sf.flatline_tolerance)
            tolerance = tol
        return SensorTracker(n, window_s=window, tolerance=tolerance, max_rate_per_min=sf.max_rate_per_min)

    def _group_setbacks(self) -> list[tuple[tuple[Setback, ...], IntArray]]:
        """Stations by the setbacks they follow (their own, else the site-wide ones): few groups."""
        groups: dict[tuple[Setback, ...], list[int]] = {}
        own = self.table.station_setbacks or (None,) * self.table.n_stations
        for s, setbacks in enumerate(own):
            groups.setdefault(self.settings.setbacks if setbacks is None else setbacks, []).append(s)
        return [(sb, np.array(idx, dtype=np.int64)) for sb, idx in groups.items() if sb]

    # -- smoothing state survives restarts through the evaluator's state file ------------------------

    def smoothing_state(self) -> dict[str, list[float | None]]:
        """Running mean of the outdoor temperature per station, JSON-able."""
        return {
            sid: [_nan_none(float(m)), _nan_none(float(t))]
            for sid, m, t in zip(self.table.station_ids, self.outdoor_mean, self.outdoor_mean_ts, strict=True)
            if not math.isnan(m)
        }

    def load_smoothing_state(self, data: Mapping[str, object]) -> None:
        """Restore what `smoothing_state` returned (unknown stations and bad entries are skipped)."""
        for sid, pair in data.items():
            s = self.table.station_index.get(sid)
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                continue
            try:
                mean, ts = float(pair[0]), float(pair[1])
            except (TypeError, ValueError):
                continue
            if s is not None and math.isfinite(mean) and math.isfinite(ts):
                self.outdoor_mean[s], self.outdoor_mean_ts[s] = mean, ts

    def held_masks(self, keys: Iterable[AlertKey]) -> dict[str, BoolArray]:
        """Boolean masks per rule of the loops (station rules: `STATION_HELD` + rule) whose alert is held.

        The held keys change by a few per evaluation: only the keys added or dropped since the last call
        are looked up; the masks returned are copies."""
        keys = set(keys)
        for key in self._held_keys - keys:
            self._mark_held(key, False)
        for key in keys - self._held_keys:
            self._mark_held(key, True)
        self._held_keys = keys
        return {rule: mask.copy() for rule, mask in self._held.items() if mask.any()}

    def held_of(self, book: AlertBook) -> dict[str, BoolArray]:
        """`held_masks` of the book's held alerts, from its index of them by loop where it has one."""
        indexed = book.held_loops(self.table)
        return self.held_masks(book.held_keys()) if indexed is None else self.held_masks_of(*indexed)

    def held_masks_of(self, loops: Mapping[str, BoolArray], others: Iterable[AlertKey]) -> dict[str, BoolArray]:
        """`held_masks` of the keys whose alerts `AlertBook.held_loops` gives: `loops`, per loop rule its
        mask of held loops of this table, and the `others`, keys of station rules (or unknown loops)."""
        self._held_keys, self._held = set(others), {}
        for key in self._held_keys:
            self._mark_held(key, True)
        out = {rule: mask.copy() for rule, mask in self._held.items() if mask.any()}
        # (the others are never of a loop rule at a known loop: those are in `loops`; the next
        # `held_masks` starts from the others, the loops' keys were not kept)
        out.update((rule, mask) for rule, mask in loops.items() if mask.any())
        return out

    def _mark_held(self, key: AlertKey, held: bool) -> None:
        """Set or clear one key's element in its rule's mask (unknown stations and loops are skipped)."""
        t = self.table
        rule, station, loop = key
        i = t.station_index.get(station) if loop is None else t.loop_index.get((station, loop))
        if i is None:
            return
        name = rule if loop is not None else STATION_HELD + rule
        mask = self._held.get(name)
        if mask is None:
            mask = self._held[name] = np.zeros(t.n_loops if loop is not None else t.n_stations, dtype=bool)
        mask[i] = held

    def evaluate(self, inp: RuleInputs, held: Mapping[str, BoolArray] | None = None) -> RuleResults:
        """Judge every loop and station now."""
        n, ns = self.table.n_loops, self.table.n_stations
        minute = local_minute(inp.now, self.table.timezone)
        stations = self._station_facts(inp, held or {}, minute)
        loops, stations = self._loop_facts(inp, stations, held or {})
        loop_checks = {
            name: rule.judge(loops, self.rules[name]) if self.rules[name].enabled else Check.off(name, n)
            for name, rule in LOOP_RULE_TABLE.items()
        }
        station_checks = {
            name: rule.judge(stations, self.rules[name]) if self.rules[name].enabled else Check.off(name, ns)
            for name, rule in STATION_RULE_TABLE.items()
        }
        if not inp.in_season:
            # the season is over: its conditions are gone (judged clear), so alerts still firing from
            # the season resolve after clear_for instead of lasting all summer
            for checks, online in ((loop_checks, loops.online), (station_checks, ~stations.offline)):
                for rule in SEASONAL_RULES & checks.keys():
                    if self.rules[rule].enabled:
                        checks[rule].judged = online.copy()
        status, verdict = self._judgement(loops, stations, loop_checks)
        excluded = any(w.contains(minute) for w in self.table.inspection_exclude)
        return RuleResults(
            table=self.table,
            now=inp.now,
            in_season=inp.in_season,
            status=status,
            loops=loops,
            stations=stations,
            loop_checks=loop_checks,
            station_checks=station_checks,
            delta_t=np.where(loops.supply_ok & loops.return_ok, loops.delta_t, np.nan),
            verdict=verdict,
            inspection_hour=not excluded,
        )

    def _judge_series(
        self, series: Series, quantity: str, online: BoolArray, inp: RuleInputs, tracker: SensorTracker | None
    ) -> tuple[FaultArray, BoolArray]:
        """Fault bits (stale where configured or once seen, the station answering) and where usable."""
        seen = ~np.isnan(series.ts)
        # never read anywhere (no such meter on the plant): nothing is fresh, so only staleness counts
        bits = _sensor_faults(series, quantity) if seen.any() else np.zeros(len(seen), dtype=np.uint16)
        if tracker is not None:
            bits |= tracker.update(series.value, series.ts, bits == 0)
        with np.errstate(invalid="ignore"):
            young = inp.now - series.ts <= self.fresh_s  # False where never read
        if inp.started_at is not None and inp.now - inp.started_at <= self.fresh_s:
            young |= ~seen  # a point never read counts from the start, like a station never seen
        fresh = seen & young
        facts = self.table.points.get(quantity)
        expected = seen if facts is None or len(facts.configured) != len(seen) else seen | facts.configured
        stale = ~young & expected & online
        bits = np.where(stale, FAULT_STALE, bits * fresh).astype(np.uint16, copy=False)
        return bits, fresh & (bits == 0)

    def _setbacks(self, minute: int, now: float) -> tuple[BoolArray, FloatArray]:
        """Per station: a setback on now, and its kelvin smoothed like the water it lowers."""
        kelvin = np.zeros(self.table.n_stations)
        for setbacks, idx in self._setback_groups:
            kelvin[idx] = max((sb.kelvin for sb in setbacks if sb.window.contains(minute)), default=0.0)
        # the water follows a setback with its own lag: judged on running means, the required
        # temperatures must follow at the same pace, or every setback's end would look like a shortfall
        self.setback_mean, self.setback_mean_ts = heating.running_mean_update(
            self.setback_mean, self.setback_mean_ts, kelvin, np.full(len(kelvin), now), self.settings.water_smoothing_s
        )
        return kelvin > 0.0, np.nan_to_num(self.setback_mean)

    def _answering(self, online: BoolArray, now: float) -> BoolArray:
        """Where a station answers and has for longer than `fresh_s`: only there is a point stale.

        A station back from an outage answers first on one channel (a household sensor over MQTT, a
        gateway) and its PLC's next poll may come a backoff later: until a poll after the return has had
        its chance, the points not read since are unusable but not stale (like the startup grace)."""
        since = self._answering_since
        since[~online] = np.nan
        since[online & np.isnan(since)] = now
        return online & (now - since > self.fresh_s)

    def _station_facts(self, inp: RuleInputs, held: Mapping[str, BoolArray], minute: int) -> StationFacts:
        """Offline stations, outdoor and primary sensor faults, the outdoor running mean, setbacks."""
        now, offline_after_s = inp.now, self.settings.offline_after_s
        last_seen = np.asarray(inp.station_last_seen, dtype=np.float64)
        if inp.started_at is not None:
            last_seen = np.where(np.isnan(last_seen), inp.started_at, last_seen)
        online = station_online(last_seen, now, offline_after_s)
        answering = self._answering(online, now)
        outdoor = inp.outdoor
        outdoor_bits, outdoor_ok = self._judge_series(outdoor, "outdoor_temp", answering, inp, self.outdoor_tracker)
        self.outdoor_mean, self.outdoor_mean_ts = heating.running_mean_update(
            self.outdoor_mean,
            self.outdoor_mean_ts,
            np.where(outdoor_ok, outdoor.value, np.nan),
            outdoor.ts,
            self.settings.outdoor_smoothing_s,
        )
        prim_bits, prim_ok = self._judge_series(inp.primary_supply, "primary_supply_temp", answering, inp, None)
        setback_on, self._setback_k = self._setbacks(minute, now)
        n = len(STATION_HELD)
        return StationFacts(
            age=reading_age(last_seen, now),
            offline=~online,
            offline_after_s=offline_after_s,
            judge=inp.in_season & online,
            outdoor=outdoor.value,
            outdoor_faults=outdoor_bits,
            outdoor_smooth=np.where(outdoor_ok, self.outdoor_mean, np.nan),
            primary=inp.primary_supply.value,
            primary_faults=prim_bits,
            primary_ok=prim_ok,
            setback=setback_on,
            answering=answering,
            held={k[n:]: v for k, v in held.items() if k.startswith(STATION_HELD)},
        )

    def _circulation(
        self, inp: RuleInputs, online: BoolArray
    ) -> tuple[FaultArray, BoolArray, FaultArray, BoolArray, Series, BoolArray]:
        """Flow and pump status: fault bits and usability of each, the pump series, and where water flows."""
        n = self.table.n_loops
        pump = inp.pump_running if inp.pump_running is not None else Series.empty(n)
        flow_bits, flow_ok = self._judge_series(inp.flow, "flow", online, inp, None)
        pump_bits, pump_ok = self._judge_series(pump, "pump_running", online, inp, None)
        with np.errstate(invalid="ignore"):
            standing = (flow_ok & (inp.flow.value < self.min_flow)) | (pump_ok & (pump.value < 0.5))
        # constant-flow plants often have neither meter nor pump status: unknown counts as flowing
        return flow_bits, flow_ok, pump_bits, pump_ok, pump, ~standing

    def _water(
        self, inp: RuleInputs, online: BoolArray, flowing: BoolArray, stations: StationFacts
    ) -> tuple[FaultArray, FaultArray, BoolArray, BoolArray, BoolArray]:
        """Supply and return fault bits, where each is usable, and the loops whose supply is above the primary."""
        st = self.table.loop_station
        sup, ret = inp.supply, inp.return_
        sup_bits, sup_ok = self._judge_series(sup, "supply_temp", online, inp, self.supply_tracker)
        ret_bits, ret_ok = self._judge_series(ret, "return_temp", online, inp, self.return_tracker)
        below_primary = np.zeros(len(st), dtype=bool)
        with np.errstate(invalid="ignore"):
            swapped = sup_ok & ret_ok & flowing & (sup.value - ret.value < -SWAP_TOLERANCE_K)
            if stations.primary_ok.any():  # (no station reads a primary probe: no contradiction)
                primary_low = stations.primary[st] < sup.value - PRIMARY_TOLERANCE_K
                below_primary = stations.primary_ok[st] & sup_ok & primary_low
        sup_bits[swapped] |= FAULT_SWAPPED
        ret_bits[swapped] |= FAULT_SWAPPED
        sup_bits[below_primary] |= FAULT_PRIMARY
        return sup_bits, ret_bits, sup_ok & (sup_bits == 0), ret_ok & (ret_bits == 0), below_primary

    def _smooth_water(self, inp: RuleInputs, sup_ok: BoolArray, ret_ok: BoolArray) -> tuple[FloatArray, FloatArray]:
        """Running means of supply and return over `water_smoothing` (usable samples only), NaN where unusable."""
        out = []
        for key, series, ok in (("supply", inp.supply, sup_ok), ("return", inp.return_, ret_ok)):
            mean, ts = self.water_mean[key]
            mean, ts = heating.running_mean_update(
                mean, ts, np.where(ok, series.value, np.nan), series.ts, self.settings.water_smoothing_s
            )
            self.water_mean[key] = (mean, ts)
            out.append(np.where(ok, mean, np.nan))
        return out[0], out[1]

    def _model(
        self, t_o: FloatArray, supply: FloatArray, return_: FloatArray, usable: BoolArray, setback_k: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """The indoor estimate per loop, and the same with a planned setback's kelvin given back to the water."""
        t = self.table
        ok = usable & ~np.isnan(t_o)
        supply_ok, return_ok = np.where(ok, supply, np.nan), np.where(ok, return_, np.nan)
        estimate = heating.estimate_indoor(supply_ok, return_ok, t_o, self._design)
        estimate = np.where(ok, estimate, np.nan)
        lowered = np.flatnonzero(ok & (setback_k > 0.0))
        given_back = estimate.copy()
        if lowered.size:
            k = setback_k[lowered]
            given_back[lowered] = heating.estimate_indoor_temp(
                supply[lowered] + k,
                return_[lowered] + k,
                t_o[lowered],
                t.design_supply[lowered],
                t.design_return[lowered],
                t.exponent[lowered],
                outdoor_design=t.outdoor_design,
                design_indoor=t.design_indoor,
            )
        return estimate, given_back

    def _indoor(self, inp: RuleInputs) -> IndoorFacts:
        """Fresh, fault-free household sensors per loop: count, median, and counts below each legal tier."""
        t, n = self.table, self.table.n_loops
        ind, il = inp.indoor, inp.indoor_loop
        ok = (ind.age(inp.now) <= INDOOR_MAX_AGE_S) & (quantity_faults(ind.value, "indoor_temp") == 0) & ~ind.flagged
        fresh = np.bincount(il[ok], minlength=n).astype(np.int64, copy=False)
        with np.errstate(invalid="ignore"):
            below_target = np.bincount(il[ok & (ind.value < t.indoor_target)], minlength=n).astype(np.int64, copy=False)
            below_refund = np.bincount(il[ok & (ind.value < t.indoor_refund_below)], minlength=n).astype(
                np.int64, copy=False
            )
        median = np.full(n, np.nan)
        idx = np.flatnonzero(ok)
        if idx.size:
            loops, values = il[idx], ind.value[idx]
            order = np.lexsort((values, loops))
            values = values[order]
            starts = np.searchsorted(loops[order], np.arange(n))
            has = fresh > 0
            lo = (starts + (fresh - 1) // 2)[has]
            hi = (starts + fresh // 2)[has]
            median[has] = 0.5 * (values[lo] + values[hi])
        return IndoorFacts(ok, fresh, median, below_target, below_refund)

    def _loop_facts(
        self, inp: RuleInputs, stations: StationFacts, held: Mapping[str, BoolArray]
    ) -> tuple[LoopFacts, StationFacts]:
        """Everything the loop rules compare, per loop; the stations gain what their loops need of the primary."""
        t, st = self.table, self.table.loop_station
        online = ~stations.offline[st]
        answering = stations.answering[st]  # (staleness only where the station answers, see `_answering`)
        flow_bits, flow_ok, pump_bits, pump_ok, pump, flowing = self._circulation(inp, answering)
        sup_bits, ret_bits, sup_ok, ret_ok, below_primary = self._water(inp, answering, flowing, stations)
        sup, ret = self._smooth_water(inp, sup_ok, ret_ok)
        t_o = stations.outdoor_smooth[st]
        req_supply, req_return, expected_delta_t = heating.curve(t_o, self._design)
        setback_k = self._setback_k[st]
        estimate, given_back = self._model(t_o, sup, ret, sup_ok & ret_ok & flowing, setback_k)
        judge = inp.in_season & online
        with np.errstate(invalid="ignore"):
            demand = ~(t_o >= t.indoor_target)
        loops = LoopFacts(
            now=inp.now,
            online=online,
            judge=judge,
            outdoor=t_o,
            supply=sup,
            return_=ret,
            supply_raw=inp.supply.value,
            return_raw=inp.return_.value,
            supply_ok=sup_ok,
            return_ok=ret_ok,
            supply_faults=sup_bits,
            return_faults=ret_bits,
            flowing=flowing,
            delta_t=sup - ret,
            required_supply=req_supply,
            required_return=req_return,
            expected_delta_t=expected_delta_t,
            estimated_indoor=estimate,
            setback_estimate=given_back,
            setback_k=setback_k,
            demand=demand,
            min_supply=t.min_supply,
            min_return=t.min_return,
            indoor_target=t.indoor_target,
            indoor_refund_below=t.indoor_refund_below,
            indoor=inp.indoor,
            indoor_loop=inp.indoor_loop,
            indoor_facts=self._indoor(inp),
            flow=inp.flow.value,
            flow_ok=flow_ok,
            flow_faults=flow_bits,
            min_flow=self.min_flow,
            pump=pump.value,
            pump_ok=pump_ok,
            pump_faults=pump_bits,
            held=held,
        )
        return loops, self._primary_side(loops, stations, below_primary)

    def _station_max(self, values: FloatArray) -> FloatArray:
        """Per station, the largest of its loops' values (NaN skipped), -inf where none (max is exact in any order)."""
        out = np.full(self.table.n_stations, -np.inf)
        if self._station_runs is None:
            ok = ~np.isnan(values)
            np.maximum.at(out, self.table.loop_station[ok], values[ok])  # (ufunc.at: slow, any order)
        else:
            starts, stations = self._station_runs
            out[stations] = np.maximum.reduceat(np.where(np.isnan(values), -np.inf, values), starts)
        return out

    def _primary_side(self, loops: LoopFacts, stations: StationFacts, below_primary: BoolArray) -> StationFacts:
        """The hottest supply the station's circulating loops need now, and the primary probe of a
        contradicting pair flagged too (which of the two is wrong cannot be told from here)."""
        st = self.table.loop_station
        needed = np.where(loops.flowing & loops.demand, loops.required_supply - loops.setback_k, np.nan)
        required = self._station_max(needed)
        required[np.isinf(required)] = np.nan
        prim_bits = stations.primary_faults.copy()
        prim_bits[np.unique(st[below_primary])] |= FAULT_PRIMARY
        return replace(
            stations,
            required_secondary=required,
            primary_faults=prim_bits,
            primary_ok=stations.primary_ok & (prim_bits == 0),
        )

    def _judgement(
        self, loops: LoopFacts, stations: StationFacts, checks: Mapping[str, Check]
    ) -> tuple[NDArray[np.int8], NDArray[np.int8]]:
        """Per loop, the status (offline > sensor_fault > noncompliant > unknown > ok) and what it rests on."""
        st = self.table.loop_station
        water_noncompliant = np.zeros(self.table.n_loops, dtype=bool)
        for rule in WATER_MODEL_RULES & checks.keys():
            water_noncompliant |= checks[rule].active
        indoor = self.rules["indoor_low"]
        sensors = loops.judge & (loops.indoor_facts.fresh >= indoor.min_sensors) & indoor.enabled
        noncompliant = np.where(sensors, checks["indoor_low"].active, water_noncompliant)
        curve_inputs_ok = loops.supply_ok & loops.return_ok & ~np.isnan(loops.outdoor)
        verdict = np.where(
            sensors, _SENSORS, np.where(loops.judge & (curve_inputs_ok | water_noncompliant), _ESTIMATE, _NONE)
        ).astype(np.int8)
        faulty = (
            (loops.supply_faults != 0)
            | (loops.return_faults != 0)
            | (loops.flow_faults != 0)
            | (loops.pump_faults != 0)
            | (stations.outdoor_faults != 0)[st]
        )
        status = np.full(self.table.n_loops, STATUS_CODES["ok"], dtype=np.int8)
        status[verdict == _NONE] = STATUS_CODES["unknown"]
        status[noncompliant] = STATUS_CODES["noncompliant"]
        if self.settings.exempt_below_design:
            # below the design outdoor temperature a shortfall is not held against the company
            with np.errstate(invalid="ignore"):
                status[noncompliant & (loops.outdoor < self.table.outdoor_design)] = STATUS_CODES["unknown"]
        # household sensors are judged on their own: a faulty water probe does not stop their verdict
        status[loops.online & faulty & ~sensors] = STATUS_CODES["sensor_fault"]
        status[~loops.online] = STATUS_CODES["offline"]
        judged = (status == STATUS_CODES["ok"]) | (status == STATUS_CODES["noncompliant"])
        verdict[~judged] = _NONE
        return status, verdict
