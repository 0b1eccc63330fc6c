"""`InfluxWriter.when_stored`'s bookkeeping: batches settle in any order, callbacks run in order once
every line before them is settled, and a lost line marks only the callbacks whose lines it is among."""

from __future__ import annotations

from stationmon.adapters.influx import _Settlement


def _recorder(log: list[tuple[str, bool]], name: str):  # type: ignore[no-untyped-def]
    return lambda stored: log.append((name, stored))


def test_callbacks_wait_for_every_earlier_line_and_run_in_order() -> None:
    s, log = _Settlement(), []
    s.add(10)
    s.watch(_recorder(log, "a"))  # lines 0..9
    s.add(5)
    s.watch(_recorder(log, "b"))  # lines 10..14
    s.settle(10, 5, True)  # the later batch first: nobody may run yet
    assert log == []
    s.settle(0, 10, True)
    assert log == [("a", True), ("b", True)]


def test_a_lost_batch_fails_only_the_callbacks_it_belongs_to() -> None:
    s, log = _Settlement(), []
    s.add(4)
    s.watch(_recorder(log, "a"))
    s.add(4)
    s.watch(_recorder(log, "b"))
    s.add(4)
    s.watch(_recorder(log, "c"))
    s.settle(0, 4, True)
    s.settle(8, 4, True)
    s.settle(4, 4, False)  # b's lines could not be spooled
    assert log == [("a", True), ("b", False), ("c", True)]


def test_nothing_pending_calls_back_at_once_and_a_failing_callback_does_not_stop_the_rest() -> None:
    s, log = _Settlement(), []
    s.watch(_recorder(log, "empty"))
    assert log == [("empty", True)]

    def broken(stored: bool) -> None:
        raise RuntimeError("collector bug")

    s.add(3)
    s.watch(broken)
    s.watch(_recorder(log, "after"))
    s.settle(0, 3, True)
    assert log == [("empty", True), ("after", True)]
