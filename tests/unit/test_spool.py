"""The on-disk spool: order, durable acknowledgement, torn tails, corruption, the size bound."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stationmon.adapters.spool import HEADER, Spool, SpoolRecord, encode_record
from stationmon.errors import StorageError
from tests.helpers import drain_spool, wait_until_sync

REPO = Path(__file__).resolve().parents[2]


def drain(spool: Spool) -> list[list[str]]:
    """Every pending record's lines, acknowledging each (bounded: a stuck ack fails at once)."""
    return drain_spool(spool)


def batch(n: int, start: int = 0) -> list[str]:
    return [f"m,t=a v={i}.0 {i}" for i in range(start, start + n)]


def segments(path: Path) -> list[Path]:
    return sorted(path.glob("seg-*.spool"))


@pytest.mark.parametrize("fsync", ["always", "batch", "never"])
def test_records_come_back_in_order(tmp_path: Path, fsync: str) -> None:
    spool = Spool(tmp_path, fsync=fsync)
    for i in range(5):
        spool.append(batch(3, i * 3), oldest_ts=100.0 + i)
        spool.sync()
    assert spool.oldest_ts() == 100.0
    assert drain(spool) == [batch(3, i * 3) for i in range(5)]
    assert spool.peek() is None
    assert spool.pending_bytes == 0
    spool.close()


