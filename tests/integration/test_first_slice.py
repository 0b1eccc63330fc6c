"""The first slice, as a user runs it: `stationmon run -c FILE` polls a PLC and stores into InfluxDB."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from stationmon.domain.registers import encode_value
from tests.helpers import free_port, wait_until, write_config
from tests.stations_toml import loop_entry, outdoor, point_entry, station_toml, water


def _config(tmp_path: Path, influx_url: str, db: str, modbus_port: int, http_port: int) -> Path:
    station = station_toml(
        "daoli-youyi-334",
        port=modbus_port,
        name="友谊路334号换热站",
        district="道里区",
        loops=[loop_entry("sec1", "floor", design=(50.0, 40.0))],
        points=[
            outdoor(type="int16", scale=0.1),
            *water(supply=100, ret=None, type="float32"),
            point_entry("return_temp", 102, loop="sec1", type="float32", byte_order="CDAB"),
        ],
    )
    return write_config(
        tmp_path,
        f"""
[site]
name = "slice"
outdoor_design = -24.2

[influxdb]
url = "{influx_url}"
api = "v1"
database = "{db}"
spool_dir = "{tmp_path}/spool"
flush_interval = "200ms"

[http]
listen = "127.0.0.1:{http_port}"

{station}""",
    )


async def test_run_polls_a_plc_into_influxdb_and_stops_on_sigterm(  # type: ignore[no-untyped-def]
    tmp_path, influxdb, influx_db, modbus_server_factory
):
    server = await modbus_server_factory()
    server.set_holding(0, encode_value(-103, "int16", "ABCD"))  # -10.3 °C scaled by 10
    server.set_holding(100, encode_value(41.25, "float32", "ABCD"))
    server.set_holding(102, encode_value(34.5, "float32", "CDAB"))
    config = _config(tmp_path, influxdb.url, influx_db, server.port, free_port())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stationmon", "run", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:

        def rows() -> list[dict[str, object]]:
            return influxdb.query(
                influx_db,
                "SELECT outdoor_temp, supply_temp, return_temp, station, district, loop, source FROM telemetry",
            )

        def have_both_levels() -> bool:
            got = rows()
            return any(r["supply_temp"] is not None for r in got) and any(r["outdoor_temp"] is not None for r in got)

        await wait_until(have_both_levels, timeout=30, message="readings in InfluxDB")
        got = rows()
        loop_rows = [r for r in got if r["supply_temp"] is not None]
        station_rows = [r for r in got if r["outdoor_temp"] is not None]
        assert loop_rows[0]["supply_temp"] == 41.25
        assert loop_rows[0]["return_temp"] == 34.5
        assert loop_rows[0]["station"] == "daoli-youyi-334"
        assert loop_rows[0]["district"] == "道里区"
        assert loop_rows[0]["loop"] == "sec1"
        assert loop_rows[0]["source"] == "modbus"
        assert abs(station_rows[0]["outdoor_temp"] - (-10.3)) < 1e-9  # type: ignore[operator]
        assert station_rows[0]["loop"] is None  # station-level: no loop tag
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
            raise AssertionError(f"stationmon did not stop on SIGTERM: {err.decode()[-2000:]}") from None
    assert proc.returncode == 0, err.decode()[-3000:]
    assert b"Traceback" not in err
