"""`[site]` and `[[stations]]` (with their modbus link, loops and points) -> the domain's plant types."""

from __future__ import annotations

import itertools
import math
import re
import zoneinfo
from collections.abc import Callable, Iterator
from typing import TypeVar

from stationmon.config.reader import Problems, Table, show, suggest
from stationmon.config.rules import parse_daily_window, read_setbacks
from stationmon.config.schema import PARITIES, TRANSPORTS
from stationmon.domain.payloads import QUANTITY_RE
from stationmon.domain.plant import DailyWindow, Loop, ModbusLink, Point, Site, Station
from stationmon.domain.registers import parse_modicon
from stationmon.domain.vocabulary import (
    BYTE_ORDERS,
    CANONICAL_QUANTITIES,
    DATA_TYPES,
    EMITTER_EXPONENTS,
    LOOP_QUANTITIES,
    PLAUSIBLE_RANGES,
    REGISTER_TYPES,
    REGISTER_WIDTH,
    STATION_QUANTITIES,
)

__all__ = ["read_site", "read_stations"]

_Item = TypeVar("_Item", Station, Loop)
_ID_RE = re.compile(r"^[a-z0-9_-]+$")
_INDOOR_C = (5.0, 30.0)
_FLOOR_C = (0.0, 150.0)  # min_supply / min_return
_MAX_TZ_NAME = 64
_FLOW_M3H = PLAUSIBLE_RANGES["flow"]
_POINT_FORMATS = ("plain", "json")  # a point's topic carries one quantity: json_fields makes no sense
_RADIATOR = Loop(id="")
# Design supply/return assumed for a loop that does not state them, by emitter.
_DESIGN_C: dict[str, tuple[float, float]] = {
    "floor": (50.0, 40.0),
    "radiator": (_RADIATOR.design_supply, _RADIATOR.design_return),
}


def read_site(root: Table) -> Site:
    """`[site]`; the notices name the Harbin defaults a user elsewhere must replace."""
    d = Site()
    t = root.table("site")
    if t is None:
        root.problems.notices.append(
            f"site: no [site] table; indoor_target {d.indoor_target} °C, outdoor_design {d.outdoor_design} °C (Harbin)"
        )
        return d
    if not t.has("outdoor_design"):
        t.problems.notices.append(
            f"site.outdoor_design: not set; using {d.outdoor_design} °C (Harbin): set your city's"
        )
    tz = _timezone(t, d.timezone)
    site = Site(
        name=t.text("name", d.name),
        timezone=tz,
        indoor_target=t.number("indoor_target", d.indoor_target, lo=_INDOOR_C[0], hi=_INDOOR_C[1]),
        outdoor_design=t.number("outdoor_design", d.outdoor_design, lo=-60.0, hi=15.0),
        design_indoor=t.number("design_indoor", d.design_indoor, lo=_INDOOR_C[0], hi=_INDOOR_C[1]),
        indoor_refund_below=t.number("indoor_refund_below", d.indoor_refund_below, lo=_INDOOR_C[0], hi=_INDOOR_C[1]),
        inspection_exclude=_windows(t, "inspection_exclude"),
        fee_per_m2=t.number("fee_per_m2", d.fee_per_m2, lo=0.0),
    )
    if site.indoor_refund_below > site.indoor_target:
        t.add(
            "indoor_refund_below",
            f"{site.indoor_refund_below:g} must not be above indoor_target ({site.indoor_target:g})",
        )
    t.finish()
    return site


def _timezone(t: Table, default: str) -> str:
    """`timezone`: an IANA name zoneinfo knows; a path-like or over-long name is refused before any file lookup."""
    tz = t.text("timezone", default)
    try:
        if len(tz) > _MAX_TZ_NAME:  # the longest IANA name has 30 characters; the file system limits the rest
            raise ValueError(tz)
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for the file system
        t.add("timezone", f"unknown time zone {show(tz)} (expected an IANA name such as {default})")
        tz = default
    return tz


def _windows(t: Table, name: str) -> tuple[DailyWindow, ...]:
    """An array of "HH:MM-HH:MM" local windows."""
    if not t.has(name):
        return ()
    value = t.data[name]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        t.add(name, f'expected an array of "HH:MM-HH:MM" strings, got {value!r}')
        return ()
    windows = (parse_daily_window(t, f"{name}[{i}]", text) for i, text in enumerate(value))
    return tuple(w for w in windows if w is not None)


