"""Storage faults caused for real: an immutable spool directory, no descriptors left, a tiny full
filesystem, flipped bytes in a segment, bad ack files, a storage task that keeps dying, and power-loss
durability (every acknowledged byte synced first). Each checks the accounting:

    queued = written + dropped{reason} + dead_lettered + buffered (memory, writes in flight, spool)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from stationmon.adapters import influx as influx_module
from stationmon.adapters.influx import InfluxWriter
from stationmon.adapters.spool import HEADER, Spool, SpoolRecord, encode_record
from stationmon.config import parse_config_text
from stationmon.errors import StorageError
from stationmon.metrics import Metrics
from stationmon.service import Service
from tests.conftest import InfluxServer
from tests.helpers import drain_spool, free_port, running_service, wait_until
from tests.integration.test_influx import (
    assert_exactly_once,
    count,
    lines_for,
    points_accepted,
    stored,
    v1_config,
    v2_config,
)
from tests.unit.test_durability import Disk
from tests.v2_translator import V2Translator

REASONS = ("spool_full", "corrupt", "spool_error", "dead_letter_error")


def accounting(metrics: Metrics) -> dict[str, int]:
    """The storage counters as /metrics shows them."""
    text = metrics.render()

    def value(name: str) -> int:
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    out = {
        "queued": value("stationmon_influx_lines_queued_total"),
        "written": value("stationmon_influx_lines_written_total"),
        "dead": value("stationmon_influx_lines_dead_lettered_total"),
        "buffered": value("stationmon_influx_buffered_lines"),
    }
    for reason in REASONS:
        prefix = f'stationmon_influx_lines_dropped_total{{reason="{reason}"}} '
        out[reason] = sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines() if line.startswith(prefix))
    return out


def assert_closes(metrics: Metrics) -> dict[str, int]:
    """The accounting identity holds; returns the figures."""
    a = accounting(metrics)
    dropped = sum(a[r] for r in REASONS)
    assert a["queued"] == a["written"] + dropped + a["dead"] + a["buffered"], a
    return a


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted on `path` (root only), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """No entry of `path` can be created or removed while inside (root ignores chmod, not chattr +i)."""
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def no_traceback(caplog: pytest.LogCaptureFixture, *, allowed: str = "\x00") -> None:
    for record in caplog.records:
        if record.exc_info and allowed not in record.getMessage():
            raise AssertionError(f"traceback logged: {record.getMessage()}")


# ------------------------------------------------------------------------ a segment that will not open


async def test_rotation_into_an_immutable_spool_directory_holds_and_retries(
    influxdb: InfluxServer, influx_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    spool_dir = tmp_path / "spool"
    offline = v1_config(None, influx_db, tmp_path, spool_max_bytes=1 << 18, batch_size=50)  # 32 KiB segments
    with caplog.at_level(logging.INFO):
        async with InfluxWriter(offline, metrics) as writer:
            writer.submit(lines_for(0, 50))
            await writer.flush()
            assert writer.status()["state"] == "spool-only"
            with immutable(spool_dir):
                # enough to need new segments, which cannot be created now (EPERM)
                for start in range(50, 1000, 50):
                    writer.submit(lines_for(start, 50))
                    await writer.flush()
                stranger = os.open(tmp_path / "stranger", os.O_RDWR | os.O_CREAT)  # takes the lowest free number
                try:
                    writer.submit(lines_for(1000, 50))
                    await writer.flush()
                    status = writer.status()
                    assert status["state"] == "failing"  # neither written (no url) nor spooled
                    assert status["buffered_lines"] > 0  # held in memory, in order
                    assert_closes(metrics)
                finally:
                    os.close(stranger)
                assert (tmp_path / "stranger").stat().st_size == 0  # nothing went to a stranger's descriptor
            # the directory is writable again: the held lines reach the spool at the next try
            await wait_until(lambda: writer.status()["state"] == "spool-only", timeout=20, message="spooling again")
            await wait_until(lambda: writer.buffered_lines == 0, message="memory emptied into the spool")
            a = assert_closes(metrics)
            assert a["queued"] == 1050 and sum(a[r] for r in REASONS) == 0
    assert f"spool {spool_dir}: cannot write: [Errno 1] Operation not permitted" in caplog.text
    assert f"spool {spool_dir}: recovered" in caplog.text
    no_traceback(caplog)
    metrics = Metrics()
    async with InfluxWriter(v1_config(influxdb, influx_db, tmp_path), metrics) as writer:
        await wait_until(lambda: writer.status()["spool_bytes"] == 0, timeout=30, message="replayed")
        assert_closes(metrics)
    assert stored(influxdb, influx_db) == {i: float(i) for i in range(1050)}
    assert_exactly_once(metrics, 1050, influx=(influxdb, influx_db))  # each line written once, not only present


def test_no_descriptor_left_for_the_next_segment_touches_no_other_descriptor(tmp_path: Path) -> None:
    """EMFILE at rotation: the closed segment's number is not written to once a stranger owns it."""
    spool = Spool(tmp_path / "spool", segment_bytes=600)
    spool.append(lines_for(0, 5), 1.0)
    write_fd = spool._write_fd
    assert write_fd is not None
    fillers: list[int] = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        while (fd := os.open(os.devnull, os.O_RDONLY)) < write_fd:
            fillers.append(fd)  # every lower number is taken
        os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (write_fd, hard))  # no number >= write_fd either
        with pytest.raises(StorageError, match="Too many open files"):
            for start in range(5, 100, 5):  # fills the segment; the rotation's open fails
                spool.append(lines_for(start, 5), 1.0)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    failed_at = start
    stranger = os.open(tmp_path / "stranger", os.O_RDWR | os.O_CREAT)
    try:
        assert stranger == write_fd  # the number the spool closed now belongs to someone else
        spool.append(lines_for(failed_at, 5), 1.0)  # retries the rotation
        assert os.fstat(stranger).st_size == 0
    finally:
        os.close(stranger)
        for fd in fillers:
            os.close(fd)
    got = [line for lines in drain_spool(spool) for line in lines]
    assert got == lines_for(0, failed_at + 5)  # the refused batch was not written; the caller still has it
    spool.close()


