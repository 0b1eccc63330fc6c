"""`/metrics` of a running service passes `promtool check metrics` (Debian's `prometheus` package).

The service runs every adapter that registers metrics: Modbus pollers and an MQTT collector fed by the
simulator, the InfluxDB writer against a real influxd, the evaluator, a webhook notifier, the HTTP
server. No skip when promtool is missing: CI installs it (`.ci/run`, `make deps`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp

from stationmon.config import Config, parse_config_text
from stationmon.service import Service
from stationmon.sim.runner import Simulator
from tests.helpers import free_port, running_service, wait_until
from tests.stations_toml import loop_entry, outdoor, station_toml, water

# One family from each adapter, and the process collector: the scrape really covers them all.
EXPECTED_FAMILIES = (
    "stationmon_modbus_polls_total",
    "stationmon_mqtt_messages_total",
    "stationmon_influx_lines_written_total",
    "stationmon_evaluation_seconds_count",
    "stationmon_notify_sent_total",
    "stationmon_http_requests_total",
    "stationmon_station_online",
    "stationmon_process_cpu_seconds_total",
    "stationmon_python_info",
)


# an MQTT-only station
GAMMA = station_toml(
    "gamma",
    name="伽马换热站",
    loops=[loop_entry("sec1", "floor")],
    points=[outdoor("plc/gamma/outdoor"), *water(supply="plc/gamma/sec1/supply", ret=None)],
)


def _config(tmp_path: Path, influx_url: str, db: str, mqtt_url: str) -> Config:
    return parse_config_text(
        f"""
[site]
name = "promtool"
[mqtt]
url = "{mqtt_url}"
client_id = "stationmon-promtool-test"
[influxdb]
url = "{influx_url}"
api = "v1"
database = "{db}"
spool_dir = "{tmp_path / "spool"}"
flush_interval = "200ms"
[http]
listen = "127.0.0.1:{free_port()}"
[rules]
water_smoothing = "0s"
evaluate_every = "500ms"
[[alerting.webhook]]
url = "http://127.0.0.1:{free_port()}/hook"

{station_toml("alpha", port=free_port(), name="阿尔法换热站")}
{GAMMA}
[simulator]
outdoor_temp = -10.0
publish_interval = "200ms"
""",
        str(tmp_path / "promtool.toml"),
    )


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    """`promtool check metrics` on an exposition; its answer (exit code and problems on stderr)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: install Debian's `prometheus` package (make deps)"
    return subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)


def test_promtool_reports_a_bad_exposition() -> None:
    """The check below can fail: promtool rejects a gauge named like a counter and a malformed line."""
    bad = "# HELP stationmon_x_total x\n# TYPE stationmon_x_total gauge\nstationmon_x_total 1\n"
    assert promtool_check(bad).returncode != 0
    assert promtool_check("stationmon_broken{ 1\n").returncode != 0


async def test_metrics_of_a_running_service_pass_promtool(
    tmp_path: Path, influxdb: Any, influx_db: str, mosquitto: Any
) -> None:
    config = _config(tmp_path, influxdb.url, influx_db, mosquitto.url)
    async with (
        Simulator(config),
        running_service(Service(config), stop_timeout_s=20) as service,
        aiohttp.ClientSession() as client,
    ):

        async def scrape() -> str | None:
            try:
                async with client.get(f"http://127.0.0.1:{config.http.port}/metrics") as r:
                    text = await r.text()
            except aiohttp.ClientConnectionError:
                return None
            covered = all(f"\n{name}" in text for name in EXPECTED_FAMILIES)
            written = service.metrics.counter("stationmon_influx_lines_written_total", "").value()
            return text if covered and written > 0 else None

        text = await wait_until(scrape, timeout=30, message="every adapter's metrics on /metrics")
    result = promtool_check(text)
    assert result.returncode == 0 and not result.stderr.strip(), result.stdout + result.stderr
