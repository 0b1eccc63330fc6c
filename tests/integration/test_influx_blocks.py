"""InfluxWriter taking `LineBlock`s (the evaluator's loop_status lines as one bytes buffer) beside str lines,
against the real InfluxDB 1.x: batches spanning both, a rejected line inside a block, a body over the
server's limit (413), the spool, memory dropping the oldest lines, and `when_stored` settling them by
sequence number."""

from __future__ import annotations

import os
from pathlib import Path

from stationmon.adapters.influx import InfluxWriter
from stationmon.adapters.spool import Spool
from stationmon.domain.lineproto import LineBlock
from stationmon.metrics import Metrics
from tests.conftest import InfluxServer, require_binary
from tests.helpers import drain_spool, wait_until
from tests.integration.test_influx import assert_exactly_once, lines_for, settled, stored, v1_config
from tests.integration.test_storage_faults import REASONS, accounting, assert_closes, immutable


def _mixed(start: int, count: int) -> list[list[str] | LineBlock]:
    """`count` lines from `start` (lines_for) submitted as str lists and blocks in turn, of uneven sizes."""
    out: list[list[str] | LineBlock] = []
    sizes = [37, 250, 1, 113, 400, 3]
    at, k = start, 0
    while at < start + count:
        size = min(sizes[k % len(sizes)], start + count - at)
        lines = lines_for(at, size)
        out.append(LineBlock.from_lines(lines) if k % 2 else lines)
        at, k = at + size, k + 1
    return out


async def test_blocks_and_str_lines_share_batches_each_line_written_once_and_settled_in_order(
    influxdb: InfluxServer, influx_db: str, tmp_path: Path
) -> None:
    """Batches of 120 lines cut across str lists and blocks (a block split over several batches, a batch
    holding the end of one and the start of another): every line stored once, every callback told True
    once all lines submitted before it are stored, in the order of registration."""
    metrics, told = Metrics(), []
    async with InfluxWriter(v1_config(influxdb, influx_db, tmp_path, batch_size=120), metrics) as writer:
        for k, part in enumerate(_mixed(0, 2000)):
            writer.submit(part)
            writer.when_stored(lambda ok, k=k: told.append((k, ok)))
        await writer.flush()
        await settled(metrics)
        await wait_until(lambda: len(told) == len(_mixed(0, 2000)), message="every callback told")
    assert told == [(k, True) for k in range(len(told))]
    assert stored(influxdb, influx_db) == {i: float(i) for i in range(2000)}
    assert_exactly_once(metrics, 2000, influx=(influxdb, influx_db))


async def test_a_rejected_line_inside_a_block_is_dead_lettered_and_the_rest_of_it_written(
    influxdb: InfluxServer, influx_db: str, tmp_path: Path
) -> None:
    """A line InfluxDB cannot parse (it names it) and one of a conflicting field type (found by halving the
    batch) inside a block: both dead-lettered as the lines they were, the block's other lines stored."""
    metrics = Metrics()
    influxdb.write(influx_db, "kind,t=a v=1.0 1")  # v is a float field from now on
    good = lines_for(0, 300)
    bad_parse = "telemetry,station=s1 supply_temp=notanumber 1700000009999"
    bad_type = 'kind,t=道里区 v="a string" 2'
    block = LineBlock.from_lines([*good[:40], bad_parse, *good[40:170], bad_type, *good[170:250]])
    async with InfluxWriter(v1_config(influxdb, influx_db, tmp_path, batch_size=1000), metrics) as writer:
        writer.submit(good[250:260])
        writer.submit(block[:100])  # a slice of a block, and the rest of it behind a str list
        writer.submit(good[260:300])
        writer.submit(block[100:])
        await writer.flush()
        await settled(metrics)
    assert stored(influxdb, influx_db) == {i: float(i) for i in range(300)}
    assert_exactly_once(metrics, 302, dead=2)
    dead = (tmp_path / "dead-letter.lp").read_text("utf-8").splitlines()
    assert [line for line in dead if not line.startswith("#")] == [bad_parse, bad_type]


async def test_spooled_blocks_read_back_line_for_line_and_replay_once(
    influxdb: InfluxServer, influx_db: str, tmp_path: Path
) -> None:
    """Without a url every batch goes to the spool: its records hold the submitted lines, str or block,
    in order and byte for byte (non-ASCII tags included); a writer with InfluxDB replays them once."""
    async with InfluxWriter(v1_config(None, influx_db, tmp_path, batch_size=170), Metrics()) as writer:
        for part in _mixed(0, 1500):
            writer.submit(part)
        await writer.flush()
    spool = Spool(tmp_path / "spool")
    records = drain_spool(spool)
    spool.close()
    assert [len(r) for r in records] == [170] * 8 + [140]
    assert [line for record in records for line in record] == lines_for(0, 1500)
    # the same again, replayed into InfluxDB this time
    async with InfluxWriter(v1_config(None, influx_db, tmp_path / "again", batch_size=170), Metrics()) as writer:
        for part in _mixed(0, 1500):
            writer.submit(part)
    metrics = Metrics()
    async with InfluxWriter(v1_config(influxdb, influx_db, tmp_path / "again"), metrics) as writer:
        await wait_until(lambda: writer.status()["spool_bytes"] == 0, timeout=30, message="replayed")
        await settled(metrics)
    assert stored(influxdb, influx_db) == {i: float(i) for i in range(1500)}
    assert_exactly_once(metrics, 1500, influx=(influxdb, influx_db))


