"""tests/stations_toml.py, the integration tests' station builder: what it writes is the station it says."""

from __future__ import annotations

import tomllib

from stationmon.config import parse_config_text
from tests.stations_toml import loop_entry, outdoor, point_entry, station_toml, water


def test_the_default_station_is_the_simulators_register_map_on_one_radiator_loop() -> None:
    st = parse_config_text(station_toml("alpha", port=5020, name="阿尔法换热站"), require_influxdb=False).stations[0]
    assert (st.id, st.name, st.district) == ("alpha", "阿尔法换热站", "")
    assert st.modbus is not None
    assert (st.modbus.host, st.modbus.port, st.modbus.interval_s, st.modbus.timeout_s) == ("127.0.0.1", 5020, 0.5, 0.4)
    assert [(lp.id, lp.emitter) for lp in st.loops] == [("sec1", "radiator")]
    got = [(p.loop, p.quantity, p.address, p.type) for p in st.points]
    assert got == [
        (None, "outdoor_temp", 0, "float32"),
        ("sec1", "supply_temp", 2, "float32"),
        ("sec1", "return_temp", 4, "float32"),
    ]


def test_every_value_given_is_written_and_none_leaves_the_key_out() -> None:
    text = station_toml(
        "s-1",
        port=1502,
        host=None,
        interval="300ms",
        timeout=None,
        modbus={"byte_order": "CDAB", "max_gap": 0, "one_request_per_point": True},
        loops=[loop_entry("floor", "floor", design=(50.0, 40.0)), loop_entry("bare", None)],
        points=[outdoor(register="input", type="int16", scale=0.1), *water("floor", 110, None, flow=114)],
        district='道里 "区"\\',
        area_m2=160000,
    )
    assert tomllib.loads(text) == {
        "stations": [
            {
                "id": "s-1",
                "district": '道里 "区"\\',
                "area_m2": 160000,
                "modbus": {
                    "port": 1502,
                    "interval": "300ms",
                    "byte_order": "CDAB",
                    "max_gap": 0,
                    "one_request_per_point": True,
                },
                "loops": [
                    {"id": "floor", "emitter": "floor", "design_supply": 50.0, "design_return": 40.0},
                    {"id": "bare"},
                ],
                "points": [
                    {"quantity": "outdoor_temp", "register": "input", "address": 0, "type": "int16", "scale": 0.1},
                    {"loop": "floor", "quantity": "supply_temp", "address": 110},
                    {"loop": "floor", "quantity": "flow", "address": 114},
                ],
            }
        ]
    }


def test_no_port_is_an_mqtt_station_and_a_string_is_a_topic() -> None:
    text = station_toml(
        "gamma",
        loops=[loop_entry("sec1", "floor")],
        points=[
            outdoor("plc/gamma/outdoor"),
            point_entry("supply_temp", "plc/gamma/sec1/supply", loop="sec1", format="json", value="data.v"),
        ],
    )
    mqtt = '[mqtt]\nurl = "mqtt://127.0.0.1:1883"\n'
    st = parse_config_text(mqtt + text, require_influxdb=False).stations[0]
    assert st.modbus is None
    assert [(p.quantity, p.topic, p.address, p.format, p.value_key) for p in st.points] == [
        ("outdoor_temp", "plc/gamma/outdoor", None, "plain", "value"),
        ("supply_temp", "plc/gamma/sec1/supply", None, "json", "data.v"),
    ]
