"""One `[[stations]]` entry of a config as TOML text, built from a few values: the usual station in one call.

    station_toml("alpha", port=p, name="阿尔法换热站")
    # a Modbus station on 127.0.0.1:p polled every 500 ms (timeout 400 ms), one radiator loop "sec1" and the
    # simulator's register map: outdoor_temp at 0, sec1 supply_temp at 2 and return_temp at 4
    # (no type: the config's default, float32)

    station_toml("gamma", loops=[loop_entry("sec1", "floor")],
                 points=[point_entry("outdoor_temp", "plc/gamma/outdoor"), *water(supply="plc/gamma/sec1/supply")])
    # an MQTT-only station (no port: no [stations.modbus]), its points on topics

A key whose value is None is left out, so the config's own default holds for it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

__all__ = ["PLC_POINTS", "loop_entry", "outdoor", "point_entry", "station_toml", "water"]

Value = str | int | float | bool
Table = dict[str, Value]


def _table(**keys: Value | None) -> Table:
    return {key: value for key, value in keys.items() if value is not None}


def _where(at: int | str | None) -> dict[str, int | str | None]:
    return {"address": at} if isinstance(at, int) else {"topic": at}


def _render(header: str, keys: Mapping[str, Value]) -> str:
    return header + "\n" + "".join(f"{key} = {_value(value)}\n" for key, value in keys.items())


def _value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are all TOML basic-string escapes
    return repr(value)


def loop_entry(id: str = "sec1", emitter: str | None = "radiator", design: tuple[float, float] | None = None) -> Table:
    """A `[[stations.loops]]` entry: its id, emitter and (supply, return) design temperatures."""
    supply, ret = design if design is not None else (None, None)
    return _table(id=id, emitter=emitter, design_supply=supply, design_return=ret)


def point_entry(quantity: str, at: int | str | None = None, *, loop: str | None = None, **keys: Value | None) -> Table:
    """A `[[stations.points]]` entry: `at` is its register address (an int) or its MQTT topic (a str);
    `keys` are any further keys of the point (type, scale, register, byte_order, format, ...)."""
    return _table(loop=loop, quantity=quantity, **_where(at), **keys)


def outdoor(at: int | str = 0, **keys: Value | None) -> Table:
    """The station's outdoor temperature point (it belongs to no loop)."""
    return _table(quantity="outdoor_temp", **_where(at), **keys)


def water(
    loop: str = "sec1",
    supply: int | str = 2,
    ret: int | str | None = 4,
    flow: int | str | None = None,
    **keys: Value | None,
) -> list[Table]:
    """A loop's supply_temp, return_temp and flow points at these addresses (or topics), each with `keys`;
    None leaves a point out."""
    wanted = {"supply_temp": supply, "return_temp": ret, "flow": flow}
    return [point_entry(quantity, at, loop=loop, **keys) for quantity, at in wanted.items() if at is not None]


PLC_POINTS: tuple[Table, ...] = (outdoor(), *water())
"""The simulator's usual register map: outdoor_temp at 0, sec1's supply_temp at 2 and return_temp at 4."""


def station_toml(
    sid: str,
    *,
    port: int | None = None,
    host: str | None = "127.0.0.1",
    interval: str | None = "500ms",
    timeout: str | None = "400ms",
    modbus: Mapping[str, Value | None] | None = None,
    loops: Iterable[Table] = (loop_entry(),),
    points: Iterable[Table] = PLC_POINTS,
    **meta: Value | None,
) -> str:
    """One `[[stations]]` entry: `meta` (name, district, company, area_m2, ...) after its id; a
    `[stations.modbus]` table (host, port, interval, timeout and the further keys in `modbus`) when `port`
    is given; then its loops and points."""
    parts = [_render("[[stations]]", _table(id=sid, **meta))]
    if port is not None:
        keys = _table(host=host, port=port, interval=interval, timeout=timeout, **(modbus or {}))
        parts.append(_render("[stations.modbus]", keys))
    parts += [_render("[[stations.loops]]", lp) for lp in loops]
    parts += [_render("[[stations.points]]", pt) for pt in points]
    return "".join(parts)