# ------------------------------------------------------------------------ a tiny full filesystem


async def test_tiny_full_filesystem_no_torn_record_and_every_line_accounted(
    influxdb: InfluxServer, influx_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    down = v1_config(None, influx_db, tmp_path, batch_size=100, max_buffered_lines=1000)
    submitted = 0
    with tmpfs(tmp_path / "spool", "64k"), caplog.at_level(logging.INFO):
        async with InfluxWriter(down, metrics) as writer:
            while accounting(metrics)["spool_error"] == 0:  # past the disk and past max_buffered_lines
                writer.submit(lines_for(submitted, 100))
                submitted += 100
                await writer.flush()
                assert_closes(metrics)
                assert submitted < 20_000, "the 64 KiB filesystem never filled"
            assert writer.status()["state"] == "failing"
            assert writer.buffered_lines <= 1000
            a = assert_closes(metrics)
        # stopped: what memory held could not be spooled either, and is counted, not lost silently
        a = assert_closes(metrics)
        assert a["buffered"] == writer.spool_lines == a["queued"] - a["spool_error"]
        spool = Spool(tmp_path / "spool")
        assert spool.corrupt_bytes == 0  # the write the disk cut short left no torn record behind
        in_spool = spool.found_lines
        spool.close()
        assert in_spool == a["buffered"] and in_spool > 0
        assert "No space left on device" in caplog.text
        no_traceback(caplog)
        # InfluxDB is there now: everything the spool kept lands
        metrics = Metrics()
        async with InfluxWriter(v1_config(influxdb, influx_db, tmp_path), metrics) as writer:
            await wait_until(lambda: writer.status()["spool_bytes"] == 0, timeout=30, message="replayed")
            b = assert_closes(metrics)
    assert b["written"] == in_spool == count(influxdb, influx_db) == points_accepted(influxdb, influx_db)
    assert submitted == in_spool + a["spool_error"]
    assert set(stored(influxdb, influx_db)) == set(range(in_spool))  # the oldest: the spool filled first


async def test_healthz_is_503_while_readings_can_be_neither_written_nor_spooled(tmp_path: Path) -> None:
    port = free_port()
    disk = tmp_path / "disk"
    config = parse_config_text(
        f"""
[influxdb]
api = "v1"
database = "unused"
spool_dir = "{disk / "spool"}"
batch_size = 100
max_buffered_lines = 5000
flush_interval = "100ms"
[http]
listen = "127.0.0.1:{port}"
[[stations]]
id = "s1"
""",
        require_influxdb=False,
    )
    with tmpfs(disk, "64k"):
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (48 << 10))  # the spool's directory fits; its data will not for long
        service = Service(config)
        base = f"http://127.0.0.1:{port}/healthz"
        async with running_service(service, stop_timeout_s=20), aiohttp.ClientSession() as client:

            async def health() -> tuple[int, Any]:
                try:
                    async with client.get(base) as r:
                        return r.status, await r.json()
                except aiohttp.ClientConnectionError:
                    return 0, None

            await wait_until(lambda: _status(health, 200), timeout=15, message="up")
            start = 0
            deadline = asyncio.get_running_loop().time() + 60
            while (last := await health())[0] != 503:
                service.writer.submit(lines_for(start, 100))
                start += 100
                await asyncio.sleep(0.05)  # let the flush task run (it decides, not this loop)
                assert start < 100_000 and asyncio.get_running_loop().time() < deadline, (
                    f"storage never reported failing: {start} lines submitted, /healthz said {last}"
                )
            code, doc = await health()
            assert code == 503 and doc["status"] == "failing"
            assert doc["components"]["storage"]["state"] == "failing"
            filler.unlink()  # room again: the held readings are spooled, the service recovers
            await wait_until(lambda: _status(health, 200), timeout=20, message="healthy again")
            assert_closes(service.metrics)


