"""One function per rule: from the facts of one evaluation and the rule's settings to its `Check`.

The engine computes the facts once; each rule only compares. A held alert's condition holds until the
value is `hysteresis` K past the threshold, so a loop hovering at the threshold does not flap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from stationmon.domain.heating import FloatArray
from stationmon.domain.rules.faults import BoolArray, FaultArray, IntArray
from stationmon.domain.rules.inputs import Series
from stationmon.domain.settings import RuleSettings

__all__ = [
    "INDOOR_MAX_AGE_S",
    "Check",
    "IndoorFacts",
    "LoopFacts",
    "StationFacts",
    "delta_t_high",
    "delta_t_low",
    "indoor_estimate_low",
    "indoor_low",
    "loop_sensor_fault",
    "no_circulation",
    "primary_shortage",
    "return_low",
    "station_offline",
    "station_sensor_fault",
    "supply_low",
]

INDOOR_MAX_AGE_S = 3600.0  # household thermometers report rarely; older values do not count
FLOW_HYSTERESIS = 0.1  # a held no_circulation clears only 10 % above its flow threshold
_FLOW, _PUMP = frozenset({"flow"}), frozenset({"pump_running"})


@dataclass(slots=True)
class Check:
    """One rule over every loop (or station): where it holds, where it was judged, value/threshold."""

    rule: str
    active: BoolArray
    judged: BoolArray
    value: FloatArray
    threshold: FloatArray
    margin: float = 0.0  # supply_low/return_low: how far below the curve the threshold lies (their message says)
    curve_used: BoolArray | None = None  # supply_low/return_low: threshold from the curve, not the floor
    counts: tuple[IntArray, IntArray] | None = None  # indoor_low: (fresh sensors, sensors low) per loop
    critical: BoolArray | None = None  # where the condition is at its critical tier (indoor_low)
    # per element, which of `read_sets` the rule read (no_circulation: the flow meter or the pump status)
    read_code: IntArray | None = None
    read_sets: tuple[frozenset[str], ...] = ()

    @classmethod
    def off(cls, rule: str, n: int) -> Check:
        """A disabled rule: never judged."""
        z = np.zeros(n, dtype=bool)
        return cls(rule, z, z, np.full(n, np.nan), np.full(n, np.nan))


@dataclass(frozen=True, slots=True)
class StationFacts:
    """Per station: reading age, offline, outdoor/primary sensor faults (stale is a fault where configured)."""

    age: FloatArray
    offline: BoolArray
    offline_after_s: float
    judge: BoolArray  # in season and online
    outdoor: FloatArray  # as measured
    outdoor_faults: FaultArray
    outdoor_smooth: FloatArray  # the running mean where the sensor is usable, else NaN
    primary: FloatArray
    primary_faults: FaultArray  # FAULT_PRIMARY is added once the loops are known (the pair's other side)
    primary_ok: BoolArray  # fresh and fault-free
    setback: BoolArray  # a planned setback is on now
    answering: BoolArray  # online for longer than fresh_s: only there is a point stale (`RuleEngine._answering`)
    required_secondary: FloatArray = field(default_factory=lambda: np.zeros(0))  # max required supply, NaN: none
    held: Mapping[str, BoolArray] = field(default_factory=dict)

    def hysteresis(self, s: RuleSettings) -> FloatArray | float:
        """The rule's hysteresis where its station alert is held, else 0."""
        mask = self.held.get(s.name)
        return 0.0 if mask is None else np.where(mask, s.hysteresis, 0.0)


@dataclass(frozen=True, slots=True)
class IndoorFacts:
    """The household sensors: which are usable, and per loop their count, median and tiers."""

    ok: BoolArray  # per sensor: fresh and fault-free
    fresh: IntArray  # per loop
    median: FloatArray  # per loop, NaN without fresh sensors
    below_target: IntArray  # per loop: fresh sensors below indoor_target (no hysteresis)
    below_refund: IntArray  # ... below indoor_refund_below


