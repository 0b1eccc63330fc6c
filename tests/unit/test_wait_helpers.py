"""The waiting helpers fail with what they waited for and what they last saw, never by hanging."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stationmon.adapters.spool import Spool
from tests.helpers import drain_spool, wait_for_count, wait_until, wait_until_sync


def test_wait_helpers_report_what_they_last_saw() -> None:
    with pytest.raises(AssertionError, match=r"waiting for x \(it last returned 0\); last seen: 7"):
        wait_until_sync(lambda: 0, timeout=0.1, message="x", seen=lambda: 7)

    def bad() -> None:
        assert 1 == 2, "nope"

    with pytest.raises(AssertionError, match="waiting for y: nope"):
        asyncio.run(wait_until(bad, timeout=0.1, message="y"))
    n = iter(range(0, 100, 3))
    with pytest.raises(AssertionError, match="counted 6, past the 5"):
        asyncio.run(wait_for_count(lambda: next(n), 5, "c", interval=0.01))
    with pytest.raises(AssertionError, match=r"no progress for 0\.2s, at 1 of 5"):
        asyncio.run(wait_for_count(lambda: 1, 5, "c", stall_s=0.2, interval=0.01))


def test_drain_spool_fails_at_once_when_an_ack_does_not_move_on(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(["m v=1 1"], 1.0)
    spool.ack = lambda record: None  # type: ignore[method-assign]  # an ack bug: the same record again
    with pytest.raises(AssertionError, match="ack did not move the spool on"):
        drain_spool(spool)
    spool.close()