def read_stations(root: Table, has_mqtt: bool) -> list[Station]:
    """Every `[[stations]]`, ids unique; at least one is needed, and MQTT points need `[mqtt]`."""
    if not root.has("stations"):
        root.add("stations", "missing: at least one [[stations]] with an id")
    stations: list[Station] = []
    for st, station in _unique(root, "stations", _station, "station"):
        stations.append(station)
        if station.mqtt_points and not has_mqtt:
            st.add("points", "has MQTT points (topic) but there is no [mqtt] table")
    return stations


def _unique(t: Table, name: str, read: Callable[[Table], _Item | None], what: str) -> Iterator[tuple[Table, _Item]]:
    """Each `[[name]]` that reads well, in order; a repeated id is reported and skipped."""
    seen: dict[str, int] = {}
    for i, item_table in t.tables(name):
        item = read(item_table)
        if item is None:
            continue
        if item.id in seen:
            item_table.add("id", f"duplicate {what} id {item.id!r} (also {name}[{seen[item.id]}])")
            continue
        seen[item.id] = i
        yield item_table, item


def _read_id(t: Table, what: str) -> str | None:
    value = t.text("id", None)
    if value is None:
        t.add("id", f"missing: every {what} needs an id")
    elif not _ID_RE.match(value):
        t.add("id", f"{value!r} may only contain a-z, 0-9, '-' and '_'")
    return value


def _station(t: Table) -> Station | None:
    sid = _read_id(t, "station")
    mt = t.table("modbus")
    modbus = _modbus(mt) if mt is not None else None
    loops = [loop for _, loop in _unique(t, "loops", _loop, "loop")]
    byte_order = modbus.byte_order if modbus else ModbusLink().byte_order
    points: list[tuple[int, Point]] = []
    for i, pt in t.tables("points"):
        point = _point(pt, byte_order, {lp.id for lp in loops}, modbus)
        if point is not None:
            points.append((i, point))
    _check_points(t.path, points, t.problems)
    _check_overlaps(t.path, points, t.problems)
    d = Station(id="")
    station = Station(
        id=sid or "",
        name=t.text("name", d.name),
        district=t.text("district", d.district),
        company=t.text("company", d.company),
        heat_source=t.text("heat_source", d.heat_source),
        area_m2=_area(t),
        households=t.integer("households", d.households, lo=0),
        modbus=modbus,
        loops=tuple(loops),
        points=tuple(p for _, p in points),
        setbacks=read_setbacks(t, "setback") if t.has("setback") else None,
    )
    t.finish()
    return station if sid else None


def _area(t: Table) -> float | None:
    """`area_m2`: the heated area served, a number above 0."""
    area = t.number("area_m2", None)
    if area is not None and not 0.0 < area < math.inf:
        t.add("area_m2", f"{area:g} is out of range (expected a finite number above 0: the heated area served, m²)")
        return None
    return area


def _modbus(t: Table) -> ModbusLink:
    d = ModbusLink()
    transport = t.choice("transport", TRANSPORTS, d.transport, "transport")
    serial_port = t.text("serial_port", d.serial_port)
    if transport == "rtu" and not serial_port:
        t.add("serial_port", 'missing: transport = "rtu" needs a serial_port such as /dev/ttyUSB0')
    interval = t.duration("interval", d.interval_s, allow_zero=False)
    # the default fits what was written: never longer than the interval
    timeout = t.duration("timeout", min(d.timeout_s, interval), allow_zero=False)
    if timeout > interval:
        t.add("timeout", f"{timeout:g}s is longer than the interval ({interval:g}s)")
    elif not t.has("timeout") and timeout < d.timeout_s:
        t.problems.notices.append(
            f"{t.key('timeout')}: not set; using {timeout:g}s (the interval; {d.timeout_s:g}s for longer intervals)"
        )
    if not t.has("port"):
        t.problems.notices.append(f"{t.key('port')}: not set; using {d.port}")
    link = ModbusLink(
        host=t.text("host", d.host),
        port=t.integer("port", d.port, lo=1, hi=65535),
        device_id=t.integer("device_id", d.device_id, lo=0, hi=255),
        interval_s=interval,
        timeout_s=timeout,
        byte_order=t.choice("byte_order", BYTE_ORDERS, d.byte_order, "byte order"),
        transport=transport,
        serial_port=serial_port,
        baudrate=t.integer("baudrate", d.baudrate, lo=300),
        parity=t.choice("parity", PARITIES, d.parity, "parity"),
        stopbits=t.integer("stopbits", d.stopbits, lo=1, hi=2),
        bytesize=t.integer("bytesize", d.bytesize, lo=5, hi=8),
        max_registers_per_request=t.integer("max_registers_per_request", d.max_registers_per_request, lo=1, hi=125),
        max_gap=t.integer("max_gap", d.max_gap, lo=0, hi=124),
        one_request_per_point=t.flag("one_request_per_point", d.one_request_per_point),
        retries=t.integer("retries", d.retries, lo=0, hi=10),
        jitter_s=t.duration("jitter", d.jitter_s),
        address_base=t.integer("address_base", d.address_base, lo=0, hi=1),
    )
    if "slave" in t.data:
        t.known.add("slave")
        t.add("slave", "unknown key (did you mean 'device_id'?)")
    t.finish()
    return link


