"""What InfluxDB sums up for the report, per loop and per station: additive, so days, hours and raw points
add up the same way. Pure.

Each loop measure is four sums over the `loop_status` points it covers: `n` points, `ni` of them with
`interval_s`, `s` = sum of interval_s × value, `c` = sum of value (value is 1 for a status or a flag, a
sensor share for the household measures). A point without `interval_s` (written before it existed) stands
for `evaluate_every` seconds. Rollups store each measure already resolved to seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["LOOP_MEASURES", "LoopSums", "Measure", "OutdoorSums"]

# ok, noncompliant: loop time by status; beyond_design: with the flag set;
# judged: inspection-hour time with status ok or noncompliant (the compliance rate's denominator);
# good_estimate / good_sensors: of that, at or above indoor_target by the estimate / the share of sensors;
# below_target / below_refund: inspection-hour time × the share of fresh sensors below each tier.
LOOP_MEASURES = (
    "ok",
    "noncompliant",
    "beyond_design",
    "judged",
    "good_estimate",
    "good_sensors",
    "below_target",
    "below_refund",
)


@dataclass
class Measure:
    """The four sums of one measure (see the module docstring)."""

    s: float = 0.0
    c: float = 0.0
    n: float = 0.0
    ni: float = 0.0

    def add(self, other: Measure) -> None:
        """Add `other`'s sums to these."""
        self.s += other.s
        self.c += other.c
        self.n += other.n
        self.ni += other.ni

    def seconds(self, every_s: float) -> float:
        """Time-weighted value in seconds: exact where every point has interval_s; for points without it
        `evaluate_every` each, with their values taken at the measure's mean (exact for statuses and flags)."""
        if self.n <= 0:
            return 0.0
        missing = max(0.0, self.n - self.ni)
        return self.s + self.c / self.n * missing * every_s


@dataclass
class LoopSums:
    """Every loop measure of one loop over some time: raw sums, plus seconds already resolved (from rollups)."""

    measures: dict[str, Measure] = field(default_factory=lambda: {name: Measure() for name in LOOP_MEASURES})
    exact_s: dict[str, float] = field(default_factory=dict)

    def add(self, other: LoopSums) -> None:
        """Add `other` measure by measure."""
        for name, m in other.measures.items():
            self.measures.setdefault(name, Measure()).add(m)
        for name, seconds in other.exact_s.items():
            self.exact_s[name] = self.exact_s.get(name, 0.0) + seconds

    def seconds(self, name: str, every_s: float) -> float:
        """Time-weighted seconds of measure `name`."""
        return self.exact_s.get(name, 0.0) + self.measures[name].seconds(every_s)

    def rollup_fields(self, every_s: float) -> dict[str, float]:
        """As a rollup point: seconds per measure (only the measures with points or seconds)."""
        return {
            name: self.seconds(name, every_s)
            for name in LOOP_MEASURES
            if self.measures[name].n > 0 or name in self.exact_s
        }

    @classmethod
    def from_rollup(cls, row: dict[str, object]) -> LoopSums:
        """From a rollup row keyed by measure (seconds; missing or null: 0)."""
        out = cls()
        for name in LOOP_MEASURES:
            value = row.get(name)
            if isinstance(value, int | float):
                out.exact_s[name] = float(value)
        return out


@dataclass
class OutdoorSums:
    """A station's outdoor temperature: `t` sum of hourly means, `h` hours with a mean, `dh` degree-hours."""

    t: float = 0.0
    h: float = 0.0
    dh: float = 0.0

    def add(self, other: OutdoorSums) -> None:
        """Add `other`'s sums to these."""
        self.t += other.t
        self.h += other.h
        self.dh += other.dh

    @classmethod
    def from_hour(cls, mean: float, target: float) -> OutdoorSums:
        """One hour whose mean outdoor temperature was `mean`."""
        return cls(mean, 1.0, max(0.0, target - mean))
