"""The spool at its edges: forged headers, segment sizing, symlinks, the lock holder's name, failed fsyncs,
segments that vanish or were never written, and the line accounting after each.

Each test names the bug it catches (found by `make mutation`). Faults come from the operating system's side
(a file size limit, an append-only file, an `os.fsync` that fails with EIO as a dying disk does): the spool
itself runs unchanged.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stationmon.adapters.spool import HEADER, Spool, encode_record
from stationmon.errors import StorageError
from tests.helpers import drain_spool
from tests.unit.test_mut_spool import (
    LOGGER,
    ONE,
    TWO,
    append_only,
    batch,
    file_size_limit,
    open_descriptors_on,
    seg_name,
    spool_messages,
)


def record_with(nlines: int, payload: bytes, *, length: int | None = None, ts: float = 1000.0) -> bytes:
    """A record with a CORRECT CRC over its header's line count, time and `payload`, whatever it claims."""
    rest = struct.pack("<Id", nlines, ts) + payload
    return HEADER.pack(len(payload) if length is None else length, zlib.crc32(rest), nlines, ts) + payload


def accounting_holds(spool: Spool, appended: int, acknowledged: int) -> bool:
    """The module docstring's identity: found + appended = acknowledged + dropped + corrupt + pending."""
    accounted = acknowledged + spool.dropped_lines + spool.corrupt_lines + spool.pending_lines
    return spool.found_lines + appended == accounted


# ------------------------------------------------------------------------------ headers that lie


def test_a_torn_tail_whose_crc_matches_the_bytes_present_is_still_cut(tmp_path: Path) -> None:
    """A header claiming 100 payload bytes with 40 on disk is torn, even when its CRC happens to match the
    bytes that are there: `and` for either `or` in the length test would read it as a record ending past
    the file and keep it (the segment not cut, its lines counted pending)."""
    payload = b"m,t=a v=1.0 1\nm,t=a v=2.0 2\nm,t=a v=3.0 "  # 40 bytes of a 100-byte payload
    torn = record_with(2, payload, length=100)
    good = encode_record(TWO, 1.0)
    (tmp_path / seg_name(1)).write_bytes(good + torn)
    spool = Spool(tmp_path)
    assert (tmp_path / seg_name(1)).stat().st_size == len(good)  # cut off at open
    assert (spool.found_lines, spool.corrupt_lines, spool.corrupt_bytes) == (4, 2, len(torn))
    assert drain_spool(spool) == [TWO]
    spool.close()


@pytest.mark.parametrize(
    ("payload", "nlines", "intact"),
    [
        (b"\n\n", 3, True),  # three empty lines: length + 1, the most a payload can hold
        (b"ab", 3, False),  # length + 1 claimed by a payload without a newline: still allowed by the header test
        (b"ab", 4, False),  # length + 2: impossible, damage whatever the CRC says
        (b"ab", 0, False),  # no line: every record holds at least one
    ],
)
def test_a_line_count_the_payload_cannot_hold_is_damage(
    tmp_path: Path, payload: bytes, nlines: int, intact: bool
) -> None:
    """The header's line count is bounded by its payload (at most one line per byte plus one): a count of
    length + 2 with a matching CRC is damage, not a record (`length + 2` for `length + 1` would hand out
    a record of 1 line that claims 4). Followed by a good record, so the damage is skipped, not cut."""
    forged = record_with(nlines, payload)
    good = encode_record(ONE, 2.0)
    (tmp_path / seg_name(1)).write_bytes(forged + good)
    spool = Spool(tmp_path)
    records = drain_spool(spool)
    if intact:
        assert records == [payload.decode().split("\n"), ONE]
        assert spool.corrupt_bytes == 0
    elif nlines == 3:  # in range by the header: read, then refused by the line count the text gives
        assert records[-1] == ONE
    else:
        assert records == [ONE]
        assert spool.corrupt_bytes == len(forged)
    spool.close()


# ------------------------------------------------------------------------------ segment size