@dataclass(frozen=True, slots=True)
class LoopFacts:
    """Per loop: what the rules compare, computed once per evaluation."""

    now: float
    online: BoolArray  # the station answers
    judge: BoolArray  # in season and online: compliance rules may judge
    outdoor: FloatArray  # the smoothed outdoor temperature the curve used (NaN: unusable)
    supply: FloatArray  # the running mean of the measured supply (water_smoothing)
    return_: FloatArray
    supply_raw: FloatArray  # as measured now (what a fault message shows)
    return_raw: FloatArray
    supply_ok: BoolArray  # fresh and fault-free
    return_ok: BoolArray
    supply_faults: FaultArray
    return_faults: FaultArray
    flowing: BoolArray  # circulating as far as is known (no meter and no pump status: assumed)
    delta_t: FloatArray  # supply - return (running means)
    required_supply: FloatArray  # the curve, before any setback
    required_return: FloatArray
    expected_delta_t: FloatArray
    estimated_indoor: FloatArray  # NaN where the water stands or an input is unusable
    setback_estimate: FloatArray  # the estimate with the setback's kelvin given back (what the rule judges)
    setback_k: FloatArray  # K the required temperatures are lowered by now (planned setbacks, smoothed)
    demand: BoolArray  # outdoor below the target, or unknown: heat is needed
    min_supply: FloatArray
    min_return: FloatArray
    indoor_target: float
    indoor_refund_below: float
    indoor: Series
    indoor_loop: IntArray
    indoor_facts: IndoorFacts
    flow: FloatArray
    flow_ok: BoolArray
    flow_faults: FaultArray
    min_flow: FloatArray  # m³/h below which the loop does not circulate
    pump: FloatArray
    pump_ok: BoolArray
    pump_faults: FaultArray
    held: Mapping[str, BoolArray]

    @property
    def n(self) -> int:
        """Number of loops."""
        return len(self.supply)

    def hysteresis(self, s: RuleSettings) -> FloatArray | float:
        """The rule's hysteresis where its alert is held, else 0."""
        mask = self.held.get(s.name)
        return 0.0 if mask is None else np.where(mask, s.hysteresis, 0.0)


def _below_required(
    f: LoopFacts, s: RuleSettings, value: FloatArray, ok: BoolArray, required: FloatArray, floor: FloatArray
) -> Check:
    """The curve minus margin, or the fixed floor, whichever is higher; both lowered by a planned setback."""
    with np.errstate(invalid="ignore"):
        from_curve = required - s.margin
        threshold = np.fmax(from_curve, floor) - f.setback_k
        judged = f.judge & ok & ~np.isnan(threshold)
        # no demand (outdoor at or above the target): judged, and clear
        active = judged & f.demand & (value < threshold + f.hysteresis(s))
        # the threshold came from the curve (reads outdoor_temp), not from the fixed floor
        curve_used = ~np.isnan(required) & ~(floor > from_curve)
    return Check(s.name, active, judged, value, threshold, s.margin, curve_used=curve_used)


def supply_low(f: LoopFacts, s: RuleSettings) -> Check:
    """Supply water colder than the heating curve (or the loop's fixed minimum) asks for."""
    return _below_required(f, s, f.supply, f.supply_ok, f.required_supply, f.min_supply)


def return_low(f: LoopFacts, s: RuleSettings) -> Check:
    """Return water colder than the heating curve (or the loop's fixed minimum) asks for."""
    return _below_required(f, s, f.return_, f.return_ok, f.required_return, f.min_return)


def indoor_estimate_low(f: LoopFacts, s: RuleSettings) -> Check:
    """The indoor temperature the water sustains (a planned setback given back) is below the target."""
    threshold = np.full(f.n, f.indoor_target - s.margin)
    est = f.setback_estimate
    judged = f.judge & ~np.isnan(est)
    with np.errstate(invalid="ignore"):
        active = judged & f.demand & (est < threshold + f.hysteresis(s))
    return Check(s.name, active, judged, est, threshold)


def indoor_low(f: LoopFacts, s: RuleSettings) -> Check:
    """At least `min_sensors` (and `min_share`) of the fresh household sensors below the target (major),
    or as many below `indoor_refund_below` (critical)."""
    n, il, ind = f.n, f.indoor_loop, f.indoor_facts
    h = f.hysteresis(s)
    lift = h[il] if isinstance(h, np.ndarray) else h
    ok, value = ind.ok, f.indoor.value
    fresh = ind.fresh

    def meets(threshold: float) -> tuple[IntArray, BoolArray]:
        with np.errstate(invalid="ignore"):
            low = ok & (value < threshold - s.margin + lift)
        count = np.bincount(il[low], minlength=n).astype(np.int64, copy=False)
        share_ok = True if s.min_share <= 0.0 else count / np.maximum(fresh, 1) >= s.min_share
        return count, (count >= s.min_sensors) & share_ok

    n_low, low_enough = meets(f.indoor_target)
    _, refund_enough = meets(f.indoor_refund_below)
    lowest = np.full(n, np.nan)
    np.fmin.at(lowest, il[ok], value[ok])  # (usable values are in range: finite)
    judged = f.judge & (fresh > 0)
    active = judged & low_enough
    threshold = np.full(n, f.indoor_target - s.margin)
    return Check(s.name, active, judged, lowest, threshold, counts=(fresh, n_low), critical=active & refund_enough)


