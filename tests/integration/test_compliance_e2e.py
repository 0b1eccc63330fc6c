"""End to end: a PLC served by pymodbus -> Service (Modbus poller, evaluator, real influxd) -> alert_events.

An under-supplied radiator loop (41/34 °C at -10 °C where the curve asks for 58.8/42.2) raises
`supply_low`; a floor loop with the same water stays compliant. A restart with the saved state does not
fire the alert again; warm water resolves it; a dead PLC gives one `station_offline`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stationmon.config import load_config
from stationmon.domain.registers import encode_value
from stationmon.service import Service
from tests.helpers import free_port, running_service, wait_until, write_config
from tests.stations_toml import loop_entry, outdoor, station_toml, water

STATION = "daoli-youyi-334"


def _config(tmp_path: Path, influx_url: str, db: str, modbus_port: int) -> Path:
    station = station_toml(
        STATION,
        port=modbus_port,
        district="道里区",
        interval="300ms",
        timeout="250ms",
        loops=[loop_entry("rad", design=(75.0, 50.0)), loop_entry("floor", "floor", design=(50.0, 40.0))],
        points=[
            outdoor(type="int16", scale=0.1),
            *water("rad", supply=100, ret=102, type="float32"),
            *water("floor", supply=110, ret=112, type="float32"),
        ],
    )
    return write_config(
        tmp_path,
        f"""
state_dir = "{tmp_path}/state"

[site]
outdoor_design = -24.2

[influxdb]
url = "{influx_url}"
api = "v1"
database = "{db}"
spool_dir = "{tmp_path}/spool"
flush_interval = "100ms"

[http]
listen = "127.0.0.1:{free_port()}"

[rules]
evaluate_every = "200ms"
for = "1s"
clear_for = "1s"
offline_after = "2s"
season_start = "01-01"
season_end = "12-31"
outdoor_smoothing = "0s"
water_smoothing = "0s"  # issue 12: the default 30 min mean would hold the fast test for half an hour

{station}""",
    )


def _set_water(server: Any, address: int, supply: float, ret: float) -> None:
    server.set_holding(address, encode_value(supply, "float32", "ABCD"))
    server.set_holding(address + 2, encode_value(ret, "float32", "ABCD"))


def _events(influxdb: Any, db: str, where: str = "") -> list[dict[str, Any]]:
    q = 'SELECT "state", "value", "threshold", "message", "alert_id", rule, loop, severity, district FROM alert_events'
    return influxdb.query(db, q + (f" WHERE {where}" if where else ""))


async def test_undersupplied_loop_fires_supply_low_survives_restart_and_resolves(  # type: ignore[no-untyped-def]
    tmp_path, influxdb, influx_db, modbus_server_factory
):
    server = await modbus_server_factory()
    server.set_holding(0, encode_value(-100, "int16", "ABCD"))  # -10.0 °C
    _set_water(server, 100, 41.0, 34.0)  # radiator loop: far too cold
    _set_water(server, 110, 41.0, 34.0)  # floor loop: enough
    config = _config(tmp_path, influxdb.url, influx_db, server.port)

    def supply_low_firing() -> list[dict[str, Any]]:
        return _events(influxdb, influx_db, "rule = 'supply_low' AND \"state\" = 'firing'")

    async with running_service(Service(load_config(config))) as service:
        [fired] = await wait_until(supply_low_firing, timeout=30, message="supply_low firing in alert_events")
        assert fired["loop"] == "rad" and fired["district"] == "道里区" and fired["severity"] == "warning"
        assert fired["value"] == 41.0
        assert abs(fired["threshold"] - 57.75) < 0.05  # 58.75 required at -10 °C, less the 1 K margin
        assert "below" in fired["message"]
        alert_id = fired["alert_id"]
        assert [a.id for a in service.evaluator.alerts.active_alerts() if a.rule == "supply_low"] == [alert_id]
        status = service.evaluator.loop_status
        assert status[(STATION, "rad")].status == "noncompliant"
        assert status[(STATION, "floor")].status == "ok"

        def statuses() -> dict[str, set[str]]:
            rows = influxdb.query(influx_db, 'SELECT "status", "compliant", loop FROM loop_status')
            out: dict[str, set[str]] = {}
            for row in rows:
                out.setdefault(row["loop"], set()).add(f"{row['status']}/{row['compliant']}")
            return out

        await wait_until(
            lambda: (
                {"noncompliant/False"} <= statuses().get("rad", set()) and {"ok/True"} <= statuses().get("floor", set())
            ),
            timeout=20,
            message="loop_status rows for both loops",
        )
        # floor loop: no compliance alert at all
        assert not _events(influxdb, influx_db, "loop = 'floor'")

    state_file = tmp_path / "state" / "alerts.json"
    assert state_file.exists()

    # restart with the loop still cold: the alert is remembered, not fired again
    async with running_service(Service(load_config(config))) as service:
        await wait_until(
            lambda: service.evaluator.last_tick is not None and service.evaluator.results is not None,
            timeout=20,
            message="first evaluation after restart",
        )
        assert [a.id for a in service.evaluator.alerts.active_alerts() if a.rule == "supply_low"] == [alert_id]
        # well past `for`: still exactly one firing event in the database
        ticks = service.evaluator.last_tick
        await wait_until(lambda: service.evaluator.last_tick >= ticks + 2.0, timeout=20, message="2 s of ticks")
        assert len(supply_low_firing()) == 1

        # warm water: resolved after clear_for, same alert id
        _set_water(server, 100, 62.0, 44.0)

        def resolved() -> list[dict[str, Any]]:
            return _events(influxdb, influx_db, "rule = 'supply_low' AND \"state\" = 'resolved'")

        [done] = await wait_until(resolved, timeout=30, message="supply_low resolved in alert_events")
        assert done["alert_id"] == alert_id and done["value"] == 62.0
        await wait_until(
            lambda: service.evaluator.loop_status[(STATION, "rad")].status == "ok", timeout=20, message="rad ok"
        )
        assert len(supply_low_firing()) == 1


async def test_dead_plc_raises_one_station_offline(  # type: ignore[no-untyped-def]
    tmp_path, influxdb, influx_db, modbus_server_factory
):
    server = await modbus_server_factory()
    server.set_holding(0, encode_value(-100, "int16", "ABCD"))
    _set_water(server, 100, 62.0, 44.0)
    _set_water(server, 110, 41.0, 34.0)
    config = _config(tmp_path, influxdb.url, influx_db, server.port)
    async with running_service(Service(load_config(config))) as service:
        await wait_until(
            lambda: (
                service.evaluator.results is not None and service.evaluator.loop_status[(STATION, "rad")].status == "ok"
            ),
            timeout=20,
            message="loops judged ok",
        )
        await server.stop()
        offline = await wait_until(
            lambda: _events(influxdb, influx_db, "rule = 'station_offline' AND \"state\" = 'firing'"),
            timeout=30,
            message="station_offline firing",
        )
        assert len(offline) == 1 and offline[0]["loop"] is None and offline[0]["severity"] == "major"
        assert service.evaluator.loop_status[(STATION, "floor")].status == "offline"
        # the outage is one alert: no loop alerts
        assert {e["rule"] for e in _events(influxdb, influx_db)} == {"station_offline"}
        await server.start()
        await wait_until(
            lambda: _events(influxdb, influx_db, "rule = 'station_offline' AND \"state\" = 'resolved'"),
            timeout=30,
            message="station_offline resolved once the PLC answers again",
        )
