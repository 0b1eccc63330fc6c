"""Benchmark: alert latency from a register change on a PLC to the alert visible in Alertmanager's API.

    .venv/bin/python bench/bench_alert_latency.py [--trials 20] [--poll 0.5] [--evaluate 0.5]

A pymodbus server (the test harness's `ModbusTestServer`) holds a floor-heating loop's supply
temperature and the outdoor temperature; the whole stationmon Service (Modbus poller, evaluator with
`for = "0s"`, Alertmanager notifier) runs against it and a real Alertmanager. Each trial waits a random
fraction of a poll interval (so every phase of the poll and evaluation cycles is sampled), drops the
supply temperature below the heating curve and measures until `GET /api/v2/alerts` shows supply_low;
then it restores the value and waits for the resolution before the next trial.

The floor is poll interval + evaluation interval: the worst case before stationmon can even know.
The baseline measured in the same run is Alertmanager alone: POST an alert, poll until the API shows
it (the cost of the receiving end and of this script's 10 ms polling). The split columns show where
stationmon's time goes: change -> event emitted (poll + evaluation) and event -> visible (delivery).
Target: p99 within 0.5 s of the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stationmon.config import load_config
from stationmon.domain.model import AlertEvent
from stationmon.service import Service
from tests.helpers import free_port
from tests.servers import ModbusServer as ModbusTestServer
from tests.stations_toml import loop_entry, outdoor, station_toml, water

OK_SUPPLY = 450  # 45.0 °C: above the 50/40 floor-heating curve at -10 °C (39.9 °C)
LOW_SUPPLY = 300  # 30.0 °C
OUTDOOR = (-100) & 0xFFFF  # -10.0 °C as int16
POLL_API_S = 0.01


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def am_alerts(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts?active=true", timeout=2) as resp:
        return json.loads(resp.read())


def supply_low_active(url: str) -> bool:
    return any(a["labels"].get("alertname") == "supply_low" for a in am_alerts(url))


async def wait_for(predicate: Any, timeout: float) -> float:
    """Poll a blocking predicate in a thread every 10 ms; the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return time.monotonic()
        await asyncio.sleep(POLL_API_S)
    raise TimeoutError("condition not reached")


def start_alertmanager(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = (
        shutil.which("prometheus-alertmanager") or shutil.which("alertmanager") or "/usr/bin/prometheus-alertmanager"
    )
    port = free_port()
    (workdir / "am.yml").write_text(
        "route:\n  receiver: none\n  group_wait: 1s\nreceivers:\n  - name: none\n", encoding="utf-8"
    )
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'am.yml'}",
            f"--storage.path={workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
            if resp.status == 200:
                return proc, url
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("alertmanager did not start")


def write_config(workdir: Path, modbus_port: int, am_url: str, poll_s: float, evaluate_s: float) -> Path:
    # The register jumps from ok to low in one step, which the fault checks would call an implausible
    # rate of change and hold back for one poll; a real loop cools over minutes.
    disabled = "[rules.sensor_fault]\nenabled = false\nmax_rate_per_min = 100000.0\n" + "\n".join(
        f"[rules.{name}]\nenabled = false\n"
        for name in (
            "return_low",
            "indoor_estimate_low",
            "indoor_low",
            "delta_t_low",
            "delta_t_high",
            "station_offline",
        )
    )
    station = station_toml(
        "bench-1",
        port=modbus_port,
        district="bench",
        interval=f"{poll_s}s",
        timeout=f"{min(1.0, poll_s * 0.8):g}s",
        loops=[loop_entry("sec1", "floor", design=(50.0, 40.0))],
        points=[*water(supply=0, ret=None, type="int16", scale=0.1), outdoor(1, type="int16", scale=0.1)],
    )
    path = workdir / "bench.toml"
    path.write_text(
        f"""
[influxdb]
api = "v1"
database = "bench"
spool_dir = "{workdir / "spool"}"

[http]
listen = "127.0.0.1:{free_port()}"

[[alerting.alertmanager]]
url = "{am_url}"

[rules]
evaluate_every = "{evaluate_s}s"
for = "0s"
clear_for = "0s"
margin = 1.0
season_start = "01-01"
season_end = "12-31"
outdoor_smoothing = "0s"
water_smoothing = "0s"            # a step on the PLC is judged at once (the latency measured)

{disabled}

{station}""",
        encoding="utf-8",
    )
    return path


