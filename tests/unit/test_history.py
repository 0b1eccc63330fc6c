"""The status page's per-series history (`domain.latest.History`): the same points a bounded deque kept."""

from __future__ import annotations

import random
from collections import deque

import pytest

from stationmon.domain.latest import History, LatestValues
from stationmon.domain.model import Reading


def _reference(points: list[tuple[float, float]], max_points: int, window: float) -> list[tuple[float, float]]:
    kept: deque[tuple[float, float]] = deque(maxlen=max_points)
    for ts, v in points:
        kept.append((ts, v))
        while kept and kept[0][0] < ts - window:
            kept.popleft()
    return list(kept)


@pytest.mark.parametrize("seed", range(5))
def test_history_keeps_what_a_bounded_deque_kept(seed: int) -> None:
    rng = random.Random(seed)
    max_points, window = rng.choice([1, 5, 100, 720]), rng.choice([10.0, 300.0, 3600.0])
    history, points, ts = History(max_points), [], 0.0
    for _ in range(3000):  # enough to compact the arrays many times
        ts += rng.choice([0.5, 1.0, 7.0, 400.0])
        value = rng.uniform(-30, 90)
        points.append((ts, value))
        history.append(ts, value, ts - window)
        assert history.last_ts == ts
    expected = _reference(points, max_points, window)
    assert list(history) == expected and len(history) == len(expected)
    assert history[0] == expected[0] and history[-1] == expected[-1]
    with pytest.raises(IndexError):
        history[len(expected)]


def test_latest_values_history_one_point_per_step_within_the_window() -> None:
    latest = LatestValues(history_window_s=60.0, history_max_points=6)  # a step of 10 s
    for k in range(100):
        latest.update([Reading("s1", "supply_temp", float(k), float(k), loop="sec1")])
    points = list(latest.history[("s1", "sec1", None, "supply_temp")])
    assert points == [(float(t), float(t)) for t in range(40, 100, 10)]
