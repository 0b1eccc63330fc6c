"""Benchmark: the status page at city scale (issue 13), against today's whole-document refresh in the same run.

    .venv/bin/python bench/bench_http.py [--stations 10000] [--repeat 5] [--no-browser]

A synthetic city of `--stations` stations (two loops each, radiator and floor, three household sensors per
loop; nine districts, seven heating companies), every series filled through `Service.ingest` from the
simulator's physics and judged by the real evaluator; the HTTP server is the service's own. Measured:

- one refresh of the status page, as bytes on the wire (headers and body) and server time (the
  `Server-Timing` header: what the handlers took, not the client): the whole-document page of before
  (GET /api/v1/stations and /api/v1/alerts every 5 s; its charts ask /api/v1/history once per station
  every 15 s besides, left out here) against the summary-first page (GET /api/v1/summary and one page of
  24 stations with If-None-Match, plus its charts' history since the last points every third refresh):
  between evaluations (304s), and the first refresh after an evaluation (index built, page rebuilt);
- time to first render in headless Chromium (no virtual time): from the page's request to its first
  complete drawing, which a probe script reports back (`performance.now()` and the server's clock), for
  the page of before (kept in bench/legacy_page/) and the page of now;
- the documents' build cost: the whole document, the per-evaluation index, the summary, one page.

Ratios are against the whole-document figures of the same run. The machine is shared: absolute figures
are noisy, the ratios less so.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web

from stationmon.config import Config, parse_config_text
from stationmon.domain.model import Reading
from stationmon.evaluator.status_pages import StationQuery, build_index, page_document, summary_document
from stationmon.evaluator.status_view import SeriesIndex, stations_document
from stationmon.service import Service
from stationmon.sim.physics import StationSim

T0 = 1_764_000_000.0
LEGACY = Path(__file__).resolve().parent / "legacy_page"
STATIC = Path(__file__).resolve().parent.parent / "stationmon" / "web" / "static"
PAGE_SIZE = 24  # the page's default
PROBE = """
(function () {
  const t0 = performance.now();
  function done() {
    if (document.body && document.body.dataset.loaded === "true") {
      fetch("/bench/rendered?ms=" + performance.now().toFixed(0));
      return true;
    }
    return false;
  }
  const watch = () => { if (!done()) setTimeout(watch, 20); };
  watch();
})();
"""


def _config(n: int, port: int, spool: Path) -> Config:
    parts = [
        f"""
[influxdb]
api = "v1"
database = "bench"
spool_dir = "{spool}"
[http]
listen = "127.0.0.1:{port}"
grafana_url = "http://127.0.0.1:3000"
[rules]
for = "0s"
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
company = "热力公司{i % 7}"
[stations.modbus]
port = {10000 + i % 50000}
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
    """The simulated values of every station at `now`; one station in ten runs 12 K short of heat."""
    for i, (sid, sim) in enumerate(sims.items()):
        sim.step(now)
        short = 12.0 if i % 10 == 3 else 0.0
        readings = [
            Reading(
                sid,
                qty,
                value - short if qty in ("supply_temp", "return_temp") else value,
                now,
                loop=loop,
                sensor=sensor,
                source="modbus" if sensor is None else "mqtt",
            )
            for (loop, sensor, qty), value in sim.values().items()
        ]
        service.ingest(readings)
    for state in service.station_states.values():
        state.online = True  # the pollers would say so


