"""`LineBlock` (lines as one bytes buffer) and what carries it: the writer's buffer and the spool.

Every check compares with the plain route, str lines joined by "\\n" and encoded, computed independently."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from stationmon.adapters.influx import _Buffer
from stationmon.adapters.spool import Spool, encode_record
from stationmon.domain.lineproto import LineBlock, LoopStatusEncoder
from tests.unit.test_loop_status_encoder import random_case

LINES = [
    "m,t=a f=1.0 1",
    "m,t=道里区 f=2.5 2",  # three bytes a character
    'm,t=b s="x\\"y" 3',
    "m,t=\U0001f525 f=3.0 4",  # four bytes
    "m f=4.0 5",
    "m,t=st\udc80 f=5.0 6",  # a lone surrogate (a name decoded with surrogateescape) is kept
]


def _body(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("lines", [LINES, LINES[:1], [], ["ascii only", "two"], LINES[1:4]])
def test_lines_come_back_as_they_went_in(lines: list[str]) -> None:
    block = LineBlock.from_lines(lines)
    assert len(block) == len(lines)
    assert block.lines() == lines
    assert list(block) == lines
    assert block.body() == _body(lines)


def test_every_slice_holds_exactly_its_lines_and_shares_the_buffer() -> None:
    """Catches an off-by-one at a slice's first line (its start is the previous line's end) or last."""
    block = LineBlock.from_lines(LINES)
    n = len(LINES)
    for i in range(n + 1):
        for j in range(n + 2):
            part = block[i:j]
            assert part.lines() == LINES[i:j], (i, j)
            assert part.body() == _body(LINES[i:j]), (i, j)
            assert part.data.obj is block.data.obj  # no copy
    assert block[2:][1:3].lines() == LINES[3:5]  # a slice of a slice
    assert block[-2:].lines() == LINES[-2:]
    with pytest.raises(ValueError, match=r"^a LineBlock slice has no step$"):
        block[::2]


def test_join_puts_blocks_and_slices_end_to_end() -> None:
    block = LineBlock.from_lines(LINES)
    parts = [block[4:], LineBlock.from_lines(["x y=1 7"]), block[:0], block[1:3]]
    joined = LineBlock.join(parts)
    want = [*LINES[4:], "x y=1 7", *LINES[1:3]]
    assert joined.lines() == want
    assert joined.body() == _body(want)
    assert LineBlock.join([block[1:3]]).lines() == LINES[1:3]  # one block: as it is


@pytest.mark.parametrize("seed", range(4))
def test_the_encoder_block_is_its_lines_each_followed_by_a_newline(seed: int) -> None:
    """Catches a byte between two lines that belongs to neither (a piece's padding left behind where the next
    line starts), or a line end off by one: the whole buffer is the lines joined, nothing else."""
    encoder, ts, columns, interval = random_case(seed)
    block = encoder.encode_block(ts, *columns, interval_s=interval)
    lines = block.lines()
    assert len(lines) == len(encoder.prefixes)
    assert block.body() == _body(lines)
    assert all("\n" not in line and line.startswith(p) for line, p in zip(lines, encoder.prefixes, strict=True))


def test_the_last_line_ends_the_block_though_the_padding_reaches_past_it() -> None:
    """Catches the block's buffer taking the padding written past the last line (a shorter status or tail than
    its table's widest) as part of a line: an `ok` status and no float leave the most padding."""
    encoder = LoopStatusEncoder([("s", "d", "l1"), ("station-with-a-long-name", "d", "l2")], "s")
    block = encoder.encode_block(0.0, [1, 0], [1, -1], [[math.nan, math.nan]], [0, 2], [[0, 1]] * 3)
    assert block.body().endswith(b"inspection_hour=true 0\n")
    assert block.lines()[1].startswith("loop_status,district=d,loop=l2,station=station-with-a-long-name ")


def test_a_writer_buffer_cuts_batches_across_str_lines_and_blocks() -> None:
    """A batch may span str lines and blocks (both ways round) and cut either in two; dropping takes the
    oldest lines; a batch put back comes out first again."""
    lines = [f"m v={i}.0 {i}" for i in range(40)]
    buffer = _Buffer()
    buffer.add(lines[:3])
    buffer.add(lines[3:5])  # consecutive str submits share a list
    buffer.add(LineBlock.from_lines(lines[5:20]))
    buffer.add(LineBlock.from_lines(lines[20:22]))
    buffer.add(lines[22:40])
    assert len(buffer) == 40
    first = buffer.take(7)  # str lines and the head of a block
    assert first.lines() == lines[:7]
    assert buffer.take(14).lines() == lines[7:21]  # the rest of one block and the head of the next
    buffer.drop(2)  # the oldest: the block's last line and the first str line
    assert len(buffer) == 17
    buffer.put_back(first)
    assert buffer.take(9).lines() == [*lines[:7], *lines[23:25]]
    assert buffer.take(100).lines() == lines[25:40]
    assert len(buffer) == 0 and len(buffer.take(5)) == 0


def test_a_spooled_block_reads_back_line_for_line(tmp_path: Path) -> None:
    """A block (and a slice of one) is one record whose lines read back as the str lines it holds; its
    record is the same bytes as the str lines' record."""
    block = LineBlock.from_lines(LINES[:5])
    assert encode_record(block, 12.5) == encode_record(LINES[:5], 12.5)
    assert encode_record(block[1:3], 1.0) == encode_record(LINES[1:3], 1.0)
    spool = Spool(tmp_path / "spool", fsync="never")
    spool.append(block, 10.0)
    spool.append(block[3:], 11.0)
    spool.append(LINES[:2], 12.0)
    read = []
    while (record := spool.peek()) is not None:
        read.append((record.lines, record.oldest_ts))
        spool.ack(record)
    spool.close()
    assert read == [(LINES[:5], 10.0), (LINES[3:5], 11.0), (LINES[:2], 12.0)]


def test_a_block_of_many_loop_status_lines_is_sliced_like_its_lines() -> None:
    """Batches of a 20,000-line block (the writer's cuts) hold the same lines as slices of its str lines."""
    rng = np.random.default_rng(3)
    n = 20_000
    encoder = LoopStatusEncoder([(f"st{i // 10}", "d", f"l{i % 10}") for i in range(n)])
    floats = [rng.uniform(-50.0, 120.0, n) for _ in range(4)]
    block = encoder.encode_block(1.7e9, rng.integers(0, 5, n), rng.integers(-1, 2, n), floats)
    lines = block.lines()
    for begin in range(0, n, 4_999):
        assert block[begin : begin + 4_999].body() == _body(lines[begin : begin + 4_999])