async def _status(health: Any, want: int) -> bool:
    return bool((await health())[0] == want)


# ------------------------------------------------------------------------ damage in the spool


def _record_offsets(segment: Path) -> list[int]:
    data = segment.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        out.append(pos)
        pos += HEADER.size + HEADER.unpack_from(data, pos)[0]
    return out


@pytest.mark.parametrize("where", ["payload", "header"])
async def test_flipped_bytes_skip_one_record_resync_and_count_it(
    influxdb: InfluxServer, influx_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    offline = v1_config(None, influx_db, tmp_path, batch_size=50)
    async with InfluxWriter(offline, Metrics()) as writer:
        for start in range(0, 500, 50):
            writer.submit(lines_for(start, 50))
            await writer.flush()
    [segment] = sorted((tmp_path / "spool").glob("seg-*"))
    offsets = _record_offsets(segment)
    assert len(offsets) == 10
    data = bytearray(segment.read_bytes())
    at = offsets[3] + (HEADER.size + 100 if where == "payload" else 1)  # the 4th record: lines 150..199
    data[at] ^= 0x5A
    segment.write_bytes(bytes(data))
    metrics = Metrics()
    with caplog.at_level(logging.WARNING, logger="stationmon.spool"):
        async with InfluxWriter(v1_config(influxdb, influx_db, tmp_path), metrics) as writer:
            await wait_until(lambda: writer.status()["spool_bytes"] == 0, timeout=30, message="replayed")
            a = assert_closes(metrics)
    assert a["queued"] == 500 and a["corrupt"] == 50 and a["written"] == 450 == points_accepted(influxdb, influx_db)
    assert stored(influxdb, influx_db) == {i: float(i) for i in [*range(150), *range(200, 500)]}
    assert f"corrupt record in {segment.name} at byte {offsets[3]}" in caplog.text
    assert f"the next intact record at byte {offsets[4]}" in caplog.text
    no_traceback(caplog)


def test_damage_while_running_is_counted_exactly(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=1 << 20)
    for start in range(0, 60, 10):
        spool.append(lines_for(start, 10), 1.0)
    [segment] = sorted(tmp_path.glob("seg-*"))
    offsets = _record_offsets(segment)
    with open(segment, "r+b") as f:  # a header's line count and a payload byte, under the running spool
        f.seek(offsets[1] + 8)
        f.write(b"\xff\xff")
        f.seek(offsets[4] + HEADER.size + 3)
        f.write(b"#")
    got = [line for lines in drain_spool(spool) for line in lines]
    assert got == lines_for(0, 10) + lines_for(20, 20) + lines_for(50, 10)
    assert spool.corrupt_lines == 20 and spool.pending_lines == 0
    assert spool.found_lines + 60 == len(got) + spool.corrupt_lines + spool.dropped_lines + spool.pending_lines
    spool.close()


@pytest.mark.parametrize(
    ("ack", "why"),
    [
        (b"\xff\xfegarbage", "unreadable"),
        (b"1 -20", "unreadable"),
        (b"1 999999", "not a record"),
        (b"1 7", "not a record"),
        (b"1", "unreadable"),
        (b"42 0", "past the newest"),
        (b"2 30", "past the newest"),
    ],
)
def test_a_bad_ack_file_is_reset_loudly_and_nothing_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, ack: bytes, why: str
) -> None:
    spool = Spool(tmp_path)
    for start in range(0, 30, 10):
        spool.append(lines_for(start, 10), 1.0)
    spool.close()
    (tmp_path / "ack").write_bytes(ack)
    with caplog.at_level(logging.ERROR, logger="stationmon.spool"):
        reopened = Spool(tmp_path)
    assert f"ack file {tmp_path / 'ack'} " in caplog.text and why in caplog.text and "reset" in caplog.text
    assert reopened.found_lines == 30
    got = [line for lines in drain_spool(reopened) for line in lines]
    assert got == lines_for(0, 30)  # replayed from the start, never skipped or stalled
    reopened.close()
    assert (tmp_path / "ack").read_text().split()[0] == "2"  # progress recorded again


