"""The simulated stations' physics, pure: no I/O, no asyncio, time is a parameter.

A station's loops follow their heating curve through a controller: the setpoint is the curve's
required temperature (from a smoothed outdoor temperature, as real controllers use) plus a small
operating margin, and the water temperature approaches it with a first-order lag. Sensors add noise.
Faults from `[[simulator.faults]]` bend this for their time window:

    undersupply      the setpoint falls well below the curve (the station is short of heat)
    flatline         the loop's temperature sensors freeze at their last reading
    swapped_sensors  supply and return are reported swapped (ΔT below zero)
    offline          the station stops answering (the runner closes its server, stops publishing)
    low_delta_t      overflow: flow far above design, return close to supply

`StationSim.step(now)` advances one station; `StationSim.values()` gives what its sensors read now,
keyed like LatestValues: (loop, sensor, quantity).
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass

from stationmon.config import FaultConfig, SimulatorConfig
from stationmon.domain.plant import Loop, Point, Site, Station
from stationmon.domain.registers import encode_value
from stationmon.domain.vocabulary import REGISTER_WIDTH

__all__ = [
    "LoopState",
    "StationSim",
    "ValueKey",
    "outdoor_temp_at",
    "raw_registers",
    "register_image",
    "required_temps",
]

ValueKey = tuple[str | None, str | None, str]  # loop, sensor, quantity

# Water's volumetric heat capacity: 1 m³/h through 1 K carries 1.163 kW.
_KW_PER_M3H_K = 1.163
_DAY_S = 86400.0


def outdoor_temp_at(ts: float, seed: int = 1, mean: float = -12.0) -> float:
    """Outdoor temperature at Unix time `ts`: a daily cycle (coldest near 05:00 Beijing time) plus
    weather fronts (slow swings of a few days), deterministic for a given seed."""
    rng = random.Random(seed)
    # local solar hour in China (UTC+8); the daily minimum comes before dawn, the maximum mid-afternoon
    hour = ((ts / 3600.0) + 8.0) % 24.0
    daily = -4.0 * math.cos(2.0 * math.pi * (hour - 3.0) / 24.0)
    fronts = 0.0
    for period_days, amplitude in ((3.7, 4.0), (6.1, 3.0), (1.9, 1.5)):
        phase = rng.uniform(0.0, 2.0 * math.pi)
        fronts += amplitude * math.sin(2.0 * math.pi * ts / (period_days * _DAY_S) + phase)
    return mean + daily + fronts


def required_temps(loop: Loop, site: Site, outdoor: float) -> tuple[float, float]:
    """Required supply and return (°C) of a loop at `outdoor`, by the quality-regulation curve."""
    # The same equations as DOMAIN.md and domain/heating.py; kept here so the simulator stays an
    # independent oracle for the monitor's own model in tests.
    t_i, t_id, t_od = site.indoor_target, site.design_indoor, site.outdoor_design
    load = max(0.0, (t_i - outdoor) / (t_id - t_od))
    t_md = (loop.design_supply + loop.design_return) / 2.0
    mean = t_i + (t_md - t_id) * load ** (1.0 / loop.exponent)
    half_dt = 0.5 * (loop.design_supply - loop.design_return) * load
    return mean + half_dt, mean - half_dt


@dataclass(slots=True)
class LoopState:
    """The water of one loop as it really is (before sensors)."""

    supply: float
    ret: float
    flow: float
    indoor: float
    design_flow: float
    # what a frozen (flatlined) sensor keeps reporting
    frozen_supply: float | None = None
    frozen_return: float | None = None


class StationSim:
    """One simulated station; `step(now)` advances it, `values()` reads its sensors."""

    indoor_lag_s = 1800.0  # the building's thermal lag behind its water
    setpoint_margin = 1.5  # K a controller runs above the curve

    def __init__(
        self,
        station: Station,
        site: Site,
        simulator: SimulatorConfig,
        start_ts: float,
        *,
        lag_s: float = 20.0,
        outdoor_smoothing_s: float = 3600.0,
    ) -> None:
        self.station = station
        self.site = site
        self.simulator = simulator
        self.start_ts = start_ts
        self.lag_s = lag_s
        self.outdoor_smoothing_s = outdoor_smoothing_s
        # a stable per-station seed, so a station's noise does not depend on the others' order
        self._rng = random.Random(simulator.seed * 1_000_003 + zlib.crc32(station.id.encode()))
        self.faults: tuple[FaultConfig, ...] = tuple(f for f in simulator.faults if f.station == station.id)
        self.now = start_ts
        self.outdoor = self._outdoor(start_ts)
        self.outdoor_smooth = self.outdoor
        self.loops: dict[str, LoopState] = {}
        for loop in station.loops:
            # a fault active at start is already in effect: the station was in that state before we looked
            fault = self.fault_of(loop.id, start_ts)
            supply, ret = self._setpoints(loop, fault)
            design_flow = self._rng.uniform(15.0, 60.0)
            self.loops[loop.id] = LoopState(
                supply=supply,
                ret=ret,
                flow=design_flow * (2.5 if fault == "low_delta_t" else 1.0),
                indoor=site.indoor_target + 1.0,
                design_flow=design_flow,
            )
        self.sensor_offsets: dict[tuple[str, str], float] = {
            (loop.id, sensor): self._rng.uniform(0.0, 1.5)  # healthy flats sit above the (now exact) legal minimum
            for loop in station.loops
            for sensor in self.indoor_sensors(loop.id)
        }

    def indoor_sensors(self, loop_id: str) -> list[str]:
        """Names of the household indoor sensors simulated on one loop."""
        return [f"h{n:02d}" for n in range(1, self.simulator.indoor_sensors_per_loop + 1)]

    def active_faults(self, now: float | None = None) -> list[FaultConfig]:
        """Faults of this station whose window contains `now` (default: the last step)."""
        t = (self.now if now is None else now) - self.start_ts
        return [f for f in self.faults if f.start_s <= t < f.start_s + f.duration_s]

    def fault_of(self, loop_id: str, now: float | None = None) -> str | None:
        """The fault kind acting on one loop now, if any (offline counts for every loop)."""
        for f in self.active_faults(now):
            if f.loop == loop_id or f.loop is None:
                return f.kind
        return None

    def offline(self, now: float | None = None) -> bool:
        """True while an `offline` fault holds: the station must not answer."""
        return any(f.kind == "offline" for f in self.active_faults(now))

    def _outdoor(self, ts: float) -> float:
        if self.simulator.outdoor_temp is not None:
            return self.simulator.outdoor_temp
        return outdoor_temp_at(ts, self.simulator.seed)

    def _setpoints(self, loop: Loop, fault: str | None) -> tuple[float, float]:
        req_supply, req_return = required_temps(loop, self.site, self.outdoor_smooth)
        supply = req_supply + self.setpoint_margin
        ret = req_return + self.setpoint_margin
        # a controller with fixed floors (41/34) holds them in mild weather too, by lifting the whole curve
        floors = (
            (loop.min_supply + self.setpoint_margin - supply) if loop.min_supply is not None else 0.0,
            (loop.min_return + self.setpoint_margin - ret) if loop.min_return is not None else 0.0,
        )
        lift = max(0.0, *floors)
        supply, ret = supply + lift, ret + lift
        if fault == "undersupply":
            # short of heat: the loop runs well below its curve, and both temperatures sink
            t_i = self.site.indoor_target
            supply = t_i + 0.6 * (supply - t_i)
            ret = t_i + 0.6 * (ret - t_i)
        elif fault == "low_delta_t":
            # overflow ("大流量小温差"): the return comes back nearly as warm as the supply
            ret = supply - 0.15 * (supply - ret)
        return supply, ret

    def step(self, now: float) -> None:
        """Advance the physics to `now` (no-op if time did not move forward)."""
        dt = now - self.now
        if dt <= 0:
            return
        self.now = now
        self.outdoor = self._outdoor(now)
        self.outdoor_smooth += (self.outdoor - self.outdoor_smooth) * (1.0 - math.exp(-dt / self.outdoor_smoothing_s))
        k = 1.0 - math.exp(-dt / self.lag_s)
        k_indoor = 1.0 - math.exp(-dt / self.indoor_lag_s)
        for loop in self.station.loops:
            state = self.loops[loop.id]
            fault = self.fault_of(loop.id, now)
            supply_sp, return_sp = self._setpoints(loop, fault)
            state.supply += (supply_sp - state.supply) * k
            state.ret += (return_sp - state.ret) * k
            flow_sp = state.design_flow * (2.5 if fault == "low_delta_t" else 1.0)
            state.flow += (flow_sp - state.flow) * k
            indoor_sp = self._indoor_from_water(loop, state.supply, state.ret)
            state.indoor += (indoor_sp - state.indoor) * k_indoor
            if fault == "flatline":
                if state.frozen_supply is None:
                    state.frozen_supply = self._noisy(state.supply)
                    state.frozen_return = self._noisy(state.ret)
            else:
                state.frozen_supply = state.frozen_return = None

    def _indoor_from_water(self, loop: Loop, supply: float, ret: float) -> float:
        """The indoor temperature the water would hold in steady state (bisection on the emitter law)."""
        site = self.site
        t_m = (supply + ret) / 2.0
        t_md = (loop.design_supply + loop.design_return) / 2.0
        t_id, t_od, m = site.design_indoor, site.outdoor_design, loop.exponent
        lo, hi = self.outdoor, t_m
        if hi <= lo:
            return lo
        for _ in range(40):
            mid = (lo + hi) / 2.0
            emitted = ((t_m - mid) / (t_md - t_id)) ** m if t_m > mid else 0.0
            needed = (mid - self.outdoor) / (t_id - t_od)
            if emitted > needed:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2.0

    def _noisy(self, value: float) -> float:
        noise = self.simulator.noise
        return value + self._rng.gauss(0.0, noise) if noise > 0 else value

    def values(self) -> dict[ValueKey, float]:
        """What every sensor of the station reads now: (loop, sensor, quantity) -> value."""
        out: dict[ValueKey, float] = {}
        out[(None, None, "outdoor_temp")] = self._noisy(self.outdoor)
        hottest_supply = max((s.supply for s in self.loops.values()), default=60.0)
        hottest_return = max((s.ret for s in self.loops.values()), default=45.0)
        out[(None, None, "primary_supply_temp")] = self._noisy(hottest_supply + 25.0)
        out[(None, None, "primary_return_temp")] = self._noisy(hottest_return + 5.0)
        for loop in self.station.loops:
            state = self.loops[loop.id]
            fault = self.fault_of(loop.id)
            supply, ret = self._noisy(state.supply), self._noisy(state.ret)
            if fault == "flatline" and state.frozen_supply is not None and state.frozen_return is not None:
                supply, ret = state.frozen_supply, state.frozen_return
            elif fault == "swapped_sensors":
                supply, ret = ret, supply
            lid = loop.id
            out[(lid, None, "supply_temp")] = supply
            out[(lid, None, "return_temp")] = ret
            out[(lid, None, "flow")] = max(0.0, self._noisy(state.flow))
            out[(lid, None, "heat_power")] = max(0.0, state.flow * (state.supply - state.ret) * _KW_PER_M3H_K)
            pressure_noise = 0.04 * self.simulator.noise
            out[(lid, None, "supply_pressure")] = 0.45 + self._rng.gauss(0.0, pressure_noise)
            out[(lid, None, "return_pressure")] = 0.30 + self._rng.gauss(0.0, pressure_noise)
            for sensor in self.indoor_sensors(lid):
                out[(lid, sensor, "indoor_temp")] = self._noisy(state.indoor + self.sensor_offsets[(lid, sensor)])
        return out

    @staticmethod
    def value_of(values: dict[ValueKey, float], loop: str | None, sensor: str | None, quantity: str) -> float:
        """A point's value from `values()`; quantities the model does not know read a steady 0.0."""
        got = values.get((loop, sensor, quantity))
        if got is None and sensor is not None:
            got = values.get((loop, None, quantity))
        return 0.0 if got is None else got


def raw_registers(point: Point, value: float) -> list[int]:
    """The registers a PLC would hold for `value` at this point: (value - offset) / scale, encoded in
    the point's type and byte order (integers rounded and clamped to their type's range)."""
    raw = (value - point.offset) / point.scale if point.scale else value
    if "int" in point.type:  # int16, uint16, int32, uint32
        bits = 16 * REGISTER_WIDTH[point.type]
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if point.type.startswith("int") else (0, 2**bits - 1)
        raw = float(min(max(round(raw), lo), hi))
    return encode_value(raw, point.type, point.byte_order)


def register_image(station: Station, values: dict[ValueKey, float]) -> dict[str, dict[int, int]]:
    """Every Modbus point of the station encoded: {"holding"|"input": {address: register}}."""
    image: dict[str, dict[int, int]] = {"holding": {}, "input": {}}
    for point in station.modbus_points:
        assert point.address is not None
        value = StationSim.value_of(values, point.loop, point.sensor, point.quantity)
        for i, reg in enumerate(raw_registers(point, value)):
            image[point.register][point.address + i] = reg
    return image
