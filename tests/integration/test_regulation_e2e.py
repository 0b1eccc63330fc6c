"""End to end, the regulation's way: simulated stations (real Modbus TCP servers, household sensors over a
real mosquitto) -> Service -> real InfluxDB and real Alertmanager.

Three stations of two heating companies, each with one simulator fault of issue 12:
- `pump_stop`: the circulation pump stops; the water at the probes stays warm, flow and pump status say
  it does not circulate -> `no_circulation`, critical (CONTRACT section 5).
- `cold_households`: household sensors at 18 °C and 14 °C on a 20 °C site with the refund tier at 16 °C
  -> `indoor_low`, critical below `indoor_refund_below`; `loop_status` rests its verdict on the sensors
  and counts them per tier (section 4).
- `primary_shortage`: the heat source's primary supply cannot reach what the loop needs ->
  `primary_shortage` at the station, and the loop's alerts carry `cause="heat_source"`.
Every alert carries its station's `company` label; every measurement its `company` tag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stationmon.config import Config, load_config
from stationmon.service import Service
from stationmon.sim.runner import Simulator
from tests.conftest import MosquittoServer
from tests.helpers import free_port, running_service, wait_until, write_config
from tests.stations_toml import loop_entry, outdoor, point_entry, station_toml, water

COMPANY_A = "冰城热力有限公司"
COMPANY_B = "松江供热集团"
AM_YAML = """
route:
  receiver: none
  group_wait: 100ms
  group_interval: 200ms
receivers:
  - name: none
"""


def _station(sid: str, company: str, port: int, primary: bool = False) -> str:
    primary_points = [point_entry("primary_supply_temp", 2), point_entry("primary_return_temp", 4)] if primary else []
    return station_toml(
        sid,
        port=port,
        interval="300ms",
        timeout="250ms",
        district="道里区",
        company=company,
        heat_source="哈尔滨第一热电厂",
        area_m2=160000,
        households=3000,
        loops=[loop_entry("sec1", "radiator", design=(75.0, 50.0))],
        points=[
            outdoor(),
            *primary_points,
            *water(supply=100, ret=102, flow=104),
            point_entry("pump_running", 106, loop="sec1", type="uint16"),
        ],
    )


def _config(tmp_path: Path, influx: Any, db: str, am_url: str, mqtt_url: str) -> Config:
    stations = [("pump", COMPANY_A, False), ("cold", COMPANY_A, False), ("short", COMPANY_B, True)]
    faults = {"pump": ("pump_stop", "sec1"), "cold": ("cold_households", "sec1"), "short": ("primary_shortage", None)}
    where = {sid: f'loop = "{loop}"' if loop else "" for sid, (_, loop) in faults.items()}
    fault_toml = "".join(
        f'\n[[simulator.faults]]\nstation = "{sid}"\n{where[sid]}\nkind = "{kind}"\n'
        for sid, (kind, _) in faults.items()
    )
    no_sensors = "".join(
        f'\n[[simulator.loops]]\nstation = "{sid}"\nloop = "sec1"\nindoor_sensors = 0\n' for sid in ("pump", "short")
    )
    text = f"""
state_dir = "{tmp_path}/state"

[site]
indoor_target = 20.0
indoor_refund_below = 16.0
outdoor_design = -24.2

[influxdb]
url = "{influx.url}"
api = "v1"
database = "{db}"
spool_dir = "{tmp_path}/spool"
flush_interval = "100ms"

[mqtt]
url = "{mqtt_url}"
[[mqtt.subscriptions]]
topic = "heat/{{station}}/{{loop}}/indoor/{{sensor}}"
quantity = "indoor_temp"

[http]
listen = "127.0.0.1:{free_port()}"

[[alerting.alertmanager]]
url = "{am_url}"
resend_interval = "1s"

[rules]
evaluate_every = "200ms"
for = "1s"
clear_for = "1s"
offline_after = "5s"
season_start = "01-01"
season_end = "12-31"
outdoor_smoothing = "0s"