def test_unknown_files_in_the_spool_directory_are_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path)
    spool.append(lines_for(0, 10), 1.0)
    spool.close()
    [segment] = sorted(tmp_path.glob("seg-*"))
    (tmp_path / "seg-copy.spool").write_bytes(segment.read_bytes())
    (tmp_path / "seg-1.spool").write_bytes(b"x")
    (tmp_path / "seg-00000000000000000009.spool").mkdir()
    with caplog.at_level(logging.WARNING, logger="stationmon.spool"):
        reopened = Spool(tmp_path)
    for name in ("seg-copy.spool", "seg-1.spool", "seg-00000000000000000009.spool"):
        assert f"ignoring {name!r}" in caplog.text
    record = reopened.peek()
    assert isinstance(record, SpoolRecord) and record.lines == lines_for(0, 10)
    reopened.ack(record)
    assert reopened.peek() is None
    reopened.close()
    assert (tmp_path / "seg-copy.spool").exists()  # not ours to delete


# ------------------------------------------------------------------------ a storage task that keeps dying


async def test_a_dying_storage_task_is_restarted_then_stops_the_service_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(influx_module, "_TASK_RESTART_FIRST_S", 0.05)
    monkeypatch.setattr(influx_module, "_TASK_RESTART_MAX_S", 0.1)
    deaths = [0]
    real_sync = Spool.sync

    def broken_sync(self: Spool) -> None:
        if deaths[0] < 100:
            deaths[0] += 1
            raise RuntimeError(f"bug number {deaths[0]}")
        real_sync(self)

    port = free_port()
    config = parse_config_text(
        f"""
[influxdb]
api = "v1"
database = "unused"
spool_dir = "{tmp_path / "spool"}"
flush_interval = "50ms"
[http]
listen = "127.0.0.1:{port}"
[[stations]]
id = "s1"
""",
        require_influxdb=False,
    )
    monkeypatch.setattr(Spool, "sync", broken_sync)
    service = Service(config)
    stop = asyncio.Event()
    died_for_good = r"storage task influx-flush died 6 times in a row.*bug number 6"
    with caplog.at_level(logging.INFO, logger="stationmon.influx"), pytest.raises(StorageError, match=died_for_good):
        await asyncio.wait_for(service.run(stop), timeout=30)
    restarts = [r for r in caplog.records if "storage task influx-flush died" in r.getMessage()]
    assert [r.levelno for r in restarts] == [logging.ERROR] * 5 + [logging.CRITICAL]
    assert all(r.exc_info for r in restarts)  # the traceback of each death, for the bug report
    assert caplog.text.count("storage task influx-flush restarted") == 5


async def test_a_storage_task_that_died_once_is_restarted_and_storage_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(influx_module, "_TASK_RESTART_FIRST_S", 0.05)
    real_sync = Spool.sync
    died = [False]

    def sync_once_broken(self: Spool) -> None:
        if not died[0]:
            died[0] = True
            raise KeyError(7)
        real_sync(self)

    monkeypatch.setattr(Spool, "sync", sync_once_broken)
    metrics = Metrics()
    with caplog.at_level(logging.INFO, logger="stationmon.influx"):
        async with InfluxWriter(v1_config(None, "db", tmp_path, flush_interval_s=0.05), metrics) as writer:
            writer.submit(lines_for(0, 10))
            await wait_until(lambda: "storage task influx-flush restarted" in caplog.text, message="restarted")
            writer.submit(lines_for(10, 10))
            await wait_until(lambda: writer.spool_lines == 20, message="spooled after the restart")
            assert writer.status()["state"] == "spool-only"
            assert_closes(metrics)
    assert "storage task influx-flush died (7)" in caplog.text


# ------------------------------------------------------------------------ power loss: synced before acknowledged


