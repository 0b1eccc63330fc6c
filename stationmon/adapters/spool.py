"""A durable, append-only, bounded on-disk spool of line-protocol batches.

Layout of `spool_dir`:

    seg-00000000000000000001.spool    segment files, appended to in order, never rewritten
    ack                               "<segment seq> <offset>": everything before it is acknowledged
    lock                              flock()ed by the process using the spool; holds its pid

A segment is a sequence of records:

    header  <u32 payload length> <u32 crc32 of the rest> <u32 line count> <f64 oldest submit time>
    payload UTF-8 lines joined by "\\n"

The reader starts at the acknowledged position and returns records in order; `ack(record)` moves the
position past it and writes it durably (`files.atomic_write`), so a batch acknowledged by InfluxDB
is never replayed. A kill -9 between InfluxDB's answer and the ack write replays that one batch once
more, which InfluxDB absorbs (same series, time and fields overwrite the same point).

On open, a torn or corrupt tail of the newest segment (a write cut short by a crash) is detected by
length and CRC, logged and cut off; the intact records before it are kept. A corrupt record in an
older segment ends that segment (logged, its lines counted as dropped). New records always go to a
fresh segment after an open. When a record would push the spool over `max_bytes`, the oldest segments
are deleted whole, their unacknowledged lines counted as dropped and logged at ERROR.

fsync policy: "always" syncs after every record, "batch" when `sync()` is called (the writer does so
once per flush cycle and on close), "never" leaves it to the OS.

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
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stationmon.errors import StorageError
from stationmon.files import atomic_write, fsync_dir

__all__ = ["HEADER", "Spool", "SpoolRecord"]

log = logging.getLogger("stationmon.spool")

HEADER = struct.Struct("<IIId")
_SEGMENT_PREFIX = "seg-"
_SEGMENT_SUFFIX = ".spool"
_MAX_RECORD = 1 << 30
_LOCK_FILE = "lock"


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


def encode_record(lines: Sequence[str], oldest_ts: float) -> bytes:
    """One record's bytes: header then payload."""
    payload = "\n".join(lines).encode("utf-8")
    rest = struct.pack("<Id", len(lines), oldest_ts) + payload
    return HEADER.pack(len(payload), zlib.crc32(rest), len(lines), oldest_ts) + payload


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
        self.dropped_lines = 0
        self.dropped_segments = 0
        self.corrupt_bytes = 0
        self._sizes: dict[int, int] = {}  # segment seq -> size in bytes
        self._write_seq = 0
        self._write_fd: int | None = None
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
            log.info("spool %s: %d bytes of unsent readings to replay", self.dir, pending)

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

    def _recover(self) -> None:
        """Find the segments and the acknowledged position, cut off a torn tail (raises OSError)."""
        segments = sorted(
            int(p.name[len(_SEGMENT_PREFIX) : -len(_SEGMENT_SUFFIX)])
            for p in self.dir.glob(f"{_SEGMENT_PREFIX}*{_SEGMENT_SUFFIX}")
        )
        for seq in segments:
            self._sizes[seq] = (self.dir / _segment_name(seq)).stat().st_size
        self._read_ack()
        for seq in segments:
            if seq < self._ack_seg:
                self._unlink(seq)  # fully acknowledged before a crash, not yet deleted
        if segments:
            self._truncate_torn_tail(segments[-1])
        self._write_seq = (segments[-1] + 1) if segments else max(1, self._ack_seg)
        if self._ack_seg not in self._sizes:
            self._ack_seg, self._ack_off = self._first_segment(), 0

    def _read_ack(self) -> None:
        try:
            text = (self.dir / "ack").read_text("ascii").split()
            self._ack_seg, self._ack_off = int(text[0]), int(text[1])
        except FileNotFoundError:
            self._ack_seg, self._ack_off = 0, 0
        except (ValueError, IndexError, UnicodeDecodeError):
            # Written by rename, so this means someone edited it: replay everything rather than lose.
            log.error("spool %s: ack file unreadable; replaying every segment", self.dir)
            self._ack_seg, self._ack_off = 0, 0

    def _first_segment(self) -> int:
        return min(self._sizes) if self._sizes else self._write_seq

    def _truncate_torn_tail(self, seq: int) -> None:
        path = self.dir / _segment_name(seq)
        with open(path, "rb") as f:
            data = f.read()
        good = self._scan_valid(data, 0)
        if good < len(data):
            log.warning(
                "spool %s: %s has a torn or corrupt tail at byte %d (%d bytes): cut off, the %d bytes before it kept",
                self.dir,
                path.name,
                good,
                len(data) - good,
                good,
            )
            self.corrupt_bytes += len(data) - good
            with open(path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
            self._sizes[seq] = good

    @staticmethod
    def _scan_valid(data: bytes, offset: int) -> int:
        """The offset just past the last intact record from `offset` on."""
        n = len(data)
        while offset + HEADER.size <= n:
            length, crc, _, _ = HEADER.unpack_from(data, offset)
            end = offset + HEADER.size + length
            if length > _MAX_RECORD or end > n or zlib.crc32(data[offset + 8 : end]) != crc:
                break
            offset = end
        return offset

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

    def append(self, lines: Sequence[str], oldest_ts: float) -> None:
        """Append one batch as one record (rotating and dropping the oldest segments as needed)."""
        if not lines:
            return
        record = encode_record(lines, oldest_ts)
        try:
            if self._write_fd is None or self._sizes.get(self._write_seq, 0) >= self.segment_bytes:
                self._rotate()
            self._enforce_bound(len(record))
            assert self._write_fd is not None
            os.write(self._write_fd, record)
            self._sizes[self._write_seq] += len(record)
            if self.fsync == "always":
                os.fsync(self._write_fd)
            else:
                self._dirty = True
        except OSError as exc:
            raise StorageError(f"spool {self.dir}: cannot write: {exc}") from exc

    def _rotate(self) -> None:
        if self._write_fd is not None:
            if self.fsync != "never":
                os.fsync(self._write_fd)
            os.close(self._write_fd)
            self._write_seq += 1
        path = self.dir / _segment_name(self._write_seq)
        self._write_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._sizes[self._write_seq] = os.fstat(self._write_fd).st_size
        if self.fsync != "never":
            fsync_dir(self.dir)

    def _enforce_bound(self, incoming: int) -> None:
        while self.total_bytes + incoming > self.max_bytes:
            oldest = min(self._sizes)
            if oldest == self._write_seq:
                if self._sizes[oldest] == 0:
                    return  # one record bigger than the bound: keep it rather than lose it too
                self._rotate()
                continue
            lines = self._count_unacked_lines(oldest)
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

    def _count_unacked_lines(self, seq: int) -> int:
        start = self._ack_off if seq == self._ack_seg else 0
        if seq < self._ack_seg:
            return 0
        count = 0
        with open(self.dir / _segment_name(seq), "rb") as f:
            f.seek(start)
            while True:
                header = f.read(HEADER.size)
                if len(header) < HEADER.size:
                    break
                length, _, nlines, _ = HEADER.unpack(header)
                count += nlines
                f.seek(length, os.SEEK_CUR)
        return count

    def _unlink(self, seq: int) -> None:
        (self.dir / _segment_name(seq)).unlink(missing_ok=True)
        self._sizes.pop(seq, None)

    def sync(self) -> None:
        """fsync what was appended since the last sync (policy "batch"; no-op for "never")."""
        if self._dirty and self._write_fd is not None and self.fsync != "never":
            try:
                os.fsync(self._write_fd)
            except OSError as exc:
                raise StorageError(f"spool {self.dir}: cannot sync: {exc}") from exc
        self._dirty = False

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
                lost = size - off
                self.corrupt_bytes += lost
                log.error(
                    "spool %s: corrupt record in %s at byte %d: skipped the %d bytes after it",
                    self.dir,
                    _segment_name(seq),
                    off,
                    lost,
                )
                self._sizes[seq] = off  # treat the segment as ending here
                continue
            self._head = record
            return record

    def _read_record(self, seq: int, off: int, size: int) -> SpoolRecord | None:
        try:
            with open(self.dir / _segment_name(seq), "rb") as f:
                f.seek(off)
                header = f.read(HEADER.size)
                if len(header) < HEADER.size:
                    return None
                length, crc, nlines, oldest_ts = HEADER.unpack(header)
                if length > _MAX_RECORD or off + HEADER.size + length > size:
                    return None
                payload = f.read(length)
        except OSError as exc:
            raise StorageError(f"spool {self.dir}: cannot read: {exc}") from exc
        if len(payload) < length or zlib.crc32(header[8:] + payload) != crc:
            return None
        text = payload.decode("utf-8")
        lines = text.split("\n") if nlines else []
        return SpoolRecord(seq, off, off + HEADER.size + length, lines, oldest_ts)

    def _advance_to_next_segment(self, seq: int) -> None:
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
        atomic_write(self.dir / "ack", position, fsync=self.fsync != "never", tmp=self.dir / "ack.tmp")

    def oldest_ts(self) -> float | None:
        """Submit time of the oldest unacknowledged batch, or None if nothing is pending."""
        record = self.peek()
        return record.oldest_ts if record is not None else None

    def close(self) -> None:
        """Sync and close the segment being written, and release the directory lock."""
        try:
            if self._write_fd is not None:
                try:
                    if self.fsync != "never":
                        os.fsync(self._write_fd)
                finally:
                    os.close(self._write_fd)
                    self._write_fd = None
        except OSError as exc:
            raise StorageError(f"spool {self.dir}: cannot close: {exc}") from exc
        finally:
            self._head = None
            self._unlock()
