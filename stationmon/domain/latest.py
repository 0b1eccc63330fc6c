"""The latest value of every series, and a short history for the status page's charts. Pure data.

The evaluator reads thousands of series every tick: it registers them once (`track`, `track_last_seen`)
and `update` keeps their arrays current as readings arrive, so a tick copies arrays instead of looking
up every series again.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from stationmon.domain.heating import FloatArray
from stationmon.domain.model import Reading

__all__ = ["History", "LatestValues", "Sample", "SeriesKey", "TrackedSeries"]

SeriesKey = tuple[str, str | None, str | None, str]  # station, loop, sensor, quantity


@dataclass(slots=True)
class Sample:
    """The latest value of one series, its time and the collector's fault reason (None: good)."""

    value: float
    ts: float
    fault: str | None = None


_Slot = tuple["memoryview[float]", "memoryview[float]", "memoryview[bool]", int, "_Slot | None"]


class TrackedSeries:
    """The latest value, time and fault flag of a fixed list of series as arrays (NaN: never read), kept
    current by `LatestValues.update`. The arrays are live: copy them to keep a tick's view."""

    __slots__ = ("flagged", "keys", "ts", "value", "views")

    def __init__(self, keys: Iterable[SeriesKey]) -> None:
        self.keys: tuple[SeriesKey, ...] = tuple(keys)
        n = len(self.keys)
        self.value: FloatArray = np.full(n, np.nan)
        self.ts: FloatArray = np.full(n, np.nan)
        self.flagged = np.zeros(n, dtype=np.bool_)
        # element writes through memoryviews cost a third of numpy's item assignment
        self.views = (
            self.value.data.cast("B").cast("d"),
            self.ts.data.cast("B").cast("d"),
            self.flagged.data.cast("B").cast("?"),
        )

    def slot(self, i: int, then: _Slot | None = None) -> _Slot:
        """Where `LatestValues.update` writes series i (and `then`: where else)."""
        values, times, flags = self.views
        return (values, times, flags, i, then)

    def set(self, i: int, value: float, ts: float, fault: str | None) -> None:
        """Series i now has this sample."""
        values, times, flags = self.views
        values[i], times[i], flags[i] = float(value), float(ts), fault is not None  # the views take floats only


class History:
    """One series' recent (time, value) points in two arrays of doubles: 16 bytes a point, where a deque of
    tuples took about 100 (the soak saw the status page's history grow replicas by 90 MB/h until full).

    Iterating yields (time, value) pairs, oldest first; `append` drops points older than a cutoff and
    beyond `max_points` from the front. The arrays are compacted when an eighth of them is dropped space
    (a copy of the window every eighth of it: a few element copies per append), so a full window costs at
    most 8/7 of its points; compacting at half (as before) let every series' arrays grow to twice the
    window, and the soak's replicas kept growing for two windows."""

    __slots__ = ("_head", "_max", "_ts", "_vs")

    def __init__(self, max_points: int) -> None:
        self._ts, self._vs = array("d"), array("d")
        self._head, self._max = 0, max(1, max_points)

    def __len__(self) -> int:
        return len(self._ts) - self._head

    def __iter__(self) -> Iterator[tuple[float, float]]:
        return zip(self._ts[self._head :], self._vs[self._head :], strict=True)

    def __getitem__(self, index: int) -> tuple[float, float]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError("history index out of range")
        i = self._head + (index % n)
        return self._ts[i], self._vs[i]

    @property
    def last_ts(self) -> float:
        return self._ts[-1]

    def append(self, ts: float, value: float, cutoff: float) -> None:
        """Add a point; drop points before `cutoff` and beyond the newest `max_points`."""
        self._ts.append(ts)
        self._vs.append(value)
        head, end = self._head, len(self._ts)
        head = max(head, end - self._max)
        while head < end and self._ts[head] < cutoff:
            head += 1
        if head > 16 and head * 8 > end:  # compact: the dropped front is an eighth of the arrays
            del self._ts[:head], self._vs[:head]
            head = 0
        self._head = head