class SyncRecorder:
    """Stands in for os.fsync: records what each sync made durable (file inode and size, directory entries)."""

    def __init__(self) -> None:
        self.real = os.fsync
        self.events: list[tuple[int, int, dict[str, int] | None]] = []

    def __call__(self, fd: Any) -> None:
        fd = fd if isinstance(fd, int) else fd.fileno()
        self.real(fd)
        st = os.fstat(fd)
        entries = None
        if stat.S_ISDIR(st.st_mode):
            entries = {name: os.stat(name, dir_fd=fd).st_ino for name in os.listdir(fd)}
        self.events.append((st.st_ino, st.st_size, entries))

    def file_synced(self, path: Path) -> int:
        """Index of a sync of `path`'s inode at its current size (AssertionError if none)."""
        st = path.stat()
        hits = [i for i, (ino, size, _) in enumerate(self.events) if ino == st.st_ino and size == st.st_size]
        assert hits, f"{path.name}: {st.st_size} bytes acknowledged, never synced at that size"
        return hits[-1]

    def entry_synced(self, path: Path, after: int = -1) -> None:
        """A directory sync (after event `after`) saw `path`'s name pointing at its current inode."""
        ino = path.stat().st_ino
        assert any(
            entries is not None and entries.get(path.name) == ino for _, _, entries in self.events[after + 1 :]
        ), f"{path.name}: its directory entry was never synced"


@pytest.mark.parametrize("policy", ["always", "batch"])
def test_every_acknowledged_byte_was_synced_before_the_acknowledgement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    recorder = SyncRecorder()
    monkeypatch.setattr(os, "fsync", recorder)
    spool = Spool(tmp_path, fsync=policy, segment_bytes=2000)
    for start in range(0, 200, 20):
        spool.append(lines_for(start, 20), 1.0)  # "always": durable when append returns
        if policy == "batch":
            spool.sync()  # "batch": durable when sync returns (the writer's flush cycle)
        segment = sorted(tmp_path.glob("seg-*"))[-1]
        recorder.file_synced(segment)
        recorder.entry_synced(segment)  # a new segment's name survives a power cut too
    acked = 0
    while (record := spool.peek()) is not None:
        spool.ack(record)
        acked += 1
        ack = tmp_path / "ack"
        assert ack.read_text().split() == [str(spool._ack_seg), str(spool._ack_off)]
        recorder.entry_synced(ack, after=recorder.file_synced(ack))  # content, then the rename
    assert acked == 10
    spool.close()


async def test_a_partly_stored_replay_syncs_the_rest_before_acknowledging_its_record(
    influxdb: InfluxServer, influx_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spooled batch that InfluxDB stores in part (split around an expired point, then a 503) is
    acknowledged with its unsent rest appended again: that rest must be on disk before the ack is."""
    influxdb.start()
    translator = V2Translator(upstream_url=influxdb.url, token="s3cret-token", org="heating")
    translator.reject_older_than((1_700_000_000_000 + 1) * 1_000_000)  # reading 0 is beyond retention
    real_write, requests = translator._write, [0]

    async def third_request_fails(request: Any) -> Any:
        requests[0] += 1
        if requests[0] == 3:  # the whole batch (422), its first half (stored), its second half: 503
            translator.fail_next(1, 503)
        return await real_write(request)

    translator._write = third_request_fails  # type: ignore[method-assign]
    await translator.start(free_port())
    try:
        async with InfluxWriter(v1_config(None, influx_db, tmp_path), Metrics()) as offline:
            offline.submit([*lines_for(1, 40), *lines_for(0, 1)])  # one record: 40 fresh, 1 expired at its end
        [first] = sorted((tmp_path / "spool").glob("seg-*"))
        disk = Disk()
        monkeypatch.setattr(os, "fsync", disk)
        metrics = Metrics()
        async with InfluxWriter(v2_config(translator.url, influx_db, tmp_path), metrics) as writer:
            await wait_until(
                lambda: writer.status()["spool_bytes"] == 0, timeout=20, message="replayed", seen=writer.status
            )
        figures = assert_closes(metrics)
    finally:
        await translator.stop()
    seq = int(first.name[4:-6])
    moved_on = f"{seq + 1} 0\n".encode()  # the ack past the first record: into the segment holding the rest
    at = next(i for i, e in enumerate(disk.events) if e.content == moved_on)
    rest = [e for e in disk.events[:at] if Path(e.path).name == f"seg-{seq + 1:020d}.spool"]
    size = len(encode_record([*lines_for(21, 20), *lines_for(0, 1)], 0.0))  # the second half, 503'd
    assert rest and rest[-1].size >= size, f"unsent rest not synced before the ack moved on: {rest}"
    assert stored(influxdb, influx_db) == {i: float(i) for i in range(1, 41)}
    assert requests[0] >= 4 and figures["written"] == 40 and figures["dead"] == 1 and figures["queued"] == 41
    # InfluxDB stores the good lines of each 422 partial write, and the halving resends them (documented:
    # the same points overwrite): at most once per halving level of the 41-line batch
    assert 40 <= points_accepted(influxdb, influx_db) <= 40 * (1 + 6)
