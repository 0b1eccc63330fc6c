"""The simulator's pure half: heating curve, controller, faults, register images, MQTT payloads."""

from __future__ import annotations

import json

import pytest

from stationmon.config import Config, parse_config_text
from stationmon.domain.plant import Loop, Site
from stationmon.domain.registers import decode_point
from stationmon.errors import ConfigError
from stationmon.sim.physics import (
    COLDEST_HOUR,
    KW_PER_M3H_K,
    OVERFLOW,
    StationSim,
    daily_cycle,
    emitted_kw,
    loop_design,
    outdoor_temp_at,
    register_image,
    required_temps,
)
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
    # the energy balance holds: the same heat over 2.5 x the water, the flats as warm as without the fault
    healthy = StationSim(cfg.stations[0], cfg.site, _config().simulator, T0, lag_s=20.0)
    _run(healthy, 200)
    state, normal = sim.loops["rad"], healthy.loops["rad"]
    assert state.heat_kw == pytest.approx(normal.heat_kw, rel=0.01)
    assert state.indoor == pytest.approx(normal.indoor, abs=0.05)
    assert state.supply - state.ret == pytest.approx((normal.supply - normal.ret) / OVERFLOW, rel=0.02)
    assert state.supply < normal.supply and state.ret > normal.ret


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


# -- sizing, energy balance and the fault kinds of issue 12 ----------------------------------------------

SEED = """
[site]
indoor_target = 20.0
[[stations]]
id = "daoli-youyi-334"
area_m2 = 160000
households = 3000
[[stations.loops]]
id = "sec1"
emitter = "floor"
design_supply = 50.0
design_return = 40.0
[[stations.loops]]
id = "rad"
emitter = "radiator"
design_supply = 75.0
design_return = 50.0
[simulator]
outdoor_temp = -10.0
noise = 0.0
indoor_sensors_per_loop = 3
{extra}
"""


def _seed(extra: str = "", **kw: float) -> tuple[Config, StationSim]:
    cfg = parse_config_text(SEED.format(extra=extra), require_influxdb=False)
    return cfg, StationSim(cfg.stations[0], cfg.site, cfg.simulator, T0, **kw)


def _fault(kind: str, loop: str | None = "rad", start: str = "0s", duration: str = "2h") -> str:
    where = f'loop = "{loop}"\n' if loop else ""
    window = f'start = "{start}"\nduration = "{duration}"'
    window = f'start = "{start}"\nduration = "{duration}"'
    return f'[[simulator.faults]]\nstation = "daoli-youyi-334"\n{where}kind = "{kind}"\n{window}'


def test_design_flow_is_sized_from_area_as_domain_md_says() -> None:
    # one loop serving all 160,000 m²: about 7 MW and, at a 10 K design ΔT, 600-700 m³/h
    loop = Loop("sec1", emitter="floor", design_supply=50.0, design_return=40.0, exponent=1.1)
    design = loop_design(loop, 160_000.0)
    assert 6400.0 <= design.heat_kw <= 8000.0
    assert 600.0 <= design.flow <= 700.0
    assert design.flow * KW_PER_M3H_K * 10.0 == pytest.approx(design.heat_kw)
    # the station's area is shared by its loops; a radiator loop's wider ΔT needs less water per kW
    _cfg, sim = _seed()
    floor, rad = sim.loops["sec1"].design, sim.loops["rad"].design
    assert floor.heat_kw == rad.heat_kw == pytest.approx(80_000 * 45.0 / 1000.0)
    assert rad.flow == pytest.approx(floor.flow * 10.0 / 25.0)


def test_steady_state_follows_the_curve_and_balances_heat() -> None:
    cfg, sim = _seed()
    _run(sim, 600, step=5.0)
    station = cfg.stations[0]
    for loop in station.loops:
        state = sim.loops[loop.id]
        req_supply, req_return = required_temps(loop, cfg.site, -10.0)
        assert state.supply == pytest.approx(req_supply + sim.setpoint_margin, abs=0.05)
        assert req_return < state.ret < req_return + sim.setpoint_margin + 0.5
        # the water gives what the emitters emit and the flats lose: a little above the 20 °C target
        loss = sim._ua(state.design) * (state.indoor + 10.0)
        assert state.heat_kw == pytest.approx(loss, rel=0.01)
        emitted = emitted_kw(loop, state.design, cfg.site, state.supply, state.ret, state.indoor)
        assert state.heat_kw == pytest.approx(emitted, rel=0.01)
        assert 20.0 < state.indoor < 21.5


