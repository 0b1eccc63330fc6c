"""The latest value of every series, and a short history for the status page's charts. Pure data."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from stationmon.domain.model import Reading

__all__ = ["LatestValues", "Sample", "SeriesKey"]

SeriesKey = tuple[str, str | None, str | None, str]  # station, loop, sensor, quantity


@dataclass(slots=True)
class Sample:
    """The latest value of one series, its time and the collector's fault reason (None: good)."""

    value: float
    ts: float
    fault: str | None = None


class LatestValues:
    """Latest sample per series, plus a bounded history per series (time window and length)."""

    def __init__(self, history_window_s: float = 6 * 3600.0, history_max_points: int = 720) -> None:
        self.latest: dict[SeriesKey, Sample] = {}
        self.history: dict[SeriesKey, deque[tuple[float, float]]] = {}
        self.history_window_s = history_window_s
        self.history_max_points = history_max_points
        self._history_step_s = max(1.0, history_window_s / history_max_points)
        self.last_seen: dict[str, float] = {}  # station -> ts of its newest reading

    def update(self, readings: Iterable[Reading]) -> None:
        """Take a batch of readings; older samples than what is stored do not replace it."""
        latest = self.latest
        for r in readings:
            key = (r.station, r.loop, r.sensor, r.quantity)
            cur = latest.get(key)
            if cur is not None and r.ts < cur.ts:
                continue
            latest[key] = Sample(r.value, r.ts, r.fault)
            if self.last_seen.get(r.station, 0.0) < r.ts:
                self.last_seen[r.station] = r.ts
            if r.fault is None:
                self._remember(key, r.ts, r.value)

    def _remember(self, key: SeriesKey, ts: float, value: float) -> None:
        hist = self.history.get(key)
        if hist is None:
            hist = self.history[key] = deque(maxlen=self.history_max_points)
        # keep at most one point per step so the window covers history_window_s
        if hist and ts - hist[-1][0] < self._history_step_s:
            return
        hist.append((ts, value))
        cutoff = ts - self.history_window_s
        while hist and hist[0][0] < cutoff:
            hist.popleft()

    def get(self, station: str, quantity: str, loop: str | None = None, sensor: str | None = None) -> Sample | None:
        """The latest sample of one series, or None."""
        return self.latest.get((station, loop, sensor, quantity))

    def series_of(self, station: str) -> dict[SeriesKey, Sample]:
        """Every series of one station."""
        return {k: v for k, v in self.latest.items() if k[0] == station}
