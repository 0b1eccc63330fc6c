"""The demo's district: N generated stations with Chinese names, their config as TOML, scheduled faults.

Station 0 is the seed's station (友谊路334号换热站: 160,000 m², 3,000 households, a floor loop run at a fixed 41 °C
supply that comes back near 34 °C, its flats warm on household sensors although the design's water model
calls the water too cool: so at Harbin's winter mean of -12 °C; in mild hours the flats are warmer, and
below about -16 °C the flats fall under 20 °C). The others rotate their kinds so that the demo shows every
encoding: float32 ABCD holding registers, int16 input registers with a scale, float32 CDAB with float64
flow, and stations reporting over MQTT only. Stations belong to three heating companies and draw on three
heat sources; household sensors report on the ABCD and MQTT stations' loops (their verdicts rest on the
sensors), not on the others (the estimate decides). The config is text, validated by stationmon.config like
any user's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FAULT_PLAN", "SEED_STATION_ID", "DemoPlan", "DemoStation", "build_demo_config", "demo_stations"]

DISTRICTS = (
    ("daoli", "道里区"),
    ("nangang", "南岗区"),
    ("daowai", "道外区"),
    ("xiangfang", "香坊区"),
    ("songbei", "松北区"),
)
STREETS = (
    ("youyi", "友谊路"),
    ("jingwei", "经纬街"),
    ("anjing", "安静街"),
    ("zhongyang", "中央大街"),
    ("hongjun", "红军街"),
    ("xidazhi", "西大直街"),
    ("xuefu", "学府路"),
    ("hexing", "和兴路"),
    ("tongjiang", "通江街"),
    ("jingyu", "靖宇街"),
    ("zhujiang", "珠江路"),
    ("changjiang", "长江路"),
    ("huanghe", "黄河路"),
    ("haping", "哈平路"),
    ("xinyang", "新阳路"),
    ("jianguo", "建国街"),
)

COMPANIES = (  # (heating company, its heat source)
    ("冰城热力有限公司", "哈尔滨第一热电厂"),
    ("松江供热集团", "松江热电厂"),
    ("北岸热力公司", "北岸区域锅炉房"),
)
SEED_STATION_ID = "daoli-youyi-334"

# Faults by station index: (kind, loop index or None, start, duration). Chosen so every kind shows in the
# first 30 s, and the offline station and the outdoor probe come back so resolutions show too.
FAULT_PLAN = {
    1: ("undersupply", 0, "2s", "1h"),
    2: ("swapped_sensors", 0, "0s", "1h"),
    3: ("cold_households", 0, "0s", "1h"),
    4: ("offline", None, "3s", "20s"),
    5: ("low_delta_t", 0, "0s", "1h"),
    6: ("pump_stop", 0, "2s", "1h"),
    7: ("flatline", 0, "0s", "1h"),
    8: ("primary_shortage", None, "0s", "1h"),
    9: ("probe_sentinel", 0, "0s", "1h"),
    10: ("outdoor_probe_fail", None, "0s", "2m"),
}

Value = str | int | float


@dataclass(frozen=True, slots=True)
class DemoStation:
    """One generated station: its id, names and the shape of its telemetry."""

    index: int
    id: str
    name: str
    district: str
    kind: str  # "seed", "float_abcd", "int16_input", "float_cdab", "mqtt"
    company: str = ""
    heat_source: str = ""
    area_m2: float = 0.0
    households: int = 0

    @property
    def household_sensors(self) -> bool:
        """True where household thermometers report (their verdict rests on sensors)."""
        return self.kind in ("seed", "float_abcd", "mqtt")


def demo_stations(n: int) -> list[DemoStation]:
    """N stations spread over Harbin's districts with Chinese names; the seed's station first, then the
    map kinds rotate; companies by district, areas of 30,000–150,000 m² at about 55 m² per household."""
    kinds = ("float_abcd", "int16_input", "float_cdab", "mqtt")
    out = []
    for i in range(n):
        d_id, d_name = DISTRICTS[i % len(DISTRICTS)]
        company, heat_source = COMPANIES[(i % len(DISTRICTS)) * len(COMPANIES) // len(DISTRICTS)]
        if i == 0:
            out.append(
                DemoStation(
                    0, SEED_STATION_ID, "友谊路334号换热站", d_name, "seed", company, heat_source, 160_000.0, 3000
                )
            )
            continue
        s_id, s_name = STREETS[(i * 7) % len(STREETS)]
        number = 11 + (i * 37) % 380
        area = 30_000.0 + 10_000.0 * ((i * 7) % 13)
        out.append(
            DemoStation(
                i,
                f"{d_id}-{s_id}-{number}",
                f"{s_name}{number}号换热站",
                d_name,
                kinds[i % len(kinds)],
                company,
                heat_source,
                area,
                round(area / 55.0),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """Where the demo's pieces listen."""

    workdir: Path
    http_listen: str
    mqtt_url: str
    influx_url: str | None
    mqtt_protocol: str
    modbus_ports: dict[str, int]
    outdoor_temp: float | None = None  # held still; None: Harbin's winter by the clock (sim.physics.outdoor_temp_at)
    http_token_file: Path | None = None  # the bearer token of acknowledgements; None: nobody can acknowledge