@pytest.mark.parametrize("kind", ["undersupply", "low_delta_t", "pump_stop", "primary_shortage", "cold_households"])
def test_every_fault_keeps_the_energy_balance(kind: str) -> None:
    loop = None if kind == "primary_shortage" else "rad"
    cfg, sim = _seed(_fault(kind, loop))
    _run(sim, 4 * 3600, step=30.0)  # long past the building's time constant: steady again
    for lp in cfg.stations[0].loops:
        state = sim.loops[lp.id]
        assert state.heat_kw == pytest.approx(sim._ua(state.design) * (state.indoor + 10.0), rel=0.02, abs=1.0)
        if state.pump_running:
            assert state.heat_kw == pytest.approx(state.flow * KW_PER_M3H_K * (state.supply - state.ret))


def test_pump_stop_stops_flow_keeps_the_probes_warm_a_while_and_cools_the_flats() -> None:
    _cfg, sim = _seed(_fault("pump_stop", start="60s"))
    _run(sim, 59)
    before = sim.values()
    assert before[("rad", None, "pump_running")] == 1.0 and before[("rad", None, "flow")] > 100.0
    _run(sim, 300)
    v = sim.values()
    assert v[("rad", None, "pump_running")] == 0.0
    assert v[("rad", None, "flow")] < 1.0
    assert v[("rad", None, "heat_power")] == 0.0
    # five minutes on, the standing water at the station's probes is still warm ...
    assert v[("rad", None, "supply_temp")] > before[("rad", None, "supply_temp")] - 10.0
    # ... while the flats have cooled and the pump's head is gone
    assert sim.loops["rad"].indoor < 19.0
    assert abs(v[("rad", None, "supply_pressure")] - v[("rad", None, "return_pressure")]) < 0.02
    assert v[("sec1", None, "pump_running")] == 1.0  # the other loop runs on


def test_probe_sentinel_reports_850_on_the_supply_probe() -> None:
    _cfg, sim = _seed(_fault("probe_sentinel", start="10s", duration="20s"))
    _run(sim, 5)
    assert sim.values()[("rad", None, "supply_temp")] < 100.0
    _run(sim, 10)
    assert sim.values()[("rad", None, "supply_temp")] == 850.0
    assert sim.values()[("sec1", None, "supply_temp")] < 100.0
    _run(sim, 20)
    assert sim.values()[("rad", None, "supply_temp")] < 100.0


def test_outdoor_probe_fail_freezes_then_reports_the_sentinel_then_recovers() -> None:
    cfg = _config(
        '[[simulator.faults]]\nstation = "s1"\nkind = "outdoor_probe_fail"\nstart = "10s"\nduration = "100s"',
        noise=0.3,
    )
    sim = StationSim(cfg.stations[0], cfg.site, cfg.simulator, T0)
    _run(sim, 11)
    frozen = sim.values()[(None, None, "outdoor_temp")]
    _run(sim, 30)
    assert sim.values()[(None, None, "outdoor_temp")] == frozen  # noise 0.3 elsewhere, not here
    _run(sim, 20)  # past half the window: the PLC gives up on the probe
    assert sim.values()[(None, None, "outdoor_temp")] == -999.0
    _run(sim, 60)
    assert -12.0 < sim.values()[(None, None, "outdoor_temp")] < -8.0


def test_primary_shortage_leaves_the_primary_too_cool_for_the_curve() -> None:
    cfg, sim = _seed(_fault("primary_shortage", loop=None, start="60s"))
    _run(sim, 59)
    rad = cfg.stations[0].loops[1]
    required = required_temps(rad, cfg.site, -10.0)[0]
    assert sim.values()[(None, None, "primary_supply_temp")] > required + 10.0
    _run(sim, 1800, step=5.0)
    v = sim.values()
    primary = v[(None, None, "primary_supply_temp")]
    assert primary < required + 5.0 - 10.0  # cannot reach the required supply plus the exchanger's approach
    assert v[("rad", None, "supply_temp")] <= primary - 5.0 + 0.01
    assert v[(None, None, "primary_return_temp")] < primary
    assert sim.loops["rad"].indoor < 18.0  # the flats cool with it


