"""Power-loss durability: every acknowledged byte was fsynced before it was acknowledged.

A test that kills the process proves nothing about a power cut: the page cache survives a kill. So
here `os.fsync` is replaced by `Disk`, which calls the real one and then records what it made durable
(the file's inode and size, a directory's entries, the ack file's content), in order. Each test then
checks, at the moment something is acknowledged (an append under "always", `sync()` under "batch",
`close()`, `ack()`, the writer's `when_stored`), that the bytes it vouches for were synced first.

Each test fails when the fsync it is about is deleted from stationmon/adapters/spool.py or
stationmon/files.py (named in its docstring).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stationmon.adapters.influx import InfluxWriter
from stationmon.adapters.spool import Spool
from stationmon.config import InfluxConfig
from stationmon.metrics import Metrics
from tests.helpers import drain_spool, wait_until


@dataclass(frozen=True)
class Synced:
    """What one fsync made durable."""

    path: str
    ino: int
    size: int
    entries: dict[str, int] | None  # a directory: name -> inode
    content: bytes | None  # the ack file (or its temporary): what it said


class Disk:
    """Stands in for os.fsync: the real fsync, then a record of what it made durable."""

    def __init__(self) -> None:
        self.real = os.fsync
        self.events: list[Synced] = []

    def __call__(self, fd: Any) -> None:
        fd = fd if isinstance(fd, int) else fd.fileno()
        self.real(fd)
        path = os.readlink(f"/proc/self/fd/{fd}")
        st = os.fstat(fd)
        entries = content = None
        if stat.S_ISDIR(st.st_mode):
            entries = {name: os.stat(name, dir_fd=fd, follow_symlinks=False).st_ino for name in os.listdir(fd)}
        elif Path(path).name in ("ack", "ack.tmp"):
            content = Path(path).read_bytes()
        self.events.append(Synced(path, st.st_ino, st.st_size, entries, content))

    def synced_size(self, path: Path, before: int | None = None) -> int:
        """The most bytes of `path` (its current inode) any sync in events[:before] made durable (-1: none)."""
        ino = path.stat().st_ino
        return max((e.size for e in self.events[:before] if e.entries is None and e.ino == ino), default=-1)

    def assert_file_durable(self, path: Path, upto: int | None = None, before: int | None = None) -> None:
        want = path.stat().st_size if upto is None else upto
        got = self.synced_size(path, before)
        assert got >= want, f"{path.name}: {want} bytes vouched for, only {max(got, 0)} synced (syncs: {self._log()})"

    def assert_entry_durable(self, path: Path, after: int = -1, before: int | None = None) -> None:
        """A directory sync in events[after+1:before] saw `path`'s name pointing at its current inode."""
        ino = path.stat().st_ino
        assert any(
            e.entries is not None and e.entries.get(path.name) == ino for e in self.events[after + 1 : before]
        ), f"{path.name}: its directory entry was never synced (syncs: {self._log()})"

    def assert_ack_durable(self, ack: Path) -> None:
        """The ack file's current content was synced (as the temporary), and then its rename."""
        content = ack.read_bytes()
        hits = [i for i, e in enumerate(self.events) if e.content == content and e.ino == ack.stat().st_ino]
        assert hits, f"ack {content!r}: never synced with that content (syncs: {self._log()})"
        self.assert_entry_durable(ack, after=hits[-1])

    def _log(self) -> list[str]:
        return [f"{Path(e.path).name}:{'dir' if e.entries is not None else e.size}" for e in self.events[-8:]]


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    recorder = Disk()
    monkeypatch.setattr(os, "fsync", recorder)
    return recorder


def lines(start: int, count: int) -> list[str]:
    return [f"telemetry,station=s1 supply_temp={i}.0 {1_700_000_000_000 + i}" for i in range(start, start + count)]


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("seg-*.spool"))


# ---------------------------------------------------------------------------------------------- appends


def test_always_every_append_is_durable_when_it_returns(tmp_path: Path, disk: Disk) -> None:
    """Catches: the fsync in Spool._write_record; fsync_dir in Spool._rotate (a new segment's name)."""
    spool = Spool(tmp_path, fsync="always", segment_bytes=1500)
    for start in range(0, 300, 20):
        spool.append(lines(start, 20), 1.0)
        newest = segments(tmp_path)[-1]
        disk.assert_file_durable(newest)
        disk.assert_entry_durable(newest)
    assert len(segments(tmp_path)) >= 3  # the rotations were exercised
    spool.close()


def test_batch_sync_makes_every_byte_appended_since_the_last_durable_across_rotations(
    tmp_path: Path, disk: Disk
) -> None:
    """Catches: the fsync in Spool.sync (the segment being written); the fsync of the finished segment in
    Spool._rotate (appends before a rotation in the same flush cycle); fsync_dir in Spool._rotate."""
    spool = Spool(tmp_path, fsync="batch", segment_bytes=1500)
    for cycle in range(3):
        for start in range(0, 200, 20):  # one flush cycle: several appends, rotating, then one sync
            spool.append(lines(cycle * 1000 + start, 20), 1.0)
        spool.sync()
        assert len(segments(tmp_path)) >= 3 * (cycle + 1)
        for segment in segments(tmp_path):
            disk.assert_file_durable(segment)
            disk.assert_entry_durable(segment)
    spool.close()