@pytest.mark.parametrize(
    ("max_bytes", "segment_bytes"),
    [
        (1000, 512),  # an eighth is 125: never below 512 bytes
        (4096, 512),  # exactly 512
        (8 * 513, 513),  # just above the floor: an eighth
        (8007, 1000),  # an eighth, rounded down to whole bytes
        (1 << 40, 64 << 20),  # 1 TiB: capped at 64 MiB
        ((64 << 20) * 8 + 8, 64 << 20),  # just past the cap
    ],
)
def test_segments_are_an_eighth_of_the_bound_between_512_bytes_and_64_mib(
    tmp_path: Path, max_bytes: int, segment_bytes: int
) -> None:
    """Dropping one segment at the bound loses at most an eighth of the spool: a different divisor, floor
    or cap (or a float size from `/`) changes how much a full disk throws away."""
    spool = Spool(tmp_path, max_bytes=max_bytes)
    assert spool.segment_bytes == segment_bytes
    assert isinstance(spool.segment_bytes, int)
    spool.close()


def test_a_symlink_named_like_a_segment_is_not_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Only regular files are segments: following a symlink would replay (and later delete through) a file
    the spool never wrote. `follow_symlinks=True` would count its record."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "data").write_bytes(encode_record(TWO, 1.0))
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    (spool_dir / seg_name(1)).symlink_to(elsewhere / "data")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        spool = Spool(spool_dir)
    assert spool_messages(caplog) == [f"spool {spool_dir}: ignoring {seg_name(1)!r}: not a file of the spool"]
    assert (spool.pending_lines, spool.peek()) == (0, None)
    spool.close()
    assert (elsewhere / "data").exists()


# ------------------------------------------------------------------------------ opening


def test_a_spool_directory_is_made_with_its_parents(tmp_path: Path) -> None:
    """`spool_dir` may name folders that do not exist yet (a fresh data volume): mkdir without parents
    would fail to open the spool."""
    nested = tmp_path / "data" / "stationmon" / "spool"
    spool = Spool(nested)
    spool.append(TWO, 1.0)
    assert (nested / seg_name(1)).is_file()
    spool.close()


def test_a_spool_that_cannot_be_opened_says_where_and_why(tmp_path: Path) -> None:
    """The error names the directory and the system's reason (a config pointing under a file)."""
    (tmp_path / "afile").write_text("x")
    where = tmp_path / "afile" / "spool"
    with pytest.raises(StorageError) as caught:
        Spool(where)
    assert str(caught.value) == f"spool {where}: cannot open: [Errno 20] Not a directory: '{where}'"


def test_opening_a_spool_with_unsent_lines_says_how_much_is_to_replay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The INFO line at start is how an operator learns an outage's backlog is being replayed."""
    (tmp_path / seg_name(1)).write_bytes(encode_record(TWO, 1.0) + encode_record(ONE, 2.0))
    size = (tmp_path / seg_name(1)).stat().st_size
    with caplog.at_level(logging.INFO, logger=LOGGER):
        Spool(tmp_path).close()
    assert spool_messages(caplog, logging.INFO) == [
        f"spool {tmp_path}: {size} bytes (3 lines) of unsent readings to replay"
    ]


@pytest.fixture
def lock_held(tmp_path: Path) -> Iterator[Callable[[bytes], None]]:
    """Hold the spool's lock through another open file (flock locks belong to the open file, so this
    process conflicts with itself as a second stationmon would), with the given bytes in the lock file."""
    fds: list[int] = []

    def hold(content: bytes) -> None:
        fd = os.open(tmp_path / "lock", os.O_RDWR | os.O_CREAT, 0o640)
        fds.append(fd)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.pwrite(fd, content, 0)

    yield hold
    for fd in fds:
        os.close(fd)


@pytest.mark.parametrize(
    ("content", "who"),
    [
        (b"4242\n", " (pid 4242)"),
        (b"\xff\xfe not a pid", ""),  # non-ASCII garbage: replaced, not a crash, and no pid claimed
        (b"garbage", ""),
        (b"1" * 40 + b"\n", " (pid " + "1" * 32 + ")"),  # a pid is read from the first 32 bytes only
    ],
)
def test_a_spool_in_use_names_the_holders_pid_when_the_lock_file_holds_one(
    tmp_path: Path, lock_held: Callable[[bytes], None], content: bytes, who: str
) -> None:
    """Catches: decoding the lock file strictly (a UnicodeDecodeError instead of the message), reading more
    than 32 bytes, naming a pid that is not one, a different text when there is none."""
    lock_held(content)
    with pytest.raises(StorageError) as caught:
        Spool(tmp_path)
    assert str(caught.value) == f"spool directory {tmp_path} is in use by another stationmon process{who}"
    assert open_descriptors_on(tmp_path / "lock") == 1  # ours; the failed open closed its own


