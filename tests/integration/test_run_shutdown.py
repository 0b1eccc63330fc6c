"""What `stationmon run` says about the stations while it stops: nothing judged after its collectors stopped.

A Modbus poller marks its station offline as it closes its link, so whatever reads the stations after the
collectors stopped (the HTTP API and status page, /healthz, /metrics, a last evaluation writing
`loop_status`) would report every polled station offline although none was.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from stationmon.config import Config, parse_config_text
from stationmon.service import Service
from stationmon.sim.runner import Simulator
from tests.helpers import free_port, wait_until, write_config
from tests.servers import InfluxServer
from tests.stations_toml import outdoor, station_toml, water

STOP_DEADLINE_S = 10.0  # CONTRACT section 1: run flushes and exits within 10 s of a signal
STATIONS = ("daoli-youyi-334", "nangang-hexing-48")


def _config_text(tmp_path: Path, http_port: int, influx: str) -> str:
    stations = "".join(station_toml(sid, port=free_port(), points=[outdoor(), *water(flow=6)]) for sid in STATIONS)
    return f"""
state_dir = "{tmp_path / "state"}"
[influxdb]
{influx}
spool_dir = "{tmp_path / "spool"}"
flush_interval = "200ms"
[http]
listen = "127.0.0.1:{http_port}"
[rules]
evaluate_every = "1s"
offline_after = "5s"
season_start = "01-01"
season_end = "12-31"
[simulator]
outdoor_temp = -10.0
noise = 0.1
{stations}
"""


def _connects(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port now (the kernel answers for a listener
    whose event loop is busy, so this works from inside that loop)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


async def test_http_stops_answering_before_the_collectors_stop(tmp_path: Path) -> None:
    """Once a poller has closed its link (its station reads offline), the API, status page and /metrics
    no longer answer: they would show a shutdown as stations going offline."""
    http_port = free_port()
    config: Config = parse_config_text(
        _config_text(tmp_path, http_port, 'api = "v1"\ndatabase = "unused"'),
        str(tmp_path / "stationmon.toml"),
        require_influxdb=False,
    )
    async with Simulator(config):
        service = Service(config)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop), name="service")
        states = [service.station_states[sid] for sid in STATIONS]
        answered_after_offline: list[bool] = []

        async def first_offline() -> None:
            # checked at every turn of the loop, so the first moment a station reads offline is seen
            while all(s.online for s in states) and not task.done():
                await asyncio.sleep(0)
            answered_after_offline.append(_connects(http_port))

        try:
            await wait_until(lambda: all(s.online for s in states), timeout=30, message="both stations polled")
            assert await asyncio.to_thread(_connects, http_port)
            watcher = asyncio.create_task(first_offline(), name="watcher")
            stop.set()
            await asyncio.wait_for(task, timeout=STOP_DEADLINE_S)
            await asyncio.wait_for(watcher, timeout=STOP_DEADLINE_S)
        finally:
            stop.set()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    assert not any(s.online for s in states), "the pollers closed their links"
    assert answered_after_offline == [False], "HTTP still answered once the stations read offline"


def _api_stations(http_port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/v1/stations", timeout=5) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]
    except OSError:
        return None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_run_stores_no_offline_status_or_alert_at_shutdown(
    tmp_path: Path, influxdb: InfluxServer, influx_db: str, sig: signal.Signals
) -> None:
    """`stationmon run` stopped by a signal leaves in InfluxDB only what it judged while collecting: no
    `loop_status` offline and no station_offline alert event from the stop itself."""
    http_port = free_port()
    text = _config_text(tmp_path, http_port, f'url = "{influxdb.url}"\napi = "v1"\ndatabase = "{influx_db}"')
    path = write_config(tmp_path, text)
    async with Simulator(parse_config_text(text, str(path))):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "stationmon", "run", "-c", str(path), stderr=asyncio.subprocess.PIPE
        )
        try:

            def judged_online() -> bool:
                doc = _api_stations(http_port)
                rows = influxdb.query(influx_db, 'SELECT count("status") FROM "loop_status" GROUP BY "station"')
                return (
                    doc is not None
                    and all(st["online"] and st["status"] != "unknown" for st in doc["stations"])
                    and len(rows) == len(STATIONS)
                )

            await wait_until(judged_online, timeout=60, message="both stations online, judged and stored")
            proc.send_signal(sig)
            _, err = await asyncio.wait_for(proc.communicate(), timeout=STOP_DEADLINE_S)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.communicate()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert b"Traceback" not in err, err.decode()[-3000:]
    statuses = influxdb.query(influx_db, 'SELECT "status" FROM "loop_status"')
    assert statuses and all(r["status"] not in ("offline", "unknown") for r in statuses[-len(STATIONS) :]), statuses
    assert not [r for r in statuses if r["status"] == "offline"], statuses
    events = influxdb.query(influx_db, 'SELECT * FROM "alert_events" WHERE "rule" = \'station_offline\'')
    assert events == [], events
