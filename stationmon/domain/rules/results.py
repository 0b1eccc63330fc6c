"""One evaluation of every loop: statuses, the model's numbers, every rule's `Check`, and the sparse
`Condition`s the alert state machine takes (their messages built only when read).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from itertools import repeat

import numpy as np
from numpy.typing import NDArray

from stationmon.domain.alerts import AlertKey, Condition, LoopColumn
from stationmon.domain.heating import FloatArray
from stationmon.domain.rules.checks import Check, LoopFacts, StationFacts
from stationmon.domain.rules.faults import BoolArray, FaultArray, IntArray
from stationmon.domain.rules.inputs import LoopTable
from stationmon.domain.rules.table import LOOP_RULE_TABLE, STATION_RULE_TABLE
from stationmon.domain.vocabulary import SEASONAL_RULES, STATUS_NAMES, VERDICTS

__all__ = ["HEAT_SOURCE", "STATION", "STATUS_CODES", "RuleResults"]

STATUS_CODES = {name: code for code, name in enumerate(STATUS_NAMES)}
_OK, _NONCOMPLIANT = STATUS_CODES["ok"], STATUS_CODES["noncompliant"]
_LOOP_SENSORS = ("supply_temp", "return_temp", "flow", "pump_running")
# every subset of the loop's sensors, by bit mask (bit k: _LOOP_SENSORS[k] is faulty)
_FAULT_SETS: tuple[frozenset[str], ...] = tuple(
    frozenset(q for k, q in enumerate(_LOOP_SENSORS) if code >> k & 1) for code in range(1 << len(_LOOP_SENSORS))
)
_OUTDOOR = frozenset({"outdoor_temp"})
HEAT_SOURCE, STATION = "heat_source", "station"  # the `cause` of an alert


def _nan_none(x: float) -> float | None:
    return None if math.isnan(x) else x


@dataclass(slots=True)
class RuleResults:
    """One evaluation of every loop; `status` holds indexes into STATUS_NAMES."""

    table: LoopTable
    now: float
    in_season: bool
    status: NDArray[np.int8]
    loops: LoopFacts
    stations: StationFacts
    loop_checks: dict[str, Check]
    station_checks: dict[str, Check]
    delta_t: FloatArray  # measured supply - return where both are usable, else NaN
    verdict: NDArray[np.int8]  # indexes into VERDICTS: what each loop's status rests on
    inspection_hour: bool = True  # readings now count for the legal verdict (not in inspection_exclude)

    @property
    def n_loops(self) -> int:
        """Loops judged."""
        return self.table.n_loops

    @property
    def outdoor(self) -> FloatArray:
        """The smoothed outdoor temperature each loop was judged at."""
        return self.loops.outdoor

    @property
    def required_supply(self) -> FloatArray:
        """Required supply temperature per loop (the heating curve)."""
        return self.loops.required_supply

    @property
    def required_return(self) -> FloatArray:
        """Required return temperature per loop (the heating curve)."""
        return self.loops.required_return

    @property
    def estimated_indoor(self) -> FloatArray:
        """Indoor temperature the measured water sustains, per loop."""
        return self.loops.estimated_indoor

    @property
    def expected_delta_t(self) -> FloatArray:
        """Expected supply - return difference per loop."""
        return self.loops.expected_delta_t

    @property
    def supply_faults(self) -> FaultArray:
        """Fault bits of each loop's supply sensor."""
        return self.loops.supply_faults

    @property
    def return_faults(self) -> FaultArray:
        """Fault bits of each loop's return sensor."""
        return self.loops.return_faults

    @property
    def outdoor_faults(self) -> FaultArray:
        """Fault bits of each station's outdoor sensor."""
        return self.stations.outdoor_faults

    @property
    def indoor_valid(self) -> IntArray:
        """Fresh, fault-free household sensors per loop (0 while indoor_low is off)."""
        counts = self.loop_checks["indoor_low"].counts
        return counts[0] if counts is not None else np.zeros(self.table.n_loops, dtype=np.int64)

    @property
    def indoor_low(self) -> IntArray:
        """Household sensors below the threshold per loop."""
        counts = self.loop_checks["indoor_low"].counts
        return counts[1] if counts is not None else np.zeros(self.table.n_loops, dtype=np.int64)

    @property
    def measured_indoor(self) -> FloatArray:
        """Median of the fresh household sensors per loop (NaN: none)."""
        return self.loops.indoor_facts.median

    @property
    def indoor_sensors(self) -> IntArray:
        """Fresh, fault-free household sensors per loop."""
        return self.loops.indoor_facts.fresh

    @property
    def indoor_below_target(self) -> IntArray:
        """Fresh household sensors below indoor_target per loop."""
        return self.loops.indoor_facts.below_target

    @property
    def indoor_below_refund(self) -> IntArray:
        """Fresh household sensors below indoor_refund_below per loop."""
        return self.loops.indoor_facts.below_refund

    @property
    def beyond_design(self) -> BoolArray:
        """Loops judged at an outdoor temperature below the design one."""
        with np.errstate(invalid="ignore"):
            return self.loops.outdoor < self.table.outdoor_design

    @property
    def setback(self) -> BoolArray:
        """Loops in a planned setback now."""
        return self.stations.setback[self.table.loop_station]

    @property
    def heat_source(self) -> BoolArray:
        """Stations where primary_shortage holds: their alerts' cause is the heat source."""
        return self.station_checks["primary_shortage"].active

    def verdict_name(self, i: int) -> str:
        """What loop i's status rests on: sensors, estimate or none."""
        return VERDICTS[int(self.verdict[i])]

    def status_name(self, i: int) -> str:
        """Status word of loop i."""
        return STATUS_NAMES[int(self.status[i])]

    def compliant(self) -> NDArray[np.int8]:
        """Per loop: 1 compliant (ok), 0 not (noncompliant), -1 not judged."""
        return np.where(self.status == _OK, 1, np.where(self.status == _NONCOMPLIANT, 0, -1)).astype(np.int8)

    def conditions(self) -> dict[AlertKey, Condition]:
        """Every active check as a sparse {(rule, station, loop): Condition} (messages built lazily)."""
        out = self.station_conditions()
        for rule, check in self.loop_checks.items():
            idx = np.flatnonzero(check.active)
            if idx.size:
                out.update(zip(*self.loop_conditions(rule, idx), strict=True))
        return out

    def station_conditions(self) -> dict[AlertKey, Condition]:
        """The active station checks as {(rule, station, None): Condition} (few: built at once)."""
        out: dict[AlertKey, Condition] = {}
        t = self.table
        for rule, check in self.station_checks.items():
            for s in np.flatnonzero(check.active).tolist():
                out[(rule, t.station_ids[s], None)] = self._station_condition(rule, s, True)
        return out

    def loop_columns(self) -> list[LoopColumn]:
        """Per loop rule (table order), its active loops as columns: no object per condition.

        The loops are ascending, in the order `conditions()` lists them; `critical` (None: the rule has
        no such tier) and `heat_source` are per active loop, as `conditions()` sets severity and cause."""
        heat = self.heat_source[self.table.loop_station]
        out = []
        for rule, check in self.loop_checks.items():
            idx = np.flatnonzero(check.active)
            critical = check.critical[idx] if check.critical is not None else None
            out.append(LoopColumn(rule, idx, critical, heat[idx]))
        return out

    def loop_conditions(self, rule: str, idx: IntArray) -> tuple[list[AlertKey], list[Condition]]:
        """The keys and Conditions of the loop rule `rule` at its active loops `idx`, as `conditions()`."""
        check = self.loop_checks[rule]
        keys = self.loop_keys(rule, idx)
        conditions = self._loop_conditions(rule, check, idx)
        # the rare ones afterwards: a legal tier's severity, a heat-source cause
        if check.critical is not None:
            for k in np.flatnonzero(check.critical[idx]).tolist():
                conditions[k].severity = "critical"
        for k in np.flatnonzero(self.heat_source[self.table.loop_station[idx]]).tolist():
            conditions[k].cause = HEAT_SOURCE
        return keys, conditions

    def loop_sensors(self, rule: str, idx: IntArray) -> list[frozenset[str]]:
        """Per loop in `idx`: the sensors the loop rule read (sensor_fault: the faulty ones)."""
        return self._sensors_of(self.loop_checks[rule], idx)

    def loop_keys(self, rule: str, idx: IntArray) -> list[AlertKey]:
        """The alert keys of the loop rule `rule` at the loops `idx`."""
        t = self.table
        stations, loops = t.station_ids, t.loop_ids
        owners = t.loop_station[idx].tolist()
        return list(zip(repeat(rule), [stations[s] for s in owners], [loops[i] for i in idx.tolist()], strict=False))

    def loop_position(self, station: str, loop: str) -> int | None:
        """Index of the loop, None if unknown."""
        return self.table.loop_index.get((station, loop))

    def station_values(self, values: Mapping[str, int]) -> IntArray:
        """Per loop: the value of its station in `values`, else 0 (unknown stations skipped)."""
        t = self.table
        out = np.zeros(t.n_stations, dtype=np.int64)
        for sid, value in values.items():
            s = t.station_index.get(sid)
            if s is not None:
                out[s] = value
        return out[t.loop_station]

    def _loop_conditions(self, rule: str, check: Check, idx: IntArray) -> list[Condition]:
        """The Conditions of one loop rule at the loops `idx` (severity and cause: the rule's, the station)."""
        t = self.table
        # plain lists and `map`: a Python statement per condition costs more than the rest together
        rows, owners = idx.tolist(), t.loop_station[idx].tolist()
        values, thresholds = check.value[idx].tolist(), check.threshold[idx].tolist()
        if rule == "sensor_fault":
            values, thresholds = [_nan_none(v) for v in values], [None] * len(rows)
        districts, companies = t.districts, t.companies
        return list(
            map(
                Condition,
                values,
                thresholds,
                repeat(""),
                [districts[s] for s in owners],
                self._sensors_of(check, idx),
                repeat(partial(self._loop_message, rule, active=True)),  # called with the loop: `at`
                repeat(None),  # severity: the rule's
                repeat(STATION),  # cause
                [companies[s] for s in owners],
                rows,
            )
        )

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
        s = int(t.loop_station[i])
        return Condition(
            _nan_none(value) if fault else value,
            None if fault else threshold,
            "",
            t.districts[s],
            self._sensors_of(check, np.array([i]))[0],
            describe=partial(self._loop_message, rule, i, bool(check.active[i])),
            cause=HEAT_SOURCE if self.heat_source[s] else STATION,
            company=t.companies[s],
        )

    def _sensors_of(self, check: Check, idx: IntArray) -> list[frozenset[str]]:
        """Per loop in `idx`: the sensors the rule read (sensor_fault: the faulty ones)."""
        if check.rule == "sensor_fault":
            f = self.loops
            bits = (f.supply_faults, f.return_faults, f.flow_faults, f.pump_faults)
            codes = sum(((b[idx] != 0) * (1 << k) for k, b in enumerate(bits)), np.zeros(len(idx), dtype=np.int64))
            return [_FAULT_SETS[c] for c in codes.tolist()]
        if check.read_code is not None:
            return [check.read_sets[c] for c in check.read_code[idx].tolist()]
        reads = LOOP_RULE_TABLE[check.rule].reads
        if "outdoor_temp" in reads and check.curve_used is not None:
            floor_only = reads - _OUTDOOR
            return [reads if used else floor_only for used in check.curve_used[idx].tolist()]
        return [reads] * len(idx)

    def _station_condition(self, rule: str, s: int, active: bool) -> Condition:
        check = self.station_checks[rule]
        value, threshold = float(check.value[s]), float(check.threshold[s])
        district = self.table.districts[s]
        msg = STATION_RULE_TABLE[rule].describe(self.stations, check, s, active)
        cause = HEAT_SOURCE if self.heat_source[s] else STATION
        company = self.table.companies[s]
        if rule == "station_offline":
            return Condition(value, threshold, msg, district, cause=cause, company=company)
        if rule == "primary_shortage":
            read = frozenset({"primary_supply_temp"})
            return Condition(value, threshold, msg, district, read, cause=cause, company=company)
        faults = {"outdoor_temp": self.outdoor_faults[s], "primary_supply_temp": self.stations.primary_faults[s]}
        bad = frozenset(q for q, b in faults.items() if b)
        return Condition(_nan_none(value), None, msg, district, bad, cause=cause, company=company)

    def _loop_message(self, rule: str, i: int, active: bool) -> str:
        if not self.in_season and rule in SEASONAL_RULES:
            return "outside the heating season"
        return LOOP_RULE_TABLE[rule].describe(self.loops, self.loop_checks[rule], i, active)