# ------------------------------------------------------------------------------ the ack file


def test_an_unreadable_ack_file_is_quoted_in_the_error_up_to_40_bytes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The ERROR shows the start of what was found (40 bytes), enough to recognise it, never a whole file."""
    (tmp_path / seg_name(1)).write_bytes(encode_record(TWO, 1.0))
    junk = b"0123456789" * 5  # one word: not "<segment> <offset>"
    (tmp_path / "ack").write_bytes(junk)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        spool = Spool(tmp_path)
    assert spool_messages(caplog) == [
        f"spool {tmp_path}: ack file {tmp_path / 'ack'} unreadable ({junk[:40]!r}): reset; replaying from the start"
        " of the oldest segment"
    ]
    assert drain_spool(spool) == [TWO]
    spool.close()


@pytest.mark.parametrize("ahead", [2, 3])
def test_an_ack_naming_a_segment_beyond_the_next_is_reset(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, ahead: int
) -> None:
    """Everything acknowledged is at most "the segment after the newest, at byte 0": two past it is a bad
    file and says so (`last + 2` for `last + 1` would accept it silently)."""
    (tmp_path / seg_name(1)).write_bytes(encode_record(TWO, 1.0))
    (tmp_path / "ack").write_text(f"{1 + ahead} 0\n")
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        spool = Spool(tmp_path)
    assert spool_messages(caplog) == [
        f"spool {tmp_path}: ack file {tmp_path / 'ack'} names segment {1 + ahead} at byte 0, past the newest (1):"
        " reset; replaying from the start of the oldest segment"
    ]
    assert drain_spool(spool) == [TWO]
    spool.close()


# ------------------------------------------------------------------------------ segments never written, or gone


def test_a_rotation_whose_first_write_failed_loses_no_line_when_read_through(tmp_path: Path) -> None:
    """A new segment whose first record the disk refused is empty and holds no line: reading through it
    must not count a lost line (a default of 1 for a segment without lines would)."""
    spool = Spool(tmp_path, segment_bytes=600)
    spool.append(batch(40), 1.0)  # past 600 bytes: the next append rotates
    size = (tmp_path / seg_name(1)).stat().st_size
    with file_size_limit(size + 10), pytest.raises(StorageError, match="cannot write"):
        spool.append(batch(60, 100), 2.0)
    assert (tmp_path / seg_name(2)).stat().st_size == 0
    assert drain_spool(spool) == [batch(40)]
    assert (spool.corrupt_lines, spool.pending_lines) == (0, 0)
    assert accounting_holds(spool, appended=40, acknowledged=40)
    spool.append(ONE, 3.0)  # the empty segment goes on being written
    assert drain_spool(spool) == [ONE]
    spool.close()


def test_an_abandoned_segment_dropped_at_the_bound_counts_only_real_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A segment abandoned after its first write could neither finish nor be cut back holds no line of
    the spool; dropping it at the bound adds nothing to `dropped_lines` (a default of 1, or None, for a
    segment without lines would miscount or crash the append)."""
    spool = Spool(tmp_path, max_bytes=3000, segment_bytes=600)
    spool.append(batch(40), 1.0)
    with file_size_limit(100), pytest.raises(StorageError, match="cannot write"):
        spool.append(batch(30, 100), 2.0)  # rotates to segment 2, whose write fails and is cut back to 0
    with (
        append_only(tmp_path / seg_name(2)),
        file_size_limit(100),
        pytest.raises(StorageError, match="cannot write"),
    ):
        spool.append(batch(30, 200), 3.0)  # cannot be cut back: segment 2 is abandoned with 100 bytes
    assert (tmp_path / seg_name(2)).stat().st_size == 100
    appended = 40
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        while (tmp_path / seg_name(2)).exists():  # new segments until the bound drops segments 1 and 2
            assert appended < 400, "the bound never dropped the abandoned segment"
            spool.append(batch(30, 300 + appended), 4.0)
            appended += 30
    drops = [m for m in spool_messages(caplog) if "dropped the oldest segment" in m]
    assert drops[:2] == [
        f"spool {tmp_path}: over spool_max_bytes (3000): dropped the oldest segment {seg_name(1)} with 40 unsent"
        " lines (40 lines dropped so far)",
        f"spool {tmp_path}: over spool_max_bytes (3000): dropped the oldest segment {seg_name(2)} with 0 unsent"
        " lines (40 lines dropped so far)",
    ]
    assert accounting_holds(spool, appended, acknowledged=0)
    spool.close()


