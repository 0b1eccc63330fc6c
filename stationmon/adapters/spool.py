"""A durable, append-only, bounded on-disk spool of line-protocol batches.

Layout of `spool_dir`:

    seg-00000000000000000001.spool    segment files, appended to in order, never rewritten
    ack                               "<segment seq> <offset>": everything before it is acknowledged
    lock                              flock()ed by the process using the spool; holds its pid

Any other file there is ignored with a warning (a stray `seg-copy.spool` is not a segment).

A segment is a sequence of records:

    header  <u32 payload length> <u32 crc32 of the rest> <u32 line count> <f64 oldest submit time>
    payload UTF-8 lines joined by "\\n" (str lines, or a `LineBlock`'s bytes)

The reader starts at the acknowledged position and returns records in order; `ack(record)` moves the
position past it and writes it durably (`files.atomic_write`), so a batch acknowledged by InfluxDB
is never replayed. A kill -9 between InfluxDB's answer and the ack write replays that one batch once
more, which InfluxDB absorbs (same series, time and fields overwrite the same point).

Writes are checked: a record the disk would take only in part (ENOSPC, a quota) is cut off again at
once and the append fails, so no torn record stays behind a success. A rotation whose new segment
cannot be opened (EACCES, EROFS, EMFILE, EDQUOT) leaves no descriptor behind: the next append tries
again. New records always go to a fresh segment after an open.

Corruption: on open every pending segment is scanned (length, CRC). A torn or corrupt tail of the
newest segment (a write cut short by a crash) is logged and cut off; the intact records before it are
kept. A corrupt record anywhere else is skipped by scanning forward to the next intact record
(logged at ERROR). Lines lost to corruption are counted in `corrupt_lines`: exactly for records this
process wrote, for older ones by the damaged header, or by the text's newlines where the header is
gone. When a record would push the spool over `max_bytes`, the oldest segments are deleted whole,
their unacknowledged lines counted in `dropped_lines` and logged at ERROR. A bad `ack` file (garbage,
a negative offset, one past its segment's end or inside a record, a segment that cannot be) is reset
with an ERROR naming it: the segments are replayed from the start of the one it named (InfluxDB
absorbs the repeats), never skipped.

Line accounting: `found_lines` (pending at open) + lines appended = lines acknowledged + `dropped_lines`
+ `corrupt_lines` + `pending_lines`.

fsync policy: "always" syncs after every record, "batch" when `sync()` is called (the writer does so
once per flush cycle and on close), "never" leaves it to the OS. A new segment's directory entry and
the ack file (with its directory) are synced under "always" and "batch".

One process at a time: opening takes an exclusive, non-blocking flock on `lock` (released on close,
or by the kernel when the process dies), so a second stationmon, or a second Spool in this process, on
the same directory fails with StorageError naming the holder's pid instead of interleaving its segments.

Synchronous file I/O: records are whole batches (thousands of lines), so this is a few system calls
per batch; the writer calls it from its background task, never from `submit()`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from stationmon.domain.lineproto import LineBlock
from stationmon.errors import StorageError
from stationmon.files import atomic_write, fsync_dir, write_all

__all__ = ["HEADER", "Spool", "SpoolRecord"]

log = logging.getLogger("stationmon.spool")

HEADER = struct.Struct("<IIId")
_SEGMENT_PREFIX = "seg-"
_SEGMENT_SUFFIX = ".spool"
_SEGMENT_NAME = re.compile(r"seg-(\d{20})\.spool")
_MAX_RECORD = 1 << 30
_LOCK_FILE = "lock"
_ACK_FILE = "ack"
_ACK_TMP = "ack.tmp"
_OWN_FILES = frozenset((_LOCK_FILE, _ACK_FILE, _ACK_TMP))


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One spooled batch and where it sits (`end` is the offset just past it)."""

    segment: int
    offset: int
    end: int
    lines: list[str]
    oldest_ts: float


def _segment_name(seq: int) -> str:
    return f"{_SEGMENT_PREFIX}{seq:020d}{_SEGMENT_SUFFIX}"


def encode_record(lines: Sequence[str] | LineBlock, oldest_ts: float) -> bytes:
    """One record's bytes: header then payload (a block's lines are its bytes, less the last "\n")."""
    if isinstance(lines, LineBlock):
        payload = bytes(lines.data[lines.start : lines.end - 1])
    else:
        payload = "\n".join(lines).encode("utf-8")
    rest = struct.pack("<Id", len(lines), oldest_ts) + payload
    return HEADER.pack(len(payload), zlib.crc32(rest), len(lines), oldest_ts) + payload


