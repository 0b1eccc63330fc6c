"""The status page in a real headless Chromium, against a running service fed by simulated stations.

Debian's chromium renders the page (no internet: every script and style comes from the package);
the rendered DOM must show every station, mark the faulty ones and honour the URL filters. The
screenshot is kept as a test artifact under artifacts/.
"""

from __future__ import annotations

import asyncio
import html
import re
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from stationmon.adapters.http import stations_document
from stationmon.config import Config, parse_config_text
from stationmon.domain.model import Reading
from stationmon.service import Service
from stationmon.sim.district import FAULT_PLAN, SEED_STATION_ID, DemoPlan, build_demo_config, demo_stations
from stationmon.sim.runner import Simulator
from tests.conftest import MosquittoServer
from tests.helpers import free_port, running_service, wait_until

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
N_STATIONS = 12  # every fault kind of the demo, and one healthy station


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium", pytrace=False)
    return path


async def _browser(url: str, tmp_path: Path, *args: str, budget_ms: int = 4000) -> str:
    """Run headless Chromium on `url` with extra arguments; its stdout. `budget_ms` of virtual time let the
    page's script fetch the API and render first (a screenshot wants the charts drawn too)."""
    proc = await asyncio.create_subprocess_exec(
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1400,1000",
        # let the page's script fetch the API and render before the DOM is dumped
        f"--virtual-time-budget={budget_ms}",
        *args,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


def _config(tmp_path: Path, mosquitto: MosquittoServer) -> Config:
    stations = demo_stations(N_STATIONS)
    plan = DemoPlan(
        workdir=tmp_path,
        http_listen=f"127.0.0.1:{free_port()}",
        mqtt_url=mosquitto.url,
        influx_url=None,
        mqtt_protocol="5",
        modbus_ports={st.id: free_port() for st in stations if st.kind != "mqtt"},
        # the weather held at Harbin's winter mean, as test_demo does: by the clock a cold hour (below about
        # -16 °C) cools the seed's flats and a mild one lifts them, and the statuses asserted below follow
        outdoor_temp=-12.0,
    )
    return parse_config_text(build_demo_config(stations, plan), str(tmp_path / "demo.toml"), require_influxdb=False)


def _articles(dom: str) -> dict[str, dict[str, str]]:
    """station id -> the data-* attributes of its rendered <article>."""
    out = {}
    for tag in re.findall(r"<article\b[^>]*>", dom):
        attrs = {k: html.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', tag)}
        out[attrs["data-station"]] = attrs
    return out


def _loop_block(dom: str, station: str, loop: str) -> str:
    """The rendered HTML of one loop of one station (up to the next loop or station)."""
    article = dom.split(f'id="station-{station}"', 1)[1].split("<article", 1)[0]
    return article.split(f'data-loop="{loop}"', 1)[1].split('data-loop="', 1)[0]


@pytest.mark.timeout(900)  # six Chromium runs of up to 90 s each: a loaded machine passes the global 300 s
async def test_status_page_renders_every_station_and_marks_the_faulty_ones(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    config = _config(tmp_path, mosquitto)
    stations = demo_stations(N_STATIONS)
    faulty = {stations[i].id for i in FAULT_PLAN if i < N_STATIONS and FAULT_PLAN[i][0] != "offline"}
    faulty.add(SEED_STATION_ID)  # 41/34 on a 50/40 floor design at 20 °C: the water model warns (flats warm)
    offline = {stations[i].id for i in FAULT_PLAN if i < N_STATIONS and FAULT_PLAN[i][0] == "offline"}
    healthy = {st.id for st in stations} - faulty - offline
    assert faulty and healthy
    base = f"http://{config.http.listen}"
    async with (
        Simulator(config, lag_s=30.0),
        running_service(Service(config)) as service,
        aiohttp.ClientSession() as client,
    ):

        async def api() -> dict[str, Any]:
            try:
                async with client.get(base + "/api/v1/stations") as r:
                    doc = await r.json()
            except aiohttp.ClientConnectionError:
                return {}  # not listening yet
            return {st["id"]: st for st in doc["stations"]}

        async def settled() -> bool:
            by_id = await api()
            if not by_id:
                return False
            marked = all(by_id[s]["status"] != "ok" or by_id[s]["active_alerts"] > 0 for s in faulty)
            fine = all(by_id[s]["status"] == "ok" and by_id[s]["active_alerts"] == 0 for s in healthy)
            return marked and fine

        await wait_until(settled, timeout=60, message="faults to show in the API")

        before = await api()
        dom = await _browser(base + "/", tmp_path, "--dump-dom")
        after = await api()
        articles = _articles(dom)
        assert set(articles) == {st.id for st in stations}, dom[-3000:]
        for sid in faulty:
            a = articles[sid]
            assert a["data-status"] != "ok" or int(a["data-alerts"]) > 0, a
        for sid in healthy:
            assert articles[sid]["data-status"] == "ok" and articles[sid]["data-alerts"] == "0", articles[sid]
        # names, districts and alerts rendered; the page loaded its data
        for st in stations:
            assert html.escape(st.name) in dom or st.name in dom
        assert 'data-loaded="true"' in dom
        assert re.search(r'<li data-alert="[^"]+" data-station="', dom)  # alerts in their station's card
        assert "<svg" in dom and "polyline" in dom  # the charts draw the in-memory history
        # a real time axis: wall-clock labels at both ends of every chart, no bare "N min"
        assert len(re.findall(r'<text class="time-label"[^>]*>\d{1,2}:\d{2}(:\d{2})?(\s?[AP]M)?</text>', dom)) >= 2
        assert not re.search(r">\d+ min</text>", dom)
        # every loop with an active alert carries a badge naming its rule, whatever its status chip says
        # (the alerts active both before and after the page was rendered)
        badged = 0
        for sid, st in after.items():
            for i, lp in enumerate(st["loops"]):
                block = _loop_block(dom, sid, lp["id"])
                earlier = {a["id"] for a in before[sid]["loops"][i]["alerts"]}
                for alert in (a for a in lp["alerts"] if a["id"] in earlier):
                    assert f'data-alert-rule="{alert["rule"]}"' in block, (sid, lp["id"], alert)
                    badged += 1
        assert badged > 0
        assert "Cannot reach stationmon" not in dom or re.search(r'<div id="error" class="error" hidden', dom)
        _assert_legend_and_header(dom, before, uptime_s=service.clock() - service.started_at)

        # the URL filters: only problems, then one district
        dom = await _browser(base + "/?status=problem", tmp_path, "--dump-dom")
        shown = set(_articles(dom))
        assert faulty <= shown and not (shown & healthy), shown
        district = stations[0].district
        dom = await _browser(base + "/?district=" + district, tmp_path, "--dump-dom")
        assert set(_articles(dom)) == {st.id for st in stations if st.district == district}
        # the company filter, next to the district's; companies span districts
        company = stations[2].company
        dom = await _browser(base + "/?company=" + company, tmp_path, "--dump-dom")
        want = {st.id for st in stations if st.company == company}
        assert set(_articles(dom)) == want and 0 < len(want) < N_STATIONS
        assert all(a["data-company"] == company for a in _articles(dom).values())
        assert f'<option value="{company}">{company}</option>' in dom

        # every loop shows what its verdict rests on, as the API says
        # (an evaluation between the API read and the page's render can move a verdict: compare when the API
        # said the same before and after the render, and try again otherwise, a bounded number of times)
        def api_verdicts(doc: dict[str, Any]) -> list[str]:
            return sorted(lp["verdict"] for st in doc.values() for lp in st["loops"])

        for _attempt in range(5):
            by_id = await api()
            dom = await _browser(base + "/", tmp_path, "--dump-dom")
            if api_verdicts(await api()) == api_verdicts(by_id):
                break
        else:
            pytest.fail("the verdicts changed during every one of 5 renders")
        verdicts = re.findall(r'class="verdict (\w+)" data-verdict="(\w+)"', dom)
        assert len(verdicts) == sum(len(st["loops"]) for st in by_id.values()), verdicts
        assert {v for _, v in verdicts} <= {"sensors", "estimate", "none"}
        assert sorted(v for _, v in verdicts) == api_verdicts(by_id)
        seed = by_id[SEED_STATION_ID]
        assert (seed["company"], seed["area_m2"], seed["households"]) == (stations[0].company, 160000.0, 3000)
        assert "160,000 m² · 3000 households" in dom

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "status_page.png"
        shot.unlink(missing_ok=True)
        await _browser(base + "/", tmp_path, f"--screenshot={shot}", budget_ms=8000)
        assert shot.stat().st_size > 10_000


def _assert_legend_and_header(dom: str, by_id: dict[str, Any], uptime_s: float) -> None:
    """The legend says what the charts span (seconds into the demo, not "last hours"), and the header's
    station counts name their status."""
    legend = re.search(r'<span id="chart-span"[^>]*>([^<]*)</span>', dom)
    assert legend, dom[-3000:]
    m = re.fullmatch(r"charts: up to (\d+) s of history \(kept up to 30 min\)", legend[1])
    assert m and 0 < int(m[1]) <= uptime_s + 5, (legend[1], uptime_s)  # the history window is 30m in the demo
    assert "last hours" not in dom
    totals = dom.split('id="totals"', 1)[1].split("</div>", 1)[0]
    chips = re.findall(r'data-status="(\w+)">(\d+) ([\w ]+)</span>', totals)
    assert chips and all(label == status.replace("_", " ") for status, _, label in chips), totals
    assert sum(int(n) for _, n, _ in chips) == len(by_id), totals  # every station counted once
    assert re.search(r">\d+ stations:</span>", totals), totals


def test_station_seen_means_its_own_equipment_not_household_sensors(tmp_path: Path) -> None:
    text = f"""
[influxdb]
api = "v1"
database = "x"
spool_dir = "{tmp_path}/spool"
[mqtt]
url = "mqtt://127.0.0.1:1"
[[mqtt.subscriptions]]
topic = "heat/{{station}}/{{loop}}/{{quantity}}"
[[stations]]
id = "s1"
  [[stations.loops]]
  id = "sec1"
"""
    config = parse_config_text(text, require_influxdb=False)
    service = Service(config, clock=lambda: 10_000.0)
    service.ingest([Reading("s1", "supply_temp", 45.0, 9_940.0, loop="sec1", source="mqtt")])  # the PLC, 60 s ago
    service.ingest([Reading("s1", "indoor_temp", 20.5, 10_000.0, loop="sec1", sensor="h-1", source="mqtt")])
    [station] = stations_document(service)["stations"]
    assert station["last_seen"] == 9_940.0 and station["age_s"] == 60.0  # not 0 s: households do not count
    assert station["household_seen"] == 10_000.0
    assert station["loops"][0]["alerts"] == []
