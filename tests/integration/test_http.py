"""The HTTP server against a running service fed by simulated stations over real Modbus TCP."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from stationmon.adapters.http import HttpServer, check_bearer, stations_document
from stationmon.config import Config, parse_config_text
from stationmon.domain.model import Reading
from stationmon.errors import StationmonError
from stationmon.service import Service
from stationmon.sim.runner import Simulator
from tests.helpers import free_port, running_service, wait_until
from tests.stations_toml import loop_entry, outdoor, station_toml, water

MQTT_STATION = station_toml(
    "gamma",
    name="伽马换热站",
    district="道里区",
    loops=[loop_entry("sec1", "floor")],
    points=[outdoor("plc/gamma/outdoor"), *water(supply="plc/gamma/sec1/supply", ret="plc/gamma/sec1/return")],
)
# beta's outdoor thermometer on an input register, in tenths; its loop's water at 10 and 12
BETA_POINTS = [outdoor(register="input", type="int16", scale=0.1), *water(supply=10, ret=12)]


def _config(tmp_path: Path, http_port: int, faults: str = "", mqtt_url: str | None = None) -> Config:
    """Two Modbus stations (alpha, beta); with `mqtt_url`, also gamma, an MQTT-only station."""
    p1, p2 = free_port(), free_port()
    alpha = station_toml(
        "alpha",
        port=p1,
        name="阿尔法换热站",
        district="道里区",
        company="冰城热力有限公司",
        heat_source="哈尔滨第一热电厂",
        area_m2=160000,
        households=3000,
        loops=[loop_entry("sec1", "floor", design=(50.0, 40.0))],
    )
    mqtt = f'[mqtt]\nurl = "{mqtt_url}"\nclient_id = "stationmon-http-test"\n' if mqtt_url else ""
    return parse_config_text(
        f"""
{mqtt}
[site]
name = "测试区"
[influxdb]
api = "v1"
database = "unused"
spool_dir = "{tmp_path / "spool"}"
[http]
listen = "127.0.0.1:{http_port}"
[rules]
water_smoothing = "0s"
offline_after = "3s"
evaluate_every = "500ms"

{alpha}
{station_toml("beta", port=p2, name="贝塔换热站", district="南岗区", modbus={"byte_order": "CDAB"}, points=BETA_POINTS)}