def _record_end(data: bytes, pos: int) -> int | None:
    """The end of the intact record at `pos`, or None if there is none there."""
    n = len(data)
    if pos + HEADER.size > n:
        return None
    length, crc, nlines, _ = HEADER.unpack_from(data, pos)
    end = pos + HEADER.size + length
    if length > _MAX_RECORD or end > n or not 1 <= nlines <= length + 1:
        return None
    return end if zlib.crc32(data[pos + 8 : end]) == crc else None


def _resync(data: bytes, pos: int) -> int:
    """The offset of the next intact record at or after `pos`, or the end of `data`."""
    n = len(data)
    last = n - HEADER.size
    while pos <= last:
        # cheap test first: most offsets inside a damaged record claim a length beyond the data
        if pos + HEADER.size + int.from_bytes(data[pos : pos + 4], "little") <= n and _record_end(data, pos):
            return pos
        pos += 1
    return n


def _claimed_lines(data: bytes, pos: int, end: int) -> int:
    """Lines a damaged record at pos..end held: as its header says, else as its text looks."""
    if pos + HEADER.size > len(data):
        return 0
    length, _, nlines, _ = HEADER.unpack_from(data, pos)
    reach = pos + HEADER.size + length
    fits = reach == end or (end == len(data) and length <= _MAX_RECORD and reach > end)  # payload damage, torn tail
    if fits and 1 <= nlines <= length + 1:
        return int(nlines)
    # the header itself is damaged: one line per newline of the text after it
    return data[pos + HEADER.size : end].count(b"\n") + 1 if end > pos + HEADER.size else 0


def _walk(data: bytes, pos: int = 0) -> Iterator[tuple[int, int, int, bool]]:
    """(offset, end, lines, intact) for every record from `pos`; a damaged stretch is one entry."""
    n = len(data)
    while pos < n:
        end = _record_end(data, pos)
        if end is not None:
            yield pos, end, HEADER.unpack_from(data, pos)[2], True
        else:
            end = _resync(data, pos + 1)
            yield pos, end, _claimed_lines(data, pos, end), False
        pos = end


