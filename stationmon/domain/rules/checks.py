"""One function per rule: from the facts of one evaluation and the rule's settings to its `Check`.

The engine computes the facts once; each rule only compares. A held alert's condition holds until the
value is `hysteresis` K past the threshold, so a loop hovering at the threshold does not flap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from stationmon.domain.heating import FloatArray
from stationmon.domain.rules.faults import BoolArray, FaultArray, IntArray, quantity_faults
from stationmon.domain.rules.inputs import Series
from stationmon.domain.settings import RuleSettings

__all__ = [
    "INDOOR_MAX_AGE_S",
    "Check",
    "LoopFacts",
    "StationFacts",
    "delta_t_high",
    "delta_t_low",
    "indoor_estimate_low",
    "indoor_low",
    "loop_sensor_fault",
    "return_low",
    "station_offline",
    "station_sensor_fault",
    "supply_low",
]

INDOOR_MAX_AGE_S = 3600.0  # household thermometers report rarely; older values do not count


@dataclass(slots=True)
class Check:
    """One rule over every loop (or station): where it holds, where it was judged, value/threshold."""

    rule: str
    active: BoolArray
    judged: BoolArray
    value: FloatArray
    threshold: FloatArray
    margin: float = 0.0  # how far below the required value the threshold lies
    curve_used: BoolArray | None = None  # supply_low/return_low: threshold from the curve, not the floor
    counts: tuple[IntArray, IntArray] | None = None  # indoor_low: (fresh sensors, sensors low) per loop

    @classmethod
    def off(cls, rule: str, n: int) -> Check:
        """A disabled rule: never judged."""
        z = np.zeros(n, dtype=bool)
        return cls(rule, z, z, np.full(n, np.nan), np.full(n, np.nan))


@dataclass(frozen=True, slots=True)
class StationFacts:
    """Per station: reading age, offline, outdoor/primary sensor faults (stale: 0, unknown not faulty)."""

    age: FloatArray
    offline: BoolArray
    offline_after_s: float
    outdoor: FloatArray  # as measured
    outdoor_faults: FaultArray
    outdoor_smooth: FloatArray  # the running mean where the sensor is usable, else NaN
    primary: FloatArray
    primary_faults: FaultArray
    primary_ok: BoolArray  # fresh and fault-free


@dataclass(frozen=True, slots=True)
class LoopFacts:
    """Per loop: what the rules compare, computed once per evaluation."""

    now: float
    online: BoolArray  # the station answers
    judge: BoolArray  # in season and online: compliance rules may judge
    outdoor: FloatArray  # the smoothed outdoor temperature the curve used (NaN: unusable)
    supply: FloatArray  # as measured
    return_: FloatArray
    supply_ok: BoolArray  # fresh and fault-free
    return_ok: BoolArray
    supply_faults: FaultArray
    return_faults: FaultArray
    flowing: BoolArray
    delta_t: FloatArray  # supply - return as measured
    required_supply: FloatArray
    required_return: FloatArray
    expected_delta_t: FloatArray
    estimated_indoor: FloatArray
    min_supply: FloatArray
    min_return: FloatArray
    indoor_target: float
    indoor: Series
    indoor_loop: IntArray
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
    """The curve minus margin, or the fixed floor, whichever is higher."""
    with np.errstate(invalid="ignore"):
        from_curve = required - s.margin
        threshold = np.fmax(from_curve, floor)
        judged = f.judge & ok & ~np.isnan(threshold)
        active = judged & (value < threshold + f.hysteresis(s))
        # the threshold came from the curve (reads outdoor_temp), not from the fixed floor
        curve_used = ~np.isnan(required) & ~(threshold > from_curve)
    return Check(s.name, active, judged, value, threshold, s.margin, curve_used=curve_used)


def supply_low(f: LoopFacts, s: RuleSettings) -> Check:
    """Supply water colder than the heating curve (or the loop's fixed minimum) asks for."""
    return _below_required(f, s, f.supply, f.supply_ok, f.required_supply, f.min_supply)


def return_low(f: LoopFacts, s: RuleSettings) -> Check:
    """Return water colder than the heating curve (or the loop's fixed minimum) asks for."""
    return _below_required(f, s, f.return_, f.return_ok, f.required_return, f.min_return)


def indoor_estimate_low(f: LoopFacts, s: RuleSettings) -> Check:
    """The indoor temperature the water sustains is below the target."""
    threshold = np.full(f.n, f.indoor_target - s.margin)
    est = f.estimated_indoor
    judged = f.judge & ~np.isnan(est)
    with np.errstate(invalid="ignore"):
        active = judged & (est < threshold + f.hysteresis(s))
    return Check(s.name, active, judged, est, threshold, s.margin)


def indoor_low(f: LoopFacts, s: RuleSettings) -> Check:
    """At least `min_sensors` (and `min_share`) of the loop's fresh household sensors are below target."""
    n = f.n
    threshold = np.full(n, f.indoor_target - s.margin)
    ind, il = f.indoor, f.indoor_loop
    ok = (ind.age(f.now) <= INDOOR_MAX_AGE_S) & (quantity_faults(ind.value, "indoor_temp") == 0) & ~ind.flagged
    h = f.hysteresis(s)
    sensor_threshold = threshold[il] + (h[il] if isinstance(h, np.ndarray) else h)
    with np.errstate(invalid="ignore"):
        low = ok & (ind.value < sensor_threshold)
    fresh = np.bincount(il[ok], minlength=n).astype(np.int64)
    n_low = np.bincount(il[low], minlength=n).astype(np.int64)
    lowest = np.full(n, np.inf)
    np.minimum.at(lowest, il[ok], ind.value[ok])
    lowest[np.isinf(lowest)] = np.nan
    judged = f.judge & (fresh > 0)
    share_ok = (s.min_share <= 0.0) | (n_low / np.maximum(fresh, 1) >= s.min_share)
    active = judged & (n_low >= s.min_sensors) & share_ok
    return Check(s.name, active, judged, lowest, threshold, s.margin, counts=(fresh, n_low))


def _delta_t(f: LoopFacts, s: RuleSettings, *, low: bool) -> Check:
    expected = f.expected_delta_t
    threshold = s.ratio * expected
    with np.errstate(invalid="ignore"):
        judged = (
            f.judge & f.supply_ok & f.return_ok & f.flowing & ~np.isnan(expected) & (expected >= s.min_expected_delta_t)
        )
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
    """A supply or return sensor of the loop is faulty (judged while the station is online)."""
    sup_bad, ret_bad = f.supply_faults != 0, f.return_faults != 0
    value = np.where(sup_bad, f.supply, np.where(ret_bad, f.return_, np.nan))
    return Check(s.name, f.online & (sup_bad | ret_bad), f.online.copy(), value, np.full(f.n, np.nan))


def station_offline(f: StationFacts, s: RuleSettings) -> Check:
    """No reading from the station for `offline_after`."""
    n = len(f.age)
    return Check(s.name, f.offline.copy(), np.ones(n, dtype=bool), f.age, np.full(n, f.offline_after_s))


def station_sensor_fault(f: StationFacts, s: RuleSettings) -> Check:
    """The outdoor or primary supply sensor of an online station is faulty."""
    online = ~f.offline
    out_bad, prim_bad = f.outdoor_faults != 0, f.primary_faults != 0
    value = np.where(out_bad, f.outdoor, np.where(prim_bad, f.primary, np.nan))
    return Check(s.name, online & (out_bad | prim_bad), online, value, np.full(len(f.age), np.nan))