def no_circulation(f: LoopFacts, s: RuleSettings) -> Check:
    """Flow below `min_flow` (or its share of design_flow), or the pump reported stopped, while heat is needed."""
    held = f.held.get(s.name)
    lift = 1.0 if held is None else np.where(held, 1.0 + FLOW_HYSTERESIS, 1.0)
    with np.errstate(invalid="ignore"):
        slow = f.flow_ok & (f.flow < f.min_flow * lift)
        stopped = f.pump_ok & (f.pump < 0.5)
    judged = f.judge & (f.flow_ok | f.pump_ok)
    active = judged & f.demand & (slow | stopped)
    by_pump = stopped & ~slow
    pump_read = by_pump | ~f.flow_ok
    value = np.where(pump_read, f.pump, f.flow)
    threshold = np.where(pump_read, 0.5, f.min_flow)
    code = pump_read.astype(np.int64)
    return Check(s.name, active, judged, value, threshold, read_code=code, read_sets=(_FLOW, _PUMP))


def _delta_t(f: LoopFacts, s: RuleSettings, *, low: bool) -> Check:
    expected = f.expected_delta_t
    threshold = s.ratio * expected
    with np.errstate(invalid="ignore"):
        judged = (
            f.judge & f.supply_ok & f.return_ok & f.flowing & ~np.isnan(expected) & (expected >= s.min_expected_delta_t)
        )
        judged &= f.demand
        if low:
            active = judged & (f.delta_t < threshold + f.hysteresis(s))
        else:
            active = judged & (f.delta_t > threshold - f.hysteresis(s))
    return Check(s.name, active, judged, f.delta_t, threshold)


def delta_t_low(f: LoopFacts, s: RuleSettings) -> Check:
    """ΔT under `ratio` x expected while water flows: overflow or bypass."""
    return _delta_t(f, s, low=True)


def delta_t_high(f: LoopFacts, s: RuleSettings) -> Check:
    """ΔT over `ratio` x expected: too little flow."""
    return _delta_t(f, s, low=False)


def loop_sensor_fault(f: LoopFacts, s: RuleSettings) -> Check:
    """A supply, return, flow or pump-status sensor of the loop is faulty or stale (judged while online)."""
    value = np.full(f.n, np.nan)
    bad = np.zeros(f.n, dtype=bool)
    # the value shown: the first faulty sensor's, in this order
    for faults, reading in (
        (f.pump_faults, f.pump),
        (f.flow_faults, f.flow),
        (f.return_faults, f.return_raw),
        (f.supply_faults, f.supply_raw),
    ):
        mine = faults != 0
        np.copyto(value, reading, where=mine)  # (few are faulty: no new array per sensor)
        bad |= mine
    return Check(s.name, f.online & bad, f.online.copy(), value, np.full(f.n, np.nan))


def station_offline(f: StationFacts, s: RuleSettings) -> Check:
    """No reading from the station for `offline_after`."""
    n = len(f.age)
    return Check(s.name, f.offline.copy(), np.ones(n, dtype=bool), f.age, np.full(n, f.offline_after_s))


def station_sensor_fault(f: StationFacts, s: RuleSettings) -> Check:
    """The outdoor or primary supply sensor of an online station is faulty or stale."""
    online = ~f.offline
    out_bad, prim_bad = f.outdoor_faults != 0, f.primary_faults != 0
    value = np.where(out_bad, f.outdoor, np.where(prim_bad, f.primary, np.nan))
    return Check(s.name, online & (out_bad | prim_bad), online, value, np.full(len(f.age), np.nan))


def primary_shortage(f: StationFacts, s: RuleSettings) -> Check:
    """The primary supply cannot reach the secondary supply the station's loops need plus the approach."""
    threshold = f.required_secondary + s.approach
    judged = f.judge & f.primary_ok & ~np.isnan(threshold)
    with np.errstate(invalid="ignore"):
        active = judged & (f.primary < threshold + f.hysteresis(s))
    return Check(s.name, active, judged, f.primary, threshold)
