"""The running mean (`running_mean_update`) where the older tests did not look: windows under a second, a
mean whose time is unknown, and the samples a district's worst sensors send (inf, float64 garbage).

Found by `make mutation`: each test names the bug it catches. pytest turns every warning into an error here
(pyproject `filterwarnings = ["error"]`), so "silent" is tested by calling. Expected values are written out
from the definition mean' = value + exp(-gap/window) (mean - value) with plain `math`.
"""

from __future__ import annotations

import math

import pytest

from stationmon.domain.heating import running_mean_update


@pytest.mark.parametrize("window_s", [0.25, 0.5, 1.0])
def test_a_window_of_a_second_or_less_still_smooths(window_s: float) -> None:
    """A window of 0.25, 0.5 or 1 s is a window (only 0 follows the samples unsmoothed): half a second after
    the last sample the old mean keeps exp(-0.5/window) of its weight. Catches the "smooth at all" test
    written `window_s > 1.0`: these windows would follow the sample (20.0) as if they were 0."""
    mean, ts = running_mean_update(10.0, 0.0, 20.0, 0.5, window_s)
    assert float(mean) == pytest.approx(20.0 + math.exp(-0.5 / window_s) * (10.0 - 20.0), abs=1e-12)
    assert float(ts) == 0.5
    assert float(mean) < 20.0  # at 0.25 s: 20 - 10 e^-2 = 18.65


def test_a_mean_of_unknown_age_gives_way_to_the_next_sample() -> None:
    """A mean known but its time not (NaN: no age can be told) weighs nothing against a fresh sample: the
    mean becomes the sample, stamped with its time; the loop beside it, with a known time, is smoothed.
    Catches the NaN weight reset only where the mean is unknown (`unknown & isnan(keep)`: NaN * (10 - 20)
    would make the mean NaN) and a NaN weight reset to 1 instead of 0 (the mean would stay 10)."""
    mean, ts = running_mean_update([10.0, 10.0], [math.nan, 0.0], [20.0, 20.0], [100.0, 100.0], 100.0)
    assert list(mean) == [20.0, pytest.approx(20.0 - 10.0 * math.exp(-1.0), abs=1e-12)]
    assert list(ts) == [100.0, 100.0]


def test_an_infinite_sample_resets_the_mean_silently_and_the_next_sample_restarts_it() -> None:
    """A probe reading +inf (a broken PT1000 decoded as inf): mean - inf is -inf, weighted and added back to
    inf gives inf - inf, NaN, an "invalid" floating-point operation that numpy must not warn about (an error
    here, a log flood in service). The mean is NaN, unknown, so the next good sample starts it afresh (a
    mean stuck at inf would never come back). Catches the `invalid="ignore"` dropped from the errstate."""
    mean, ts = running_mean_update([50.0, 50.0], [0.0, 0.0], [math.inf, 40.0], [30.0, 30.0], 60.0)
    keep = math.exp(-30.0 / 60.0)
    assert math.isnan(mean[0]) and ts[0] == 30.0
    assert mean[1] == pytest.approx(40.0 + keep * 10.0, abs=1e-12)  # the neighbour: undisturbed
    mean, ts = running_mean_update(mean, ts, [45.0, 45.0], [60.0, 60.0], 60.0)
    assert mean[0] == 45.0 and ts[0] == 60.0


def test_float64_garbage_of_the_opposite_sign_overflows_silently() -> None:
    """A float64 register's garbage (±1.5e308) after a mean of the opposite extreme: mean - value is 3e308,
    past the largest double, an overflow numpy must not warn about; the mean is what the arithmetic gives,
    -inf, and the loop beside it is smoothed as usual. Catches the `over="ignore"` dropped."""
    mean, ts = running_mean_update([-1.5e308, 10.0], [0.0, 0.0], [1.5e308, 20.0], [60.0, 60.0], 60.0)
    assert mean[0] == -math.inf
    assert mean[1] == pytest.approx(20.0 - 10.0 * math.exp(-1.0), abs=1e-12)
    assert list(ts) == [60.0, 60.0]