def test_dropping_at_the_bound_takes_the_dropped_lines_out_of_pending(tmp_path: Path) -> None:
    """Lines of a dropped segment are dropped, no longer pending: the accounting identity holds after every
    drop, and `pending_lines` is what a drain then returns."""
    spool = Spool(tmp_path, max_bytes=2500, segment_bytes=600)
    appended = 0
    for k in range(8):
        spool.append(batch(20, 20 * k), float(k))
        appended += 20
        assert accounting_holds(spool, appended, acknowledged=0)
    assert spool.dropped_lines > 0
    pending = spool.pending_lines
    assert sum(len(r) for r in drain_spool(spool)) == pending
    spool.close()


def test_a_finished_segment_removed_by_hand_does_not_stop_the_spool(tmp_path: Path) -> None:
    """An operator freeing space by deleting an old segment file must not make acknowledgements fail (with
    `missing_ok=False` the ack after its last record would raise, and replay it forever)."""
    spool = Spool(tmp_path, segment_bytes=600)
    spool.append(batch(40), 1.0)
    spool.append(ONE, 2.0)  # segment 2
    record = spool.peek()
    assert record is not None and record.segment == 1
    (tmp_path / seg_name(1)).unlink()
    spool.ack(record)
    assert drain_spool(spool) == [ONE]
    spool.close()


def test_acknowledging_the_last_record_of_a_finished_segment_deletes_it_at_once(tmp_path: Path) -> None:
    """The disk space of a fully sent segment comes back when its last record is acknowledged, and the ack
    file moves to the next segment's start (`>` for `>=` would leave both until the next peek)."""
    spool = Spool(tmp_path, segment_bytes=600)
    spool.append(batch(40), 1.0)
    spool.append(ONE, 2.0)  # segment 2
    record = spool.peek()
    assert record is not None and record.segment == 1
    spool.ack(record)
    assert not (tmp_path / seg_name(1)).exists()
    assert (tmp_path / "ack").read_text() == "2 0\n"
    spool.close()


# ------------------------------------------------------------------------------ a disk that fails fsync


class FailingFsync:
    """os.fsync that fails with EIO (as a dying disk does) once armed, optionally only for directories."""

    def __init__(self, directories_only: bool = False) -> None:
        self.real = os.fsync
        self.armed = False
        self.directories_only = directories_only

    def __call__(self, fd: Any) -> None:
        if self.armed and (not self.directories_only or os.path.isdir(f"/proc/self/fd/{fd}")):
            raise OSError(errno.EIO, "Input/output error")
        self.real(fd)


@pytest.fixture
def failing_fsync(monkeypatch: pytest.MonkeyPatch) -> FailingFsync:
    fail = FailingFsync()
    monkeypatch.setattr(os, "fsync", fail)
    return fail


def test_a_failed_sync_is_a_storage_error_naming_the_spool(tmp_path: Path, failing_fsync: FailingFsync) -> None:
    spool = Spool(tmp_path, fsync="batch")
    spool.append(TWO, 1.0)
    failing_fsync.armed = True
    with pytest.raises(StorageError) as caught:
        spool.sync()
    assert str(caught.value) == f"spool {tmp_path}: cannot sync: [Errno 5] Input/output error"
    failing_fsync.armed = False
    spool.close()


