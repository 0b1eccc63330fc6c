"""`InfluxWriter.when_stored`'s bookkeeping: batches settle in any order, callbacks run in order once
every line before them is settled, and a lost line marks only the callbacks whose lines it is among."""

from __future__ import annotations

from stationmon.adapters.influx import _Claims, _narrowed, _Settlement


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


# -- sequence numbers beside the buffer (`_Claims`): storage cuts, puts back and narrows batches ----------


def test_a_batch_cut_across_submits_settles_exactly_its_lines() -> None:
    claims, log = _Claims(), []
    claims.add(3)
    claims.add(4)  # one run 0..6: consecutive submits join
    claims.settlement.watch(_recorder(log, "a"))
    first = claims.cut(5)
    rest = claims.cut(5)
    assert [p.count for p in first] == [5] and [p.count for p in rest] == [2]
    claims.settle(rest, True)
    assert log == []
    claims.settle(first, True)
    assert log == [("a", True)]


def test_a_refused_batch_put_back_settles_when_spooled_later_even_cut_differently() -> None:
    claims, log = _Claims(), []
    claims.add(6)
    claims.settlement.watch(_recorder(log, "a"))
    claims.add(6)
    claims.settlement.watch(_recorder(log, "b"))
    batch = claims.cut(4)  # the spool refuses it: back in front of the buffer
    claims.put_back(batch)
    again = claims.cut(8)  # the next cut spans the kept lines and newer ones
    claims.settle(again, True)
    assert log == [("a", True)]
    claims.settle(claims.cut(4), True)
    assert log == [("a", True), ("b", True)]


def test_a_partly_stored_batch_settles_when_its_unsent_lines_do_and_fails_if_they_are_lost() -> None:
    claims, log = _Claims(), []
    claims.add(10)
    claims.settlement.watch(_recorder(log, "a"))
    batch = claims.cut(10)
    unsent = _narrowed(batch, 3)  # a split write stored 7 lines; 3 go to the spool, which refuses them
    claims.put_back(unsent)
    head, tail = claims.cut(1), claims.cut(2)  # e.g. the oldest line dropped past max_buffered_lines
    claims.settle(tail, True)
    assert log == []  # the ticket waits for both pieces of the kept lines
    claims.settle(head, False)
    assert log == [("a", False)]


def test_lines_dropped_fail_only_their_own_callbacks() -> None:
    claims, log = _Claims(), []
    for name in "abc":
        claims.add(2)
        claims.settlement.watch(_recorder(log, name))
    claims.settle(claims.cut(1), True)
    claims.settle(claims.cut(2), False)  # line 1 (a's) and line 2 (b's)
    claims.settle(claims.cut(3), True)
    assert log == [("a", False), ("b", False), ("c", True)]
    assert _narrowed(claims.cut(0), 0) == []
