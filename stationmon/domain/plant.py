"""What the plant is: the site, its stations, their loops and points, and how a station is reached.

The config layer translates TOML into these once, so domain modules never see config classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from stationmon.domain.vocabulary import DESIGN_INDOOR, EMITTER_EXPONENTS, REGISTER_WIDTH

__all__ = ["Loop", "ModbusLink", "Point", "Site", "Station"]


@dataclass(frozen=True, slots=True)
class Site:
    """The city: its legal indoor target, design outdoor temperature and time zone."""

    name: str = ""
    timezone: str = "Asia/Shanghai"
    indoor_target: float = 18.0
    outdoor_design: float = -24.2
    design_indoor: float = DESIGN_INDOOR


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

    @property
    def width(self) -> int:
        """Registers this point occupies."""
        return REGISTER_WIDTH[self.type]


@dataclass(frozen=True, slots=True)
class Station:
    """One heat-exchange station: its loops, its points and (optionally) its Modbus link."""

    id: str
    name: str = ""
    district: str = ""
    modbus: ModbusLink | None = None
    loops: tuple[Loop, ...] = ()
    points: tuple[Point, ...] = ()

    @property
    def modbus_points(self) -> tuple[Point, ...]:
        """Points read over Modbus."""
        return tuple(p for p in self.points if p.address is not None)

    @property
    def mqtt_points(self) -> tuple[Point, ...]:
        """Points that arrive on their own MQTT topic."""
        return tuple(p for p in self.points if p.topic is not None)
