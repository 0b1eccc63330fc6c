"""The rule engine: facts once per evaluation, then every rule of the table, then each loop's status.

`station_offline` is always judged, `sensor_fault` while the station is online, the seasonal rules
only in season, online and on fresh, fault-free sensors (`supply_low`/`return_low` still judge their
fixed floor without an outdoor sensor). Out of season they count as judged and clear, so alerts left
firing at its end resolve. Per-series state (flatline, rate, outdoor mean) is kept as arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
from numpy.typing import NDArray

from stationmon.domain import heating
from stationmon.domain.alerts import AlertKey
from stationmon.domain.rules.checks import Check, LoopFacts, StationFacts
from stationmon.domain.rules.faults import (
    FAULT_FLAGGED,
    FAULT_PRIMARY,
    FAULT_SWAPPED,
    BoolArray,
    FaultArray,
    SensorTracker,
    quantity_faults,
)
from stationmon.domain.rules.inputs import LoopTable, RuleInputs, Series, reading_age, station_online
from stationmon.domain.rules.results import STATUS_CODES, RuleResults, _nan_none
from stationmon.domain.rules.table import LOOP_RULE_TABLE, STATION_RULE_TABLE
from stationmon.domain.settings import RulesSettings
from stationmon.domain.vocabulary import COMPLIANCE_RULES, RULE_NAMES, SEASONAL_RULES

__all__ = ["MIN_FLOW", "PRIMARY_TOLERANCE_K", "SWAP_TOLERANCE_K", "RuleEngine"]

SWAP_TOLERANCE_K = 0.2  # supply below return by more than sensor noise
PRIMARY_TOLERANCE_K = 0.5
MIN_FLOW = 0.05  # m³/h: less than this counts as no flow


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
        sf = self.rules["sensor_fault"]

        def tracker(n: int) -> SensorTracker:
            return SensorTracker(
                n, window_s=sf.flatline_window_s, tolerance=sf.flatline_tolerance, max_rate_per_min=sf.max_rate_per_min
            )

        self.supply_tracker = tracker(table.n_loops)
        self.return_tracker = tracker(table.n_loops)
        self.outdoor_tracker = tracker(table.n_stations)
        self.outdoor_mean = np.full(table.n_stations, np.nan)
        self.outdoor_mean_ts = np.full(table.n_stations, np.nan)

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
        n, ns = self.table.n_loops, self.table.n_stations
        stations = self._station_facts(inp)
        loops = self._loop_facts(inp, stations, held or {})
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
            for rule in SEASONAL_RULES & loop_checks.keys():
                if self.rules[rule].enabled:
                    loop_checks[rule].judged = loops.online.copy()
        return RuleResults(
            table=self.table,
            now=inp.now,
            in_season=inp.in_season,
            status=self._status(loops, stations, loop_checks, inp.in_season),
            loops=loops,
            stations=stations,
            loop_checks=loop_checks,
            station_checks=station_checks,
            delta_t=np.where(loops.supply_ok & loops.return_ok, loops.delta_t, np.nan),
        )

    def _station_facts(self, inp: RuleInputs) -> StationFacts:
        """Offline stations, outdoor and primary sensor faults, the outdoor running mean."""
        now, offline_after_s = inp.now, self.settings.offline_after_s
        last_seen = np.asarray(inp.station_last_seen, dtype=np.float64)
        if inp.started_at is not None:
            last_seen = np.where(np.isnan(last_seen), inp.started_at, last_seen)
        outdoor, prim = inp.outdoor, inp.primary_supply
        outdoor_fresh = outdoor.age(now) <= offline_after_s
        outdoor_bits = _sensor_faults(outdoor, "outdoor_temp")
        outdoor_bits |= self.outdoor_tracker.update(outdoor.value, outdoor.ts, outdoor_bits == 0)
        outdoor_bits[~outdoor_fresh] = 0  # stale: unknown, not faulty
        outdoor_ok = outdoor_fresh & (outdoor_bits == 0)
        self.outdoor_mean, self.outdoor_mean_ts = heating.running_mean_update(
            self.outdoor_mean,
            self.outdoor_mean_ts,
            np.where(outdoor_ok, outdoor.value, np.nan),
            outdoor.ts,
            self.settings.outdoor_smoothing_s,
        )
        prim_fresh = prim.age(now) <= offline_after_s
        prim_bits = _sensor_faults(prim, "primary_supply_temp")
        prim_bits[~prim_fresh] = 0
        return StationFacts(
            age=reading_age(last_seen, now),
            offline=~station_online(last_seen, now, offline_after_s),
            offline_after_s=offline_after_s,
            outdoor=outdoor.value,
            outdoor_faults=outdoor_bits,
            outdoor_smooth=np.where(outdoor_ok, self.outdoor_mean, np.nan),
            primary=prim.value,
            primary_faults=prim_bits,
            primary_ok=prim_fresh & (prim_bits == 0),
        )

    def _water_faults(
        self, inp: RuleInputs, stations: StationFacts
    ) -> tuple[FaultArray, FaultArray, BoolArray, BoolArray, BoolArray]:
        """Supply and return fault bits per loop (stale: 0), where each is usable, where water flows."""
        now, fresh_after = inp.now, self.settings.offline_after_s
        st = self.table.loop_station
        sup, ret, flow = inp.supply, inp.return_, inp.flow
        sup_fresh, ret_fresh = sup.age(now) <= fresh_after, ret.age(now) <= fresh_after
        sup_bits, ret_bits = _sensor_faults(sup, "supply_temp"), _sensor_faults(ret, "return_temp")
        sup_bits |= self.supply_tracker.update(sup.value, sup.ts, sup_bits == 0)
        ret_bits |= self.return_tracker.update(ret.value, ret.ts, ret_bits == 0)
        with np.errstate(invalid="ignore"):
            flow_known = (flow.age(now) <= fresh_after) & ~flow.flagged & ~np.isnan(flow.value)
            # constant-flow plants often have no flow meter: unknown flow counts as flowing
            flowing = ~flow_known | (flow.value > MIN_FLOW)
            sup_good, ret_good = sup_fresh & (sup_bits == 0), ret_fresh & (ret_bits == 0)
            swapped = sup_good & ret_good & flowing & (sup.value - ret.value < -SWAP_TOLERANCE_K)
            primary_low = stations.primary[st] < sup.value - PRIMARY_TOLERANCE_K
            below_primary = stations.primary_ok[st] & sup_good & primary_low
        sup_bits[swapped] |= FAULT_SWAPPED
        ret_bits[swapped] |= FAULT_SWAPPED
        sup_bits[below_primary] |= FAULT_PRIMARY
        sup_bits[~sup_fresh] = 0
        ret_bits[~ret_fresh] = 0
        return sup_bits, ret_bits, sup_fresh & (sup_bits == 0), ret_fresh & (ret_bits == 0), flowing

    def _loop_facts(self, inp: RuleInputs, stations: StationFacts, held: Mapping[str, BoolArray]) -> LoopFacts:
        """Everything the loop rules compare: usable water values and the heating model, per loop."""
        t, now = self.table, inp.now
        sup_bits, ret_bits, sup_ok, ret_ok, flowing = self._water_faults(inp, stations)
        sup, ret = inp.supply.value, inp.return_.value
        t_o = stations.outdoor_smooth[t.loop_station]
        site = {"indoor_target": t.indoor_target, "outdoor_design": t.outdoor_design, "design_indoor": t.design_indoor}
        req_supply, req_return = heating.required_temps(t_o, t.design_supply, t.design_return, t.exponent, **site)
        water_ok = sup_ok & ret_ok
        estimate = heating.estimate_indoor_temp(
            np.where(water_ok, sup, np.nan),
            np.where(water_ok, ret, np.nan),
            t_o,
            t.design_supply,
            t.design_return,
            t.exponent,
            outdoor_design=t.outdoor_design,
            design_indoor=t.design_indoor,
        )
        online = ~stations.offline[t.loop_station]
        return LoopFacts(
            now=now,
            online=online,
            judge=inp.in_season & online,
            outdoor=t_o,
            supply=sup,
            return_=ret,
            supply_ok=sup_ok,
            return_ok=ret_ok,
            supply_faults=sup_bits,
            return_faults=ret_bits,
            flowing=flowing,
            delta_t=sup - ret,
            required_supply=req_supply,
            required_return=req_return,
            expected_delta_t=heating.expected_delta_t(t_o, t.design_supply, t.design_return, **site),
            estimated_indoor=np.where(water_ok & ~np.isnan(t_o), estimate, np.nan),
            min_supply=t.min_supply,
            min_return=t.min_return,
            indoor_target=t.indoor_target,
            indoor=inp.indoor,
            indoor_loop=inp.indoor_loop,
            held=held,
        )

    def _status(
        self, loops: LoopFacts, stations: StationFacts, checks: Mapping[str, Check], in_season: bool
    ) -> NDArray[np.int8]:
        """offline > sensor_fault > noncompliant > unknown > ok, per loop."""
        noncompliant = np.zeros(self.table.n_loops, dtype=bool)
        for rule in COMPLIANCE_RULES & checks.keys():
            noncompliant |= checks[rule].active
        curve_inputs_ok = loops.supply_ok & loops.return_ok & ~np.isnan(loops.outdoor)
        water_fault = (loops.supply_faults != 0) | (loops.return_faults != 0)
        outdoor_fault = (stations.outdoor_faults != 0)[self.table.loop_station]
        status = np.full(self.table.n_loops, STATUS_CODES["ok"], dtype=np.int8)
        status[~(in_season & curve_inputs_ok)] = STATUS_CODES["unknown"]
        status[noncompliant] = STATUS_CODES["noncompliant"]
        status[loops.online & (water_fault | outdoor_fault)] = STATUS_CODES["sensor_fault"]
        status[~loops.online] = STATUS_CODES["offline"]
        return status
