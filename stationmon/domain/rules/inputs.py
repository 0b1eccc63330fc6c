"""What the rules read: the plant as arrays (`LoopTable`), the latest values (`Series`, `RuleInputs`),
the heating season and whether a station is online. Pure: the time is always a parameter.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np

from stationmon.domain.heating import FloatArray
from stationmon.domain.plant import DailyWindow, Point, Setback, Site, Station
from stationmon.domain.rules.faults import BoolArray, IntArray
from stationmon.domain.vocabulary import DESIGN_INDOOR, STATION_QUANTITIES

__all__ = [
    "JUDGED_QUANTITIES",
    "LoopRow",
    "LoopTable",
    "PointFacts",
    "RuleInputs",
    "Series",
    "in_heating_season",
    "local_minute",
    "reading_age",
    "station_online",
]

# The series the rules read, and where each lives (household indoor_temp sensors aside).
JUDGED_QUANTITIES = ("supply_temp", "return_temp", "flow", "pump_running", "outdoor_temp", "primary_supply_temp")
_INTEGER_TYPES = frozenset({"int16", "uint16", "int32", "uint32"})

# (station id, loop id, design supply, design return, exponent, min supply, min return)
LoopRow = tuple[str, str, float, float, float, float | None, float | None]


def in_heating_season(now: float, timezone: str, start: tuple[int, int], end: tuple[int, int]) -> bool:
    """True if local date of `now` is within start..end (MM, DD), both inclusive; may wrap new year."""
    local = dt.datetime.fromtimestamp(now, zoneinfo.ZoneInfo(timezone))
    md = (local.month, local.day)
    if start <= end:
        return start <= md <= end
    return md >= start or md <= end


def local_minute(now: float, timezone: str) -> int:
    """Minutes since local midnight at `now`."""
    local = dt.datetime.fromtimestamp(now, zoneinfo.ZoneInfo(timezone))
    return local.hour * 60 + local.minute


def reading_age(last_reading_ts: FloatArray, now: float) -> FloatArray:
    """Seconds since each last reading; inf where there was none (NaN)."""
    ts = np.asarray(last_reading_ts, dtype=np.float64)
    return np.where(np.isnan(ts), np.inf, now - ts)


@overload
def station_online(last_reading_ts: float | None, now: float, offline_after_s: float) -> bool: ...
@overload
def station_online(last_reading_ts: FloatArray, now: float, offline_after_s: float) -> BoolArray: ...
def station_online(last_reading_ts: float | FloatArray | None, now: float, offline_after_s: float) -> bool | BoolArray:
    """Online: the newest reading is at most `offline_after_s` old; one definition for the rules and the API."""
    if isinstance(last_reading_ts, np.ndarray):
        return reading_age(last_reading_ts, now) <= offline_after_s
    return last_reading_ts is not None and now - last_reading_ts <= offline_after_s


@dataclass(slots=True)
class Series:
    """Latest value of one quantity for many loops/stations/sensors; ts NaN: never read."""

    value: FloatArray
    ts: FloatArray
    flagged: BoolArray

    @classmethod
    def empty(cls, n: int) -> Series:
        """n series never read."""
        return cls(np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=bool))

    @classmethod
    def of(cls, value: Iterable[float], ts: Iterable[float], flagged: Iterable[bool] | None = None) -> Series:
        """From sequences (flagged defaults to all False)."""
        v = np.asarray(list(value) if not isinstance(value, np.ndarray) else value, dtype=np.float64)
        t = np.asarray(list(ts) if not isinstance(ts, np.ndarray) else ts, dtype=np.float64)
        f = np.zeros(v.shape, dtype=bool) if flagged is None else np.asarray(list(flagged), dtype=bool)
        return cls(v, t, f)

    def age(self, now: float) -> FloatArray:
        """Seconds since each value was read (inf if never)."""
        return reading_age(self.ts, now)


@dataclass(frozen=True, slots=True, eq=False)
class PointFacts:
    """Per loop (or station, for station quantities): is the point configured, and how fine it reads."""

    configured: BoolArray  # a configured point with no fresh value while its station answers is stale
    tolerance: FloatArray  # its own flatline_tolerance, NaN: none stated
    resolution: FloatArray  # the step of an integer register (|scale|), 0 for floats

    @classmethod
    def of(cls, stations: Sequence[Station], quantity: str) -> PointFacts:
        """From the stations' points of `quantity`, in loop (or station) order."""
        found: list[Point | None] = []
        for s in stations:
            mine = {p.loop: p for p in s.points if p.quantity == quantity and p.sensor is None}
            if quantity in STATION_QUANTITIES:
                found.append(mine.get(None))
            else:
                found.extend(mine.get(lp.id) for lp in s.loops)
        return cls(
            configured=np.array([p is not None for p in found], dtype=bool),
            tolerance=np.array(
                [np.nan if p is None or p.flatline_tolerance is None else p.flatline_tolerance for p in found]
            ),
            resolution=np.array(
                [abs(p.scale) if p is not None and p.type in _INTEGER_TYPES else 0.0 for p in found], dtype=np.float64
            ),
        )


