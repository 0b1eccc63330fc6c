"""Benchmark: stationmon's Modbus pollers against a raw asyncio Modbus client doing the same reads.

    .venv/bin/python bench/bench_modbus.py [--stations 2000] [--interval 2] [--duration 10] [--no-pymodbus]

One separate process serves every simulated station (a minimal asyncio Modbus TCP server on a few
ports; each station is its own TCP connection and reads 20 registers per poll: 8 float32 holding
registers and 4 int16 input registers, two requests). Each collector runs in its own child process,
one after the other, against the same server: `raw` (a bare asyncio protocol: send, await, unpack),
`stationmon` (ModbusPoller with its native TCP client) and `stationmon+pymodbus` (ModbusPoller with
client="pymodbus", to show why the native client exists). The load is polls per second, so
2,000 stations at 2 s is the same rate as the 10,000 stations at 10 s target; memory is extrapolated
to 10,000 stations from the per-station growth measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HOLDING = struct.pack(">8f", 41.5, 34.0, 0.45, 0.30, 12.5, 350.0, 65.0, 48.0)  # 8 float32, 16 registers
INPUT = struct.pack(">4h", -152, 201, 188, 1)  # 4 int16
TARGET_STATIONS = 10_000
TARGET_INTERVAL_S = 10.0


# ----------------------------------------------------------------------------------------------------
# The simulated stations (separate process)


class _ServerProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data
        out = []
        while len(buf) >= 12:
            tid, _, _, unit, fc, start, count = struct.unpack_from(">HHHBBHH", buf)
            buf = buf[12:]
            table = HOLDING if fc == 3 else INPUT
            payload = table[2 * start : 2 * (start + count)].ljust(2 * count, b"\0")
            body = bytes([unit, fc, 2 * count]) + payload
            out.append(struct.pack(">HHH", tid, 0, len(body)) + body)
        self.buffer = buf
        if out:
            self.transport.write(b"".join(out))


async def _serve(ports: int) -> None:
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(_ServerProtocol, "127.0.0.1", 0, backlog=4096) for _ in range(ports)]
    print(json.dumps([s.sockets[0].getsockname()[1] for s in servers]), flush=True)
    await asyncio.Event().wait()


# ----------------------------------------------------------------------------------------------------
# Collectors (child processes)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def _phase(sid: str, jitter: float) -> float:
    return (zlib.crc32(sid.encode()) / 2**32) * jitter


class _Stats:
    """Polls, errors and lateness inside the measuring window only."""

    def __init__(self) -> None:
        self.window: tuple[float, float] = (math.inf, math.inf)
        self.polls = 0
        self.errors = 0
        self.lateness: list[float] = []

    def observe(self, lateness: float) -> None:  # stands in for the poller's lateness histogram
        if self.window[0] <= time.time() < self.window[1]:
            self.lateness.append(lateness)

    def poll(self, ok: bool) -> None:
        if self.window[0] <= time.time() < self.window[1]:
            if ok:
                self.polls += 1
            else:
                self.errors += 1


class _RawProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.waiter: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= 6:
            length = struct.unpack_from(">H", self.buffer, 4)[0]
            if len(self.buffer) >= 6 + length and self.waiter is not None:
                frame, self.buffer = self.buffer[6 : 6 + length], self.buffer[6 + length :]
                self.waiter.set_result(frame)


async def _raw_station(sid: str, port: int, interval: float, jitter: float, stats: _Stats) -> None:
    """What a minimal hand-written collector does: connect, then per poll two reads and unpack."""
    loop = asyncio.get_running_loop()
    phase = _phase(sid, jitter)
    transport, proto = await loop.create_connection(_RawProtocol, "127.0.0.1", port)
    tid = 0
    try:
        while True:
            now = time.time()
            at = (math.floor((now - phase) / interval) + 1) * interval + phase
            await asyncio.sleep(at - time.time())
            stats.observe(time.time() - at)
            values: list[tuple[str, float, float]] = []
            for fc, start, count, fmt in ((3, 0, 16, ">8f"), (4, 0, 4, ">4h")):
                tid = (tid + 1) & 0xFFFF
                proto.waiter = loop.create_future()
                transport.write(struct.pack(">HHHBBHH", tid, 0, 6, 1, fc, start, count))
                frame = await proto.waiter
                ts = time.time()
                values.extend((sid, v, ts) for v in struct.unpack(fmt, frame[3:]))
            stats.poll(len(values) == 12)
    finally:
        transport.close()


def _stations(n: int, ports: list[int], interval: float, jitter: float) -> list:  # type: ignore[type-arg]
    from stationmon.domain.plant import ModbusLink, Point, Station

    points = tuple(
        [Point(quantity=f"q{i}", address=2 * i, type="float32") for i in range(8)]
        + [Point(quantity=f"i{i}", register="input", address=i, type="int16", scale=0.1) for i in range(4)]
    )
    return [
        Station(
            id=f"st-{i}",
            modbus=ModbusLink(
                port=ports[i % len(ports)], interval_s=interval, timeout_s=min(2.0, interval), jitter_s=jitter
            ),
            points=points,
        )
        for i in range(n)
    ]


async def _collect(
    mode: str, n: int, ports: list[int], interval: float, jitter: float, duration: float, gc_freeze: bool
) -> dict[str, float]:
    import gc

    # imported before the baseline in every mode, so RSS per station counts stations, not modules
    from stationmon.adapters.modbus import ModbusPoller
    from stationmon.domain.model import StationState
    from stationmon.metrics import Metrics

    stats = _Stats()
    rss_before = _rss_mb()
    tasks: list[asyncio.Task[None]] = []
    if mode == "raw":
        for i in range(n):
            port = ports[i % len(ports)]
            tasks.append(asyncio.create_task(_raw_station(f"st-{i}", port, interval, jitter, stats)))
    else:
        metrics = Metrics()

        def sink(readings: object) -> None:
            stats.poll(len(readings) == 12)  # type: ignore[arg-type]

        client = "pymodbus" if mode == "stationmon+pymodbus" else "auto"
        for st in _stations(n, ports, interval, jitter):
            poller = ModbusPoller(st, sink, StationState(st.id), metrics, client=client)
            poller._m.lateness = stats  # type: ignore[assignment]  # the bench reads every sample
            tasks.append(asyncio.create_task(poller.run()))
    gc.collect()
    if gc_freeze:
        # what a long-running service can do after startup: full collections skip the config objects
        gc.freeze()
    # warm up: every station connects at its first slot, spread over one interval
    await asyncio.sleep(interval + 1.0)
    t0 = time.time()
    stats.window = (t0, t0 + duration)
    cpu0 = time.process_time()
    await asyncio.sleep(duration)
    cpu = time.process_time() - cpu0
    rss = _rss_mb()
    for t in tasks:
        t.cancel()
    # a collector that ignores its cancellation would stall here for good (pymodbus under 3.11 did)
    _, pending = await asyncio.wait(tasks, timeout=10)
    if pending:
        raise SystemExit(f"{mode}: {len(pending)} of {n} pollers did not stop within 10 s of their cancellation")
    late = sorted(stats.lateness)

    def q(p: float) -> float:
        return late[min(len(late) - 1, int(p * len(late)))] if late else math.nan

    return {
        "polls_per_s": stats.polls / duration,
        "errors_per_s": stats.errors / duration,
        "cpu_per_poll_us": 1e6 * cpu / max(1, stats.polls),
        "cpu_share": cpu / duration,
        "rss_mb": rss,
        "rss_per_station_kb": 1024 * (rss - rss_before) / n,
        "rss_base_mb": rss_before,
        "lateness_p50_ms": 1000 * q(0.50),
        "lateness_p99_ms": 1000 * q(0.99),
    }


# ----------------------------------------------------------------------------------------------------
# Driver


def _child(mode: str, args: argparse.Namespace, ports: list[int]) -> dict[str, float]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--ports",
        json.dumps(ports),
        "--stations",
        str(args.stations),
        "--interval",
        str(args.interval),
        "--duration",
        str(args.duration),
        "--jitter",
        str(args.jitter),
        *(["--gc-freeze"] if args.gc_freeze else []),
    ]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=args.duration + args.interval + 90)
    if out.returncode != 0:
        raise SystemExit(f"collector {mode} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    """Parse arguments and run the server, the collectors, or the whole benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stations", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=2.0, help="poll interval, seconds")
    parser.add_argument("--duration", type=float, default=10.0, help="measuring window per collector, seconds")
    parser.add_argument(
        "--jitter", type=float, default=None, help="per-station phase window, seconds (default: the interval)"
    )
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after setup (both collectors)")
    parser.add_argument("--no-pymodbus", action="store_true", help="skip the pymodbus-client run")
    parser.add_argument("--serve", type=int, metavar="PORTS", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.jitter is None:
        args.jitter = args.interval
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(args.serve))
        return
    if args.child:
        import faulthandler

        # a hung collector shows where it hangs instead of stalling the benchmark
        faulthandler.dump_traceback_later(args.duration + args.interval + 60, exit=True)
        result = asyncio.run(
            _collect(
                args.child,
                args.stations,
                json.loads(args.ports),
                args.interval,
                args.jitter,
                args.duration,
                args.gc_freeze,
            )
        )
        print(json.dumps(result))
        return

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "8"], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert server.stdout is not None
        ports = json.loads(server.stdout.readline())
        modes = ["raw", "stationmon"] + ([] if args.no_pymodbus else ["stationmon+pymodbus"])
        results = {m: _child(m, args, ports) for m in modes}
    finally:
        server.terminate()
        server.wait(timeout=10)
    _report(args, results)