def _time(fn: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


class Viewer:
    """One open status page's requests: bytes on the wire and server time, with the ETags it holds."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.etags: dict[str, str] = {}

    async def get(self, path: str, conditional: bool = True) -> tuple[int, float, int]:
        """(bytes, server ms, status) of one GET."""
        headers = {"If-None-Match": self.etags[path]} if conditional and path in self.etags else {}
        async with self.session.get(self.base + path, headers=headers) as r:
            body = await r.read()
            if "ETag" in r.headers:
                self.etags[path] = r.headers["ETag"]
            head = sum(len(k) + len(v) + 4 for k, v in r.raw_headers) + len("HTTP/1.1 200 OK\r\n\r\n")
            server_ms = float(r.headers["Server-Timing"].split("dur=")[1])
            return head + len(body), server_ms, r.status

    async def refresh(self, paths: list[str], conditional: bool = True) -> tuple[int, float, list[int]]:
        """One refresh: its requests in turn; total bytes, total server ms, the statuses."""
        total_bytes, total_ms, codes = 0, 0.0, []
        for path in paths:
            size, ms, code = await self.get(path, conditional)
            total_bytes, total_ms = total_bytes + size, total_ms + ms
            codes.append(code)
        return total_bytes, total_ms, codes


def _add_bench_routes(service: Service, rendered: dict[str, Any]) -> None:
    """The page of before under /legacy/, the page of now under /bench/page, each with the probe script."""
    legacy_html = (LEGACY / "index.html").read_text().replace("/static/", "/legacy/")
    new_html = (STATIC / "index.html").read_text()

    def page(html: str, name: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            rendered.clear()
            rendered["asked"], rendered["page"] = time.perf_counter(), name
            body = html.replace("</body>", '<script src="/bench/probe.js"></script>\n</body>')
            return web.Response(text=body, content_type="text/html")

        return handler

    async def legacy_file(request: web.Request) -> web.StreamResponse:
        path = LEGACY / request.match_info["name"]
        ctype = "text/javascript" if path.suffix == ".js" else "text/css"
        return web.Response(text=path.read_text(), content_type=ctype)

    async def probe(request: web.Request) -> web.StreamResponse:
        return web.Response(text=PROBE, content_type="text/javascript")

    async def done(request: web.Request) -> web.StreamResponse:
        rendered["seen"], rendered["page_ms"] = time.perf_counter(), float(request.query["ms"])
        return web.Response(text="ok")

    service.http.add_route("GET", "/legacy/", page(legacy_html, "legacy"))
    service.http.add_route("GET", "/legacy/{name}", legacy_file)
    service.http.add_route("GET", "/bench/page", page(new_html, "new"))
    service.http.add_route("GET", "/bench/probe.js", probe)
    service.http.add_route("GET", "/bench/rendered", done)


async def _first_render(
    url: str, rendered: dict[str, Any], limit_s: float, workdir: Path
) -> tuple[float, float] | None:
    """Headless Chromium on `url` until the probe reports the first render: (server-clock s, page ms)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium); or run with --no-browser")
    rendered.clear()
    proc = await asyncio.create_subprocess_exec(
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--remote-debugging-port=0",  # keeps it running until we stop it
        f"--user-data-dir={workdir / 'chromium-profile'}",
        "--window-size=1400,1000",
        url,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = time.perf_counter() + limit_s
        while "seen" not in rendered and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
    finally:
        proc.kill()
        await proc.wait()
    if "seen" not in rendered:
        return None
    return rendered["seen"] - rendered["asked"], rendered["page_ms"]


async def _refreshes(service: Service, sims: dict[str, StationSim], base: str, now: list[float]) -> list[str]:
    """Bytes and server time per refresh, the page of before against the page of now."""
    page = f"/api/v1/stations?page=1&page_size={PAGE_SIZE}"
    async with aiohttp.ClientSession() as session:
        viewer = Viewer(session, base)
        # one viewer every 5 s finds the 1 s cache expired: the document is built for it (the baseline)
        doc_bytes, doc_ms, _ = await viewer.refresh(["/api/v1/stations", "/api/v1/alerts"], conditional=False)
        service.http.STATIONS_CACHE_S = 3600.0  # another viewer within the second
        again_bytes, again_ms, _ = await viewer.refresh(["/api/v1/stations", "/api/v1/alerts"], conditional=False)
        service.http.STATIONS_CACHE_S = 0.0  # the page of before, in the browser: built afresh
        ids = ",".join(st["id"] for st in (await (await session.get(base + page)).json())["stations"])
        history = f"/api/v1/history?stations={ids}&quantity=supply_temp,return_temp&max_points=150&since={now[0] - 15}"
        first_bytes, first_ms, _ = await viewer.refresh(["/api/v1/summary", page], conditional=False)
        same_bytes, same_ms, same_codes = await viewer.refresh(["/api/v1/summary", page])
        hist_bytes, hist_ms, _ = await viewer.refresh([history])
        now[0] += 10.0
        _fill(service, sims, now[0])
        service.evaluator.tick(now[0])
        next_bytes, next_ms, next_codes = await viewer.refresh(["/api/v1/summary", page])
    # evaluations every 10 s, refreshes every 5 s: every other refresh finds a new evaluation; charts every 15 s
    avg_bytes = (same_bytes + next_bytes) / 2 + hist_bytes / 3
    avg_ms = (same_ms + next_ms) / 2 + hist_ms / 3
    base_bytes, base_ms = doc_bytes, doc_ms
    rows = [
        ("before: whole document + alerts, built", doc_bytes, doc_ms),
        ("before: the same for a second viewer within 1 s (cached)", again_bytes, again_ms),
        ("now: summary + page, first load", first_bytes, first_ms),
        (f"now: between evaluations ({'/'.join(map(str, same_codes))})", same_bytes, same_ms),
        (f"now: after an evaluation ({'/'.join(map(str, next_codes))})", next_bytes, next_ms),
        ("now: the page's charts, points of the last 15 s", hist_bytes, hist_ms),
        ("now: average refresh (eval 10 s, refresh 5 s, charts 15 s)", avg_bytes, avg_ms),
    ]
    out = [f"{'one refresh of the status page':<62} {'bytes':>12} {'ratio':>8} {'server ms':>10} {'ratio':>8}"]
    for what, size, ms in rows:
        out.append(f"{what:<62} {size:>12,.0f} {size / base_bytes:>8.4f} {ms:>10.2f} {ms / base_ms:>8.3f}")
    return out


def _builds(service: Service, repeat: int) -> list[str]:
    whole = _time(lambda: stations_document(service), max(1, repeat // 2))
    index_t = _time(lambda: build_index(service, service.clock()), repeat)
    index = build_index(service, service.clock())
    summary_t = _time(lambda: summary_document(service, index), repeat)
    query = StationQuery(page_size=PAGE_SIZE)
    series = SeriesIndex()
    page_document(service, index, query, series)  # the series index is built once, while series appear
    page_t = _time(lambda: page_document(service, index, query, series), repeat)
    out = [f"{'building (median of ' + str(repeat) + ')':<62} {'ms':>12} {'ratio':>8}"]
    for what, t in (
        ("before: the whole document", whole),
        ("now: the station index (once per evaluation)", index_t),
        ("now: the summary from it", summary_t),
        (f"now: one page of {PAGE_SIZE} stations", page_t),
    ):
        out.append(f"{what:<62} {t * 1000:>12.2f} {t / whole:>8.4f}")
    return out


async def _renders(base: str, rendered: dict[str, Any], limit_s: float) -> list[str]:
    out = [f"{'time to first render, headless Chromium':<62} {'s':>12} {'ratio':>8} {'page ms':>10}"]
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for name, path in (
            ("before: the whole-document page", "/legacy/"),
            ("now: the summary-first page", "/bench/page"),
        ):
            results[name] = await _first_render(base + path, rendered, limit_s, Path(tmp))
        legacy = results["before: the whole-document page"]
        for name, got in results.items():
            if got is None:
                out.append(f"{name:<62} {'> ' + str(int(limit_s)):>12} {'':>8} {'did not render':>10}")
                continue
            ratio = f"{got[0] / legacy[0]:.4f}" if legacy else f"< {got[0] / limit_s:.4f}"
            out.append(f"{name:<62} {got[0]:>12.2f} {ratio:>8} {got[1]:>10.0f}")
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--stations", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-browser", action="store_true", help="skip the headless Chromium first render")
    ap.add_argument("--render-limit", type=float, default=120.0, help="seconds to wait for a first render")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(args.stations, port, Path(tmp) / "spool")
        now = [T0 + 10]
        service = Service(config, clock=lambda: now[0])
        sims = {st.id: StationSim(st, config.site, config.simulator, T0) for st in config.stations}
        _fill(service, sims, now[0])
        service.evaluator.tick(now[0])
        setup_s = time.perf_counter() - started
        rendered: dict[str, Any] = {}
        _add_bench_routes(service, rendered)
        lines = _builds(service, args.repeat)
        base = f"http://127.0.0.1:{port}"
        async with service.http:
            lines += await _refreshes(service, sims, base, now)
            if not args.no_browser:
                lines += await _renders(base, rendered, args.render_limit)
    n_alerts = len(service.active_alerts())
    print(
        f"\nbench_http: {args.stations} stations x 2 loops, 3 indoor sensors per loop, {n_alerts} active alerts; "
        f"setup {setup_s:.0f} s; ratios against the whole-document page of the same run"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