@dataclass(frozen=True, slots=True, eq=False)
class LoopTable:
    """Static per-loop and per-station arrays, built once from the plant."""

    station_ids: tuple[str, ...]
    districts: tuple[str, ...]
    loop_ids: tuple[str, ...]
    loop_station: IntArray
    design_supply: FloatArray
    design_return: FloatArray
    exponent: FloatArray
    min_supply: FloatArray  # NaN: no fixed floor
    min_return: FloatArray
    indoor_target: float = 18.0
    outdoor_design: float = -24.2
    design_indoor: float = DESIGN_INDOOR
    indoor_refund_below: float = 16.0
    timezone: str = "Asia/Shanghai"
    inspection_exclude: tuple[DailyWindow, ...] = ()
    loop_index: Mapping[tuple[str, str], int] = field(default_factory=dict)
    station_index: Mapping[str, int] = field(default_factory=dict)
    design_flow: FloatArray = field(default_factory=lambda: np.zeros(0))  # m³/h, NaN: not stated
    station_setbacks: tuple[tuple[Setback, ...] | None, ...] = ()  # None: the site-wide ones
    companies: tuple[str, ...] = ()  # per station, its heating company ("": none); beside `districts`
    points: Mapping[str, PointFacts] = field(default_factory=dict)  # by quantity; absent: none configured

    @property
    def n_loops(self) -> int:
        """Number of loops."""
        return len(self.loop_ids)

    @property
    def n_stations(self) -> int:
        """Number of stations."""
        return len(self.station_ids)

    @classmethod
    def build(
        cls,
        stations: Iterable[tuple[str, str]],
        loops: Iterable[LoopRow],
        site: Site | None = None,
        *,
        design_flow: Sequence[float | None] | None = None,
        station_setbacks: Sequence[tuple[Setback, ...] | None] | None = None,
        points: Mapping[str, PointFacts] | None = None,
        companies: Sequence[str] | None = None,
    ) -> LoopTable:
        """From (station id, district) and `LoopRow` rows; the site gives target and design temperatures;
        `companies` one per station (default none)."""
        site = site or Site()
        st = list(stations)
        station_index = {sid: i for i, (sid, _) in enumerate(st)}
        rows = list(loops)

        def column(k: int) -> FloatArray:
            return np.array([np.nan if r[k] is None else r[k] for r in rows], dtype=np.float64)

        flows = [None] * len(rows) if design_flow is None else list(design_flow)

        return cls(
            station_ids=tuple(s for s, _ in st),
            districts=tuple(d for _, d in st),
            loop_ids=tuple(r[1] for r in rows),
            loop_station=np.array([station_index[r[0]] for r in rows], dtype=np.int64),
            design_supply=column(2),
            design_return=column(3),
            exponent=column(4),
            min_supply=column(5),
            min_return=column(6),
            indoor_target=site.indoor_target,
            outdoor_design=site.outdoor_design,
            design_indoor=site.design_indoor,
            indoor_refund_below=site.indoor_refund_below,
            timezone=site.timezone,
            inspection_exclude=site.inspection_exclude,
            loop_index={(r[0], r[1]): i for i, r in enumerate(rows)},
            station_index=station_index,
            design_flow=np.array([np.nan if f is None else f for f in flows], dtype=np.float64),
            station_setbacks=tuple(station_setbacks) if station_setbacks is not None else (None,) * len(st),
            points=dict(points or {}),
            companies=tuple(companies) if companies is not None else ("",) * len(st),
        )

    @classmethod
    def from_plant(cls, site: Site, stations: Sequence[Station]) -> LoopTable:
        """Every loop of every station, in configuration order."""
        return cls.build(
            ((s.id, s.district) for s in stations),
            (
                (s.id, lp.id, lp.design_supply, lp.design_return, lp.exponent, lp.min_supply, lp.min_return)
                for s in stations
                for lp in s.loops
            ),
            site,
            design_flow=[lp.design_flow for s in stations for lp in s.loops],
            station_setbacks=[s.setbacks for s in stations],
            points={q: PointFacts.of(stations, q) for q in JUDGED_QUANTITIES},
            companies=[s.company for s in stations],
        )

    def station_of(self, loop: int) -> str:
        """Station id of loop index `loop`."""
        return self.station_ids[int(self.loop_station[loop])]


@dataclass(slots=True)
class RuleInputs:
    """Everything one evaluation reads; loop arrays have n_loops entries, station ones n_stations."""

    now: float
    supply: Series
    return_: Series
    flow: Series
    outdoor: Series
    primary_supply: Series
    station_last_seen: FloatArray  # NaN: never
    indoor: Series = field(default_factory=lambda: Series.empty(0))
    indoor_loop: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    in_season: bool = True
    started_at: float | None = None  # a station never seen counts as seen then (for offline_after)
    pump_running: Series | None = None  # per loop; None: no pump status anywhere
