"""One retry timing for every adapter: capped exponential backoff with jitter.

Pure: the caller sleeps; the random source can be injected for tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """Delays initial, 2x, 4x ... up to `max_s`, each scaled by a random factor in [0.5, 1).

    Jitter keeps many instances (or stations) that failed together from retrying in lockstep.
    `free_failures` failures in a row cost no wait at all (a Modbus gateway blip retries at the next
    poll); `floor_s` is a lower bound for one delay, such as a server's Retry-After.
    """

    def __init__(
        self,
        initial_s: float = 0.5,
        max_s: float = 60.0,
        *,
        free_failures: int = 0,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self.initial_s = initial_s
        self.max_s = max(max_s, initial_s)
        self.free_failures = free_failures
        self.failures = 0
        self._rand = rand or random.random

    def delay_for(self, failures: int) -> float:
        """The wait after `failures` failures in a row (no state change)."""
        n = failures - self.free_failures
        if n <= 0:
            return 0.0
        base = min(self.max_s, self.initial_s * 2.0 ** min(n - 1, 60))
        return base * (0.5 + 0.5 * self._rand())

    def next_delay(self, floor_s: float = 0.0) -> float:
        """Count one more failure and return the wait before the next attempt (at least `floor_s`)."""
        self.failures += 1
        return min(max(self.delay_for(self.failures), floor_s), max(self.max_s, floor_s))

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self.failures = 0
