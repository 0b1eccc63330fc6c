"""Stations per shard: one `stationmon run` at a few sizes, the CPU its own process uses per station.

    .venv/bin/python bench/bench_shard.py [--sizes 500,1000,2000] [--minutes 3] [--warmup 60] [--cores 1]

Each size runs N simulated stations the soak's way (bench/soak.py, without its faults): three quarters are
Modbus TCP PLCs polled every 10 s, a quarter publish over MQTT 5 every 10 s, into a real influxd, mosquitto
and Alertmanager, evaluated every 10 s (`evaluate_every`) with the soak's rules, the status page's default
6 h history. After a warm-up (connections, first polls) the replica's own CPU time is read over the
measured minutes: utime + stime from /proc/<pid>/stat, so the simulator (this process), influxd and
mosquitto, which share the machine, do not count. Also the Modbus poll lateness over the same minutes (the
replica's `stationmon_modbus_poll_lateness_seconds`, difference of two scrapes) and the polls made against
the polls due.

A least-squares line through (stations, cores) gives the fixed cost and the cost per station; stations per
shard = (cores - fixed) / per station at the stated utilisations (`--cores`, default 0.5 and 1). A replica is
one event loop, so one core is its ceiling (the loop saturated, polls late), not a working point: 0.5 core
leaves the loop half its time for bursts, the spool's replay after an outage and the HTTP API, and the
machine's second core to whatever else runs there. The machine
is shared with other work: CPU seconds of one process are less disturbed than wall time, but a busy
machine's caches and frequency make them noisy too; the sizes are measured in one run, so read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.soak import (  # noqa: E402
    DB,
    Alertmanager,
    Farm,
    Hook,
    Publisher,
    Replica,
    _wait,
    alertmanager_yaml,
    cpu_seconds,
    lateness_quantiles,
    log,
    make_plan,
    replica_config,
    rss_mb,
)
from stationmon.sim.servers import InfluxServer, MosquittoServer, find_binary  # noqa: E402


def _binary(*names: str) -> str:
    found = find_binary(*names)
    if found is None:
        raise SystemExit(f"{names[0]} is not installed (make deps)")
    return found


class Servers:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.influx = InfluxServer(_binary("influxd"), workdir / "influxd")
        self.broker = MosquittoServer(_binary("mosquitto"), workdir / "mosquitto")
        self.hook = Hook()
        self.am: Alertmanager | None = None

    async def start(self) -> dict[str, str]:
        await asyncio.to_thread(self.influx.start)
        self.influx.create_database(DB)
        await asyncio.to_thread(self.broker.start)
        await self.hook.start()
        self.am = await asyncio.to_thread(Alertmanager, self.workdir / "am", alertmanager_yaml(self.hook.port))
        return {"influx": self.influx.url, "mqtt": self.broker.url, "am": self.am.url}

    async def stop(self) -> None:
        await self.hook.close()
        for server in (self.am, self.broker, self.influx):
            if server is not None:
                await asyncio.to_thread(server.stop)


def _since(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {le: n - before.get(le, 0.0) for le, n in after.items()}


async def measure(n: int, args: argparse.Namespace, servers: Servers, urls: dict[str, str]) -> dict[str, Any]:
    """One replica with n stations: its cores, poll lateness and polls made over the measured minutes."""
    ns = argparse.Namespace(
        stations=n, mqtt_share=0.25, seed=15, minutes=args.minutes, interval=args.interval, share_group=""
    )
    ns.history_window = ""  # stationmon's default (6 h), as deployed
    plan = make_plan(ns)
    plan.flappers, plan.downs = [], {}  # no faults: the steady cost
    farm = Farm(plan)
    await farm.start()
    farm.t0 = time.time()
    workdir = servers.workdir / f"n{n}"
    config, port = replica_config(plan, "a", workdir, urls, farm)
    replica = Replica("a", config, port, workdir)
    replica.start()
    assert servers.broker is not None and replica.proc is not None
    publisher = Publisher(plan, servers.broker.port)
    task = asyncio.create_task(publisher.run())
    try:
        await _wait(replica.healthy, 180, f"replica with {n} stations healthy")
        await asyncio.sleep(args.warmup)
        before = await asyncio.to_thread(_snapshot, replica)
        await asyncio.sleep(args.minutes * 60)
        after = await asyncio.to_thread(_snapshot, replica)
    finally:
        publisher.stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(replica.stop)
        farm.close()
    span = after["t"] - before["t"]
    late = lateness_quantiles(_since(after["lateness"], before["lateness"]))
    due = len(plan.modbus) * span / plan.interval_s
    return {
        "stations": n,
        "modbus": len(plan.modbus),
        "mqtt": len(plan.mqtt),
        "seconds": round(span, 1),
        "cores": (after["cpu"] - before["cpu"]) / span,
        "lateness": late,
        "polls_made_of_due": late["polls"] / due if due else math.nan,
        "mqtt_messages_per_s": (after["mqtt"] - before["mqtt"]) / span,
        "rss_mb": after["rss"],
    }


def _snapshot(replica: Replica) -> dict[str, Any]:
    assert replica.proc is not None
    metrics = replica.scrape() or {}
    rss = rss_mb(replica.proc.pid)
    return {
        "t": time.time(),
        "cpu": cpu_seconds(replica.proc.pid),
        "lateness": dict(replica.lateness.get(replica.life, {})),
        "mqtt": metrics.get("stationmon_mqtt_messages_total", 0.0),
        "rss": rss,
    }


def line_fit(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """Least squares cores = fixed + per_station x stations."""
    xs, ys = [float(r["stations"]) for r in rows], [float(r["cores"]) for r in rows]
    if len(rows) < 2:
        return 0.0, ys[0] / xs[0]
    per, fixed = statistics.linear_regression(xs, ys)
    return fixed, per


def report(rows: list[dict[str, Any]], args: argparse.Namespace, load: tuple[list[float], list[float]]) -> None:
    base = rows[0]
    print(
        f"\nReplica CPU per station ({os.cpu_count()} CPUs, load average {load[0]} at the start, {load[1]} at the "
        "end; the machine is shared with other work):"
    )
    print(
        "  stations  Modbus  MQTT   cores  cores/1000 st.  vs first  poll lateness p50/p99   polls made"
        "  MQTT msg/s  RSS MB"
    )
    for r in rows:
        late = r["lateness"]
        ratio = (r["cores"] / r["stations"]) / (base["cores"] / base["stations"])
        print(
            f"  {r['stations']:>8,} {r['modbus']:>7,} {r['mqtt']:>5,} {r['cores']:>7.3f} "
            f"{1000 * r['cores'] / r['stations']:>15.3f} {ratio:>8.2f}x  "
            f"<= {late['p50_s']:g} s / <= {late['p99_s']:g} s {r['polls_made_of_due']:>11.1%} "
            f"{r['mqtt_messages_per_s']:>11.0f} {r['rss_mb']:>7.1f}"
        )
    fixed, per = line_fit(rows)
    print(f"  line: cores = {fixed:.3f} + {1000 * per:.3f} per 1,000 stations")
    for cores in args.cores:
        stations = (cores - fixed) / per if per > 0 else math.inf
        print(
            f"STATIONS PER SHARD at {cores:g} core (poll, publish and evaluate every {args.interval:g} s; "
            f"extrapolated past {max(r['stations'] for r in rows):,} measured): {stations:,.0f}"
        )


async def main_async(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-shard-"))
    servers = Servers(workdir)
    rows: list[dict[str, Any]] = []
    load_start = [round(x, 1) for x in os.getloadavg()]
    try:
        urls = await servers.start()
        for n in args.sizes:
            log(f"{n} stations: {args.warmup:g} s warm-up, {args.minutes:g} min measured")
            rows.append(await measure(n, args, servers, urls))
            log(f"{n} stations: {rows[-1]['cores']:.3f} cores")
    finally:
        await servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    load_end = [round(x, 1) for x in os.getloadavg()]
    report(rows, args, (load_start, load_end))
    if args.json:
        fixed, per = line_fit(rows)
        doc = {"rows": rows, "fixed_cores": fixed, "cores_per_station": per, "load": [load_start, load_end]}
        Path(args.json).write_text(json.dumps(doc, indent=1))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,1000,2000", help="stations per run, comma-separated")
    parser.add_argument("--minutes", type=float, default=3.0, help="measured minutes per size")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before measuring")
    parser.add_argument("--interval", type=float, default=10.0, help="poll, publish and evaluation interval (s)")
    parser.add_argument(
        "--cores", default="0.5,1", help="the utilisations stations per shard is stated at (cores, comma-separated)"
    )
    parser.add_argument("--json", default="", help="also write the rows and the line as JSON to this file")
    args = parser.parse_args()
    args.sizes = [int(x) for x in args.sizes.split(",")]
    args.cores = [float(x) for x in args.cores.split(",")]
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