def test_close_makes_the_last_appends_durable(tmp_path: Path, disk: Disk) -> None:
    """Catches: the fsync in Spool.close (the writer's last flush appends, then closes)."""
    spool = Spool(tmp_path, fsync="batch")
    spool.sync()
    spool.append(lines(0, 30), 1.0)
    spool.close()
    [segment] = segments(tmp_path)
    disk.assert_file_durable(segment)


def test_never_syncs_nothing(tmp_path: Path, disk: Disk) -> None:
    """The policy "never" leaves it to the OS (and the recorder sees every sync the others make)."""
    spool = Spool(tmp_path, fsync="never", segment_bytes=600)
    for start in range(0, 100, 10):
        spool.append(lines(start, 10), 1.0)
    spool.sync()
    assert len(drain_spool(spool)) == 10
    spool.close()
    assert disk.events == []


# ------------------------------------------------------------------------------------------ the ack file


@pytest.mark.parametrize("policy", ["always", "batch"])
def test_every_ack_is_durable_when_ack_returns(tmp_path: Path, disk: Disk, policy: str) -> None:
    """Catches: the fsync of the temporary in files.atomic_write and fsync_dir after its rename (the ack
    file's content, then its name), within a segment and when moving on to the next one."""
    spool = Spool(tmp_path, fsync=policy, segment_bytes=1500)
    for start in range(0, 200, 20):
        spool.append(lines(start, 20), 1.0)
    spool.sync()
    acked = 0
    previous: tuple[int, int] | None = None
    while (record := spool.peek()) is not None:
        assert (record.segment, record.offset) != previous, "ack did not move the spool on"
        previous = (record.segment, record.offset)
        spool.ack(record)
        acked += 1
        disk.assert_ack_durable(tmp_path / "ack")
    assert acked == 10
    spool.close()


def test_dropping_the_oldest_segment_at_the_bound_makes_the_moved_ack_durable(tmp_path: Path, disk: Disk) -> None:
    """Catches the same atomic_write syncs on the other path that moves the ack: Spool._enforce_bound."""
    spool = Spool(tmp_path, max_bytes=4000, fsync="batch", segment_bytes=1000)
    for start in range(0, 400, 10):
        spool.append(lines(start, 10), 1.0)
        if spool.dropped_segments:
            disk.assert_ack_durable(tmp_path / "ack")
    assert spool.dropped_segments > 0
    spool.close()


def test_a_cut_torn_tail_is_durable_before_anything_is_appended(tmp_path: Path, disk: Disk) -> None:
    """Catches: the fsync in Spool._cut_tail (else a power cut brings the torn tail back)."""
    spool = Spool(tmp_path, fsync="batch")
    spool.append(lines(0, 10), 1.0)
    spool.append(lines(10, 10), 1.0)
    spool.close()
    [segment] = segments(tmp_path)
    with open(segment, "r+b") as f:
        f.truncate(segment.stat().st_size - 7)  # the second record torn by a crash
    before = len(disk.events)
    reopened = Spool(tmp_path, fsync="batch")
    assert reopened.corrupt_lines == 10
    size, ino = segment.stat().st_size, segment.stat().st_ino
    cuts = [e for e in disk.events[before:] if e.ino == ino and e.size == size]
    assert cuts, f"the cut to {size} bytes was never synced (syncs: {disk._log()})"  # a sync after the truncate
    assert drain_spool(reopened) == [lines(0, 10)]
    reopened.close()


# ------------------------------------------------------------------------------------ the writer's promise


@pytest.mark.parametrize("policy", ["always", "batch"])
async def test_when_stored_vouches_only_for_durable_lines(tmp_path: Path, disk: Disk, policy: str) -> None:
    """`when_stored(True)` is what MQTT's PUBACK waits for: by then every spooled line is synced.

    Catches: the fsync in Spool.sync ("batch"), the fsync in Spool._write_record ("always")."""
    spool_dir = tmp_path / "spool"
    cfg = InfluxConfig(url=None, spool_dir=str(spool_dir), spool_fsync=policy, flush_interval_s=0.02, batch_size=50)
    told: list[bool] = []
    broken: list[str] = []  # the writer logs and swallows a callback's exception: keep it for the test

    def check(stored: bool) -> None:
        try:
            for segment in segments(spool_dir):
                disk.assert_file_durable(segment)  # runs inside the writer, at the moment it vouches
        except AssertionError as exc:
            broken.append(str(exc))
        told.append(stored)

    async with InfluxWriter(cfg, Metrics()) as writer:
        for i in range(5):
            writer.submit(lines(i * 120, 120))
            writer.when_stored(check)
            await wait_until(lambda: len(told) > i, timeout=10, message=f"when_stored #{i + 1}", seen=told.copy)  # noqa: B023
    assert broken == []
    assert told == [True] * 5