[simulator]
outdoor_temp = -10.0
noise = 0.05
publish_interval = "500ms"
indoor_sensors_per_loop = 3
{fault_toml}{no_sensors}
{"".join(_station(sid, company, free_port(), primary) for sid, company, primary in stations)}
"""
    return load_config(write_config(tmp_path, text))


def _am_alert(am: Any, **labels: str) -> dict[str, Any] | None:
    """The first Alertmanager alert whose labels include `labels`."""
    for alert in am.alerts():
        if all(alert["labels"].get(k) == v for k, v in labels.items()):
            return alert  # type: ignore[no-any-return]
    return None


async def test_pump_stop_cold_households_and_primary_shortage_reach_influxdb_and_alertmanager(
    tmp_path: Path, influxdb: Any, influx_db: str, alertmanager_factory: Any, mosquitto: MosquittoServer
) -> None:
    am = alertmanager_factory(AM_YAML)
    config = _config(tmp_path, influxdb, influx_db, am.url, mosquitto.url)
    async with Simulator(config, lag_s=2.0), running_service(Service(config)):
        # the pump: no circulation, critical, with the company's label; its water still looks warm
        pump = await wait_until(
            lambda: _am_alert(am, alertname="no_circulation", station="pump"), timeout=30, message="no_circulation"
        )
        assert pump["labels"]["severity"] == "critical"
        assert pump["labels"]["company"] == COMPANY_A and pump["labels"]["cause"] == "station"
        assert pump["labels"]["loop"] == "sec1" and pump["labels"]["district"] == "道里区"

        # the cold flats: indoor_low, critical below the refund tier, verdict by the sensors
        cold = await wait_until(
            lambda: _am_alert(am, alertname="indoor_low", station="cold", severity="critical"),
            timeout=30,
            message="indoor_low critical",
        )
        assert cold["labels"]["company"] == COMPANY_A and cold["labels"]["cause"] == "station"

        # the heat source: primary_shortage at the station, and its loop's alerts blame the heat source
        await wait_until(
            lambda: _am_alert(am, alertname="primary_shortage", station="short", loop="-"),
            timeout=30,
            message="primary_shortage",
        )
        short_loop = await wait_until(
            lambda: _am_alert(am, station="short", loop="sec1", cause="heat_source"),
            timeout=30,
            message="a loop alert of the short station with cause=heat_source",
        )
        assert short_loop["labels"]["company"] == COMPANY_B
        assert all(a["labels"].get("cause") == "heat_source" for a in am.alerts() if a["labels"]["station"] == "short")

        await _check_influxdb(influxdb, influx_db)


async def _check_influxdb(influxdb: Any, db: str) -> None:
    """loop_status fields and company tags (CONTRACT section 4), as stored."""

    def latest_status(station: str) -> dict[str, Any] | None:
        rows = influxdb.query(db, f"SELECT * FROM loop_status WHERE station = '{station}' ORDER BY time DESC LIMIT 1")
        return rows[0] if rows else None

    cold = await wait_until(
        lambda: (row := latest_status("cold")) and row.get("indoor_below_refund") == 2 and row,
        timeout=20,
        message="the cold loop's status with its sensors counted",
    )
    assert cold["company"] == COMPANY_A and cold["district"] == "道里区" and cold["loop"] == "sec1"
    assert cold["verdict"] == "sensors" and cold["status"] == "noncompliant" and cold["compliant"] is False
    assert cold["indoor_sensors"] == 3 and cold["indoor_below_target"] == 3
    assert 13.0 < cold["measured_indoor_temp"] < 15.0  # the median of 18, 14, 14
    assert cold["beyond_design"] is False and cold["setback"] is False

    pump = latest_status("pump")
    assert pump is not None and pump["company"] == COMPANY_A
    assert pump["verdict"] in ("estimate", "none") and pump["estimated_indoor_temp"] is None  # no standing water
    short = latest_status("short")
    assert short is not None and short["company"] == COMPANY_B and short["verdict"] == "estimate"

    telemetry = influxdb.query(
        db, "SELECT last(pump_running), last(flow) FROM telemetry WHERE station = 'pump' GROUP BY company"
    )
    assert telemetry and telemetry[0]["company"] == COMPANY_A
    assert telemetry[0]["last"] == 0.0 and telemetry[0]["last_1"] < 1.0
    events = influxdb.query(db, "SELECT * FROM alert_events WHERE rule = 'no_circulation' AND state = 'firing'")
    assert events and events[0]["company"] == COMPANY_A and events[0]["severity"] == "critical"