def _loops(st: DemoStation) -> list[tuple[str, str, float, float]]:
    if st.kind == "seed":
        return [("sec1", "floor", 50.0, 40.0)]
    if st.kind == "float_abcd":
        return [("high", "radiator", 75.0, 50.0), ("low", "floor", 50.0, 40.0)]
    if st.kind == "int16_input":
        return [("sec1", "radiator", 85.0, 60.0)]
    if st.kind == "float_cdab":
        return [("sec1", "floor", 45.0, 35.0)]
    return [("sec1", "radiator", 75.0, 50.0) if st.index % 8 == 3 else ("sec1", "floor", 50.0, 40.0)]


def _point(quantity: str, loop: str | None, **kw: Value) -> str:
    body = [f'  quantity = "{quantity}"'] + ([f'  loop = "{loop}"'] if loop else [])
    body += [f'  {k} = "{v}"' if isinstance(v, str) else f"  {k} = {v!r}" for k, v in kw.items()]
    return "  [[stations.points]]\n" + "\n".join(body)


def _points(st: DemoStation, loop_ids: list[str]) -> list[str]:
    """The station's points, by kind: each kind a different register map or transport."""
    p = _point
    if st.kind in ("float_abcd", "seed"):
        out = [p(q, None, address=a, type="float32") for q, a in (("outdoor_temp", 0), ("primary_supply_temp", 2))]
        out.append(p("primary_return_temp", None, address=4, type="float32"))
        for j, lid in enumerate(loop_ids):
            base = 100 + 10 * j
            out += [p(q, lid, address=base + 2 * k, type="float32") for k, q in enumerate(_WATER)]
            out.append(p("pump_running", lid, address=base + 6, type="uint16"))
        return out
    if st.kind == "int16_input":
        return [
            p("outdoor_temp", None, register="input", address=0, type="int16", scale=0.1),
            p("supply_temp", "sec1", register="input", address=10, type="int16", scale=0.1),
            p("return_temp", "sec1", register="input", address=11, type="int16", scale=0.1),
            p("flow", "sec1", register="input", address=12, type="uint16", scale=0.1),
            p("pump_running", "sec1", register="input", address=13, type="uint16"),
            p("heat_power", "sec1", address=200, type="float32"),
        ]
    if st.kind == "float_cdab":
        return [
            p("outdoor_temp", None, address=0, type="float32"),
            p("supply_temp", "sec1", address=20, type="float32"),
            p("return_temp", "sec1", address=22, type="float32"),
            p("supply_pressure", "sec1", address=24, type="float32", byte_order="ABCD"),
            p("return_pressure", "sec1", address=26, type="float32", byte_order="ABCD"),
            p("flow", "sec1", address=28, type="float64"),
            p("pump_running", "sec1", address=32, type="uint16"),
        ]
    topic = f"plc/{st.id}"
    as_json: dict[str, Value] = {"format": "json", "value": "data.value", "time": "data.ts"}
    return [
        p("outdoor_temp", None, topic=f"{topic}/outdoor"),
        p("supply_temp", "sec1", topic=f"{topic}/sec1/supply", **as_json),
        p("return_temp", "sec1", topic=f"{topic}/sec1/return", **as_json),
        p("flow", "sec1", topic=f"{topic}/sec1/flow"),
        p("pump_running", "sec1", topic=f"{topic}/sec1/pump"),
    ]


_WATER = ("supply_temp", "return_temp", "flow")


def _station_toml(st: DemoStation, plan: DemoPlan) -> str:
    lines = ["[[stations]]", f'id = "{st.id}"', f'name = "{st.name}"', f'district = "{st.district}"']
    lines += [f'company = "{st.company}"', f'heat_source = "{st.heat_source}"']
    lines += [f"area_m2 = {st.area_m2:g}", f"households = {st.households}"]
    if st.kind != "mqtt":
        order = "CDAB" if st.kind == "float_cdab" else "ABCD"
        lines += [
            "  [stations.modbus]",
            '  host = "127.0.0.1"',
            f"  port = {plan.modbus_ports[st.id]}",
            f"  device_id = {1 + st.index % 3}",
            '  interval = "2s"',
            '  timeout = "1s"',
            f'  byte_order = "{order}"',
        ]
    loops = _loops(st)
    for lid, emitter, ds, dr in loops:
        min_floor = "\n  min_supply = 41.0\n  min_return = 34.0" if emitter == "floor" and ds == 50.0 else ""
        lines.append(
            f'  [[stations.loops]]\n  id = "{lid}"\n  emitter = "{emitter}"\n'
            f"  design_supply = {ds}\n  design_return = {dr}{min_floor}"
        )
    return "\n".join(lines + _points(st, [lid for lid, *_rest in loops]))


