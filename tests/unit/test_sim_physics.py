"""The simulator's pure half: heating curve, controller, faults, register images, MQTT payloads."""

from __future__ import annotations

import json

import pytest

from stationmon.config import Config, parse_config_text
from stationmon.domain.plant import Loop, Site
from stationmon.domain.registers import decode_point
from stationmon.sim.physics import StationSim, outdoor_temp_at, register_image, required_temps
from stationmon.sim.serve import mqtt_messages, sensor_topic_templates

T0 = 1_764_000_000.0


def _config(faults: str = "", extra: str = "", noise: float = 0.0) -> Config:
    return parse_config_text(
        f"""
[mqtt]
url = "mqtt://127.0.0.1:1883"
[[mqtt.subscriptions]]
topic = "heat/{{station}}/{{loop}}/indoor/{{sensor}}"
quantity = "indoor_temp"

[[stations]]
id = "s1"
[stations.modbus]
port = 1502
[[stations.loops]]
id = "floor"
emitter = "floor"
design_supply = 50.0
design_return = 40.0
[[stations.loops]]
id = "rad"
emitter = "radiator"
design_supply = 75.0
design_return = 50.0
[[stations.points]]
quantity = "outdoor_temp"
register = "input"
address = 0
type = "int16"
scale = 0.1
[[stations.points]]
loop = "floor"
quantity = "supply_temp"
address = 10
type = "float32"
byte_order = "CDAB"
[[stations.points]]
loop = "floor"
quantity = "return_temp"
address = 12
type = "float64"
byte_order = "DCBA"
[[stations.points]]
loop = "rad"
quantity = "supply_temp"
address = 20
type = "uint16"
scale = 0.01
[[stations.points]]
loop = "rad"
quantity = "return_temp"
address = 21
type = "int32"
byte_order = "BADC"
scale = 0.001
offset = 10.0
[[stations.points]]
loop = "rad"
quantity = "flow"
topic = "plc/s1/rad/flow"
format = "json"
value = "data.value"
time = "data.ts"
[[stations.points]]
loop = "floor"
quantity = "flow"
topic = "plc/s1/floor/flow"

[simulator]
outdoor_temp = -10.0
noise = {noise}
indoor_sensors_per_loop = 2
{faults}
{extra}
""",
        require_influxdb=False,
    )


def _run(sim: StationSim, seconds: float, step: float = 1.0) -> None:
    t = sim.now
    end = t + seconds
    while t < end:
        t += step
        sim.step(t)


@pytest.mark.parametrize(
    ("design", "emitter", "outdoor", "expected"),
    [
        ((95.0, 70.0), 1.3, -15.0, (81.2, 61.6)),
        ((75.0, 50.0), 1.3, -10.0, (58.8, 42.2)),
        ((50.0, 40.0), 1.1, 0.0, (32.6, 28.3)),
        ((45.0, 35.0), 1.1, 5.0, (27.1, 24.0)),
        ((75.0, 50.0), 1.3, -24.2, (75.0, 50.0)),
    ],
)
def test_required_temps_match_the_domain_table(
    design: tuple[float, float], emitter: float, outdoor: float, expected: tuple[float, float]
) -> None:
    loop = Loop("l", design_supply=design[0], design_return=design[1], exponent=emitter)
    supply, ret = required_temps(loop, Site(), outdoor)
    assert supply == pytest.approx(expected[0], abs=0.05)
    assert ret == pytest.approx(expected[1], abs=0.05)


def test_outdoor_has_a_daily_cycle_and_fronts_and_is_deterministic() -> None:
    day = [outdoor_temp_at(T0 + h * 3600.0, seed=3) for h in range(24)]
    assert max(day) - min(day) > 4.0  # a daily swing
    assert all(-40.0 < t < 10.0 for t in day)
    assert day == [outdoor_temp_at(T0 + h * 3600.0, seed=3) for h in range(24)]
    # fronts: daily means differ over a week
    means = [sum(outdoor_temp_at(T0 + d * 86400 + h * 3600, seed=3) for h in range(24)) / 24 for d in range(7)]
    assert max(means) - min(means) > 2.0
    assert outdoor_temp_at(T0, seed=1) != outdoor_temp_at(T0, seed=2)


def test_controller_follows_the_curve_with_lag() -> None:
    cfg = _config()
    sim = StationSim(cfg.stations[0], cfg.site, cfg.simulator, T0, lag_s=20.0)
    req_supply, req_return = required_temps(cfg.stations[0].loops[1], cfg.site, -10.0)
    _run(sim, 300)
    values = sim.values()
    # runs a little above the curve, never below it
    assert req_supply < values[("rad", None, "supply_temp")] < req_supply + 3.0
    assert req_return < values[("rad", None, "return_temp")] < req_return + 3.0
    assert values[(None, None, "outdoor_temp")] == -10.0
    assert values[("rad", None, "flow")] > 0
    assert values[("rad", None, "heat_power")] > 0
    assert {("floor", "h01", "indoor_temp"), ("floor", "h02", "indoor_temp")} <= set(values)