def _loop(t: Table) -> Loop | None:
    loop_id = _read_id(t, "loop")
    d = Loop(id="")
    emitter = t.choice("emitter", tuple(EMITTER_EXPONENTS), d.emitter, "emitter")
    exponent = t.number("exponent", EMITTER_EXPONENTS[emitter], lo=1.0, hi=2.0)
    design = _DESIGN_C[emitter]
    unset = [k for k in ("emitter", "design_supply", "design_return") if k not in t.data]
    supply = t.number("design_supply", design[0], lo=20.0, hi=150.0)
    ret = t.number("design_return", design[1], lo=15.0, hi=130.0)
    if unset:  # the values as read (a bad one is reported and replaced by the default), never the raw TOML
        t.problems.notices.append(
            f"{t.path}: {', '.join(unset)} not set; judged as a {emitter} loop designed for {supply:g}/{ret:g} °C"
        )
    if supply <= ret:
        t.add("design_return", f"{ret:g} must be below design_supply ({supply:g})")
    loop = Loop(
        id=loop_id or "",
        name=t.text("name", d.name),
        emitter=emitter,
        design_supply=supply,
        design_return=ret,
        exponent=exponent,
        min_supply=t.number("min_supply", d.min_supply, lo=_FLOOR_C[0], hi=_FLOOR_C[1]),
        min_return=t.number("min_return", d.min_return, lo=_FLOOR_C[0], hi=_FLOOR_C[1]),
        design_flow=t.number("design_flow", d.design_flow, lo=0.0, hi=_FLOW_M3H[1]),
    )
    t.finish()
    return loop if loop_id else None


def _point(t: Table, station_byte_order: str, loop_ids: set[str], modbus: ModbusLink | None) -> Point | None:
    d = Point(quantity="")
    quantity = t.text("quantity", None)
    if quantity is None:
        t.add("quantity", "missing: what the point measures, such as supply_temp")
    elif not QUANTITY_RE.fullmatch(quantity):
        t.add("quantity", f"{quantity!r} must be snake_case, such as supply_temp")
    loop = t.text("loop", d.loop)
    if loop is not None and loop not in loop_ids:
        known = ", ".join(sorted(loop_ids)) or "none defined"
        t.add("loop", f"unknown loop {loop!r} (this station's loops: {known}){suggest(loop, loop_ids)}")
    address, implied, written = _address(t, modbus.address_base if modbus else 0)
    topic = t.text("topic", d.topic)
    register = t.choice("register", REGISTER_TYPES, d.register, "register type")
    if implied is not None:
        if t.has("register") and register != implied:
            why = f"{register!r} contradicts address {written} (Modicon notation for {implied} registers)"
            t.add("register", f"{why}: remove register")
        register = implied
    dtype = t.choice("type", DATA_TYPES, d.type, "type")
    byte_order = t.choice("byte_order", BYTE_ORDERS, station_byte_order, "byte order")
    _check_source(t, address, topic, dtype, modbus is not None)
    fmt = t.choice("format", _POINT_FORMATS, d.format, "format")
    point = Point(
        quantity=quantity or "",
        loop=loop,
        sensor=t.text("sensor", d.sensor),
        register=register,
        address=address,
        address_written=written,
        type=dtype,
        byte_order=byte_order,
        scale=t.number("scale", d.scale),
        offset=t.number("offset", d.offset),
        topic=topic,
        format=fmt,
        value_key=t.text("value", d.value_key),
        time_key=t.text("time", d.time_key),
        flatline_tolerance=t.number("flatline_tolerance", d.flatline_tolerance, lo=0.0),
    )
    t.finish()
    return point if quantity else None


