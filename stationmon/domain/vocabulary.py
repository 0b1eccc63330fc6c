"""The domain's vocabulary, written once so that two copies of a fact cannot disagree: everything imports it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BYTE_ORDERS",
    "CANONICAL_QUANTITIES",
    "COMPLIANCE_RULES",
    "DATA_TYPES",
    "DESIGN_INDOOR",
    "EMITTER_EXPONENTS",
    "LOOP_QUANTITIES",
    "PLAUSIBLE_RANGES",
    "QUANTITIES",
    "RAW_SENTINELS",
    "REGISTER_TYPES",
    "REGISTER_WIDTH",
    "RULE_NAMES",
    "SEASONAL_RULES",
    "SENTINEL_TOLERANCE",
    "SEVERITIES",
    "SEVERITY_ORDER",
    "STATION_QUANTITIES",
    "STATUS_NAMES",
    "TEMPERATURE_SENTINELS",
    "VALUE_SENTINELS",
    "VERDICTS",
    "WATER_MODEL_RULES",
    "Quantity",
]


# Registers each data type occupies (one register is 16 bits).
REGISTER_WIDTH: dict[str, int] = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4}
DATA_TYPES: tuple[str, ...] = tuple(REGISTER_WIDTH)
# ABCD big endian, CDAB word swap, BADC byte swap in each word, DCBA little endian.
BYTE_ORDERS: tuple[str, ...] = ("ABCD", "CDAB", "BADC", "DCBA")
REGISTER_TYPES: tuple[str, ...] = ("holding", "input")


# Emitter exponent m = 1 + b (DOMAIN.md): radiators 1.3, floor heating 1.1.
EMITTER_EXPONENTS: dict[str, float] = {"floor": 1.1, "radiator": 1.3}
DESIGN_INDOOR = 18.0  # °C, the indoor temperature the design supply/return temperatures were sized for


_WATER = (0.0, 130.0)


@dataclass(frozen=True, slots=True)
class Quantity:
    """A canonical quantity: where it lives (loop or station), its unit and its plausible range."""

    name: str
    level: str  # "loop" or "station"
    unit: str
    plausible: tuple[float, float] | None = None  # outside it a value is a sensor fault, not a reading
    temperature: bool = False


QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in (
        Quantity("supply_temp", "loop", "°C", _WATER, True),
        Quantity("return_temp", "loop", "°C", _WATER, True),
        Quantity("supply_pressure", "loop", "MPa"),
        Quantity("return_pressure", "loop", "MPa"),
        # a magnetic meter at standstill drifts a little below zero; a reversed or broken one reads far
        # below; the largest secondary loops carry about 2,000 m³/h (and 3276.7 is an int16 x 0.1 sentinel)
        Quantity("flow", "loop", "m³/h", (-0.5, 3000.0)),
        Quantity("heat_power", "loop", "kW"),
        # not in DOMAIN.md: a generous band for household thermometers (unheated flats, sunny sills)
        Quantity("indoor_temp", "loop", "°C", (-20.0, 50.0), True),
        Quantity("outdoor_temp", "station", "°C", (-50.0, 45.0), True),
        Quantity("primary_supply_temp", "station", "°C", _WATER, True),
        Quantity("primary_return_temp", "station", "°C", _WATER, True),
        Quantity("pump_running", "loop", "1 running, 0 stopped", (0.0, 1.0)),
    )
}
LOOP_QUANTITIES = frozenset(q.name for q in QUANTITIES.values() if q.level == "loop")
STATION_QUANTITIES = frozenset(q.name for q in QUANTITIES.values() if q.level == "station")
CANONICAL_QUANTITIES = LOOP_QUANTITIES | STATION_QUANTITIES
PLAUSIBLE_RANGES: dict[str, tuple[float, float]] = {
    q.name: q.plausible for q in QUANTITIES.values() if q.plausible is not None
}

# Raw register values PLCs send for a broken or missing probe, by data type.
RAW_SENTINELS: dict[str, frozenset[float]] = {
    "int16": frozenset({-999, 32767, -32768}),
    "uint16": frozenset({65535}),
    "int32": frozenset({-999, 2147483647, -2147483648}),
    "uint32": frozenset({4294967295}),
    "float32": frozenset({-999.0}),
    "float64": frozenset({-999.0}),
}
# Engineering values (after scale and offset) that mean a broken probe, whatever the type: -999, and
# the int16 extremes as they arrive unscaled or scaled by 0.1.
VALUE_SENTINELS: tuple[float, ...] = (-999.0, 32767.0, -32768.0, 3276.7, -3276.8)
# A broken probe of the PT100/DS18B20 kind reads 850 °C: a sentinel for temperatures only.
TEMPERATURE_SENTINELS: tuple[float, ...] = (850.0,)
# A value this close to a sentinel is one: a float32 register holds 3276.7 as 3276.69995.
SENTINEL_TOLERANCE = 1e-3


RULE_NAMES: tuple[str, ...] = (
    "supply_low",
    "return_low",
    "indoor_estimate_low",
    "indoor_low",
    "delta_t_low",
    "delta_t_high",
    "no_circulation",
    "primary_shortage",
    "sensor_fault",
    "station_offline",
)
# The water-model rules: they make a loop `noncompliant` only where too few household sensors report.
WATER_MODEL_RULES = frozenset({"supply_low", "return_low", "indoor_estimate_low", "no_circulation"})
# The rules whose holding makes a loop `noncompliant` (indoor_low: the households' own evidence).
COMPLIANCE_RULES = WATER_MODEL_RULES | {"indoor_low"}
# The rules judged only inside the heating season (compliance, the ΔT diagnostics, the primary side).
SEASONAL_RULES = COMPLIANCE_RULES | {"delta_t_low", "delta_t_high", "primary_shortage"}
STATUS_NAMES: tuple[str, ...] = ("ok", "noncompliant", "sensor_fault", "offline", "unknown")
# What a loop's compliance verdict rests on: fresh household sensors, the water model, or nothing.
VERDICTS: tuple[str, ...] = ("none", "estimate", "sensors")
SEVERITIES: tuple[str, ...] = ("warning", "major", "critical")
SEVERITY_ORDER: dict[str, int] = {name: i for i, name in enumerate(SEVERITIES)}