def test_undersupply_drops_below_the_curve_with_lag_and_recovers() -> None:
    fault = '[[simulator.faults]]\nstation = "s1"\nloop = "rad"\nkind = "undersupply"\nstart = "60s"\nduration = "5m"'
    cfg = _config(fault)
    sim = StationSim(cfg.stations[0], cfg.site, cfg.simulator, T0, lag_s=20.0)
    req_supply, _ = required_temps(cfg.stations[0].loops[1], cfg.site, -10.0)
    _run(sim, 59)
    before = sim.values()[("rad", None, "supply_temp")]
    assert before > req_supply
    sim.step(sim.now + 2)
    assert sim.values()[("rad", None, "supply_temp")] > req_supply - 5  # lag: not at once
    _run(sim, 120)
    assert sim.values()[("rad", None, "supply_temp")] < req_supply - 5.0
    assert sim.values()[("rad", None, "return_temp")] < required_temps(cfg.stations[0].loops[1], cfg.site, -10.0)[1]
    # the other loop is untouched
    assert sim.values()[("floor", None, "supply_temp")] > required_temps(cfg.stations[0].loops[0], cfg.site, -10.0)[0]
    _run(sim, 400)
    assert sim.fault_of("rad") is None
    assert sim.values()[("rad", None, "supply_temp")] > req_supply


def test_flatline_freezes_the_sensors_while_the_water_changes() -> None:
    fault = '[[simulator.faults]]\nstation = "s1"\nloop = "floor"\nkind = "flatline"\nduration = "10m"'
    cfg = _config(fault, noise=0.2)
    sim = StationSim(cfg.stations[0], cfg.site, cfg.simulator, T0)
    sim.step(T0 + 1)
    first = sim.values()
    _run(sim, 100)
    later = sim.values()
    assert later[("floor", None, "supply_temp")] == first[("floor", None, "supply_temp")]
    assert later[("floor", None, "return_temp")] == first[("floor", None, "return_temp")]
    assert later[("rad", None, "supply_temp")] != first[("rad", None, "supply_temp")]  # noise elsewhere


def test_swapped_sensors_report_return_above_supply() -> None:
    fault = '[[simulator.faults]]\nstation = "s1"\nloop = "floor"\nkind = "swapped_sensors"'
    cfg = _config(fault)
    sim = StationSim(cfg.stations[0], cfg.site, cfg.simulator, T0)
    _run(sim, 10)
    v = sim.values()
    assert v[("floor", None, "supply_temp")] < v[("floor", None, "return_temp")] - 3.0
    assert v[("floor", None, "flow")] > 0


def test_low_delta_t_raises_flow_and_narrows_delta_t() -> None:
    fault = '[[simulator.faults]]\nstation = "s1"\nloop = "rad"\nkind = "low_delta_t"\nstart = "0s"'
    cfg = _config(fault)
    sim = StationSim(cfg.stations[0], cfg.site, cfg.simulator, T0, lag_s=20.0)
    design_flow = sim.loops["rad"].design_flow
    _run(sim, 200)
    v = sim.values()
    loop = cfg.stations[0].loops[1]
    expected_dt = required_temps(loop, cfg.site, -10.0)
    dt = v[("rad", None, "supply_temp")] - v[("rad", None, "return_temp")]
    assert 0 < dt < 0.5 * (expected_dt[0] - expected_dt[1])
    assert v[("rad", None, "flow")] > 2 * design_flow


def test_offline_holds_for_its_window() -> None:
    fault = '[[simulator.faults]]\nstation = "s1"\nkind = "offline"\nstart = "30s"\nduration = "60s"'
    cfg = _config(fault)
    sim = StationSim(cfg.stations[0], cfg.site, cfg.simulator, T0)
    assert not sim.offline(T0 + 29.9)
    assert sim.offline(T0 + 30)
    assert sim.offline(T0 + 89.9)
    assert not sim.offline(T0 + 90)


def test_register_image_decodes_to_the_model_values_in_every_encoding() -> None:
    cfg = _config()
    station = cfg.stations[0]
    sim = StationSim(station, cfg.site, cfg.simulator, T0)
    _run(sim, 50)
    values = sim.values()
    image = register_image(station, values)
    assert set(image["input"]) == {0}
    assert set(image["holding"]) == {10, 11, 12, 13, 14, 15, 20, 21, 22}
    for point in station.modbus_points:
        assert point.address is not None
        regs = [image[point.register][point.address + i] for i in range(point.width)]
        decoded, fault = decode_point(point, regs)
        assert fault is None
        expected = values[(point.loop, None, point.quantity)]
        # integers carry the point's resolution (scale); floats lose only float32 precision
        tolerance = point.scale / 2 + 1e-9 if point.type.startswith(("int", "uint")) else 1e-4
        assert decoded == pytest.approx(expected, abs=tolerance), point


def test_register_image_clamps_integers_to_their_type() -> None:
    cfg = _config()
    station = cfg.stations[0]
    values = {(None, None, "outdoor_temp"): -99999.0}
    image = register_image(station, values)
    assert image["input"][0] == 0x8000  # int16 minimum, not an overflow


def test_mqtt_messages_follow_each_point_format_and_the_sensor_template() -> None:
    cfg = _config()
    station = cfg.stations[0]
    values = {("rad", None, "flow"): 31.25, ("floor", None, "flow"): 12.5, ("floor", "h01", "indoor_temp"): 19.5}
    templates = sensor_topic_templates(cfg.mqtt)
    assert templates == [("heat/{station}/{loop}/indoor/{sensor}", "plain", "value", "")]
    msgs = dict(mqtt_messages(station, values, 1700000000.5, {"floor": ["h01"]}, templates))
    assert json.loads(msgs["plc/s1/rad/flow"]) == {"data": {"value": 31.25, "ts": 1700000000.5}}
    assert msgs["plc/s1/floor/flow"] == b"12.5"
    assert msgs["heat/s1/floor/indoor/h01"] == b"19.5"
