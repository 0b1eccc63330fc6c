"""`[simulator]` with its `[[simulator.loops]]` and `[[simulator.faults]]`: what `stationmon simulate` serves."""

from __future__ import annotations

from collections.abc import Mapping

from stationmon.config.reader import Table, suggest
from stationmon.config.schema import FAULT_KINDS, STATION_FAULT_KINDS, FaultConfig, SimLoopConfig, SimulatorConfig
from stationmon.domain.plant import Station

__all__ = ["read_simulator"]


def read_simulator(root: Table, stations: Mapping[str, Station]) -> SimulatorConfig:
    """`[simulator]`; faults and loop settings must name configured stations and loops."""
    d = SimulatorConfig()
    t = root.table("simulator")
    if t is None:
        return d
    faults = [fault for _, ft in t.tables("faults") if (fault := _fault(ft, stations)) is not None]
    loops = [loop for _, lt in t.tables("loops") if (loop := _sim_loop(lt, stations)) is not None]
    cfg = SimulatorConfig(
        outdoor_temp=t.number("outdoor_temp", d.outdoor_temp, lo=-50.0, hi=45.0),
        seed=t.integer("seed", d.seed),
        noise=t.number("noise", d.noise, lo=0.0, hi=5.0),
        publish_interval_s=t.duration("publish_interval", d.publish_interval_s, allow_zero=False),
        indoor_sensors_per_loop=t.integer("indoor_sensors_per_loop", d.indoor_sensors_per_loop, lo=0, hi=100),
        building_time_constant_s=t.duration("building_time_constant", d.building_time_constant_s, allow_zero=False),
        faults=tuple(faults),
        loops=tuple(loops),
    )
    t.finish()
    return cfg


def _station_and_loop(t: Table, stations: Mapping[str, Station]) -> tuple[str | None, str | None]:
    """`station` and `loop`, checked against the configured plant (problems recorded on `t`)."""
    sid = t.text("station", None)
    loop = t.text("loop", None)
    if sid is None:
        t.add("station", "missing: the station id this applies to")
    elif sid not in stations:
        t.add("station", f"unknown station {sid!r}{suggest(sid, stations)}")
    elif loop is not None and loop not in {lp.id for lp in stations[sid].loops}:
        t.add("loop", f"unknown loop {loop!r} of station {sid!r}")
    return sid, loop


def _fault(t: Table, stations: Mapping[str, Station]) -> FaultConfig | None:
    sid, loop = _station_and_loop(t, stations)
    kind = t.choice("kind", FAULT_KINDS, "", "fault kind")
    if "kind" not in t.data:
        t.add("kind", f"missing: one of {', '.join(FAULT_KINDS)}")
    if kind and kind not in STATION_FAULT_KINDS and loop is None:
        t.add("loop", f"missing: a {kind} fault needs the loop it applies to")
    d = FaultConfig(station="", kind="")
    fault = FaultConfig(
        station=sid or "",
        kind=kind,
        loop=loop,
        start_s=t.duration("start", d.start_s),
        duration_s=t.duration("duration", d.duration_s, allow_zero=False),
    )
    t.finish()
    return fault if sid and kind else None


def _sim_loop(t: Table, stations: Mapping[str, Station]) -> SimLoopConfig | None:
    sid, loop = _station_and_loop(t, stations)
    if loop is None:
        t.add("loop", "missing: the loop these settings apply to")
    d = SimLoopConfig(station="", loop="")
    cfg = SimLoopConfig(
        station=sid or "",
        loop=loop or "",
        fixed_supply=t.number("fixed_supply", d.fixed_supply, lo=20.0, hi=130.0),
        emitter_capacity=t.number("emitter_capacity", d.emitter_capacity, lo=0.3, hi=3.0),
        indoor_sensors=t.integer("indoor_sensors", d.indoor_sensors, lo=0, hi=100),
    )
    t.finish()
    return cfg if sid and loop else None
