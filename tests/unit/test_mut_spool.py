"""The spool's damage accounting, ack checks, failed writes and log messages, to the byte and the line.

Segments are written by hand here (the layout is the module docstring's: a record is a 20-byte header,
<u32 payload length> <u32 crc32 of the rest> <u32 line count> <f64 oldest submit time>, then the payload)
so each kind of damage a crash or a bad disk leaves can be placed exactly. Each test names the bug it
catches. What the operator reads in the log is behaviour too: the messages are compared whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import stat
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from stationmon.adapters.spool import HEADER, Spool, encode_record
from stationmon.errors import StorageError
from tests.helpers import drain_spool

LOGGER = "stationmon.spool"


def seg_name(seq: int) -> str:
    return f"seg-{seq:020d}.spool"


def batch(n: int, start: int = 0) -> list[str]:
    return [f"m,t=a v={i}.0 {i}" for i in range(start, start + n)]


def rec(lines: list[str], ts: float = 1000.0) -> bytes:
    return encode_record(lines, ts)


def forged(length: int, nlines: int, payload: bytes, ts: float = 1000.0) -> bytes:
    """A record whose header says `length` and `nlines` over `payload` (its CRC matches nothing)."""
    return HEADER.pack(length, 0xDEADBEEF, nlines, ts) + payload


def write_segments(directory: Path, *segments: bytes) -> None:
    for seq, data in enumerate(segments, start=1):
        (directory / seg_name(seq)).write_bytes(data)


def spool_messages(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= level]


# ------------------------------------------------------------------------------ damage found at open

TWO = batch(2)  # "m,t=a v=0.0 0\nm,t=a v=1.0 1": its newline sits in the last 20 bytes of its record
ONE = batch(1, 10)
THREE_EVEN = [*batch(2, 20), "m,t=a v=22.0 2"]  # a payload of even length (see the header-damage case)


def _header_damaged_middle() -> tuple[bytes, int]:
    """TWO, a THREE_EVEN record whose length and line count are both damaged, then ONE at the very end."""
    payload = "\n".join(THREE_EVEN).encode()
    assert len(payload) % 2 == 0  # the next record sits an odd distance after the damaged one's offset + 1
    return rec(TWO) + forged(len(payload) + 1000, 5, payload) + rec(ONE), 20 + len(payload)


# (case, segment bytes, the lines drained, lines found at open, lines lost to damage, bytes lost to damage)
DAMAGE_AT_OPEN = [
    # A crash after 3 bytes of the next header: nothing of its lines can be told, 0 lost (a `+` for `-` or
    # `>=` in the header-fits check counted one, or crashed on a short unpack).
    ("a tail shorter than a header", rec(TWO) + b"\x05\x00\x00", [TWO], 2, 0, 3),
    # A crash after the header, before any payload: the header's 2 lines are lost (a `>=` for `>` on the
    # header size, or a `-` in header + length, counted none).
    ("only a header made it", rec(TWO) + rec(batch(2, 5))[:20], [TWO], 4, 2, 20),
    # A crash 5 bytes into the payload: the header's 3 lines, not the 1 line of text that made it.
    ("a payload cut short", rec(TWO) + rec(batch(3, 5))[:25], [TWO], 5, 3, 25),
    # A torn record as big as a record may be (1 GiB): its header still counts; one byte more and the
    # header is garbage, so the text is counted (1 line) instead.
    ("a torn 1 GiB record", rec(TWO) + forged(1 << 30, 7, b"abc"), [TWO], 9, 7, 23),
    ("a torn record past 1 GiB", rec(TWO) + forged((1 << 30) + 1, 7, b"abc"), [TWO], 3, 1, 23),
    # 20 zero bytes (a preallocated block): a header of nothing, no text after it: 0 lines, not 1.
    ("20 zero bytes", rec(TWO) + bytes(20), [TWO], 2, 0, 20),
    # A header whose length and line count are damaged is trusted for neither: the text after it has 2
    # newlines, so 3 lines are lost (not the header's 5, not 2 or 4, not newlines of the record before);
    # the intact record after it is found again and kept.
    ("a damaged header mid-segment", _header_damaged_middle()[0], [TWO, ONE], 6, 3, _header_damaged_middle()[1]),
    # A line count of 0, or more lines than a payload of L bytes can hold (L + 1), is damage: the text counts.
    ("a line count of 0", rec(TWO) + forged(27, 0, b"a\nb\nc" + b"x" * 22) + rec(ONE), [TWO, ONE], 6, 3, 47),
    ("a line count of L + 2", rec(TWO) + forged(5, 7, b"a\nb\nc") + rec(ONE), [TWO, ONE], 6, 3, 25),
    # A flipped payload byte under an intact header: the header's count (1), not the text's (a "\n" now: 2).
    ("a 1-line payload damaged", rec(TWO) + forged(1, 1, b"\n") + rec(ONE), [TWO, ONE], 4, 1, 21),
    # The most lines a header may claim is L + 1 (all empty): 3 lines in "\n\n", damaged to "x\n".
    ("an all-empty payload damaged", rec(TWO) + forged(2, 3, b"x\n") + rec(ONE), [TWO, ONE], 6, 3, 22),
]


@pytest.mark.parametrize(
    ("data", "drained", "found", "lost", "lost_bytes"),
    [c[1:] for c in DAMAGE_AT_OPEN],
    ids=[c[0] for c in DAMAGE_AT_OPEN],
)
def test_damage_found_at_open_is_counted_by_the_line(
    tmp_path: Path, data: bytes, drained: list[list[str]], found: int, lost: int, lost_bytes: int
) -> None:
    """found_lines = lines drained + corrupt_lines, each exactly; corrupt_bytes is the damaged stretch."""
    write_segments(tmp_path, data)
    spool = Spool(tmp_path)
    assert spool.found_lines == found
    assert drain_spool(spool) == drained
    assert (spool.corrupt_lines, spool.corrupt_bytes, spool.pending_lines) == (lost, lost_bytes, 0)
    spool.close()


def test_line_counts_at_open_are_each_records_own(tmp_path: Path) -> None:
    """Records of 2, 1 and 3 lines are 6 pending lines: reading every record's count at the segment's start
    (2 + 2 + 2), or its time field (1000.0 ...), would miscount what is replayed."""
    write_segments(tmp_path, rec(TWO, 1000.0) + rec(ONE, 1001.0) + rec(batch(3, 30), 1002.0))
    spool = Spool(tmp_path)
    assert (spool.found_lines, spool.pending_lines) == (6, 6)
    assert spool.oldest_ts() == 1000.0
    spool.close()


def test_a_stray_byte_between_records_loses_one_byte_and_no_line(tmp_path: Path) -> None:
    """A resync that started 2 bytes on (at open, or when reading) would miss the record right after the
    stray byte: cut it off as a torn tail, or skip it as damage."""
    write_segments(tmp_path, rec(TWO) + b"\xff" + rec(ONE))
    spool = Spool(tmp_path)
    assert spool.found_lines == 3
    assert drain_spool(spool) == [TWO, ONE]
    assert (spool.corrupt_lines, spool.corrupt_bytes) == (0, 1)
    spool.close()


def test_a_one_empty_line_record_right_after_damage_is_found(tmp_path: Path) -> None:
    """The smallest record (one empty line: a bare 20-byte header) at the very end of the data, after
    damage: a resync that stops one offset early (`<` for `<=`) loses it with the damage."""
    write_segments(tmp_path, rec(TWO) + b"\xff" * 5 + rec([""]))
    spool = Spool(tmp_path)
    assert spool.found_lines == 3
    assert drain_spool(spool) == [TWO, [""]]
    assert (spool.corrupt_lines, spool.corrupt_bytes) == (0, 5)
    spool.close()


def test_two_damaged_records_add_up(tmp_path: Path) -> None:
    """corrupt_bytes and corrupt_lines sum over every damaged record (`=` or `-=` for `+=` would not)."""
    damaged = forged(3, 1, b"abc")
    write_segments(tmp_path, rec(TWO) + damaged + rec(ONE) + damaged + rec(ONE))
    spool = Spool(tmp_path)
    assert drain_spool(spool) == [TWO, ONE, ONE]
    assert (spool.corrupt_lines, spool.corrupt_bytes) == (2, 2 * len(damaged))
    spool.close()


def test_a_cut_torn_tail_is_logged_and_counted_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The warning names the segment, where the tail starts, its size and lines, and what was kept; the
    found lines include the lost ones exactly once (found = pending + lost, not pending - lost)."""
    good = rec(TWO) + rec(ONE)
    torn = rec(batch(3, 40))[:30]
    write_segments(tmp_path, good + torn)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        spool = Spool(tmp_path)
    assert spool_messages(caplog) == [
        f"spool {tmp_path}: {seg_name(1)} has a torn or corrupt tail at byte {len(good)} (30 bytes, 3 lines by "
        f"its header): cut off, the {len(good)} bytes before it kept"
    ]
    assert (spool.found_lines, spool.pending_lines, spool.corrupt_lines, spool.corrupt_bytes) == (6, 3, 3, 30)
    assert (tmp_path / seg_name(1)).stat().st_size == len(good)
    spool.close()


