"""The demo's generated config: the weather held still with --outdoor, else by the clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from stationmon.config import parse_config_text
from stationmon.sim.district import DemoPlan, build_demo_config, demo_stations


@pytest.mark.parametrize("outdoor", [-12.0, 0.5, None])
def test_outdoor_is_held_when_given_and_follows_the_clock_otherwise(outdoor: float | None) -> None:
    stations = demo_stations(2)
    plan = DemoPlan(
        workdir=Path("/nonexistent/demo"),
        http_listen="127.0.0.1:9640",
        mqtt_url="mqtt://127.0.0.1:1883",
        influx_url=None,
        mqtt_protocol="5",
        modbus_ports={st.id: 5020 + i for i, st in enumerate(stations)},
        outdoor_temp=outdoor,
    )
    config = parse_config_text(build_demo_config(stations, plan), "demo.toml", require_influxdb=False)
    assert config.simulator.outdoor_temp == outdoor