class LatestValues:
    """Latest sample per series, plus a bounded history per series (time window and length)."""

    def __init__(self, history_window_s: float = 6 * 3600.0, history_max_points: int = 720) -> None:
        self.latest: dict[SeriesKey, Sample] = {}
        self.history: dict[SeriesKey, History] = {}
        self.history_window_s = history_window_s
        self.history_max_points = history_max_points
        self._history_step_s = max(1.0, history_window_s / history_max_points)
        self.last_seen: dict[str, float] = {}  # station -> ts of its newest reading
        # tracked series -> where it lives: (values, times, flags, index, the next TrackedSeries' slot or None)
        self._slots: dict[SeriesKey, _Slot] = {}
        self._seen_slots: dict[str, list[tuple[memoryview[float], int]]] = {}  # station -> its tracked last_seen
        self._watchers: dict[str, list[list[SeriesKey]]] = {}  # quantity -> lists that learn its new series

    def update(self, readings: Iterable[Reading]) -> None:
        """Take a batch of readings; older samples than what is stored do not replace it."""
        latest, slots_of, seen_slots, last_seen = self.latest, self._slots, self._seen_slots, self.last_seen
        for r in readings:
            key = (r.station, r.loop, r.sensor, r.quantity)
            cur = latest.get(key)
            if cur is not None and r.ts < cur.ts:
                continue
            latest[key] = Sample(r.value, r.ts, r.fault)
            if cur is None and r.quantity in self._watchers:
                for watcher in self._watchers[r.quantity]:
                    watcher.append(key)
            slot = slots_of.get(key)
            if slot is not None:  # inline: this runs for every reading of a judged series
                value, ts, flagged = float(r.value), float(r.ts), r.fault is not None
                while slot is not None:
                    values, times, flags, i, slot = slot
                    values[i], times[i], flags[i] = value, ts, flagged
            if last_seen.get(r.station, 0.0) < r.ts:
                last_seen[r.station] = r.ts
                for view, i in seen_slots.get(r.station, ()):
                    view[i] = float(r.ts)
            if r.fault is None:
                self._remember(key, r.ts, r.value)

    def track(self, keys: Iterable[SeriesKey]) -> TrackedSeries:
        """Arrays of these series, filled from what is known and kept current by `update` until `untrack`."""
        tracked = TrackedSeries(keys)
        for i, key in enumerate(tracked.keys):
            self._slots[key] = tracked.slot(i, self._slots.get(key))
            sample = self.latest.get(key)
            if sample is not None:
                tracked.set(i, sample.value, sample.ts, sample.fault)
        return tracked

    def untrack(self, tracked: TrackedSeries) -> None:
        """`update` stops keeping these arrays current."""
        mine = tracked.views[0]
        for key in tracked.keys:
            kept: list[_Slot] = []
            slot = self._slots.pop(key, None)
            while slot is not None:
                if slot[0] is not mine:
                    kept.append(slot)
                slot = slot[4]
            for values, times, flags, i, _ in reversed(kept):
                self._slots[key] = (values, times, flags, i, self._slots.get(key))

    def track_last_seen(self, stations: Sequence[str]) -> FloatArray:
        """Per station, the time of its newest reading (NaN: none yet), kept current by `update` (live)."""
        seen = np.array([self.last_seen.get(s, np.nan) for s in stations], dtype=np.float64)
        view = seen.data.cast("B").cast("d")
        for i, station in enumerate(stations):
            self._seen_slots.setdefault(station, []).append((view, i))
        return seen

    def watch(self, quantity: str) -> list[SeriesKey]:
        """A list to which `update` appends the key of every new series of `quantity` (drain it as you read)."""
        watcher: list[SeriesKey] = []
        self._watchers.setdefault(quantity, []).append(watcher)
        return watcher

    def _remember(self, key: SeriesKey, ts: float, value: float) -> None:
        hist = self.history.get(key)
        if hist is None:
            hist = self.history[key] = History(self.history_max_points)
        # keep at most one point per step so the window covers history_window_s
        if hist and ts - hist.last_ts < self._history_step_s:
            return
        hist.append(ts, value, ts - self.history_window_s)