def test_unacknowledged_records_survive_reopen_and_acknowledged_ones_do_not(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(4):
        spool.append(batch(2, i * 2), 1.0)
    first = spool.peek()
    assert first is not None
    spool.ack(first)
    spool.close()

    reopened = Spool(tmp_path)
    assert drain(reopened) == [batch(2, 2), batch(2, 4), batch(2, 6)]
    reopened.close()
    again = Spool(tmp_path)
    assert drain(again) == []
    again.close()


def test_new_records_after_reopen_follow_the_old_ones(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(batch(1, 0), 1.0)
    spool.close()
    spool = Spool(tmp_path)
    spool.append(batch(1, 1), 2.0)
    assert drain(spool) == [batch(1, 0), batch(1, 1)]
    spool.close()


def test_records_appended_while_reading_are_read_too(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=200)
    got: list[list[str]] = []
    for i in range(30):
        spool.append(batch(2, i * 2), 1.0)
        if i % 3 == 0:
            record = spool.peek()
            assert record is not None
            got.append(record.lines)
            spool.ack(record)
    got += drain(spool)
    assert got == [batch(2, i * 2) for i in range(30)]
    # fully acknowledged segments are deleted, only the one being written remains
    assert len(segments(tmp_path)) == 1
    spool.close()


def test_torn_tail_is_cut_off_and_the_rest_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path)
    spool.append(batch(3, 0), 1.0)
    spool.append(batch(3, 3), 1.0)
    spool.close()
    [seg] = segments(tmp_path)
    data = seg.read_bytes()
    # a crash in the middle of the third record: its header and half its payload made it to disk
    torn = Spool._scan_valid(data, 0)
    assert torn == len(data)
    third = encode_record(batch(3, 6), 1.0)
    seg.write_bytes(data + third[: len(third) // 2])
    with caplog.at_level(logging.WARNING, logger="stationmon.spool"):
        reopened = Spool(tmp_path)
    assert "torn or corrupt tail" in caplog.text
    assert reopened.corrupt_bytes == len(third) // 2
    assert seg.stat().st_size == len(data)
    reopened.append(batch(1, 100), 1.0)
    assert drain(reopened) == [batch(3, 0), batch(3, 3), batch(1, 100)]
    reopened.close()


def test_garbage_tail_with_a_plausible_header_is_detected(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(batch(2, 0), 1.0)
    spool.close()
    [seg] = segments(tmp_path)
    good = seg.read_bytes()
    fake = HEADER.pack(10, 12345, 1, 1.0) + b"0123456789"  # right length, wrong CRC
    seg.write_bytes(good + fake)
    reopened = Spool(tmp_path)
    assert drain(reopened) == [batch(2, 0)]
    reopened.close()


def test_corrupt_record_in_an_older_segment_is_skipped_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path, segment_bytes=50)
    for i in range(3):
        spool.append(batch(3, i * 3), 1.0)  # each record fills a segment
    assert len(segments(tmp_path)) == 3
    spool.close()
    first = segments(tmp_path)[0]
    data = bytearray(first.read_bytes())
    data[HEADER.size + 2] ^= 0xFF  # flip a payload bit
    first.write_bytes(bytes(data))
    reopened = Spool(tmp_path)
    with caplog.at_level(logging.ERROR, logger="stationmon.spool"):
        assert drain(reopened) == [batch(3, 3), batch(3, 6)]
    assert "corrupt record" in caplog.text
    reopened.close()


def test_bound_drops_the_oldest_segment_counts_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path, max_bytes=4096, segment_bytes=512)
    with caplog.at_level(logging.ERROR, logger="stationmon.spool"):
        for i in range(100):
            spool.append(batch(5, i * 5), float(i))
    assert spool.total_bytes <= 4096
    assert spool.dropped_lines > 0
    assert spool.dropped_segments > 0
    assert "dropped the oldest segment" in caplog.text
    remaining = drain(spool)
    kept = sum(len(r) for r in remaining)
    # nothing vanishes silently: every line is either still there or counted as dropped
    assert kept + spool.dropped_lines == 500
    # what is left is the newest, still in order
    assert remaining[-1] == batch(5, 495)
    flat = [line for r in remaining for line in r]
    assert flat == sorted(flat, key=lambda s: int(s.rsplit(" ", 1)[1]))
    spool.close()


def test_bound_counts_only_unacknowledged_lines(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=4096, segment_bytes=4096)
    spool.append(batch(5, 0), 1.0)
    record = spool.peek()
    assert isinstance(record, SpoolRecord)
    spool.ack(record)
    for i in range(1, 40):
        spool.append(batch(5, i * 5), 1.0)
    total = sum(len(r) for r in drain(spool))
    assert total + spool.dropped_lines == 39 * 5
    spool.close()


CRASH_AFTER_ACK = """
import os, signal, sys
from stationmon.adapters.spool import Spool
spool = Spool(sys.argv[1])
spool.append(["m,t=a v=0.0 0"], 1.0)
spool.append(["m,t=a v=1.0 1"], 1.0)
spool.ack(spool.peek())
os.kill(os.getpid(), signal.SIGKILL)  # no close(): files and lock left as a crash leaves them
"""


def test_ack_position_is_durable_across_a_crash(tmp_path: Path) -> None:
    child = subprocess.run([sys.executable, "-c", CRASH_AFTER_ACK, str(tmp_path)], cwd=REPO, timeout=60, check=False)
    assert child.returncode == -signal.SIGKILL
    first_end = len(encode_record(batch(1, 0), 1.0))
    assert (tmp_path / "ack").read_text().split() == ["1", str(first_end)]
    fresh = Spool(tmp_path)  # the kernel released the dead process's lock
    assert drain(fresh) == [batch(1, 1)]
    fresh.close()


def test_a_second_spool_on_the_same_directory_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    assert (tmp_path / "lock").read_text().strip() == str(os.getpid())
    with pytest.raises(StorageError) as caught:
        Spool(tmp_path)
    assert str(caught.value) == (
        f"spool directory {tmp_path} is in use by another stationmon process (pid {os.getpid()})"
    )
    first.append(batch(2), 1.0)  # the refused open touched nothing
    first.close()
    second = Spool(tmp_path)
    assert drain(second) == [batch(2)]
    second.close()


HOLD_SPOOL = """
import sys
from stationmon.adapters.spool import Spool
spool = Spool(sys.argv[1])
sys.stdin.read()  # hold it until the test closes our stdin
spool.close()
"""


def test_a_spool_held_by_another_process_is_refused_with_its_pid(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_SPOOL, str(tmp_path)], cwd=REPO, stdin=subprocess.PIPE)
    try:
        lock = tmp_path / "lock"
        wait_until_sync(  # a Python start-up: seconds on a loaded machine (10 s timed out under mutmut's stats)
            lambda: lock.exists() and lock.read_text().strip() == str(holder.pid),
            timeout=60,
            message="the child holds the spool",
        )
        with pytest.raises(
            StorageError, match=rf"spool directory .* in use by another stationmon process \(pid {holder.pid}\)"
        ):
            Spool(tmp_path)
        assert holder.stdin is not None
        holder.stdin.close()  # the child closes its spool and exits
        assert holder.wait(timeout=30) == 0
    finally:
        holder.kill()
        holder.wait()
    spool = Spool(tmp_path)
    assert lock.read_text().strip() == str(os.getpid())
    spool.close()
    assert lock.read_text() == ""  # released: no stale pid left behind


def test_unicode_lines_round_trip(tmp_path: Path) -> None:
    lines = ["telemetry,district=道里区,station=友谊路 v=1.0 1", 'alert_events message="供热 \\"低\\"" 2']
    spool = Spool(tmp_path)
    spool.append(lines, 1.0)
    assert drain(spool) == [lines]
    spool.close()


def test_peek_that_cannot_record_progress_raises_storage_error_and_can_be_retried(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=50)
    spool.append(batch(3, 0), 1.0)
    first = spool.peek()
    assert first is not None
    spool.ack(first)  # the end of the segment being written: recorded, the segment kept
    spool.append(batch(3, 3), 1.0)  # a new segment: the acknowledged one is finished
    (tmp_path / "ack.tmp").mkdir()  # the position can no longer be written (EISDIR, even for root)
    with pytest.raises(StorageError, match=rf"spool {tmp_path}: cannot record progress: .*ack\.tmp"):
        spool.peek()
    (tmp_path / "ack.tmp").rmdir()
    assert drain(spool) == [batch(3, 3)]
    spool.close()
    reopened = Spool(tmp_path)
    assert drain(reopened) == []
    assert segments(tmp_path) == []  # the finished segment the failure left behind is gone too
    reopened.close()