def _address(t: Table, base: int) -> tuple[int | None, str | None, str]:
    """`address`: (protocol address, the register type Modicon notation implies, how it was written).

    An integer counts from the station's `address_base`; a string is Modicon notation ("40101").
    "How it was written" is empty where it is the protocol address itself.
    """
    t.known.add("address")
    value = t.data.get("address")
    if value is None:
        return None, None, ""
    if isinstance(value, str):
        try:
            register, address = parse_modicon(value)
        except ValueError as exc:
            t.add("address", str(exc))
            return None, None, ""
        return address, register, f'"{value}"'
    if isinstance(value, bool) or not isinstance(value, int):
        t.add("address", f'expected an integer or Modicon notation such as "40101", got {value!r}')
        return None, None, ""
    if not base <= value <= 65535 + base:
        within = f" with address_base = {base}" if base else ""
        t.add("address", f"{value} is out of range (expected {base}..{65535 + base}{within})")
        return None, None, ""
    return value - base, None, str(value) if base else ""


def _check_source(t: Table, address: int | None, topic: str | None, dtype: str, has_modbus: bool) -> None:
    """A point has a Modbus address or an MQTT topic, exactly one, and it fits."""
    if address is None and topic is None and "address" not in t.data and "topic" not in t.data:
        t.add("address", "missing: a Modbus point needs an address, an MQTT point needs a topic")
    if address is not None and topic is not None:
        t.add("topic", "a point is either Modbus (address) or MQTT (topic), not both")
    if address is not None and not has_modbus:
        t.add("address", "this station has no [stations.modbus] table to read it from")
    if address is not None and address + REGISTER_WIDTH[dtype] - 1 > 65535:
        t.add("address", f"{dtype} at {address} runs past register 65535")
    if topic is not None and (not topic or any(c in topic for c in "+#{}")):
        t.add("topic", f"must be a full topic without wildcards or placeholders, got {topic!r}")


def _check_points(station_key: str, points: list[tuple[int, Point]], problems: Problems) -> None:
    """Quantities at the level the rules read them from, no series twice, near-misses pointed out."""
    seen: dict[tuple[str | None, str, str | None], int] = {}
    for i, p in points:
        key = f"{station_key}.points[{i}]"
        if p.quantity in STATION_QUANTITIES and p.loop is not None:
            problems.add(f"{key}.loop", f"{p.quantity} belongs to the station, not to a loop: remove loop")
        elif p.quantity in LOOP_QUANTITIES and p.loop is None:
            problems.notices.append(f"{key}.loop: not set: {p.quantity} is stored, but no loop rule judges it")
        if p.sensor is not None and p.quantity != "indoor_temp":
            problems.add(f"{key}.sensor", f"only indoor_temp points name a sensor, not {p.quantity}")
        series = (p.loop, p.quantity, p.sensor)
        if series in seen:
            problems.add(f"{key}.quantity", f"{p.quantity} of this loop is already read by points[{seen[series]}]")
        else:
            seen[series] = i
        if p.quantity not in CANONICAL_QUANTITIES:
            hint = suggest(p.quantity, sorted(CANONICAL_QUANTITIES))
            if hint:
                problems.notices.append(f"{key}.quantity: {p.quantity!r} is not a canonical quantity{hint}")


def _check_overlaps(station_key: str, points: list[tuple[int, Point]], problems: Problems) -> None:
    """No two Modbus points of one register type share a register."""
    for register in REGISTER_TYPES:
        spans = sorted(
            (p.address, p.address + p.width - 1, i)
            for i, p in points
            if p.address is not None and p.register == register
        )
        for (a_lo, a_hi, a_i), (b_lo, b_hi, b_i) in itertools.pairwise(spans):
            if b_lo <= a_hi:
                problems.add(
                    f"{station_key}.points[{b_i}].address",
                    f"{register} registers {b_lo}..{b_hi} overlap points[{a_i}] ({a_lo}..{a_hi})",
                )