def test_cold_households_sit_between_and_below_the_legal_tiers() -> None:
    _cfg, sim = _seed(_fault("cold_households", loop="sec1"))
    _run(sim, 30)
    v = sim.values()
    cold = [v[("sec1", s, "indoor_temp")] for s in ("h01", "h02", "h03")]
    assert 16.0 <= cold[0] < 20.0
    assert all(t < 16.0 for t in cold[1:])
    assert all(v[("rad", s, "indoor_temp")] > 18.5 for s in ("h01", "h02", "h03"))  # the other loop's flats
    assert sim.loops["sec1"].indoor > 20.0  # a blocked riser: the loop's other flats stay warm


def test_the_seeds_station_runs_41_34_with_warm_flats() -> None:
    extra = (
        '[[simulator.loops]]\nstation = "daoli-youyi-334"\nloop = "sec1"\nfixed_supply = 41.0\nemitter_capacity = 1.4'
    )
    _cfg, sim = _seed(extra)
    _run(sim, 300, step=5.0)
    v = sim.values()
    assert v[("sec1", None, "supply_temp")] == pytest.approx(41.0, abs=0.05)
    assert v[("sec1", None, "return_temp")] == pytest.approx(34.0, abs=1.0)
    # the design's water model would say about 18.6 °C; these emitters keep the flats at 21-22 °C
    assert 21.0 < sim.loops["sec1"].indoor < 22.5


def test_indoor_sensors_per_loop_can_be_overridden() -> None:
    extra = '[[simulator.loops]]\nstation = "daoli-youyi-334"\nloop = "rad"\nindoor_sensors = 0'
    _cfg, sim = _seed(extra)
    assert sim.indoor_sensors("sec1") == ["h01", "h02", "h03"] and sim.indoor_sensors("rad") == []
    assert ("rad", "h01", "indoor_temp") not in sim.values()


def test_the_daily_cycle_is_coldest_at_five_and_warmest_at_seventeen() -> None:
    hours = [h / 4 for h in range(96)]
    assert min(hours, key=daily_cycle) == COLDEST_HOUR == 5.0
    assert max(hours, key=daily_cycle) == 17.0
    # outdoor_temp_at uses Beijing time: 05:00 there is 21:00 UTC
    midnight_utc = 1_764_028_800.0  # 2025-11-25T00:00:00Z
    assert midnight_utc % 86400 == 0
    swing = [daily_cycle(((midnight_utc + h * 3600) / 3600 + 8) % 24) for h in range(24)]
    assert swing.index(min(swing)) == 21


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[[simulator.loops]]\nstation = "daoli-youyi-334"\nloop = "nope"', "simulator.loops[0].loop: unknown loop"),
        ('[[simulator.loops]]\nstation = "daoli-youyi-334"', "simulator.loops[0].loop: missing"),
        (
            '[[simulator.loops]]\nstation = "daoli-youyi-334"\nloop = "sec1"\nemitter_capacity = 9',
            "simulator.loops[0].emitter_capacity: 9 is out of range",
        ),
        (_fault("pump_stop", loop=None), "simulator.faults[0].loop: missing: a pump_stop fault needs the loop"),
        (_fault("melted", loop="sec1"), "simulator.faults[0].kind: unknown fault kind"),
    ],
)
def test_simulator_settings_are_validated(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(SEED.format(extra=extra), require_influxdb=False)
    assert any(message in line for line in info.value.problems), info.value.problems


def test_station_level_faults_need_no_loop() -> None:
    for kind in ("offline", "outdoor_probe_fail", "primary_shortage"):
        cfg = parse_config_text(SEED.format(extra=_fault(kind, loop=None)), require_influxdb=False)
        assert cfg.simulator.faults[0].kind == kind
