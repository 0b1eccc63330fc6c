"""The simulated stations' physics, pure: no I/O, no asyncio, time is a parameter.

Each loop is sized from the area it heats (DOMAIN.md "Sizing figures": about 45 W/m² at the design
outdoor temperature, Q = ṁ·c·ΔT at the design ΔT; `Loop.design_flow` wins where it is set). Its
controller sets the supply temperature (the heating curve at a smoothed outdoor temperature plus a small
operating margin, or a fixed setpoint); the pump sets the flow; the return is what the emitters leave in
the water: G·c·(t_s − t_r) = Q_d·k·((t_m − t_i)/(t_m,d − t_i,d))^m. The heat the water delivers warms
the flats against their loss UA·(t_i − t_o), UA = Q_d/(t_i,d − t_o,d), with the building's time
constant, so every fault keeps the energy balance: heat delivered is flow × c × ΔT and nothing else.
Faults from `[[simulator.faults]]` bend this for their time window:

    undersupply         the setpoint falls well below the curve (the station is short of heat)
    flatline            the loop's temperature sensors freeze at their last reading
    swapped_sensors     supply and return are reported swapped (ΔT below zero)
    offline             the station stops answering (the runner closes its server, stops publishing)
    low_delta_t         overflow (大流量小温差): 2.5 × design flow with the station's heat unchanged, so the
                        supply falls, the return rises and ΔT narrows to 1/2.5 while the flats stay as warm
    pump_stop           the circulation pump stops: flow 0, pump_running 0; the water at the station's
                        probes stays warm a while (it cools slowly in the plant room), the flats cool
    probe_sentinel      the loop's supply probe reports a broken probe's sentinel (850 °C)
    outdoor_probe_fail  the outdoor probe freezes at its last reading (Modbus) and stops publishing (MQTT)
    primary_shortage    the heat source delivers primary water too cool to reach the required secondary
                        supply (15 K short of it plus the exchanger's approach); the loops cool with it
    cold_households     the household sensors of the loop sit in cold flats (a blocked riser): the first
                        between the two legal tiers, the others below `indoor_refund_below`

`StationSim.step(now)` advances one station; `StationSim.values()` gives what its sensors read now,
keyed like LatestValues: (loop, sensor, quantity).
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass

from stationmon.config import FaultConfig, SimLoopConfig, SimulatorConfig
from stationmon.domain.plant import Loop, Point, Site, Station
from stationmon.domain.registers import encode_value
from stationmon.domain.vocabulary import REGISTER_WIDTH

__all__ = [
    "KW_PER_M3H_K",
    "LoopDesign",
    "LoopState",
    "StationSim",
    "ValueKey",
    "balance_return",
    "daily_cycle",
    "emitted_kw",
    "loop_design",
    "outdoor_temp_at",
    "raw_registers",
    "register_image",
    "required_temps",
]

ValueKey = tuple[str | None, str | None, str]  # loop, sensor, quantity

KW_PER_M3H_K = 1.163  # water: 1 m³/h through 1 K carries 1.163 kW (ρ·c = 4187 kJ/(m³·K) over 3600 s)
DESIGN_W_PER_M2 = 45.0  # Harbin: 40–50 W per m² of heated area at the design outdoor temperature
DEFAULT_AREA_M2 = (40_000.0, 160_000.0)  # a station that does not state its area gets one from this range
APPROACH_K = 5.0  # the plate exchanger: the secondary supply stays this far below the primary supply
SHORTAGE_K = 15.0  # primary_shortage: the primary supply this far below the required secondary supply
OVERFLOW = 2.5  # low_delta_t: flow over design flow
PROBE_SENTINEL_C = 850.0  # a broken PT100 as many PLCs report it
OUTDOOR_SENTINEL_C = -999.0
PLANT_ROOM_C = 22.0  # standing water at the station's probes cools towards the plant room
COLDEST_HOUR = 5.0  # local solar time of the daily minimum
_DAY_S = 86400.0


def daily_cycle(hour: float, amplitude: float = 4.0) -> float:
    """The daily swing (K) at local `hour`: coldest at 05:00, warmest twelve hours later (17:00)."""
    return -amplitude * math.cos(2.0 * math.pi * (hour - COLDEST_HOUR) / 24.0)


def outdoor_temp_at(ts: float, seed: int = 1, mean: float = -12.0) -> float:
    """Outdoor temperature at Unix time `ts`: the daily cycle (coldest at 05:00 Beijing time) plus
    weather fronts (slow swings of a few days), deterministic for a given seed."""
    rng = random.Random(seed)
    hour = ((ts / 3600.0) + 8.0) % 24.0  # Beijing time, UTC+8
    fronts = 0.0
    for period_days, amplitude in ((3.7, 4.0), (6.1, 3.0), (1.9, 1.5)):
        phase = rng.uniform(0.0, 2.0 * math.pi)
        fronts += amplitude * math.sin(2.0 * math.pi * ts / (period_days * _DAY_S) + phase)
    return mean + daily_cycle(hour) + fronts


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


@dataclass(frozen=True, slots=True)
class LoopDesign:
    """How a simulated loop is built and run: design heat load (kW) and flow (m³/h), installed emitter
    output over the design load, and the operator's fixed supply setpoint (None: the heating curve)."""

    heat_kw: float
    flow: float
    capacity: float = 1.0
    fixed_supply: float | None = None