def test_a_failed_close_is_a_storage_error_and_still_releases_the_lock(
    tmp_path: Path, failing_fsync: FailingFsync
) -> None:
    spool = Spool(tmp_path, fsync="batch")
    spool.append(TWO, 1.0)
    failing_fsync.armed = True
    with pytest.raises(StorageError) as caught:
        spool.close()
    assert str(caught.value) == f"spool {tmp_path}: cannot close: [Errno 5] Input/output error"
    failing_fsync.armed = False
    assert open_descriptors_on(tmp_path / seg_name(1)) == 0
    Spool(tmp_path).close()  # the lock was released


def test_an_ack_that_cannot_be_made_durable_is_a_storage_error(tmp_path: Path, failing_fsync: FailingFsync) -> None:
    """The ack file is synced before `ack` returns; when that fails the caller hears it (and replays later)."""
    spool = Spool(tmp_path, fsync="batch")
    spool.append(TWO, 1.0)
    spool.append(ONE, 2.0)
    record = spool.peek()
    assert record is not None
    failing_fsync.armed = True
    with pytest.raises(StorageError) as caught:
        spool.ack(record)
    assert str(caught.value) == f"spool {tmp_path}: cannot record progress: [Errno 5] Input/output error"
    failing_fsync.armed = False
    spool.close()


def test_a_new_segment_whose_name_cannot_be_made_durable_leaves_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync of the directory after creating a segment fails: the append fails as a StorageError, the new
    segment's descriptor is closed (`os.close(None)` would raise a TypeError and leak it), and the next
    append, with a healthy disk, goes on."""
    fail = FailingFsync(directories_only=True)
    monkeypatch.setattr(os, "fsync", fail)
    spool = Spool(tmp_path, fsync="batch")
    fail.armed = True
    with pytest.raises(StorageError, match=r"cannot write: \[Errno 5\] Input/output error"):
        spool.append(TWO, 1.0)
    assert open_descriptors_on(tmp_path / seg_name(1)) == 0
    fail.armed = False
    spool.append(ONE, 2.0)
    assert drain_spool(spool) == [ONE]
    spool.close()


def test_lines_lost_to_damage_in_two_segments_add_up(tmp_path: Path) -> None:
    """Each segment's damaged lines are counted when reading reaches its end; over two segments they add
    up (`=` for `+=` in that count would keep only the second segment's)."""
    damaged_one, damaged_three = forged_record(1, b"abc"), forged_record(3, b"a\nb\nc")
    first = encode_record(TWO, 1.0) + damaged_three + encode_record(ONE, 2.0)
    second = encode_record(ONE, 3.0) + damaged_one + encode_record(TWO, 4.0)
    (tmp_path / seg_name(1)).write_bytes(first)
    (tmp_path / seg_name(2)).write_bytes(second)
    spool = Spool(tmp_path)
    assert drain_spool(spool) == [TWO, ONE, ONE, TWO]
    assert (spool.corrupt_lines, spool.corrupt_bytes) == (4, len(damaged_one) + len(damaged_three))
    assert spool.found_lines == 10 and accounting_holds(spool, appended=0, acknowledged=6)


def forged_record(nlines: int, payload: bytes) -> bytes:
    """A record whose CRC matches nothing: damage that keeps its header's length and line count."""
    return HEADER.pack(len(payload), 0xDEADBEEF, nlines, 1000.0) + payload


def test_a_segment_that_vanishes_while_damage_is_skipped_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    """Skipping a damaged record reads the segment again; if that read fails (the segment was removed by
    hand between the two reads), the error names the spool and the system's reason, as every other read
    error does (a bare `StorageError(None)` would leave the operator with "None")."""
    segment = tmp_path / seg_name(1)
    segment.write_bytes(encode_record(TWO, 1.0) + forged_record(1, b"abc") + encode_record(ONE, 2.0))
    spool = Spool(tmp_path)
    read_record = spool._read_record

    def read_then_lose_the_segment(seq: int, off: int, size: int) -> Any:
        record = read_record(seq, off, size)
        if record is None:
            segment.unlink()
        return record

    spool._read_record = read_then_lose_the_segment  # type: ignore[method-assign]
    with pytest.raises(StorageError) as caught:
        drain_spool(spool)
    assert str(caught.value) == f"spool {tmp_path}: cannot read: [Errno 2] No such file or directory: '{segment}'"
    spool.close()
