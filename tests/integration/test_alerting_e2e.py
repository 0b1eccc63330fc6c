"""The whole service: a station that stops answering fires station_offline, which reaches Alertmanager;
acknowledging it over the HTTP API needs the token, silences it in Alertmanager, and is recorded in
InfluxDB's alert_events. Real InfluxDB, Alertmanager, HTTP server; the station is a closed port.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp

from stationmon.config import load_config
from stationmon.service import Service
from tests.helpers import free_port, running_service, wait_until, write_config
from tests.stations_toml import loop_entry, station_toml, water

TOKEN = "t0ken-for-the-test"


def service_config(tmp_path: Path, influx: Any, db: str, am_url: str, http_port: int) -> Path:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    station = station_toml(
        "daoli-334",
        port=free_port(),
        district="daoli",
        interval="200ms",
        timeout="200ms",
        loops=[loop_entry("sec1", "floor")],
        points=water(supply=0, ret=None),
    )
    return write_config(
        tmp_path,
        f"""
[influxdb]
url = "{influx.url}"
api = "v1"
database = "{db}"
spool_dir = "{tmp_path / "spool"}"
flush_interval = "100ms"

[http]
listen = "127.0.0.1:{http_port}"
token_file = "{token_file}"

[[alerting.alertmanager]]
url = "{am_url}"
resend_interval = "1s"

[rules]
water_smoothing = "0s"
evaluate_every = "200ms"
for = "0s"
clear_for = "0s"
offline_after = "1s"
season_start = "01-01"
season_end = "12-31"

{station}""",
    )


def counter(service: Service, name: str, *labels: str) -> float:
    metric = service.metrics.get(name)
    return 0.0 if metric is None else float(metric.value(*labels))


async def am_silences(url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/api/v2/silences") as resp:
        assert resp.status == 200
        return list(await resp.json())


AM_YAML = """
route:
  receiver: none
  group_wait: 100ms
  group_interval: 200ms
receivers:
  - name: none
"""


async def test_ack_over_the_api(tmp_path: Path, influxdb: Any, influx_db: str, alertmanager_factory: Any) -> None:
    am = alertmanager_factory(AM_YAML)
    http_port = free_port()
    config = load_config(service_config(tmp_path, influxdb, influx_db, am.url, http_port))
    base = f"http://127.0.0.1:{http_port}"
    service = Service(config)
    async with running_service(service), aiohttp.ClientSession() as http:

        async def offline_alert() -> dict[str, Any] | None:
            try:
                async with http.get(f"{base}/api/v1/alerts") as resp:
                    alerts = (await resp.json())["alerts"]
            except aiohttp.ClientConnectionError:
                return None  # the server is still starting
            return next((a for a in alerts if a["rule"] == "station_offline"), None)

        alert = await wait_until(offline_alert, message="station_offline firing")
        await wait_until(
            lambda: any(a["labels"]["alertname"] == "station_offline" for a in am.alerts()),
            message="station_offline in Alertmanager",
        )
        url = f"{base}/api/v1/alerts/{alert['id']}/ack"
        body = {"by": "wang", "comment": "crew on the way"}
        async with http.post(url, json=body) as resp:
            assert resp.status == 401
        async with http.post(url, json=body, headers={"Authorization": "Bearer wrong"}) as resp:
            assert resp.status == 401
        async with http.post(url, json=body, headers={"Authorization": f"Token {TOKEN}"}) as resp:
            assert resp.status == 401
        async with http.post(
            f"{base}/api/v1/alerts/no-such-alert/ack", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as resp:
            assert resp.status == 404
        async with http.post(url, data=b"[1,2]", headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 400
        after_bad = await offline_alert()
        assert after_bad is not None and after_bad["acknowledged_by"] is None

        async with http.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 200
            assert (await resp.json())["acknowledged"]["acknowledged_by"] == "wang"
        acked = await offline_alert()
        assert acked is not None and acked["acknowledged_by"] == "wang" and acked["acknowledged_at"]
        [alertmanager] = service.notifiers
        await wait_until(lambda: alertmanager.pending == 0, message="the acknowledgement delivered")

        # a repeat: 200 with the acknowledgement as it was; nothing recorded, sent or changed
        sent = counter(service, "stationmon_alert_events_total", "station_offline", "acknowledged")
        async with http.post(url, json={"by": "li"}, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 200
            again = (await resp.json())["acknowledged"]
        assert (again["acknowledged_by"], again["comment"]) == ("wang", "crew on the way")
        assert again["acknowledged_at"] == acked["acknowledged_at"]
        repeated_at = time.time()
        await wait_until(lambda: alertmanager.pending == 0, message="anything queued delivered")
        silences = await am_silences(am.url)  # a second acknowledgement would expire and replace it
        assert [(s["createdBy"], s["status"]["state"]) for s in silences] == [("wang", "active")]
        assert counter(service, "stationmon_alert_events_total", "station_offline", "acknowledged") == sent
        still = await offline_alert()
        assert still is not None and (still["acknowledged_by"], still["comment"]) == ("wang", "crew on the way")

        # Alertmanager: the alert is silenced by the acknowledgement
        def silenced() -> bool:
            return any(
                a["labels"]["alertname"] == "station_offline" and a["status"]["state"] == "suppressed"
                for a in am.alerts()
            )

        await wait_until(silenced, message="the acknowledged alert silenced in Alertmanager")

        # InfluxDB: the transition is recorded
        def ack_rows() -> list[dict[str, Any]]:
            return influxdb.query(
                influx_db,
                "SELECT * FROM alert_events WHERE \"state\" = 'acknowledged' AND \"rule\" = 'station_offline'",
            )

        rows = await wait_until(ack_rows, message="the acknowledged event in alert_events")
        assert rows[0]["station"] == "daoli-334"
        # lines are stored in order: once a loop_status line from after the repeat is in, so is
        # anything the repeat would have written
        await wait_until(
            lambda: influxdb.query(influx_db, f"SELECT * FROM loop_status WHERE time > {int(repeated_at * 1e9)}"),
            message="a loop_status line written after the repeated acknowledgement",
        )
        assert len(ack_rows()) == 1
        firing = influxdb.query(influx_db, "SELECT * FROM alert_events WHERE \"state\" = 'firing'")
        assert any(r["rule"] == "station_offline" for r in firing)
