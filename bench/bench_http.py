"""Benchmark: the status page's API and the simulator at district scale.

    .venv/bin/python bench/bench_http.py [--stations 2000] [--repeat 5]

A synthetic district of `--stations` stations with two loops each (radiator and floor, indoor sensors),
every series filled through `Service.ingest` and judged once by the real evaluator. Timed:

- `/api/v1/stations` document built by `stations_document` (one pass over the latest values, grouped by
  station), against the baseline of the same document built with `LatestValues.series_of` per station
  (the obvious way, quadratic in the number of stations);
- JSON serialisation of that document, and the full GET over HTTP (aiohttp server and client), built
  per request and served from the 1 s cache that other viewers share;
- GET /metrics and GET /api/v1/alerts over HTTP;
- one simulator tick (physics + register images) per station, against the baseline of the physics alone.

Prints one table; ratios are against the baseline named on each line, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from stationmon.adapters import http as http_mod
from stationmon.config import Config, parse_config_text
from stationmon.domain.model import Reading
from stationmon.service import Service
from stationmon.sim.physics import StationSim, register_image

T0 = 1_764_000_000.0


def _config(n: int, port: int, spool: Path) -> Config:
    parts = [
        f"""
[influxdb]
api = "v1"
database = "bench"
spool_dir = "{spool}"
[http]
listen = "127.0.0.1:{port}"
[rules]
season_start = "01-01"
season_end = "12-31"
[simulator]
outdoor_temp = -10.0
indoor_sensors_per_loop = 3
"""
    ]
    for i in range(n):
        parts.append(
            f"""
[[stations]]
id = "s{i:05d}"
name = "测试{i}号换热站"
district = "区{i % 9}"
[stations.modbus]
port = {10000 + i}
[[stations.loops]]
id = "high"
emitter = "radiator"
[[stations.loops]]
id = "low"
emitter = "floor"
[[stations.points]]
quantity = "outdoor_temp"
address = 0
[[stations.points]]
loop = "high"
quantity = "supply_temp"
address = 2
[[stations.points]]
loop = "high"
quantity = "return_temp"
address = 4
[[stations.points]]
loop = "low"
quantity = "supply_temp"
address = 6
[[stations.points]]
loop = "low"
quantity = "return_temp"
address = 8
"""
        )
    return parse_config_text("".join(parts), "bench.toml", require_influxdb=False)


def _fill(service: Service, sims: dict[str, StationSim], now: float) -> None:
    for sid, sim in sims.items():
        readings = [
            Reading(sid, qty, value, now, loop=loop, sensor=sensor, source="modbus" if sensor is None else "mqtt")
            for (loop, sensor, qty), value in sim.values().items()
        ]
        service.ingest(readings)


def _naive_document(service: Service) -> dict[str, Any]:
    """The baseline: series_of per station, as a first version would."""
    original = service.latest.latest
    out = []
    for st in service.config.stations:
        series = service.latest.series_of(st.id)
        out.append({k[3]: v.value for k, v in series.items()})
    assert original is service.latest.latest
    return {"stations": out}


def _time(fn: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


async def _http_time(session: aiohttp.ClientSession, url: str, repeat: int) -> tuple[float, int]:
    samples = []
    size = 0
    for _ in range(repeat):
        t = time.perf_counter()
        async with session.get(url) as r:
            body = await r.read()
            assert r.status == 200, r.status
        samples.append(time.perf_counter() - t)
        size = len(body)
    return statistics.median(samples), size


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stations", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    import socket
    import tempfile

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(args.stations, port, Path(tmp) / "spool")
        now = [T0]
        service = Service(config, clock=lambda: now[0])
        sims = {st.id: StationSim(st, config.site, config.simulator, T0) for st in config.stations}
        for sim in sims.values():
            sim.step(T0 + 10)
        _fill(service, sims, T0 + 10)
        now[0] = T0 + 11
        if service.evaluator is not None:
            service.evaluator.tick(now[0])
        rows: list[tuple[str, float, str]] = []

        naive = _time(lambda: _naive_document(service), max(1, args.repeat // 2))
        doc_t = _time(lambda: http_mod.stations_document(service), args.repeat)
        doc = http_mod.stations_document(service)
        ser_t = _time(lambda: http_mod.json_response(doc), args.repeat)
        rows.append(("baseline: series_of per station (values only)", naive, "1.00"))
        rows.append(("stations_document (full, grouped pass)", doc_t, f"{doc_t / naive:.3f}"))
        rows.append(("json_response of that document", ser_t, f"{ser_t / naive:.3f}"))

        base = f"http://127.0.0.1:{port}"
        async with service.http, aiohttp.ClientSession() as session:
            service.http.STATIONS_CACHE_S = 0.0  # every request builds the document
            get_t, size = await _http_time(session, base + "/api/v1/stations", args.repeat)
            rows.append((f"GET /api/v1/stations over HTTP ({size / 1e6:.1f} MB)", get_t, f"{get_t / naive:.3f}"))
            service.http.STATIONS_CACHE_S = 60.0  # the next viewers within the cache time
            await _http_time(session, base + "/api/v1/stations", 1)
            hit_t, _ = await _http_time(session, base + "/api/v1/stations", args.repeat)
            rows.append(("  same, cached for another viewer within 1 s", hit_t, f"{hit_t / naive:.3f}"))
            m_t, m_size = await _http_time(session, base + "/metrics", args.repeat)
            rows.append((f"GET /metrics over HTTP ({m_size / 1e3:.0f} kB)", m_t, f"{m_t / naive:.3f}"))
            a_t, _ = await _http_time(session, base + "/api/v1/alerts", args.repeat)
            rows.append(("GET /api/v1/alerts over HTTP", a_t, f"{a_t / naive:.3f}"))

        ticks = [T0 + 10 + k for k in range(1, args.repeat + 1)]

        def physics() -> None:
            t = ticks.pop(0) if ticks else T0 + 1000
            for sim in sims.values():
                sim.step(t)
                sim.values()

        ticks2 = [T0 + 100 + k for k in range(1, args.repeat + 1)]

        def full_tick() -> None:
            t = ticks2.pop(0) if ticks2 else T0 + 2000
            for sim in sims.values():
                sim.step(t)
                register_image(sim.station, sim.values())

        phys_t = _time(physics, args.repeat)
        tick_t = _time(full_tick, args.repeat)
        n = args.stations
        rows.append((f"baseline: sim physics+values, {n} stations", phys_t, "1.00"))
        rows.append(("sim tick with register images", tick_t, f"{tick_t / phys_t:.3f}"))

    print(f"\nbench_http: {args.stations} stations x 2 loops, 3 indoor sensors per loop, median of {args.repeat}")
    print(f"{'what':<58} {'ms':>10} {'ratio':>8}")
    for what, seconds, ratio in rows:
        print(f"{what:<58} {seconds * 1000:>10.2f} {ratio:>8}")
    print(f"sim tick per station: {tick_t / n * 1e6:.1f} µs")


if __name__ == "__main__":
    asyncio.run(main())
