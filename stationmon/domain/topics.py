"""MQTT topics -> routes. Pure: subscriptions and stations in, broker filters and a topic router out.

A template such as `heat/{station}/{loop}/{quantity}` becomes the filter `heat/+/+/+` and a matcher
capturing each placeholder. A point's own topic wins over templates; templates are tried in config
order. Routes are cached per topic: a district's sensors publish to the same topics over and over.

Templates let publishers name series (`{sensor}`, `{quantity}`, `json_fields` keys): `SeriesLimits`
caps how many distinct ones a loop may have, so a misconfigured publisher cannot grow InfluxDB's index,
the latest values and the API without bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from stationmon.domain.model import Reading
from stationmon.domain.payloads import QUANTITY_RE, PayloadSpec, Route
from stationmon.domain.plant import Point, Station
from stationmon.domain.vocabulary import CANONICAL_QUANTITIES

__all__ = [
    "TEMPLATE_FIELDS",
    "CompiledTemplate",
    "PayloadSpec",
    "Route",
    "SeriesLimits",
    "Subscription",
    "TopicRouter",
    "compile_template",
    "filter_matches",
    "shared_filter",
]

# The placeholders a template may use, each filling one whole topic level.
TEMPLATE_FIELDS = ("station", "loop", "quantity", "sensor")
_MAX_CACHED_TOPICS = 65536


@dataclass(frozen=True, slots=True)
class Subscription:
    """One `[[mqtt.subscriptions]]` entry: a topic template, how to read its payloads, fixed fields."""

    topic: str
    format: str = "plain"
    value: str = "value"  # json: the key holding the number
    time: str = ""  # json formats: the key holding the time
    qos: int = 1
    # fixed values of fields the template does not capture ("" = none)
    station: str = ""
    loop: str = ""
    quantity: str = ""
    sensor: str = ""


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """One `[[mqtt.subscriptions]]` entry, ready to match topics split into levels."""

    filter: str  # what to subscribe to: placeholders replaced by '+'
    qos: int
    levels: int  # levels before a trailing '#' (or all of them)
    multi_level: bool  # ends in '#': topics may have more levels
    literals: tuple[tuple[int, str], ...]  # (level index, text) that must match exactly
    captures: tuple[tuple[str, int], ...]  # (field, level index)
    fixed: tuple[tuple[str, str], ...]  # (field, value) set in the config, not captured
    spec: PayloadSpec

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        """The captured and fixed fields if `parts` (the topic's levels) match, else None."""
        n = len(parts)
        if n != self.levels and not (self.multi_level and n >= self.levels):
            return None
        for i, text in self.literals:
            if parts[i] != text:
                return None
        fields = dict(self.fixed)
        for name, i in self.captures:
            fields[name] = parts[i]
        return fields


def compile_template(sub: Subscription) -> CompiledTemplate:
    """Compile one subscription's topic template (validated by the config) into a matcher."""
    levels = sub.topic.split("/")
    multi_level = levels[-1] == "#"
    if multi_level:
        levels = levels[:-1]
    literals: list[tuple[int, str]] = []
    captures: list[tuple[str, int]] = []
    filter_levels: list[str] = []
    for i, level in enumerate(levels):
        if level.startswith("{") and level.endswith("}") and level[1:-1] in TEMPLATE_FIELDS:
            captures.append((level[1:-1], i))
            filter_levels.append("+")
        elif level == "+":
            filter_levels.append("+")
        else:
            literals.append((i, level))
            filter_levels.append(level)
    if multi_level:
        filter_levels.append("#")
    captured = {name for name, _ in captures}
    fixed = tuple(
        (name, value)
        for name in TEMPLATE_FIELDS
        if (value := getattr(sub, name)) and name not in captured  # a captured level wins over a fixed value
    )
    return CompiledTemplate(
        filter="/".join(filter_levels),
        qos=sub.qos,
        levels=len(levels),
        multi_level=multi_level,
        literals=tuple(literals),
        captures=tuple(captures),
        fixed=fixed,
        spec=PayloadSpec(format=sub.format, value_key=sub.value, time_key=sub.time),
    )


def filter_matches(topic_filter: str, topic: str) -> bool:
    """MQTT matching of one concrete topic against a filter with `+` and `#` (no `$share` prefix)."""
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    if topic.startswith("$") and f_levels[0] in ("+", "#"):
        return False  # MQTT 4.7.2: wildcards at the first level do not match $SYS and friends
    for i, f in enumerate(f_levels):
        if f == "#":
            return True
        if i >= len(t_levels) or (f != "+" and f != t_levels[i]):
            return False
    return len(f_levels) == len(t_levels)


def shared_filter(topic_filter: str, share_group: str) -> str:
    """`t` -> `$share/<group>/t` (MQTT v5 shared subscription), or `t` unchanged without a group."""
    return f"$share/{share_group}/{topic_filter}" if share_group else topic_filter


class TopicRouter:
    """Topic -> the routes of its readings, or the reason it has none; built once from the config."""

    def __init__(
        self,
        stations: Iterable[Station],
        subscriptions: Iterable[Subscription],
        *,
        point_qos: int = 1,
        share_group: str = "",
        max_cached_topics: int = _MAX_CACHED_TOPICS,
    ) -> None:
        self.stations = {s.id: s for s in stations}
        self._loops = {s.id: frozenset(lp.id for lp in s.loops) for s in self.stations.values()}
        self.templates = tuple(compile_template(s) for s in subscriptions)
        self.point_qos = point_qos
        self.share_group = share_group
        points: dict[str, list[Route]] = {}
        for station in self.stations.values():
            for point in station.mqtt_points:
                assert point.topic is not None
                points.setdefault(point.topic, []).append(_point_route(station.id, point))
        self.points: dict[str, tuple[Route, ...]] = {t: tuple(r) for t, r in points.items()}
        self._cache: dict[str, tuple[Route, ...] | str] = {}
        self._max_cached = max_cached_topics

    def filters(self) -> list[tuple[str, int]]:
        """(filter, qos) to subscribe to: every template's filter and every point topic no filter covers."""
        out: dict[str, int] = {}
        for t in self.templates:
            out[t.filter] = max(out.get(t.filter, 0), t.qos)
        template_filters = list(out)
        for topic in self.points:
            # the broker would deliver a topic covered twice twice; the point's lookup wins anyway
            covered = any(filter_matches(f, topic) and out[f] >= self.point_qos for f in template_filters)
            if not covered:
                out[topic] = max(out.get(topic, 0), self.point_qos)
        return [(shared_filter(f, self.share_group), qos) for f, qos in out.items()]

    def route(self, topic: str) -> tuple[Route, ...] | str:
        """The routes for one message's topic (usually one), or a rejection reason."""
        cached = self._cache.get(topic)
        if cached is not None:
            return cached
        found = self._resolve(topic)
        if len(self._cache) >= self._max_cached:
            # a flood of distinct topics must not grow memory without bound
            self._cache.clear()
        self._cache[topic] = found
        return found

    def _resolve(self, topic: str) -> tuple[Route, ...] | str:
        routes = self.points.get(topic)
        if routes is not None:
            return routes
        parts = topic.split("/")
        for template in self.templates:
            fields = template.match(parts)
            if fields is not None:
                return self._template_route(fields, template.spec)
        return "no_match"

    def _template_route(self, fields: dict[str, str], spec: PayloadSpec) -> tuple[Route, ...] | str:
        station = fields.get("station")
        if station is None or station not in self.stations:
            return "unknown_station"
        loop = fields.get("loop")
        if loop is not None and loop not in self._loops[station]:
            # an unconfigured loop has no design temperatures: no rule could judge it
            return "unknown_loop"
        quantity = fields.get("quantity")
        if quantity is not None and not QUANTITY_RE.fullmatch(quantity):
            return "bad_quantity"
        if quantity is None and spec.format == "plain":
            return "bad_quantity"
        sensor = fields.get("sensor")
        if sensor is not None and not sensor:
            return "bad_sensor"
        return (Route(station, loop, quantity, sensor, spec),)


def _point_route(station: str, point: Point) -> Route:
    return Route(
        station,
        point.loop,
        point.quantity,
        point.sensor,
        PayloadSpec(format=point.format, value_key=point.value_key, time_key=point.time_key),
    )


class SeriesLimits:
    """At most `max_sensors` distinct sensors and `max_quantities` distinct quantities per (station, loop).

    Counted since start. Configured points and the canonical quantities (CONTRACT section 3) are always
    admitted; a new name past a limit is refused (reason `too_many_series`), names seen before still pass.
    """

    def __init__(self, max_sensors: int, max_quantities: int, stations: Iterable[Station] = ()) -> None:
        self.max_sensors = max_sensors
        self.max_quantities = max_quantities
        self._sensors: dict[tuple[str, str | None], set[str]] = {}
        self._quantities: dict[tuple[str, str | None], set[str]] = {}
        self._configured: set[tuple[str, str | None, str | None, str]] = {
            (s.id, p.loop, p.sensor, p.quantity) for s in stations for p in s.points
        }

    def admit(self, reading: Reading) -> bool:
        """Whether `reading`'s series may be stored; remembers a new sensor or quantity it admits."""
        where = (reading.station, reading.loop)
        quantity, sensor = reading.quantity, reading.sensor
        quantities = self._quantities.get(where)
        if quantities is None:
            quantities = self._quantities[where] = set()
        if (reading.station, reading.loop, sensor, quantity) in self._configured:
            return True
        new_quantity = quantity not in quantities and quantity not in CANONICAL_QUANTITIES
        if new_quantity and len(quantities) >= self.max_quantities:
            return False
        if sensor is not None:
            sensors = self._sensors.get(where)
            if sensors is None:
                sensors = self._sensors[where] = set()
            if sensor not in sensors:
                if len(sensors) >= self.max_sensors:
                    return False
                sensors.add(sensor)
        if new_quantity:
            quantities.add(quantity)
        return True

    def counts(self) -> dict[tuple[str, str | None], tuple[int, int]]:
        """(sensors, quantities) admitted per (station, loop), for status and tests."""
        keys = self._sensors.keys() | self._quantities.keys()
        return {k: (len(self._sensors.get(k, ())), len(self._quantities.get(k, ()))) for k in keys}