{MQTT_STATION if mqtt_url else ""}
[simulator]
outdoor_temp = -10.0
noise = 0.0
{'publish_interval = "200ms"' if mqtt_url else ""}
{faults}
""",
        str(tmp_path / "test.toml"),
        require_influxdb=False,
    )


@contextlib.asynccontextmanager
async def serving(service: Service) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """The service running with its HTTP server answering /healthz, and a client for it; all closed on exit."""
    base = f"http://127.0.0.1:{service.config.http.port}"
    async with running_service(service, stop_timeout_s=20), aiohttp.ClientSession() as client:

        async def up() -> bool:
            try:
                async with client.get(base + "/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await wait_until(up, timeout=15, message="the HTTP server")
        yield client, base


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[tuple[Service, Simulator, aiohttp.ClientSession, str]]:
    """Simulator, service and an HTTP client; everything closed on exit."""
    async with Simulator(config) as sim:
        service = Service(config)
        async with serving(service) as (client, base):
            yield service, sim, client, base


async def _json(client: aiohttp.ClientSession, url: str, status: int = 200) -> Any:
    async with client.get(url) as r:
        assert r.status == status, await r.text()
        assert r.content_type == "application/json"
        return await r.json()


async def test_stations_api_shows_the_simulated_values_with_status_and_times(tmp_path: Path) -> None:
    started = time.time()
    config = _config(tmp_path, free_port())
    async with running(config) as (_service, sim, client, base):

        async def both_seen() -> Any:
            doc = await _json(client, base + "/api/v1/stations")
            loops = {st["id"]: st["loops"][0] for st in doc["stations"]}
            judged = all(lp["required_supply_temp"] is not None for lp in loops.values())
            return doc if judged and all("supply_temp" in lp["values"] for lp in loops.values()) else None

        doc = await wait_until(both_seen, timeout=15, message="readings from both stations")
        assert doc["site"]["name"] == "测试区"
        by_id = {st["id"]: st for st in doc["stations"]}
        assert set(by_id) == {"alpha", "beta"}
        beta = by_id["beta"]
        assert beta["name"] == "贝塔换热站" and beta["district"] == "南岗区"
        assert beta["online"] is True and beta["status"] != "offline"
        # an ordering, not a number of seconds: read after the test began, its age within the time since
        assert started <= beta["last_seen"] and 0 <= beta["age_s"] <= time.time() - started, (started, beta)
        assert beta["values"]["outdoor_temp"]["value"] == pytest.approx(-10.0)
        loop = beta["loops"][0]
        want = sim.values["beta"]
        assert loop["values"]["supply_temp"]["value"] == pytest.approx(want[("sec1", None, "supply_temp")], abs=0.05)
        assert loop["values"]["return_temp"]["value"] == pytest.approx(want[("sec1", None, "return_temp")], abs=0.05)
        assert loop["values"]["supply_temp"]["ts"] > 0 and loop["values"]["supply_temp"]["fault"] is None
        # the curve's required values at -10 °C for 75/50 radiators (DOMAIN.md table: 58.8/42.2)
        assert loop["required_supply_temp"] == pytest.approx(58.8, abs=0.1), loop
        assert loop["required_return_temp"] == pytest.approx(42.2, abs=0.1)
        assert loop["delta_t"] == pytest.approx(
            loop["values"]["supply_temp"]["value"] - loop["values"]["return_temp"]["value"], abs=0.2
        )
        assert 15.0 < loop["estimated_indoor_temp"] < 25.0
        # noise-free simulator 1.5 K above the curve (60.25 against the 58.75 required): judged, and ok
        assert loop["status"] == "ok", loop
        assert beta["connection"]["polls"] > 0
        # the station's metadata; what each loop's verdict rests on (no household sensors here)
        alpha = by_id["alpha"]
        assert (alpha["company"], alpha["heat_source"], alpha["area_m2"], alpha["households"]) == (
            "冰城热力有限公司",
            "哈尔滨第一热电厂",
            160000.0,
            3000,
        )
        assert (beta["company"], beta["heat_source"], beta["area_m2"], beta["households"]) == ("", "", None, None)
        assert all(lp["verdict"] in ("estimate", "none") for st in doc["stations"] for lp in st["loops"])

        alerts = await _json(client, base + "/api/v1/alerts")
        assert isinstance(alerts["alerts"], list)
        assert all(a["company"] == ("冰城热力有限公司" if a["station"] == "alpha" else "") for a in alerts["alerts"])


async def test_health_metrics_page_and_history(tmp_path: Path) -> None:
    config = _config(tmp_path, free_port())
    async with running(config) as (service, _sim, client, base):
        health = await _json(client, base + "/healthz")
        assert health["status"] == "ok"
        assert health["components"]["http"] == "ok"
        assert "storage" in health["components"]
        assert health["stations"]["total"] == 2

        await wait_until(lambda: len(service.latest.history) >= 6, timeout=15, message="history")
        hist = await _json(client, base + "/api/v1/history?station=alpha&loop=sec1")
        quantities = {s["quantity"] for s in hist["series"]}
        assert quantities == {"supply_temp", "return_temp"}
        assert all(len(s["points"]) >= 1 and len(s["points"][0]) == 2 for s in hist["series"])
        await _json(client, base + "/api/v1/history?station=nope", status=404)
        await _json(client, base + "/api/v1/history", status=400)
        await _json(client, base + "/api/v1/history?station=alpha&since=yesterday", status=400)

        async with client.get(base + "/metrics") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain")
            text = await r.text()
        assert 'stationmon_http_requests_total{code="200",route="/healthz"}' in text
        assert 'stationmon_station_online{station="alpha"} 1' in text
        assert "stationmon_reading_age_seconds" in text
        for line in text.splitlines():
            assert line.startswith(("# HELP stationmon_", "# TYPE stationmon_", "stationmon_")), line

        async with client.get(base + "/") as r:
            assert r.status == 200 and r.content_type == "text/html"
            page = await r.text()
        assert '<script src="/static/app.js">' in page and "http://" not in page.replace(
            'xmlns="http://www.w3.org/2000/svg"', ""
        )
        for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css")):
            async with client.get(f"{base}/static/{name}") as r:
                assert r.status == 200 and r.content_type == ctype
                assert "https://" not in await r.text()  # nothing from a CDN
        for bad in ("/static/..%2F..%2Fconfig.py", "/static/nope.js", "/nope"):
            async with client.get(base + bad) as r:
                assert r.status == 404, bad
                assert "error" in await r.json()


async def test_a_station_that_goes_quiet_is_offline(tmp_path: Path) -> None:
    config = _config(tmp_path, free_port())
    async with running(config) as (_service, sim, client, base):

        async def status_of(sid: str) -> str:
            doc = await _json(client, base + "/api/v1/stations")
            return str({st["id"]: st for st in doc["stations"]}[sid]["status"])

        await wait_until(lambda: _online(client, base, "alpha", True), timeout=15, message="alpha online")
        await sim.servers["alpha"].stop()
        sim.servers.pop("alpha")  # keep the simulator from restarting it
        await wait_until(lambda: _online(client, base, "alpha", False), timeout=15, message="alpha offline")
        assert await status_of("alpha") == "offline"
        assert await status_of("beta") != "offline"
        assert await _healthz_online(client, base) == 1
        assert (await _metric_online(client, base))["alpha"] == 0.0


async def _healthz_online(client: aiohttp.ClientSession, base: str) -> int:
    return int((await _json(client, base + "/healthz"))["stations"]["online"])


async def _metric_online(client: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with client.get(base + "/metrics") as r:
        text = await r.text()
    prefix = 'stationmon_station_online{station="'
    return {
        line[len(prefix) :].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


async def test_an_mqtt_only_station_counts_as_online(tmp_path: Path, mosquitto: Any) -> None:
    """Only the Modbus poller sets a station's connection state: an MQTT-only station must count as
    online on its readings, in /healthz, the metric and the stations API alike."""
    config = _config(tmp_path, free_port(), mqtt_url=mosquitto.url)
    async with running(config) as (service, _sim, client, base):

        async def all_online() -> bool:
            doc = await _json(client, base + "/api/v1/stations")
            return all(st["online"] for st in doc["stations"])

        await wait_until(all_online, timeout=20, message="every station online in the API")
        assert service.station_states["gamma"].online is False  # no poller: nothing sets it
        assert await _healthz_online(client, base) == 3
        assert await _metric_online(client, base) == {"alpha": 1.0, "beta": 1.0, "gamma": 1.0}


def test_online_is_a_recent_reading_and_for_modbus_the_poller_answering(tmp_path: Path) -> None:
    """The one rule behind /healthz, the metric and the stations API, with a set clock."""
    now = [1_760_000_000.0]
    config = _config(tmp_path, free_port(), mqtt_url="mqtt://127.0.0.1:1")
    service = Service(config, clock=lambda: now[0])
    stations = {st.id: st for st in config.stations}

    def online() -> dict[str, bool]:
        by_api = {st["id"]: st["online"] for st in stations_document(service)["stations"]}
        by_helper = {sid: service.station_online(st, now[0]) for sid, st in stations.items()}
        text = service.metrics.render()
        by_metric = {sid: f'stationmon_station_online{{station="{sid}"}} 1' in text for sid in stations}
        assert by_api == by_helper == by_metric
        return by_helper

    assert online() == {"alpha": False, "beta": False, "gamma": False}  # nothing heard yet
    service.ingest([Reading(sid, "outdoor_temp", -10.0, now[0]) for sid in ("alpha", "gamma")])
    # gamma (MQTT only) is online on its reading; alpha's poller has not answered
    assert online() == {"alpha": False, "beta": False, "gamma": True}
    service.station_states["alpha"].online = True
    assert online() == {"alpha": True, "beta": False, "gamma": True}
    now[0] += 2.5  # within offline_after (3 s)
    assert online() == {"alpha": True, "beta": False, "gamma": True}
    # a Modbus station whose poller fails is offline even with a fresh reading (MQTT, say)
    service.ingest([Reading(sid, "outdoor_temp", -10.0, now[0]) for sid in ("alpha", "gamma")])
    service.station_states["alpha"].online = False
    service.station_states["alpha"].consecutive_failures = 1
    assert online() == {"alpha": False, "beta": False, "gamma": True}
    service.station_states["alpha"].online = True
    now[0] += 3.5  # past offline_after: quiet stations are offline, whatever the poller says
    assert online() == {"alpha": False, "beta": False, "gamma": False}
    doc = {st["id"]: st for st in stations_document(service)["stations"]}
    assert doc["gamma"]["status"] == "offline" and doc["beta"]["status"] != "offline"


async def _online(client: aiohttp.ClientSession, base: str, sid: str, online: bool) -> bool:
    doc = await _json(client, base + "/api/v1/stations")
    st = {s["id"]: s for s in doc["stations"]}[sid]
    return bool(st["online"] is online and st["last_seen"] is not None)


async def test_a_failing_handler_answers_500_and_the_server_keeps_serving(tmp_path: Path) -> None:
    config = _config(tmp_path, free_port())

    async def broken(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("boom")

    async def write(request: web.Request) -> web.StreamResponse:
        if not check_bearer(request, "s3cret"):
            raise web.HTTPUnauthorized(reason="needs Authorization: Bearer <token>")
        return web.json_response({"ok": True})

    service = Service(config)
    service.http.add_route("GET", "/api/v1/broken", broken)
    service.http.add_route("POST", "/api/v1/test-write", write)
    async with serving(service) as (client, base):
        async with client.get(base + "/api/v1/broken") as r:
            assert r.status == 500
            assert await r.json() == {"error": "internal error"}
        # a write endpoint guarded by check_bearer, as the acknowledgement is
        async with client.post(base + "/api/v1/test-write") as r:
            assert r.status == 401
        async with client.post(base + "/api/v1/test-write", headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401
        async with client.post(base + "/api/v1/test-write", headers={"Authorization": "Bearer s3cret"}) as r:
            assert r.status == 200
        # CONTRACT 7: the acknowledgement without a token is 401 (no token configured: always)
        async with client.post(base + "/api/v1/alerts/x/ack") as r:
            assert r.status == 401
        async with client.get(base + "/healthz") as r:
            assert r.status == 200
        metrics = service.metrics.render()
        assert 'stationmon_http_requests_total{code="500",route="/api/v1/broken"} 1' in metrics


async def test_a_taken_port_is_a_stationmon_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _config(tmp_path, port)
        server = HttpServer(Service(config))
        with pytest.raises(StationmonError, match=f"cannot listen on 127.0.0.1:{port}"):
            await server.__aenter__()