def test_damage_in_the_middle_of_the_newest_segment_is_not_cut(tmp_path: Path) -> None:
    """Only a damaged *tail* is cut at open: the intact record after the damage stays on disk."""
    data = rec(TWO) + forged(3, 1, b"abc") + rec(ONE)
    write_segments(tmp_path, data)
    spool = Spool(tmp_path)
    assert (tmp_path / seg_name(1)).stat().st_size == len(data)
    assert spool.corrupt_lines == 0  # not yet: the damaged record's line is lost when the reader passes it
    spool.close()


# ------------------------------------------------------------------------------ damage found when reading


def test_skipped_damage_is_logged_with_where_reading_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Reading past a damaged record says where it was, how many bytes were skipped, and where reading
    resumed: at the next intact record, or (when nothing intact follows) at the end of the segment; then
    the lines lost there are counted and logged when the segment is finished."""
    damaged = forged(3, 1, b"abc")
    first = rec(TWO) + damaged + rec(ONE) + damaged
    write_segments(tmp_path, first, rec(ONE))
    spool = Spool(tmp_path)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert drain_spool(spool) == [TWO, ONE, ONE]
    a, b = len(rec(TWO)), len(rec(TWO)) + len(damaged) + len(rec(ONE))
    assert spool_messages(caplog) == [
        f"spool {tmp_path}: corrupt record in {seg_name(1)} at byte {a}: skipped {len(damaged)} bytes to the next "
        f"intact record at byte {a + len(damaged)}",
        f"spool {tmp_path}: corrupt record in {seg_name(1)} at byte {b}: skipped {len(damaged)} bytes to the end of "
        f"the segment",
        f"spool {tmp_path}: 2 lines of {seg_name(1)} were in damaged records and are lost (2 so far)",
    ]
    assert (spool.corrupt_lines, spool.corrupt_bytes) == (2, 2 * len(damaged))
    spool.close()


def test_damage_made_under_a_running_spool_is_skipped_and_counted(tmp_path: Path) -> None:
    """A record damaged after it was written (bit rot, another writer) is found by the reader, skipped to
    the next intact record (read to the segment's end, not past it), and its lines counted as lost."""
    spool = Spool(tmp_path)
    for start in range(0, 40, 10):
        spool.append(batch(10, start), 1.0)
    sizes = [len(rec(batch(10, start), 1.0)) for start in range(0, 40, 10)]
    with open(tmp_path / seg_name(1), "r+b") as f:
        f.seek(sizes[0] + HEADER.size + 4)  # a payload byte of the second record
        f.write(b"#")
    assert drain_spool(spool) == [batch(10, 0), batch(10, 20), batch(10, 30)]
    assert (spool.corrupt_lines, spool.corrupt_bytes, spool.pending_lines) == (10, sizes[1], 0)
    spool.close()


def test_reading_a_segment_that_vanished_is_a_storage_error(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(batch(2), 1.0)
    (tmp_path / seg_name(1)).unlink()
    with pytest.raises(StorageError, match=rf"^spool {tmp_path}: cannot read: \[Errno 2\] No such file"):
        spool.peek()
    spool.close()


# ------------------------------------------------------------------------------ the ack file


def _three_records(directory: Path) -> list[int]:
    """Segment 1 with records of 2, 3 and 1 lines, segment 2 with 4 lines; returns segment 1's record ends."""
    records = [rec(TWO), rec(batch(3, 2)), rec(ONE)]
    write_segments(directory, b"".join(records), rec(batch(4, 50)))
    ends, pos = [], 0
    for r in records:
        pos += len(r)
        ends.append(pos)
    return ends


@pytest.mark.parametrize("after", [0, 1, 2])
def test_an_ack_inside_a_segment_resumes_after_that_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, after: int
) -> None:
    """A valid ack at a record's end: the records before it are not counted or replayed, the one starting
    there is (`>` for `>=`, or the record's end for its start, would miscount it), the later segment
    counts from its start (never from this segment's offset, never reset to it) and nothing is logged."""
    ends = _three_records(tmp_path)
    (tmp_path / "ack").write_text(f"1 {ends[after]}\n")
    expected = [[TWO, batch(3, 2), ONE][i] for i in range(after + 1, 3)] + [batch(4, 50)]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        spool = Spool(tmp_path)
    assert spool_messages(caplog) == []
    assert spool.found_lines == sum(len(r) for r in expected)
    assert drain_spool(spool) == expected
    spool.close()


def test_an_ack_at_the_start_of_a_segment_after_a_crash_before_the_unlink(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ "2 0" with segment 1 still there (a crash between recording the move and deleting the finished
    segment): a valid position, so no reset is logged, and segment 1 is deleted now."""
    _three_records(tmp_path)
    (tmp_path / "ack").write_text("2 0\n")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        spool = Spool(tmp_path)
    assert spool_messages(caplog) == []
    assert not (tmp_path / seg_name(1)).exists()
    assert (spool.found_lines, drain_spool(spool)) == (4, [batch(4, 50)])
    spool.close()


BAD_ACKS = [
    (b"\xff\xfegarbage", "unreadable (b'\\xff\\xfegarbage')", 0),
    (b"1 -20", "unreadable (b'1 -20')", 0),
    (b"1", "unreadable (b'1')", 0),
    (b"1 2 3", "unreadable (b'1 2 3')", 0),
    (b"42 0", "names segment 42 at byte 0, past the newest (2)", 0),
    (b"3 30", "names segment 3 at byte 30, past the newest (2)", 0),
    (b"1 7", "points to byte 7 of {seg1} ({size} bytes), not a record", 1),
    (b"1 999999", "points to byte 999999 of {seg1} ({size} bytes), not a record", 1),
]


@pytest.mark.parametrize(("ack", "why", "seq"), BAD_ACKS, ids=[a.hex() for a, _, _ in BAD_ACKS])  # ASCII ids for mutmut
def test_a_bad_ack_file_is_reset_with_an_error_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, ack: bytes, why: str, seq: int
) -> None:
    """The ERROR names the ack file, what is wrong with it, and where replay starts (the segment it named,
    or the oldest); nothing is skipped, and progress is recorded again from there."""
    _three_records(tmp_path)
    size = (tmp_path / seg_name(1)).stat().st_size
    (tmp_path / "ack").write_bytes(ack)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        spool = Spool(tmp_path)
    start = seg_name(seq) if seq else "the oldest segment"
    reason = why.format(seg1=seg_name(1), size=size)
    assert spool_messages(caplog) == [
        f"spool {tmp_path}: ack file {tmp_path / 'ack'} {reason}: reset; replaying from the start of {start}"
    ]
    assert spool.found_lines == 10
    assert drain_spool(spool) == [TWO, batch(3, 2), ONE, batch(4, 50)]
    spool.close()
    assert (tmp_path / "ack").read_text() == "3 0\n"  # everything acknowledged, the next segment named


def test_an_ack_one_past_the_newest_segment_at_its_start_means_everything_was_sent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ "3 0" after segments 1 and 2: both fully acknowledged before a crash; they are deleted, not replayed."""
    _three_records(tmp_path)
    (tmp_path / "ack").write_text("3 0\n")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        spool = Spool(tmp_path)
    assert spool_messages(caplog) == []
    assert (spool.found_lines, spool.peek()) == (0, None)
    assert sorted(p.name for p in tmp_path.glob("seg-*")) == []
    spool.append(ONE, 1.0)  # numbering goes on from the ack's segment
    assert sorted(p.name for p in tmp_path.glob("seg-*")) == [seg_name(3)]
    spool.close()


def test_unknown_files_are_named_in_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_segments(tmp_path, rec(ONE))
    (tmp_path / "seg-copy.spool").write_bytes(rec(TWO))
    (tmp_path / "ack.tmp").write_text("1 0\n")  # the spool's own: a crash mid-ack leaves it, no warning
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        spool = Spool(tmp_path)
    assert spool_messages(caplog) == [f"spool {tmp_path}: ignoring 'seg-copy.spool': not a file of the spool"]
    assert drain_spool(spool) == [ONE]
    spool.close()


def test_an_unknown_fsync_policy_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^unknown fsync policy 'sometimes'$"):
        Spool(tmp_path, fsync="sometimes")
    assert not (tmp_path / "lock").exists()


def test_oldest_ts_of_an_empty_spool_is_none(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert spool.oldest_ts() is None
    spool.append(ONE, 1234.5)
    assert spool.oldest_ts() == 1234.5
    spool.close()


# ------------------------------------------------------------------------------ a write the disk cuts short


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """RLIMIT_FSIZE for this process: a write past `limit` bytes is cut short, then fails with EFBIG."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@contextlib.contextmanager
def append_only(path: Path) -> Iterator[None]:
    """chattr +a: the file can grow but not be truncated (ftruncate fails with EPERM, even for root)."""
    subprocess.run(["chattr", "+a", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-a", str(path)], check=True)


def open_descriptors_on(path: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return count


def test_a_write_cut_short_is_removed_and_the_segment_goes_on(tmp_path: Path) -> None:
    """The part of a record the disk took is cut off again: no torn record behind the failure, and the
    next append continues the same segment."""
    spool = Spool(tmp_path)
    spool.append(TWO, 1.0)
    size = (tmp_path / seg_name(1)).stat().st_size
    with file_size_limit(size + 10), pytest.raises(StorageError, match=r"cannot write: \[Errno 27\] File too large"):
        spool.append(batch(5, 100), 1.0)
    assert (tmp_path / seg_name(1)).stat().st_size == size
    spool.append(ONE, 2.0)
    assert sorted(p.name for p in tmp_path.glob("seg-*")) == [seg_name(1)]
    assert drain_spool(spool) == [TWO, ONE]
    assert (spool.corrupt_bytes, spool.pending_lines) == (0, 0)
    spool.close()


def test_a_write_that_cannot_be_cut_back_abandons_its_segment(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """When even the cut fails (an append-only file), the ERROR says so, the segment's descriptor is closed
    and never written again; new records go to a new segment, and the torn bytes are never read as a record."""
    spool = Spool(tmp_path)
    spool.append(TWO, 1.0)
    segment = tmp_path / seg_name(1)
    size = segment.stat().st_size
    with append_only(segment):
        with (
            caplog.at_level(logging.ERROR, logger=LOGGER),
            file_size_limit(size + 10),
            pytest.raises(StorageError, match=r"cannot write: \[Errno 27\] File too large"),
        ):
            spool.append(batch(5, 100), 1.0)
        assert segment.stat().st_size == size + 10  # the torn part stayed
        assert open_descriptors_on(segment) == 0
    [message] = spool_messages(caplog)
    assert message == (
        f"spool {tmp_path}: cannot cut a failed write off {seg_name(1)} ([Errno 1] Operation not permitted): its "
        f"damaged tail is skipped when read; new records go to a new segment"
    )
    spool.append(ONE, 2.0)
    assert sorted(p.name for p in tmp_path.glob("seg-*")) == [seg_name(1), seg_name(2)]
    assert segment.stat().st_size == size + 10
    assert drain_spool(spool) == [TWO, ONE]
    assert spool.pending_lines == 0
    spool.close()


def test_damage_before_an_abandoned_tail_counts_the_damaged_record_only(tmp_path: Path) -> None:
    """Skipping damage reads to the segment's recorded end, not to the end of the file: the torn bytes of a
    write that could not be cut back are no record of the spool (their batch was refused, the caller still
    has it), so only the damaged record's bytes are counted."""
    spool = Spool(tmp_path)
    spool.append(TWO, 1.0)
    spool.append(ONE, 1.0)
    segment = tmp_path / seg_name(1)
    size = segment.stat().st_size
    with open(segment, "r+b") as f:  # bit rot in the second record's payload
        f.seek(len(rec(TWO, 1.0)) + HEADER.size + 2)
        f.write(b"#")
    with append_only(segment), file_size_limit(size + 10), pytest.raises(StorageError):
        spool.append(batch(5, 100), 1.0)
    spool.append(ONE, 2.0)
    assert drain_spool(spool) == [TWO, ONE]
    assert (spool.corrupt_bytes, spool.corrupt_lines) == (len(rec(ONE, 1.0)), 1)
    spool.close()


def test_after_an_abandoned_segment_a_restart_reads_past_its_torn_tail(tmp_path: Path) -> None:
    """Closed and reopened before draining: the abandoned segment is no longer the newest, its torn bytes
    are skipped as damage and the records on both sides of them are replayed."""
    spool = Spool(tmp_path)
    spool.append(TWO, 1.0)
    segment = tmp_path / seg_name(1)
    size = segment.stat().st_size
    with append_only(segment), file_size_limit(size + 10), pytest.raises(StorageError):
        spool.append(batch(5, 100), 1.0)
    spool.append(ONE, 2.0)
    spool.close()
    reopened = Spool(tmp_path)
    assert drain_spool(reopened) == [TWO, ONE]
    assert reopened.corrupt_bytes == 10
    reopened.close()


# ------------------------------------------------------------------------------ the size bound


def test_dropping_a_segment_at_the_bound_is_logged_with_its_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The ERROR names the bound, the segment dropped, its unsent lines and the running total."""

    def five(i: int) -> list[str]:  # every batch the same size: one segment each
        return [f"m,t=a v={k:03d} {k:03d}" for k in range(5 * i, 5 * i + 5)]

    one = len(rec(five(0), 1.0))
    spool = Spool(tmp_path, max_bytes=3 * one, segment_bytes=one)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        for i in range(5):
            spool.append(five(i), 1.0)
    assert spool_messages(caplog) == [
        f"spool {tmp_path}: over spool_max_bytes ({3 * one}): dropped the oldest segment {seg_name(1)} with 5 "
        f"unsent lines (5 lines dropped so far)",
        f"spool {tmp_path}: over spool_max_bytes ({3 * one}): dropped the oldest segment {seg_name(2)} with 5 "
        f"unsent lines (10 lines dropped so far)",
    ]
    assert (spool.dropped_lines, spool.dropped_segments) == (10, 2)
    assert drain_spool(spool) == [five(2), five(3), five(4)]
    spool.close()


def test_the_on_disk_layout_is_the_documented_one(tmp_path: Path) -> None:
    """The header's fields in order and the CRC over everything after the first 8 bytes: an older or
    newer stationmon reads the same spool."""
    spool = Spool(tmp_path)
    spool.append(["a", "bc"], 1234.5)
    spool.close()
    data = (tmp_path / seg_name(1)).read_bytes()
    rest = struct.pack("<Id", 2, 1234.5) + b"a\nbc"
    assert data == struct.pack("<III", 4, zlib.crc32(rest), 2) + rest[4:]


def test_one_record_bigger_than_the_bound_is_kept_and_the_older_ones_dropped(tmp_path: Path) -> None:
    """A batch larger than spool_max_bytes goes to a fresh segment and stays (rather than be lost too);
    everything older goes to make room (stopping after the rotation, or keeping the old segment, would
    leave the spool over its bound)."""
    spool = Spool(tmp_path, max_bytes=4096, segment_bytes=4096)
    spool.append(TWO, 1.0)
    big = batch(300, 1000)
    spool.append(big, 2.0)
    assert (spool.dropped_lines, spool.dropped_segments) == (2, 1)
    assert sorted(p.name for p in tmp_path.glob("seg-*")) == [seg_name(2)]
    assert drain_spool(spool) == [big]
    spool.close()


def test_a_peeked_record_whose_segment_is_dropped_is_not_handed_out_again(tmp_path: Path) -> None:
    """The bound drops the segment holding the record `peek` returned (InfluxDB slow, the disk full): the
    next peek returns the oldest record still there, not the dropped one (whose ack would be ignored)."""
    one = len(rec(batch(5, 10), 1.0))  # every batch below the same size: one segment each
    spool = Spool(tmp_path, max_bytes=3 * one, segment_bytes=one)
    spool.append(batch(5, 10), 1.0)
    head = spool.peek()
    assert head is not None and head.lines == batch(5, 10)
    for i in range(2, 5):
        spool.append(batch(5, 10 * i), 1.0)
    assert spool.dropped_segments == 1
    assert drain_spool(spool) == [batch(5, 20), batch(5, 30), batch(5, 40)]
    spool.close()


def test_spool_files_are_not_world_readable(tmp_path: Path) -> None:
    """Segments and the lock are created 0640 (the readings are the operator's data)."""
    old = os.umask(0o022)
    try:
        spool = Spool(tmp_path)
        spool.append(ONE, 1.0)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / seg_name(1)).stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "lock").stat().st_mode) == 0o640
    spool.close()