def loop_design(loop: Loop, area_m2: float, settings: SimLoopConfig | None = None) -> LoopDesign:
    """A loop heating `area_m2`: Q_d = area × 45 W/m², G_d = Q_d / (c·ΔT_d); `Loop.design_flow` wins if set."""
    delta_t = loop.design_supply - loop.design_return
    design_flow = loop.design_flow  # m³/h, where the config states it
    if design_flow:
        flow = float(design_flow)
        heat_kw = flow * KW_PER_M3H_K * delta_t
    else:
        heat_kw = area_m2 * DESIGN_W_PER_M2 / 1000.0
        flow = heat_kw / (KW_PER_M3H_K * delta_t)
    if settings is None:
        return LoopDesign(heat_kw, flow)
    return LoopDesign(heat_kw, flow, settings.emitter_capacity, settings.fixed_supply)


def emitted_kw(loop: Loop, design: LoopDesign, site: Site, supply: float, ret: float, indoor: float) -> float:
    """What the loop's emitters give the flats (kW): Q_d·k·((t_m − t_i)/(t_m,d − t_i,d))^m."""
    excess = (supply + ret) / 2.0 - indoor
    if excess <= 0.0:
        return 0.0
    design_excess = (loop.design_supply + loop.design_return) / 2.0 - site.design_indoor
    return float(design.heat_kw * design.capacity * (excess / design_excess) ** loop.exponent)


def balance_return(loop: Loop, design: LoopDesign, site: Site, supply: float, flow: float, indoor: float) -> float:
    """The return temperature at which the water gives up exactly what the emitters emit:
    G·c·(t_s − t_r) = emitted(t_s, t_r) (the left falls and the right rises with t_r: bisection)."""
    if flow <= 0.0 or supply <= indoor:
        return supply
    lo, hi = indoor, supply
    for _ in range(40):
        mid = (lo + hi) / 2.0
        if flow * KW_PER_M3H_K * (supply - mid) > emitted_kw(loop, design, site, supply, mid, indoor):
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


@dataclass(slots=True)
class LoopState:
    """The water of one loop as it really is (before sensors), and the flats it heats."""

    supply: float
    ret: float
    flow: float
    indoor: float
    design: LoopDesign
    pump_running: bool = True
    # what a frozen (flatlined) sensor keeps reporting
    frozen_supply: float | None = None
    frozen_return: float | None = None

    @property
    def design_flow(self) -> float:
        """m³/h at design."""
        return self.design.flow

    @property
    def heat_kw(self) -> float:
        """The heat the water delivers now: flow × c × ΔT (0 with the pump stopped)."""
        if not self.pump_running:
            return 0.0
        return max(0.0, self.flow * KW_PER_M3H_K * (self.supply - self.ret))


