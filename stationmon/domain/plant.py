"""What the plant is: the site, its stations, their loops and points, and how a station is reached.

The config layer translates TOML into these once, so domain modules never see config classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from stationmon.domain.vocabulary import DESIGN_INDOOR, EMITTER_EXPONENTS, REGISTER_WIDTH

__all__ = ["DailyWindow", "Loop", "ModbusLink", "Point", "Setback", "Site", "Station"]

_DAY_MIN = 24 * 60


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """Local hours of every day, from `start_min` (included) to `end_min` (excluded) after midnight;
    a window whose end is not after its start wraps midnight (22:00-06:00)."""

    start_min: int
    end_min: int

    def contains(self, minute: int) -> bool:
        """True if the local minute of the day lies in the window."""
        if self.start_min < self.end_min:
            return self.start_min <= minute < self.end_min
        return minute >= self.start_min or minute < self.end_min

    def __str__(self) -> str:
        return "-".join(f"{m // 60:02d}:{m % 60:02d}" for m in (self.start_min, self.end_min % _DAY_MIN))


@dataclass(frozen=True, slots=True)
class Setback:
    """A planned time-of-day reduction (分时段调节): the required water temperatures drop by `kelvin`."""

    window: DailyWindow
    kelvin: float


@dataclass(frozen=True, slots=True)
class Site:
    """The city: its legal indoor tiers, design outdoor temperature, time zone and inspection hours."""

    name: str = ""
    timezone: str = "Asia/Shanghai"
    indoor_target: float = 18.0
    outdoor_design: float = -24.2
    design_indoor: float = DESIGN_INDOOR
    # the second legal tier: below it the whole daily fee is refunded (Heilongjiang)
    indoor_refund_below: float = 16.0
    # local hours whose household readings do not count for the legal verdict (still for live alerts)
    inspection_exclude: tuple[DailyWindow, ...] = ()
    fee_per_m2: float | None = None  # season heating fee, CNY per m², for refund estimates


@dataclass(frozen=True, slots=True)
class ModbusLink:
    """How one station's PLC is reached and polled."""

    host: str = "127.0.0.1"
    port: int = 502
    device_id: int = 1
    interval_s: float = 10.0
    timeout_s: float = 2.0
    byte_order: str = "ABCD"
    transport: str = "tcp"
    serial_port: str = ""
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8
    max_registers_per_request: int = 125
    max_gap: int = 10
    one_request_per_point: bool = False
    retries: int = 1
    jitter_s: float = -1.0  # < 0: automatic (see adapters.modbus.automatic_jitter)
    address_base: int = 0  # 1: the register map counts from 1 (its 1 is protocol address 0)


@dataclass(frozen=True, slots=True)
class Loop:
    """One secondary loop and the design it was built for."""

    id: str
    name: str = ""
    emitter: str = "radiator"
    design_supply: float = 75.0
    design_return: float = 50.0
    exponent: float = EMITTER_EXPONENTS["radiator"]
    min_supply: float | None = None
    min_return: float | None = None
    design_flow: float | None = None  # m³/h; no_circulation below min_flow_share of it


@dataclass(frozen=True, slots=True)
class Point:
    """One quantity of a station or loop: a Modbus register (`address`) or an MQTT `topic`."""

    quantity: str
    loop: str | None = None
    sensor: str | None = None
    register: str = "holding"
    address: int | None = None  # the zero-based protocol address
    address_written: str = ""  # as the config wrote it ("40101", or 101 with address_base 1), when it differs
    type: str = "float32"
    byte_order: str = "ABCD"  # resolved: the point's own or its station's
    scale: float = 1.0
    offset: float = 0.0
    topic: str | None = None
    format: str = "plain"
    value_key: str = "value"
    time_key: str = ""
    flatline_tolerance: float | None = None  # K; None: the rule's, or the point's resolution if coarser

    @property
    def width(self) -> int:
        """Registers this point occupies."""
        return REGISTER_WIDTH[self.type]


@dataclass(frozen=True, slots=True)
class Station:
    """One heat-exchange station: its loops, its points and (optionally) its Modbus link.

    `company` is the heating company (供热单位) answerable for it, `heat_source` the heat source (热源单位)
    behind its primary side; `area_m2` and `households` are what it serves (None: not stated).
    """

    id: str
    name: str = ""
    district: str = ""
    company: str = ""
    heat_source: str = ""
    area_m2: float | None = None
    households: int | None = None
    modbus: ModbusLink | None = None
    loops: tuple[Loop, ...] = ()
    points: tuple[Point, ...] = ()
    setbacks: tuple[Setback, ...] | None = None  # None: the site-wide [[rules.setback]]

    @property
    def modbus_points(self) -> tuple[Point, ...]:
        """Points read over Modbus."""
        return tuple(p for p in self.points if p.address is not None)

    @property
    def mqtt_points(self) -> tuple[Point, ...]:
        """Points that arrive on their own MQTT topic."""
        return tuple(p for p in self.points if p.topic is not None)