_HEADER = """# Generated by `stationmon demo`: {n} simulated stations.
state_dir = "{workdir}"

[site]
name = "哈尔滨 demo district"
timezone = "Asia/Shanghai"
indoor_target = 20.0          # Heilongjiang's legal minimum
indoor_refund_below = 16.0    # below it the whole daily fee is refunded
outdoor_design = -24.2

[influxdb]
{influx}
flush_interval = "1s"

[mqtt]
url = "{mqtt_url}"
client_id = "stationmon-demo-{pid}"
protocol = "{mqtt_protocol}"
clean_start = true

[[mqtt.subscriptions]]
topic = "heat/{{station}}/{{loop}}/indoor/{{sensor}}"
format = "plain"
quantity = "indoor_temp"

[http]
listen = "{http_listen}"
history_window = "30m"      # the charts keep a point every 2.5 s, so a short demo draws lines
{http_token}
# Short timings so that alerts appear within the first 30 seconds (a real plant uses minutes).
[rules]
evaluate_every = "2s"
for = "5s"
clear_for = "8s"
offline_after = "8s"
season_start = "01-01"
season_end = "12-31"
outdoor_smoothing = "10m"
water_smoothing = "4s"     # the simulated faults move the water within seconds

[rules.sensor_fault]
flatline_window = "12s"
flatline_tolerance = 0.02
max_rate_per_min = 60.0     # the simulated faults move the water within seconds, a real plant in minutes

[simulator]
seed = 8
{outdoor}noise = 0.1
publish_interval = "2s"
indoor_sensors_per_loop = 3"""


def _sim_loops_toml(stations: list[DemoStation]) -> list[str]:
    """The seed station runs a fixed 41 °C on emitters that heat its flats better than the design
    says; stations without household thermometers get no simulated sensors."""
    out = []
    for st in stations:
        for lid, *_rest in _loops(st):
            if st.kind == "seed":
                settings = "fixed_supply = 41.0\nemitter_capacity = 1.4"
            elif not st.household_sensors:
                settings = "indoor_sensors = 0"
            else:
                continue
            out.append(f'[[simulator.loops]]\nstation = "{st.id}"\nloop = "{lid}"\n{settings}')
    return out


def _faults_toml(stations: list[DemoStation]) -> list[str]:
    by_index = {st.index: st for st in stations}
    out = []
    for index, (kind, loop_index, start, duration) in FAULT_PLAN.items():
        st = by_index.get(index)
        if st is None:
            continue
        loop = "" if loop_index is None else f'loop = "{_loops(st)[loop_index][0]}"\n'
        out.append(
            f'[[simulator.faults]]\nstation = "{st.id}"\n{loop}kind = "{kind}"\n'
            f'start = "{start}"\nduration = "{duration}"'
        )
    return out


def build_demo_config(stations: list[DemoStation], plan: DemoPlan) -> str:
    """The demo's config as TOML text (validated by the caller through stationmon.config)."""
    spool = plan.workdir / "spool"
    # without a url, readings stay in the local spool
    url = f'url = "{plan.influx_url}"\n' if plan.influx_url else ""
    header = _HEADER.format(
        n=len(stations),
        workdir=plan.workdir,
        influx=f'{url}api = "v1"\ndatabase = "stationmon"\nspool_dir = "{spool}"',
        mqtt_url=plan.mqtt_url,
        pid=os.getpid(),
        mqtt_protocol=plan.mqtt_protocol,
        http_listen=plan.http_listen,
        http_token=f'token_file = "{plan.http_token_file}"   # acknowledging alerts\n' if plan.http_token_file else "",
        outdoor=(
            f"outdoor_temp = {plan.outdoor_temp}   # held still (--outdoor)\n"
            if plan.outdoor_temp is not None
            else "# no outdoor_temp: Harbin's winter by the clock (a daily cycle around -12 °C, passing fronts)\n"
        ),
    )
    return "\n\n".join(
        [header, *_sim_loops_toml(stations), *_faults_toml(stations), *(_station_toml(st, plan) for st in stations)]
    )
