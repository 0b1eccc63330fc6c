"""Latest values, tracked arrays and the status page's history at their edges: each test names its bug."""

from __future__ import annotations

import math
import tracemalloc

import pytest

from stationmon.domain.latest import History, LatestValues
from stationmon.domain.model import Reading

KEY = ("s1", "sec1", None, "supply_temp")


def _r(value: float, ts: float, station: str = "s1", quantity: str = "supply_temp") -> Reading:
    return Reading(station, quantity, value, ts, loop="sec1")


def test_a_reading_at_the_same_time_replaces_the_stored_one() -> None:
    """Only *older* readings are ignored (`<=` for `<` would keep a resent, corrected reading's old value)."""
    latest = LatestValues()
    latest.update([_r(41.0, 100.0)])
    latest.update([_r(42.0, 100.0)])
    assert latest.latest[KEY].value == 42.0


def test_an_older_reading_in_a_batch_does_not_stop_the_rest_of_the_batch() -> None:
    """An out-of-order reading is skipped alone (a `break` would drop every reading after it)."""
    latest = LatestValues()
    latest.update([_r(41.0, 100.0)])
    latest.update([_r(40.0, 90.0), _r(43.0, 110.0, quantity="return_temp"), _r(44.0, 120.0)])
    assert latest.latest[KEY].value == 44.0
    assert latest.latest[("s1", "sec1", None, "return_temp")].value == 43.0


def test_last_seen_never_goes_back_and_is_per_station() -> None:
    """A late reading of one station does not move its last-seen time back, nor another station's."""
    latest = LatestValues()
    seen = latest.track_last_seen(["s1", "s2"])
    assert math.isnan(seen[0]) and math.isnan(seen[1])
    latest.update([_r(1.0, 100.0), _r(1.0, 50.0, station="s2")])
    latest.update([_r(1.0, 80.0, quantity="flow")])  # s1's own, but older than what s1 last sent
    assert latest.last_seen == {"s1": 100.0, "s2": 50.0}
    assert seen.tolist() == [100.0, 50.0]


def test_untracking_one_of_three_trackers_of_a_series_keeps_the_other_two_current() -> None:
    """Each series' trackers form a chain; removing the middle one must keep both ends (walking only the
    first link, or relinking without the rest, loses the oldest)."""
    latest = LatestValues()
    first, middle, last = latest.track([KEY]), latest.track([KEY]), latest.track([KEY])
    latest.untrack(middle)
    latest.update([_r(45.0, 100.0)])
    assert (first.value[0], last.value[0]) == (45.0, 45.0)
    assert math.isnan(middle.value[0])


def test_untracking_a_repeated_key_or_twice_is_harmless() -> None:
    """A key listed twice, or a second untrack, finds no tracker left for the series: nothing to do, no
    KeyError (the evaluator untracks the indoor series it re-tracks when sensors appear)."""
    latest = LatestValues()
    twice = latest.track([KEY, KEY])
    latest.untrack(twice)
    latest.untrack(twice)
    kept = latest.track([KEY])
    latest.update([_r(45.0, 100.0)])
    assert kept.value[0] == 45.0 and math.isnan(twice.value[0]) and math.isnan(twice.value[1])


def test_history_keeps_one_point_per_second_at_most() -> None:
    """The history step is window / points but never under a second: 60 s in 720 points keeps a point a
    second (a floor of 2 s would keep every other)."""
    latest = LatestValues(history_window_s=60.0, history_max_points=720)
    latest.update([_r(float(t), float(t)) for t in range(10)])
    assert [ts for ts, _ in latest.history[KEY]] == [float(t) for t in range(10)]


def test_history_defaults_to_six_hours_in_720_points() -> None:
    """A point every 30 s by default: 721 readings 30 s apart keep the newest 720 (6 h), not 721."""
    latest = LatestValues()
    latest.update([_r(1.0, 30.0 * k) for k in range(722)])
    points = list(latest.history[KEY])
    assert len(points) == 720 and points[0][0] == 30.0 * 2


def test_a_point_exactly_at_the_cutoff_is_kept() -> None:
    """Points *before* the cutoff are dropped (`<=` would also drop the one at the window's edge)."""
    history = History(10)
    for ts in (0.0, 10.0, 20.0):
        history.append(ts, ts, cutoff=ts - 20.0)
    assert list(history) == [(0.0, 0.0), (10.0, 10.0), (20.0, 20.0)]


def test_a_point_older_than_its_own_cutoff_leaves_the_history_empty() -> None:
    history = History(10)
    history.append(5.0, 1.0, cutoff=0.0)
    history.append(6.0, 2.0, cutoff=10.0)
    assert (len(history), list(history)) == (0, [])


def test_history_index_out_of_range_says_so() -> None:
    history = History(3)
    history.append(1.0, 2.0, cutoff=0.0)
    assert history[-1] == (1.0, 2.0)
    with pytest.raises(IndexError, match=r"^history index out of range$"):
        history[1]
    with pytest.raises(IndexError, match=r"^history index out of range$"):
        history[-2]


def test_history_memory_stays_bounded_by_its_points() -> None:
    """The dropped front is compacted away: 5,000 points through a 100-point history hold a few KiB (at most
    about 200 points of 16 bytes), not the 80 KiB of every point appended (the soak's replicas grew by
    90 MB/h before this bound)."""
    history = History(100)
    tracemalloc.start()
    try:
        for k in range(5_000):
            history.append(float(k), 1.0, cutoff=0.0)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 24 * 1024
    assert list(history)[-1] == (4_999.0, 1.0) and len(history) == 100


def test_history_after_compaction_keeps_every_point_of_the_window() -> None:
    """After the arrays are compacted the first kept point is still the oldest in the window (a head left
    at 1 instead of 0 would drop it)."""
    history = History(100)
    for k in range(300):  # compacts when more than 64 points, and more than half the arrays, are dropped
        history.append(float(k), float(k), cutoff=0.0)
        assert history[0] == (float(max(0, k - 99)), float(max(0, k - 99)))
        assert len(history) == min(k + 1, 100)