async def baseline(am_url: str, trials: int) -> list[float]:
    """Alertmanager alone: POST an alert, then poll the API until it shows it."""
    out = []
    for i in range(trials):
        name = f"baseline_{i}"
        body = json.dumps([{"labels": {"alertname": name}, "startsAt": "2024-01-01T00:00:00Z"}]).encode()
        req = urllib.request.Request(f"{am_url}/api/v2/alerts", data=body, headers={"Content-Type": "application/json"})
        t0 = time.monotonic()
        await asyncio.to_thread(lambda r=req: urllib.request.urlopen(r, timeout=2).read())  # type: ignore[misc]
        t1 = await wait_for(lambda n=name: any(a["labels"]["alertname"] == n for a in am_alerts(am_url)), 10)
        out.append(t1 - t0)
    return out


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-alert-"))
    modbus = ModbusTestServer({0: OK_SUPPLY, 1: OUTDOOR}, {}, 1, free_port())
    am, am_url = start_alertmanager(workdir)
    emitted: list[tuple[float, AlertEvent]] = []
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    floor = args.poll + args.evaluate
    total, pipeline, delivery = [], [], []
    try:
        config = load_config(
            write_config(workdir, modbus.port, am_url, args.poll, args.evaluate), require_influxdb=False
        )
        service = Service(config)
        service.on_event(lambda e: emitted.append((time.monotonic(), e)))
        await modbus.start()
        task = asyncio.create_task(service.run(stop), name="service")
        base = await baseline(am_url, args.trials)
        await asyncio.sleep(2 * floor)  # first polls and ticks
        rng = random.Random(1)
        for _ in range(args.trials):
            await asyncio.sleep(rng.uniform(0, args.poll))
            before = len(emitted)
            t0 = time.monotonic()
            modbus.set_holding(0, [LOW_SUPPLY])
            t1 = await wait_for(lambda: supply_low_active(am_url), 10 + 4 * floor)
            fired = next(t for t, e in emitted[before:] if e.rule == "supply_low" and e.state == "firing")
            total.append(t1 - t0)
            pipeline.append(fired - t0)
            delivery.append(t1 - fired)
            modbus.set_holding(0, [OK_SUPPLY])
            await wait_for(lambda: not supply_low_active(am_url), 10 + 4 * floor)
    finally:
        stop.set()
        if task is not None:
            await task
        await modbus.stop()
        am.terminate()
        am.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)

    def row(name: str, values: list[float], ref: float | None) -> str:
        p50, p99, mx = percentile(values, 50), percentile(values, 99), max(values)
        vs = f"{p99 - ref:+7.3f}" if ref is not None else "      -"
        ratio = f"{p50 / ref:6.2f}" if ref else "     -"
        return f"{name:<32} {p50:7.3f} {p99:7.3f} {mx:7.3f} {vs}  {ratio}"

    print(
        f"alert latency, {args.trials} trials, poll {args.poll:g} s + evaluate {args.evaluate:g} s = floor {floor:g} s"
    )
    print(f"{'seconds':<32} {'p50':>7} {'p99':>7} {'max':>7} {'p99-flr':>7}  {'p50/flr':>6}")
    print(row("register change -> in AM API", total, floor))
    print(row("  change -> event emitted", pipeline, floor))
    print(row("  event -> in AM API", delivery, None))
    print(row("baseline: POST -> in AM API", base, None))
    verdict = "MET" if percentile(total, 99) <= floor + 0.5 else "MISSED"
    print(f"target p99 <= floor + 0.5 s ({floor + 0.5:g} s): {verdict}")


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--poll", type=float, default=0.5, help="Modbus poll interval, seconds")
    parser.add_argument("--evaluate", type=float, default=0.5, help="evaluation interval, seconds")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
