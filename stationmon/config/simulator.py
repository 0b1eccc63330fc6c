"""`[simulator]` and its `[[simulator.faults]]`: what `stationmon simulate` and the tests serve."""

from __future__ import annotations

from collections.abc import Mapping

from stationmon.config.reader import Table, suggest
from stationmon.config.schema import FAULT_KINDS, FaultConfig, SimulatorConfig
from stationmon.domain.plant import Station

__all__ = ["read_simulator"]


def read_simulator(root: Table, stations: Mapping[str, Station]) -> SimulatorConfig:
    """`[simulator]`; faults must name configured stations and loops."""
    d = SimulatorConfig()
    t = root.table("simulator")
    if t is None:
        return d
    faults = [fault for _, ft in t.tables("faults") if (fault := _fault(ft, stations)) is not None]
    cfg = SimulatorConfig(
        outdoor_temp=t.number("outdoor_temp", d.outdoor_temp, lo=-50.0, hi=45.0),
        seed=t.integer("seed", d.seed),
        noise=t.number("noise", d.noise, lo=0.0, hi=5.0),
        publish_interval_s=t.duration("publish_interval", d.publish_interval_s, allow_zero=False),
        indoor_sensors_per_loop=t.integer("indoor_sensors_per_loop", d.indoor_sensors_per_loop, lo=0, hi=100),
        faults=tuple(faults),
    )
    t.finish()
    return cfg


def _fault(t: Table, stations: Mapping[str, Station]) -> FaultConfig | None:
    sid = t.text("station", None)
    loop = t.text("loop", None)
    kind = t.choice("kind", FAULT_KINDS, "", "fault kind")
    if "kind" not in t.data:
        t.add("kind", f"missing: one of {', '.join(FAULT_KINDS)}")
    if sid is None:
        t.add("station", "missing: the station id the fault applies to")
    elif sid not in stations:
        t.add("station", f"unknown station {sid!r}{suggest(sid, stations)}")
    elif loop is not None and loop not in {lp.id for lp in stations[sid].loops}:
        t.add("loop", f"unknown loop {loop!r} of station {sid!r}")
    if kind and kind != "offline" and loop is None:
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
