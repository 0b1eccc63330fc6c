"""Daily windows (inspection hours, setbacks) at their edges: each test names the bug it catches."""

from __future__ import annotations

import pytest

from stationmon.domain.plant import DailyWindow


@pytest.mark.parametrize(
    ("minute", "inside"),
    [(1319, False), (1320, True), (1439, True), (0, True), (359, True), (360, False)],
)
def test_a_night_window_includes_its_start_and_excludes_its_end(minute: int, inside: bool) -> None:
    """22:00-06:00 wraps midnight: 22:00 itself is inside (`>` for `>=` would leave it out), 06:00 is not."""
    assert DailyWindow(1320, 360).contains(minute) is inside


def test_a_window_whose_end_is_its_start_wraps_to_the_whole_day() -> None:
    """ "The end not after the start wraps midnight": equal ends are the whole day, not an empty window (the
    config refuses such a window; the domain's meaning must not flip with `<=` for `<`)."""
    window = DailyWindow(600, 600)
    assert all(window.contains(m) for m in range(0, 1440, 15))