def _report(args: argparse.Namespace, results: dict[str, dict[str, float]]) -> None:
    rate = args.stations / args.interval
    target_rate = TARGET_STATIONS / TARGET_INTERVAL_S
    print(
        f"\nModbus collector: {args.stations} stations @ {args.interval:g}s = {rate:.0f} polls/s offered "
        f"(target {TARGET_STATIONS} @ {TARGET_INTERVAL_S:g}s = {target_rate:.0f} polls/s), "
        f"phases spread over {args.jitter:g}s, "
        f"20 registers in 2 requests per poll, {args.duration:g}s window, {os.cpu_count()} CPUs shared\n"
    )
    rows = [
        ("polls/s", "polls_per_s", "{:.0f}"),
        ("failed polls/s", "errors_per_s", "{:.1f}"),
        ("CPU us/poll", "cpu_per_poll_us", "{:.0f}"),
        ("CPU (cores)", "cpu_share", "{:.2f}"),
        ("RSS MB", "rss_mb", "{:.0f}"),
        ("RSS KB/station", "rss_per_station_kb", "{:.1f}"),
        ("lateness p50 ms", "lateness_p50_ms", "{:.1f}"),
        ("lateness p99 ms", "lateness_p99_ms", "{:.1f}"),
    ]
    modes = list(results)
    header = f"{'':18}" + "".join(f"{m:>22}" for m in modes) + "".join(f"{m + '/raw':>26}" for m in modes[1:])
    print(header)
    for label, key, fmt in rows:
        cells = "".join(f"{fmt.format(results[m][key]):>22}" for m in modes)
        base = results["raw"][key]
        ratios = "".join((f"{results[m][key] / base:>25.2f}x" if base else f"{'-':>26}") for m in modes[1:])
        print(f"{label:18}{cells}{ratios}")
    sm = results["stationmon"]
    cores_at_target = sm["cpu_per_poll_us"] * target_rate / 1e6
    mem_at_target = sm["rss_base_mb"] + sm["rss_per_station_kb"] * TARGET_STATIONS / 1024
    cpu_ratio = sm["cpu_per_poll_us"] / results["raw"]["cpu_per_poll_us"]
    print(f"\nstationmon at the target ({target_rate:.0f} polls/s): {cores_at_target:.2f} cores")
    # each target on its own line, with its verdict (bench/run_all.py collects the MISSED ones)
    targets = [
        (f"polls/s {sm['polls_per_s']:.0f} of {rate:.0f} offered (target: all)", sm["polls_per_s"] >= 0.98 * rate),
        (f"CPU/poll {cpu_ratio:.2f}x raw (target <= 1.5x)", cpu_ratio <= 1.5),
        (f"~{mem_at_target:.0f} MB for {TARGET_STATIONS} stations (target < 300 MB)", mem_at_target < 300),
        (f"p99 lateness {sm['lateness_p99_ms']:.0f} ms (target < 1000 ms)", sm["lateness_p99_ms"] < 1000),
    ]
    for what, met in targets:
        print(f"  {what}: {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
