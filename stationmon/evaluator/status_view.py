"""The latest judgement of each loop, read by the HTTP API and the status page."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from stationmon.domain.rules import RuleResults
from stationmon.domain.vocabulary import STATUS_NAMES

__all__ = ["ConditionStatus", "LoopStatus", "LoopStatusView"]


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
    verdict: str = "none"  # what the status rests on: sensors, estimate, none
    measured_indoor_temp: float | None = None  # median of the fresh household sensors
    indoor_sensors: int = 0
    indoor_below_target: int = 0
    indoor_below_refund: int = 0
    beyond_design: bool = False
    setback: bool = False
    inspection_hour: bool = True

    @property
    def reasons(self) -> list[str]:
        """One line per active condition, e.g. "supply_low: supply 38.0 °C below 40.4 °C (...)"."""
        return [f"{c.rule}: {c.message}" for c in self.conditions]


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


_COMPLIANT = {"ok": True, "noncompliant": False}


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
        s = int(r.table.loop_station[i])
        conditions = []
        for checks, index, loop in ((r.loop_checks, i, key[1]), (r.station_checks, s, None)):
            for rule, check in checks.items():
                cond = r.lookup((rule, key[0], loop)) if check.active[index] else None
                if cond is not None:
                    conditions.append(ConditionStatus(rule, cond.value, cond.threshold, cond.message))
        status = r.status_name(i)
        return LoopStatus(
            station=key[0],
            loop=key[1],
            district=r.table.districts[s],
            ts=r.now,
            status=status,
            compliant=_COMPLIANT.get(status),
            required_supply_temp=_opt(float(r.required_supply[i])),
            required_return_temp=_opt(float(r.required_return[i])),
            estimated_indoor_temp=_opt(float(r.estimated_indoor[i])),
            delta_t=_opt(float(r.delta_t[i])),
            expected_delta_t=_opt(float(r.expected_delta_t[i])),
            outdoor_temp=_opt(float(r.outdoor[i])),
            conditions=tuple(conditions),
            verdict=r.verdict_name(i),
            measured_indoor_temp=_opt(float(r.measured_indoor[i])),
            indoor_sensors=int(r.indoor_sensors[i]),
            indoor_below_target=int(r.indoor_below_target[i]),
            indoor_below_refund=int(r.indoor_below_refund[i]),
            beyond_design=bool(r.beyond_design[i]),
            setback=bool(r.setback[i]),
            inspection_hour=r.inspection_hour,
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