class Spool:
    """The spool in one directory; opening it locks the directory (StorageError if already in use)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_bytes: int = 1 << 30,
        fsync: str = "batch",
        *,
        segment_bytes: int | None = None,
    ) -> None:
        if fsync not in ("always", "batch", "never"):
            raise ValueError(f"unknown fsync policy {fsync!r}")
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.fsync = fsync
        # Segments small enough that dropping one at the bound loses a small share of the spool.
        self.segment_bytes = segment_bytes or max(512, min(64 << 20, max_bytes // 8))
        self.found_lines = 0  # unacknowledged lines found at open
        self.dropped_lines = 0  # lost at the size bound
        self.dropped_segments = 0
        self.corrupt_lines = 0  # lost to damaged records
        self.corrupt_bytes = 0
        self._sizes: dict[int, int] = {}  # segment seq -> size in bytes
        self._lines: dict[int, int] = {}  # segment seq -> unacknowledged lines in it
        self._write_seq = 0
        self._write_fd: int | None = None  # open on segment _write_seq, or None (then the next append opens one)
        self._dirty = False
        self._ack_seg = 0
        self._ack_off = 0
        self._head: SpoolRecord | None = None
        self._lock_fd: int | None = None
        self._open()

    def _open(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock()
            self._recover()
        except OSError as exc:
            self._unlock()
            raise StorageError(f"spool {self.dir}: cannot open: {exc}") from exc
        except BaseException:  # in use by another process, or interrupted: hold nothing
            self._unlock()
            raise
        pending = self.pending_bytes
        if pending:
            lines = self.pending_lines
            log.info("spool %s: %d bytes (%d lines) of unsent readings to replay", self.dir, pending, lines)

    def _lock(self) -> None:
        fd = os.open(self.dir / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            finally:
                os.close(fd)
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise StorageError(f"spool directory {self.dir} is in use by another stationmon process{who}") from None
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no stale pid for the next reader (a kill -9 leaves it: harmless)
        os.close(fd)  # releases the flock

    # ---------------------------------------------------------------------------------------- open

    def _recover(self) -> None:
        """Find the segments and the acknowledged position, count what is pending (raises OSError)."""
        segments = self._list_segments()
        self._read_ack(segments)
        for seq in segments:
            if seq < self._ack_seg:
                self._unlink(seq)  # fully acknowledged before a crash, not yet deleted
                continue
            self._scan_segment(seq, newest=seq == segments[-1])
        self._write_seq = (segments[-1] + 1) if segments else max(1, self._ack_seg)
        if self._ack_seg not in self._sizes:
            self._ack_seg, self._ack_off = self._first_segment(), 0
        self.found_lines += self.pending_lines

    def _list_segments(self) -> list[int]:
        segments = []
        for entry in os.scandir(self.dir):
            match = _SEGMENT_NAME.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False):
                segments.append(int(match[1]))
            elif entry.name not in _OWN_FILES:
                log.warning("spool %s: ignoring %r: not a file of the spool", self.dir, entry.name)
        return sorted(segments)

    def _read_ack(self, segments: list[int]) -> None:
        path = self.dir / _ACK_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            self._ack_seg, self._ack_off = 0, 0
            return
        parts = raw.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            self._reset_ack(f"unreadable ({raw[:40]!r})", 0)
            return
        self._ack_seg, self._ack_off = int(parts[0]), int(parts[1])
        # The position is at most the segment after the newest (everything acknowledged), at its start.
        last = segments[-1] if segments else None
        if last is not None and (self._ack_seg > last + 1 or (self._ack_seg == last + 1 and self._ack_off)):
            self._reset_ack(f"names segment {self._ack_seg} at byte {self._ack_off}, past the newest ({last})", 0)

    def _reset_ack(self, why: str, seq: int) -> None:
        log.error(
            "spool %s: ack file %s %s: reset; replaying from the start of %s",
            self.dir,
            self.dir / _ACK_FILE,
            why,
            _segment_name(seq) if seq else "the oldest segment",
        )
        self._ack_seg, self._ack_off = seq, 0

    def _scan_segment(self, seq: int, *, newest: bool) -> None:
        """Size and pending lines of a segment; checks the ack offset, cuts off the newest's torn tail."""
        path = self.dir / _segment_name(seq)
        with open(path, "rb") as f:
            data = f.read()
        self._sizes[seq] = len(data)
        records = list(_walk(data))
        if seq == self._ack_seg and self._ack_off not in {0, len(data)} | {end for _, end, _, ok in records if ok}:
            self._reset_ack(f"points to byte {self._ack_off} of {path.name} ({len(data)} bytes), not a record", seq)
        start = self._ack_off if seq == self._ack_seg else 0
        pending = [r for r in records if r[0] >= start]
        if newest and pending and not pending[-1][3]:
            good, _, lost, _ = pending.pop()
            self._cut_tail(seq, good, len(data), lost)
        self._lines[seq] = sum(lines for _, _, lines, _ in pending)

    def _cut_tail(self, seq: int, good: int, size: int, lost: int) -> None:
        path = self.dir / _segment_name(seq)
        log.warning(
            "spool %s: %s has a torn or corrupt tail at byte %d (%d bytes, %d lines by its header): cut off, "
            "the %d bytes before it kept",
            self.dir,
            path.name,
            good,
            size - good,
            lost,
            good,
        )
        self.corrupt_bytes += size - good
        self.corrupt_lines += lost
        self.found_lines += lost  # found, and lost at once
        with open(path, "r+b") as f:
            f.truncate(good)
            os.fsync(f.fileno())
        self._sizes[seq] = good

    def _first_segment(self) -> int:
        return min(self._sizes) if self._sizes else self._write_seq

    @staticmethod
    def _scan_valid(data: bytes, offset: int) -> int:
        """The offset just past the last intact record from `offset` on (before any damage)."""
        while (end := _record_end(data, offset)) is not None:
            offset = end
        return offset

    # ------------------------------------------------------------------------------------- counts

    @property
    def total_bytes(self) -> int:
        """Bytes on disk in segment files."""
        return sum(self._sizes.values())

    @property
    def pending_bytes(self) -> int:
        """Bytes not yet acknowledged (0 when there is nothing to replay)."""
        return sum(
            size - (self._ack_off if seq == self._ack_seg else 0)
            for seq, size in self._sizes.items()
            if seq >= self._ack_seg
        )

    @property
    def pending_lines(self) -> int:
        """Lines not yet acknowledged, dropped or found lost."""
        return sum(self._lines.values())

    # ------------------------------------------------------------------------------------- writing

    def append(self, lines: Sequence[str] | LineBlock, oldest_ts: float) -> None:
        """Append one batch as one record (rotating and dropping the oldest segments as needed).

        StorageError if it could not be written whole: then nothing of it is in the spool."""
        if not lines:
            return
        record = encode_record(lines, oldest_ts)
        try:
            if self._write_fd is None or self._sizes.get(self._write_seq, 0) >= self.segment_bytes:
                self._rotate()
            self._enforce_bound(len(record))
            if self._write_fd is None:  # the bound rotated, and the new segment could not be opened
                self._rotate()
            self._write_record(record)
        except OSError as exc:
            raise StorageError(f"spool {self.dir}: cannot write: {exc}") from exc
        self._lines[self._write_seq] = self._lines.get(self._write_seq, 0) + len(lines)

    def _write_record(self, record: bytes) -> None:
        fd, seq = self._write_fd, self._write_seq
        assert fd is not None
        start = self._sizes[seq]
        try:
            write_all(fd, record)
            if self.fsync == "always":
                os.fsync(fd)
        except OSError:
            self._cut_back(fd, seq, start)
            raise
        self._sizes[seq] = start + len(record)
        self._dirty = self.fsync == "batch"

    def _cut_back(self, fd: int, seq: int, start: int) -> None:
        """Remove what a failed write left of its record; if even that fails, stop writing this segment."""
        try:
            os.ftruncate(fd, start)
        except OSError as exc:
            log.error(
                "spool %s: cannot cut a failed write off %s (%s): its damaged tail is skipped when read; "
                "new records go to a new segment",
                self.dir,
                _segment_name(seq),
                exc,
            )
            self._write_fd = None
            os.close(fd)

    def _rotate(self) -> None:
        """Close the segment being written and open the next; OSError leaves none open (retry later)."""
        fd, self._write_fd = self._write_fd, None  # never keep a number we closed: it may be reused
        if fd is not None:
            try:
                if self.fsync != "never":
                    os.fsync(fd)
            finally:
                os.close(fd)
        if self._write_seq in self._sizes:  # never append to a segment once we stopped writing it
            self._write_seq += 1
        fd = os.open(self.dir / _segment_name(self._write_seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            size = os.fstat(fd).st_size
            if self.fsync != "never":
                fsync_dir(self.dir)  # the new segment's name survives a power cut
        except BaseException:
            os.close(fd)
            raise
        self._sizes[self._write_seq] = size
        self._write_fd = fd

    def _enforce_bound(self, incoming: int) -> None:
        while self.total_bytes + incoming > self.max_bytes:
            oldest = min(self._sizes)
            if oldest == self._write_seq:
                if self._sizes[oldest] == 0:
                    return  # one record bigger than the bound: keep it rather than lose it too
                self._rotate()
                continue
            lines = self._lines.get(oldest, 0)
            self.dropped_lines += lines
            self.dropped_segments += 1
            log.error(
                "spool %s: over spool_max_bytes (%d): dropped the oldest segment %s with %d unsent lines "
                "(%d lines dropped so far)",
                self.dir,
                self.max_bytes,
                _segment_name(oldest),
                lines,
                self.dropped_lines,
            )
            self._unlink(oldest)
            if self._ack_seg <= oldest:
                self._ack_seg, self._ack_off = self._first_segment(), 0
                self._write_ack()
            if self._head is not None and self._head.segment == oldest:
                self._head = None

    def _unlink(self, seq: int) -> None:
        (self.dir / _segment_name(seq)).unlink(missing_ok=True)
        self._sizes.pop(seq, None)
        self._lines.pop(seq, None)

    def sync(self) -> None:
        """fsync what was appended since the last sync (policy "batch"; no-op for "never")."""
        if self._dirty and self._write_fd is not None and self.fsync != "never":
            try:
                os.fsync(self._write_fd)
            except OSError as exc:
                raise StorageError(f"spool {self.dir}: cannot sync: {exc}") from exc
        self._dirty = False

    # ------------------------------------------------------------------------------------- reading

    def peek(self) -> SpoolRecord | None:
        """The oldest unacknowledged record, or None when everything is acknowledged.

        Raises StorageError when the spool cannot be read or its progress recorded; calling again
        later retries (the position in memory stays where it was, or moves past a finished segment).
        """
        if self._head is not None:
            return self._head
        while True:
            seq, off = self._ack_seg, self._ack_off
            size = self._sizes.get(seq)
            if size is None:
                later = [s for s in self._sizes if s > seq]
                if not later:
                    return None
                self._ack_seg, self._ack_off = min(later), 0
                continue
            if off >= size:
                self._settle(seq)
                if seq == self._write_seq:
                    return None
                # this segment is done: move on and delete it
                try:
                    self._advance_to_next_segment(seq)
                except OSError as exc:
                    raise StorageError(f"spool {self.dir}: cannot record progress: {exc}") from exc
                continue
            record = self._read_record(seq, off, size)
            if record is None:
                self._skip_damage(seq, off, size)
                continue
            self._head = record
            return record

    def _settle(self, seq: int) -> None:
        """Read to the end of `seq`: its lines not acknowledged by now were in damaged records."""
        lost = self._lines.get(seq, 0)
        if lost:
            self._lines[seq] = 0
            self.corrupt_lines += lost
            log.error(
                "spool %s: %d lines of %s were in damaged records and are lost (%d so far)",
                self.dir,
                lost,
                _segment_name(seq),
                self.corrupt_lines,
            )

    def _skip_damage(self, seq: int, off: int, size: int) -> None:
        try:
            with open(self.dir / _segment_name(seq), "rb") as f:
                f.seek(off)
                data = f.read(size - off)
        except OSError as exc:
            raise StorageError(f"spool {self.dir}: cannot read: {exc}") from exc
        skip = _resync(data, 1)
        self.corrupt_bytes += skip
        self._ack_off = off + skip
        log.error(
            "spool %s: corrupt record in %s at byte %d: skipped %d bytes to %s",
            self.dir,
            _segment_name(seq),
            off,
            skip,
            f"the next intact record at byte {off + skip}" if off + skip < size else "the end of the segment",
        )

    def _read_record(self, seq: int, off: int, size: int) -> SpoolRecord | None:
        try:
            with open(self.dir / _segment_name(seq), "rb") as f:
                f.seek(off)
                header = f.read(HEADER.size)
                if len(header) < HEADER.size:
                    return None
                length, _, _, _ = HEADER.unpack(header)
                if length > _MAX_RECORD or off + HEADER.size + length > size:
                    return None
                data = header + f.read(length)
        except OSError as exc:
            raise StorageError(f"spool {self.dir}: cannot read: {exc}") from exc
        if _record_end(data, 0) is None:
            return None
        oldest_ts = HEADER.unpack_from(data)[3]
        try:
            lines = data[HEADER.size :].decode("utf-8").split("\n")
        except UnicodeDecodeError:
            return None
        return SpoolRecord(seq, off, off + len(data), lines, oldest_ts)

    def _advance_to_next_segment(self, seq: int) -> None:
        self._settle(seq)
        later = [s for s in self._sizes if s > seq]
        self._ack_seg, self._ack_off = (min(later) if later else self._write_seq), 0
        self._write_ack()
        self._unlink(seq)

    def ack(self, record: SpoolRecord) -> None:
        """Mark `record` (the one `peek` returned) acknowledged, durably."""
        if (record.segment, record.offset) != (self._ack_seg, self._ack_off):
            return  # already dropped at the bound or acknowledged
        self._head = None
        self._ack_off = record.end
        self._lines[record.segment] = self._lines.get(record.segment, 0) - len(record.lines)
        try:
            if record.end >= self._sizes.get(record.segment, 0) and record.segment != self._write_seq:
                self._advance_to_next_segment(record.segment)
            else:
                self._write_ack()
        except OSError as exc:
            raise StorageError(f"spool {self.dir}: cannot record progress: {exc}") from exc

    def _write_ack(self) -> None:
        # A fixed temporary name: the lock makes this process the only writer, and a crash leaves at
        # most one stale ack.tmp, overwritten by the next acknowledgement.
        position = f"{self._ack_seg} {self._ack_off}\n".encode("ascii")
        atomic_write(self.dir / _ACK_FILE, position, fsync=self.fsync != "never", tmp=self.dir / _ACK_TMP)

    def oldest_ts(self) -> float | None:
        """Submit time of the oldest unacknowledged batch, or None if nothing is pending."""
        record = self.peek()
        return record.oldest_ts if record is not None else None

    def close(self) -> None:
        """Sync and close the segment being written, and release the directory lock."""
        try:
            if self._write_fd is not None:
                fd, self._write_fd = self._write_fd, None
                try:
                    if self.fsync != "never":
                        os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise StorageError(f"spool {self.dir}: cannot close: {exc}") from exc
        finally:
            self._head = None
            self._unlock()