async def test_blocks_held_in_memory_lose_the_oldest_lines_first_and_say_so(
    influxdb: InfluxServer, influx_db: str, tmp_path: Path
) -> None:
    """The spool refuses (its directory immutable, a new segment needed) and there is no url: blocks stay
    in memory up to max_buffered_lines, then the oldest lines go (a block cut where the bound falls), their
    `when_stored` callbacks told False and the later ones True; once the spool takes the rest, it reaches
    InfluxDB: exactly the lines after the dropped run, the dropped run one stretch of the oldest held."""
    metrics, told = Metrics(), []
    starts = list(range(50, 1000, 130))
    spool_dir = tmp_path / "spool"
    offline = v1_config(None, influx_db, tmp_path, spool_max_bytes=1 << 16, batch_size=50, max_buffered_lines=300)
    async with InfluxWriter(offline, metrics) as writer:
        writer.submit(LineBlock.from_lines(lines_for(0, 50)))
        await writer.flush()  # the first segment exists: later appends fill it, then need a new one
        with immutable(spool_dir):
            for start in starts:
                writer.submit(LineBlock.from_lines(lines_for(start, min(130, 1000 - start))))
                writer.when_stored(lambda ok, start=start: told.append((start, ok)))
                await writer.flush()
            await wait_until(lambda: accounting(metrics)["spool_error"] > 0, message="the oldest dropped")
            assert writer.buffered_lines <= 300
            assert_closes(metrics)
        await wait_until(lambda: writer.buffered_lines == 0, timeout=20, message="memory emptied into the spool")
        await wait_until(lambda: len(told) == len(starts), message="every callback told")
    dropped = accounting(metrics)["spool_error"]
    assert sum(accounting(metrics)[r] for r in REASONS) == dropped
    async with InfluxWriter(v1_config(influxdb, influx_db, tmp_path), Metrics()) as writer:
        await wait_until(lambda: writer.status()["spool_bytes"] == 0, timeout=30, message="replayed")
    kept = sorted(stored(influxdb, influx_db))
    missing = sorted(set(range(1000)) - set(kept))
    assert len(missing) == dropped and missing == list(range(missing[0], missing[0] + dropped))
    assert kept[-300:] == list(range(700, 1000))  # the newest held lines all kept
    # each callback answers for the lines since the previous one (the first: the 50 before it too)
    answers = {start: range(start if k else 0, min(start + 130, 1000)) for k, start in enumerate(starts)}
    assert told == [(start, not set(answers[start]) & set(missing)) for start in starts]
    assert not told[0][1] and told[-1][1]  # the oldest lost, the newest stored
    assert os.listdir(spool_dir)


async def test_a_block_over_the_servers_body_limit_is_halved_until_it_fits(tmp_path: Path) -> None:
    """influxd with `max-body-size` of 20,000 bytes answers 413 to a 60 kB batch: the writer halves it (slices
    of the block) until each part fits; a line over the limit on its own is dead-lettered as that line."""
    server = InfluxServer(require_binary("influxd"), tmp_path / "influxd")
    config = server.config_path.read_text("utf-8")
    assert "max-body-size = 0" in config
    server.config_path.write_text(config.replace("max-body-size = 0", "max-body-size = 20000"), "utf-8")
    server.start()
    try:
        server.create_database("db")
        metrics = Metrics()
        huge = f'telemetry,station=s9 note="{"x" * 25_000}" 1700000000000'
        block = LineBlock.from_lines([*lines_for(0, 300), huge, *lines_for(300, 300)])
        cfg = v1_config(server, "db", tmp_path, batch_size=1000, gzip=False)
        async with InfluxWriter(cfg, metrics) as writer:
            writer.submit(block)
            await writer.flush()
            await settled(metrics)
        assert stored(server, "db") == {i: float(i) for i in range(600)}
        assert_exactly_once(metrics, 601, dead=1)
        dead = (tmp_path / "dead-letter.lp").read_text("utf-8").splitlines()
        assert dead[1:] == [huge] and "413 request too large" in dead[0]
    finally:
        server.stop()