class StationSim:
    """One simulated station; `step(now)` advances it, `values()` reads its sensors."""

    setpoint_margin = 1.5  # K a controller runs above the curve
    standing_s = 1800.0  # time constant of standing water at the probes (pump stopped)

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
        self.building_time_constant_s = simulator.building_time_constant_s
        # a stable per-station seed, so a station's noise does not depend on the others' order
        self._rng = random.Random(simulator.seed * 1_000_003 + zlib.crc32(station.id.encode()))
        self.faults: tuple[FaultConfig, ...] = tuple(f for f in simulator.faults if f.station == station.id)
        self.now = start_ts
        self.outdoor = self._outdoor(start_ts)
        self.outdoor_smooth = self.outdoor
        self.frozen_outdoor: float | None = None
        self.area_m2 = station.area_m2 or self._rng.uniform(*DEFAULT_AREA_M2)
        settings = {s.loop: s for s in simulator.loops if s.station == station.id}
        self._sensor_counts = {
            lp.id: simulator.indoor_sensors_per_loop
            if (cfg := settings.get(lp.id)) is None or cfg.indoor_sensors is None
            else cfg.indoor_sensors
            for lp in station.loops
        }
        self.loops: dict[str, LoopState] = {}
        for loop in station.loops:
            design = loop_design(loop, self.area_m2 / len(station.loops), settings.get(loop.id))
            self.loops[loop.id] = self._steady_state(loop, design, self.faults_on(loop.id, start_ts))
        self.sensor_offsets: dict[tuple[str, str], float] = {
            (loop.id, sensor): self._rng.uniform(0.0, 1.5)  # healthy flats sit above the (now exact) legal minimum
            for loop in station.loops
            for sensor in self.indoor_sensors(loop.id)
        }

    def _steady_state(self, loop: Loop, design: LoopDesign, kinds: frozenset[str]) -> LoopState:
        """The loop as it has run for a while (a fault active at start was already in effect): the indoor
        temperature at which the heat the water delivers equals the flats' loss (bisection)."""
        state = LoopState(0.0, 0.0, design.flow * (OVERFLOW if "low_delta_t" in kinds else 1.0), 0.0, design)
        ua = self._ua(design)
        lo, hi = self.outdoor, max(self.outdoor, self._wanted_supply(loop, design)) + 1.0
        for _ in range(40):
            state.indoor = (lo + hi) / 2.0
            state.supply = self._supply_setpoint(loop, state, kinds)
            state.ret = balance_return(loop, design, self.site, state.supply, state.flow, state.indoor)
            if state.heat_kw > ua * (state.indoor - self.outdoor):
                lo = state.indoor
            else:
                hi = state.indoor
        if "pump_stop" in kinds:
            state.flow, state.pump_running = 0.0, False
        return state

    def _ua(self, design: LoopDesign) -> float:
        """The buildings' loss coefficient (kW/K): the design load over the design temperature difference."""
        return design.heat_kw / (self.site.design_indoor - self.site.outdoor_design)

    def indoor_sensors(self, loop_id: str) -> list[str]:
        """Names of the household indoor sensors simulated on one loop."""
        return [f"h{n:02d}" for n in range(1, self._sensor_counts.get(loop_id, 0) + 1)]

    def active_faults(self, now: float | None = None) -> list[FaultConfig]:
        """Faults of this station whose window contains `now` (default: the last step)."""
        t = (self.now if now is None else now) - self.start_ts
        return [f for f in self.faults if f.start_s <= t < f.start_s + f.duration_s]

    def faults_on(self, loop_id: str, now: float | None = None) -> frozenset[str]:
        """Every fault kind acting on one loop now (station-wide faults count for every loop)."""
        return frozenset(f.kind for f in self.active_faults(now) if f.loop in (loop_id, None))

    def fault_of(self, loop_id: str, now: float | None = None) -> str | None:
        """The first fault kind acting on one loop now, if any (offline counts for every loop)."""
        for f in self.active_faults(now):
            if f.loop == loop_id or f.loop is None:
                return f.kind
        return None

    def station_faults(self, now: float | None = None) -> frozenset[str]:
        """Fault kinds of the whole station (a primary shortage named with a loop still hits the station)."""
        return frozenset(f.kind for f in self.active_faults(now))

    def offline(self, now: float | None = None) -> bool:
        """True while an `offline` fault holds: the station must not answer."""
        return "offline" in self.station_faults(now)

    def _outdoor(self, ts: float) -> float:
        if self.simulator.outdoor_temp is not None:
            return self.simulator.outdoor_temp
        return outdoor_temp_at(ts, self.simulator.seed)

    def _wanted_supply(self, loop: Loop, design: LoopDesign) -> float:
        """The controller's supply setpoint before any fault: fixed, or the curve plus margin and floors."""
        if design.fixed_supply is not None:
            return design.fixed_supply
        req_supply, req_return = required_temps(loop, self.site, self.outdoor_smooth)
        supply = req_supply + self.setpoint_margin
        # a controller with fixed floors (41/34) holds them in mild weather too, by lifting the whole curve
        floors = (
            (loop.min_supply + self.setpoint_margin - supply) if loop.min_supply is not None else 0.0,
            (loop.min_return - req_return) if loop.min_return is not None else 0.0,
        )
        return supply + max(0.0, *floors)

    def primary_supply(self) -> float:
        """The primary supply temperature: ample normally; under a shortage too cool for the loops' curve."""
        if "primary_shortage" in self.station_faults():
            needed = max(
                (required_temps(lp, self.site, self.outdoor_smooth)[0] for lp in self.station.loops), default=60.0
            )
            return needed - SHORTAGE_K
        wanted = (self._wanted_supply(lp, self.loops[lp.id].design) for lp in self.station.loops if lp.id in self.loops)
        return max(wanted, default=60.0) + 25.0

    def _supply_setpoint(self, loop: Loop, state: LoopState, kinds: frozenset[str]) -> float:
        design = state.design
        supply = self._wanted_supply(loop, design)
        if "undersupply" in kinds:
            # short of heat: the loop runs well below its curve
            t_i = self.site.indoor_target
            supply = t_i + 0.6 * (supply - t_i)
        if "low_delta_t" in kinds:
            # the station's heat stays what design flow would carry; spread over more water it keeps the
            # same mean temperature (so the flats stay as warm) with a narrower ΔT
            ret = balance_return(loop, design, self.site, supply, design.flow, state.indoor)
            delta_t = (supply - ret) * design.flow / max(state.flow, design.flow)
            supply = (supply + ret) / 2.0 + delta_t / 2.0
        if "primary_shortage" in self.station_faults():
            supply = min(supply, self.primary_supply() - APPROACH_K)
        return supply

    def step(self, now: float) -> None:
        """Advance the physics to `now` (no-op if time did not move forward)."""
        dt = now - self.now
        if dt <= 0:
            return
        self.now = now
        self.outdoor = self._outdoor(now)
        self.outdoor_smooth += (self.outdoor - self.outdoor_smooth) * (1.0 - math.exp(-dt / self.outdoor_smoothing_s))
        k = 1.0 - math.exp(-dt / self.lag_s)
        k_building = 1.0 - math.exp(-dt / self.building_time_constant_s)
        k_standing = 1.0 - math.exp(-dt / self.standing_s)
        for loop in self.station.loops:
            state = self.loops[loop.id]
            kinds = self.faults_on(loop.id, now)
            if "pump_stop" in kinds:
                # no circulation: no heat reaches the flats; the water at the probes cools slowly
                state.pump_running = False
                state.flow += (0.0 - state.flow) * k
                state.supply += (PLANT_ROOM_C - state.supply) * k_standing
                state.ret += (PLANT_ROOM_C - state.ret) * k_standing
            else:
                state.pump_running = True
                state.flow += (state.design.flow * (OVERFLOW if "low_delta_t" in kinds else 1.0) - state.flow) * k
                state.supply += (self._supply_setpoint(loop, state, kinds) - state.supply) * k
                ret = balance_return(loop, state.design, self.site, state.supply, state.flow, state.indoor)
                state.ret += (ret - state.ret) * k
            # the flats: warmed by what the water delivers, cooled by their loss to the outdoor air
            indoor_eq = self.outdoor + state.heat_kw / self._ua(state.design)
            state.indoor += (indoor_eq - state.indoor) * k_building
            self._freeze(state, "flatline" in kinds)
        if "outdoor_probe_fail" in self.station_faults(now):
            if self.frozen_outdoor is None:
                self.frozen_outdoor = self._noisy(self.outdoor)
        else:
            self.frozen_outdoor = None

    def _freeze(self, state: LoopState, frozen: bool) -> None:
        if not frozen:
            state.frozen_supply = state.frozen_return = None
        elif state.frozen_supply is None:
            state.frozen_supply = self._noisy(state.supply)
            state.frozen_return = self._noisy(state.ret)

    def _noisy(self, value: float) -> float:
        noise = self.simulator.noise
        return value + self._rng.gauss(0.0, noise) if noise > 0 else value

    def _outdoor_reading(self) -> float:
        """The outdoor probe: frozen at its last reading for the first half of an `outdoor_probe_fail`
        window, then the PLC's broken-probe sentinel."""
        if self.frozen_outdoor is None:
            return self._noisy(self.outdoor)
        for f in self.active_faults():
            if f.kind == "outdoor_probe_fail" and self.now - self.start_ts >= f.start_s + f.duration_s / 2.0:
                return OUTDOOR_SENTINEL_C
        return self.frozen_outdoor

    def values(self) -> dict[ValueKey, float]:
        """What every sensor of the station reads now: (loop, sensor, quantity) -> value."""
        out: dict[ValueKey, float] = {(None, None, "outdoor_temp"): self._outdoor_reading()}
        primary = self.primary_supply()
        hottest_return = max((s.ret for s in self.loops.values()), default=45.0)
        out[(None, None, "primary_supply_temp")] = self._noisy(primary)
        out[(None, None, "primary_return_temp")] = self._noisy(min(primary - 2.0, hottest_return + 5.0))
        for loop in self.station.loops:
            self._loop_values(loop.id, out)
        return out

    def _loop_values(self, lid: str, out: dict[ValueKey, float]) -> None:
        state = self.loops[lid]
        kinds = self.faults_on(lid)
        supply, ret = self._noisy(state.supply), self._noisy(state.ret)
        if "flatline" in kinds and state.frozen_supply is not None and state.frozen_return is not None:
            supply, ret = state.frozen_supply, state.frozen_return
        elif "swapped_sensors" in kinds:
            supply, ret = ret, supply
        if "probe_sentinel" in kinds:
            supply = PROBE_SENTINEL_C
        out[(lid, None, "supply_temp")] = supply
        out[(lid, None, "return_temp")] = ret
        out[(lid, None, "flow")] = max(0.0, self._noisy(state.flow))
        out[(lid, None, "heat_power")] = state.heat_kw
        out[(lid, None, "pump_running")] = 1.0 if state.pump_running else 0.0
        pressure_noise = 0.04 * self.simulator.noise
        # the pump's head is the difference; stopped, both sides settle at the static pressure
        head = 0.15 if state.pump_running else 0.0
        out[(lid, None, "supply_pressure")] = 0.30 + head + self._rng.gauss(0.0, pressure_noise)
        out[(lid, None, "return_pressure")] = 0.30 + self._rng.gauss(0.0, pressure_noise)
        sensors = self.indoor_sensors(lid)
        cold = "cold_households" in kinds
        for n, sensor in enumerate(sensors):
            flat = self._cold_flat(n) if cold else state.indoor + self.sensor_offsets[(lid, sensor)]
            out[(lid, sensor, "indoor_temp")] = self._noisy(flat)

    def _cold_flat(self, n: int) -> float:
        """A flat on a blocked riser: the first between the two legal tiers, the others below the second.

        A few flats of many: the loop's water and the other flats do not notice."""
        target = self.site.indoor_target
        refund = self.site.indoor_refund_below
        return (target + refund) / 2.0 if n == 0 else refund - 2.0

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
