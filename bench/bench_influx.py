"""Benchmark: InfluxWriter throughput against a raw aiohttp POST, and the line protocol encoder's cost.

Starts its own influxd 1.x in a temporary directory. Both contenders send the same pre-encoded batches
(batch_size lines each, the same number in flight at once) to fresh databases on the same server in the
same run; each round alternates them so a noisy neighbour hurts both. Prints one table.

    .venv/bin/python bench/bench_influx.py [--lines 100000] [--rounds 2]

Targets (issue 5): writer / raw >= 0.8; encoding < 2 µs per point.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import aiohttp

from stationmon.adapters.influx import InfluxWriter
from stationmon.config import InfluxConfig
from stationmon.domain.lineproto import TelemetryEncoder
from stationmon.domain.model import Reading
from stationmon.domain.plant import Loop, Station
from stationmon.metrics import Metrics

__all__ = ["main"]

BATCH = 5000
CONCURRENCY = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Influxd:
    """influxd 1.x in a temporary directory, on free ports."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        conf = workdir / "influxdb.conf"
        conf.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{_free_port()}"
[meta]
  dir = "{workdir}/meta"
[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  max-body-size = 0
"""
        )
        binary = shutil.which("influxd") or "/usr/bin/influxd"
        self.proc = subprocess.Popen(
            [binary, "-config", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("influxd did not start")

    def query(self, q: str, db: str = "") -> bytes:
        data = urllib.parse.urlencode({"q": q, "db": db}).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=30) as resp:
            return bytes(resp.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def make_lines(n: int) -> list[str]:
    """n telemetry lines as the encoder writes them: 50 stations x 2 loops, 5 quantities per line."""
    stations = [
        Station(id=f"station-{i:03d}", district="道里区", loops=(Loop("sec1"), Loop("sec2"))) for i in range(50)
    ]
    encoder = TelemetryEncoder(stations)
    quantities = ("supply_temp", "return_temp", "supply_pressure", "return_pressure", "flow")
    lines: list[str] = []
    t = 1_700_000_000.0
    while len(lines) < n:
        readings = [
            Reading(s.id, q, 40.0 + k * 0.1, t, loop=loop.id)
            for s in stations
            for loop in s.loops
            for k, q in enumerate(quantities)
        ]
        lines.extend(encoder.encode(readings))
        t += 1.0
    return lines[:n]


async def raw_post(url: str, db: str, batches: list[bytes]) -> float:
    """Seconds to POST every batch with CONCURRENCY requests in flight."""
    queue = list(reversed(batches))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                async with session.post(f"{url}/write", params={"db": db, "precision": "ms"}, data=body) as r:
                    if r.status != 204:
                        raise RuntimeError(await r.text())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


async def through_writer(url: str, db: str, lines: list[str], spool: Path, gzip: bool) -> float:
    """Seconds from the first submit until the writer has every line acknowledged."""
    cfg = InfluxConfig(
        url=url,
        api="v1",
        database=db,
        spool_dir=str(spool),
        batch_size=BATCH,
        max_concurrent_writes=CONCURRENCY,
        gzip=gzip,
        flush_interval_s=1.0,
        max_buffered_lines=len(lines) + 1,
    )
    metrics = Metrics()
    written = metrics.counter("stationmon_influx_lines_written_total", "")
    async with InfluxWriter(cfg, metrics) as writer:
        started = time.perf_counter()
        for i in range(0, len(lines), 1000):  # as collectors would: many small submits
            writer.submit(lines[i : i + 1000])
        await writer.flush()
        while written.value() < len(lines):
            await asyncio.sleep(0.001)
        return time.perf_counter() - started


def encoder_cost(points: int = 200_000) -> tuple[float, float]:
    """ns per reading and per line for TelemetryEncoder.encode on station-poll-shaped batches."""
    stations = [Station(id=f"station-{i:03d}", district="道里区") for i in range(20)]
    encoder = TelemetryEncoder(stations)
    quantities = ("supply_temp", "return_temp", "supply_pressure", "return_pressure", "flow", "heat_power")
    polls = [
        [
            Reading(s.id, q, 40.0 + k * 0.37 + p * 0.01, 1_700_000_000.0 + p, loop=loop)
            for loop in ("sec1", "sec2")
            for k, q in enumerate(quantities)
        ]
        for p in range(50)
        for s in stations
    ]
    per_pass = sum(len(b) for b in polls)
    passes = max(1, points // per_pass)
    lines = 0
    encoder.encode(polls[0])  # warm the tag cache, as a running service has
    started = time.perf_counter_ns()
    for _ in range(passes):
        for batch in polls:
            lines += len(encoder.encode(batch))
    elapsed = time.perf_counter_ns() - started
    return elapsed / (passes * per_pass), elapsed / lines


async def run(n_lines: int, rounds: int) -> None:
    lines = make_lines(n_lines)
    batches = ["\n".join(lines[i : i + BATCH]).encode() for i in range(0, len(lines), BATCH)]
    with tempfile.TemporaryDirectory(prefix="bench-influx-") as tmp:
        server = Influxd(Path(tmp))
        try:
            best: dict[str, float] = {}
            for r in range(rounds):
                for name in ("raw", "writer", "writer+gzip"):
                    db = f"b_{name.replace('+', '_')}_{r}"
                    server.query(f'CREATE DATABASE "{db}"')
                    if name == "raw":
                        secs = await raw_post(server.url, db, batches)
                    else:
                        secs = await through_writer(
                            server.url, db, lines, Path(tmp) / f"spool-{db}", gzip=name.endswith("gzip")
                        )
                    best[name] = min(best.get(name, float("inf")), secs)
        finally:
            server.stop()
    per_reading, per_line = encoder_cost()
    raw_rate = n_lines / best["raw"]
    rows = [
        ("raw aiohttp POST (baseline)", f"{raw_rate:,.0f}", "1.00", ""),
        (
            "InfluxWriter, no gzip",
            f"{n_lines / best['writer']:,.0f}",
            f"{best['raw'] / best['writer']:.2f}",
            ">= 0.8",
        ),
        (
            "InfluxWriter, gzip",
            f"{n_lines / best['writer+gzip']:,.0f}",
            f"{best['raw'] / best['writer+gzip']:.2f}",
            "",
        ),
        ("encoder, ns per reading", f"{per_reading:,.0f}", "", "< 2000"),
        ("encoder, ns per line (6 fields)", f"{per_line:,.0f}", "", ""),
    ]
    print(f"{n_lines:,} lines ({BATCH} per batch, {CONCURRENCY} in flight), best of {rounds} rounds")
    print(f"{'':34} {'lines/s | ns':>14} {'ratio':>6} {'target':>8}")
    for name, value, ratio, target in rows:
        print(f"{name:34} {value:>14} {ratio:>6} {target:>8}")
    # run_all collects the MISSED lines: a regression must not read as "ok"
    writer_ratio = best["raw"] / best["writer"]
    print(f"writer/raw {writer_ratio:.2f} (target >= 0.8): {'met' if writer_ratio >= 0.8 else 'MISSED'}")
    print(f"encoder {per_reading:,.0f} ns per reading (target < 2000): {'met' if per_reading < 2000 else 'MISSED'}")


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(run(args.lines, args.rounds))


if __name__ == "__main__":
    main()
