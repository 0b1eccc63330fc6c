"""The soak's judgement of a replica's memory and open files over time (the pure part: tests/unit/test_soak_judge.py).

A replica's RSS grows legitimately while its status-page history (`[http] history_window`) fills: every
series gains a point per step until the window is full, and `domain.latest.History` keeps up to an eighth
more than the window before compacting its arrays. Growth after that is what a leak would be. So a slope is
judged over each process life's **steady phase** only: from the later of

- the life's start + the time the history takes to reach its peak size (`history_cost`, measured with the
  real `LatestValues` class under tracemalloc at the soak's window and reading interval) + a margin
  (`MARGIN_S`, one minute), and
- the middle of the life (the first half holds start-up: connections, imports, allocator warm-up),

to the life's end. A life whose steady phase is shorter than `MIN_STEADY_S` (or has fewer than
`MIN_SAMPLES` samples) is not judged: "cannot judge: window not filled" when the window fills after the
life ended or too near its end. Nothing is passed or failed silently.

**Within noise** (printed with the figures): the drift the least-squares slope predicts over the steady
phase, |slope × span|, is at most `K_SD` (3) residual standard deviations plus a floor (`FLOORS`: 1 MB of
RSS, one pymalloc arena, the step in which CPython's small-object heap grows; one open file). Three
standard deviations: a flat series with independent noise stays under it (the fitted drift's own spread
is about 1.7 sd at the sample counts here) while a steady growth of a few MB over the phase (as the
history filling showed: 3 to 14 MB in 15 minutes) exceeds it. The verdict also prints the smallest slope
the phase could detect (the bound divided by the span): a short steady phase cannot rule out a slow leak,
and says so in MB/h.
"""

from __future__ import annotations

import math
import statistics
import tracemalloc
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from stationmon.domain.latest import LatestValues
from stationmon.domain.model import Reading

MARGIN_S = 60.0  # after the history's peak, before the steady phase begins
MIN_STEADY_S = 300.0  # a shorter steady phase is not judged
MIN_SAMPLES = 8
K_SD = 3.0
FLOORS = {"rss": 1.0, "fds": 1.0}  # MB (a pymalloc arena is 1 MiB), open files

__all__ = ["HistoryCost", "Verdict", "fit", "history_cost", "judge", "steady_start"]


@dataclass(frozen=True)
class HistoryCost:
    """What the status page's history holds per series once full, measured with the real classes."""

    window_s: float
    interval_s: float
    fill_s: float  # from the first reading until the history's memory reaches its peak
    bytes_per_series: float  # tracemalloc, at the peak (LatestValues' per-series history and its bookkeeping)
    points: int  # points a series keeps in a full window

    @property
    def bytes_per_point(self) -> float:
        return self.bytes_per_series / max(1, self.points)

    def mb(self, series: int) -> float:
        return series * self.bytes_per_series / 1e6


def history_cost(window_s: float, interval_s: float, series: int = 10, windows: float = 2.5) -> HistoryCost:
    """Feed `series` series one reading per `interval_s` for `windows` windows through a real `LatestValues`
    and trace its memory: the fill time is when the traced memory first reaches its peak."""
    latest = LatestValues(history_window_s=window_s)
    rounds = max(10, math.ceil(windows * window_s / interval_s))
    keys = [f"s{i}" for i in range(series)]
    traced = array("q", bytes(8 * rounds))  # allocated before tracing starts, so not traced itself
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for k in range(rounds):
            ts = 1.7e9 + k * interval_s
            latest.update([Reading(s, "supply_temp", 50.0, ts, loop="l") for s in keys])
            traced[k] = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    peak = max(traced)
    fill = traced.index(peak) * interval_s
    points = len(latest.history[(keys[0], "l", None, "supply_temp")])
    return HistoryCost(window_s, interval_s, fill, peak / series, points)


def fit(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope per hour (times in seconds) and the residuals' standard deviation."""
    if len(points) < 3:
        return math.nan, math.nan
    xs, ys = [p[0] / 3600 for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if not sxx:
        return math.nan, math.nan
    k = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    residuals = [y - (my + k * (x - mx)) for x, y in zip(xs, ys, strict=True)]
    return k, statistics.pstdev(residuals)


def steady_start(life_start: float, life_end: float, fill_s: float, margin_s: float = MARGIN_S) -> float:
    """Where a life's steady phase begins: the history full plus a margin, and not before the life's middle."""
    return max(life_start + fill_s + margin_s, (life_start + life_end) / 2)


@dataclass(frozen=True)
class Verdict:
    status: str  # "within noise", "NOT within noise", or "cannot judge: ..."
    from_s: float  # the steady phase (seconds, the samples' time base)
    to_s: float
    samples: int
    slope_per_h: float = math.nan
    sd: float = math.nan
    drift: float = math.nan  # slope x span
    bound: float = math.nan  # K_SD x sd + floor: |drift| at most this is within noise
    detectable_per_h: float = math.nan  # bound / span: slower growth cannot be told from noise here
    floor: float = math.nan

    @property
    def judged(self) -> bool:
        return not self.status.startswith("cannot judge")

    @property
    def ok(self) -> bool | None:
        return self.status == "within noise" if self.judged else None

    def describe(self, unit: str) -> str:
        if not self.judged:
            return self.status
        span = f"steady phase {self.from_s / 60:.1f}-{self.to_s / 60:.1f} min"
        return (
            f"{span} ({self.samples} samples): slope {self.slope_per_h:+.2f} {unit}/h, drift {self.drift:+.2f} {unit}"
            f" vs bound {K_SD:g} x sd {self.sd:.2f} + {self.floor:g} = {self.bound:.2f} {unit}:"
            f" {self.status} (detects > {self.detectable_per_h:.1f} {unit}/h)"
        )


def judge(
    points: Sequence[tuple[float, float]],
    life_start: float,
    fill_s: float,
    floor: float,
    *,
    min_steady_s: float = MIN_STEADY_S,
    min_samples: int = MIN_SAMPLES,
) -> Verdict:
    """The verdict on one life's samples (time in seconds, value), sorted by time."""
    if not points:
        return Verdict("cannot judge: no samples", life_start, life_start, 0)
    life_end = points[-1][0]
    start = steady_start(life_start, life_end, fill_s)
    steady = [p for p in points if p[0] >= start]
    if fill_s > 0 and life_start + fill_s + MARGIN_S > life_end - min_steady_s:
        fills = (life_start + fill_s) / 60
        why = f"cannot judge: window not filled (full at {fills:.1f} min + margin; life ends {life_end / 60:.1f} min)"
        return Verdict(why, start, life_end, len(steady))
    span = steady[-1][0] - steady[0][0] if steady else 0.0
    if span < min_steady_s or len(steady) < min_samples:
        why = f"cannot judge: steady phase {span / 60:.1f} min, {len(steady)} samples (needs {min_steady_s / 60:g} min)"
        return Verdict(why, start, life_end, len(steady))
    k, sd = fit(steady)
    drift = k * span / 3600
    bound = K_SD * sd + floor
    status = "within noise" if abs(drift) <= bound else "NOT within noise"
    return Verdict(status, start, life_end, len(steady), k, sd, drift, bound, bound / (span / 3600), floor)
