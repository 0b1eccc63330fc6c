"""The latest judgement of each loop, and the station documents the HTTP API and the status page show.

`LoopStatusView` reads the evaluator's result arrays; `station_document` describes one station (loops,
latest values, status, alerts) and `stations_document` every station at once (GET /api/v1/stations).
The city-scale views built on them (summary, filtered pages) are in `status_pages`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import numpy as np

from stationmon.config import Config
from stationmon.domain.alerts import AlertSnapshot
from stationmon.domain.latest import LatestValues, Sample, SeriesKey
from stationmon.domain.model import StationState
from stationmon.domain.plant import Station
from stationmon.domain.rules import RuleResults
from stationmon.domain.vocabulary import SEVERITIES, STATUS_NAMES

__all__ = [
    "STATION_DASHBOARD_UID",
    "STATUS_RANK",
    "AlertIndex",
    "ConditionStatus",
    "Judge",
    "LoopStatus",
    "LoopStatusView",
    "SeriesIndex",
    "StationValues",
    "StatusReader",
    "grafana_station_url",
    "json_text",
    "jsonable",
    "num",
    "shown_offline",
    "station_document",
    "stations_document",
    "worst_status",
]


@dataclass(frozen=True, slots=True)
class ConditionStatus:
    """One rule holding for a loop right now."""

    rule: str
    value: float | None
    threshold: float | None
    message: str


@dataclass(frozen=True, slots=True)
class LoopStatus:
    """The latest judgement of one loop (what `loop_status` stores, plus the reasons)."""

    station: str
    loop: str
    district: str
    ts: float
    status: str
    compliant: bool | None
    required_supply_temp: float | None
    required_return_temp: float | None
    estimated_indoor_temp: float | None
    delta_t: float | None
    expected_delta_t: float | None
    outdoor_temp: float | None  # the smoothed value the curve used
    conditions: tuple[ConditionStatus, ...]
    verdict: str = "none"  # what the status rests on: sensors, estimate, none
    measured_indoor_temp: float | None = None  # median of the fresh household sensors
    indoor_sensors: int = 0
    indoor_below_target: int = 0
    indoor_below_refund: int = 0
    beyond_design: bool = False
    setback: bool = False
    inspection_hour: bool = True

    @property
    def reasons(self) -> list[str]:
        """One line per active condition, e.g. "supply_low: supply 38.0 °C below 40.4 °C (...)"."""
        return [f"{c.rule}: {c.message}" for c in self.conditions]


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


_COMPLIANT = {"ok": True, "noncompliant": False}


class LoopStatusView(Mapping[tuple[str, str], LoopStatus]):
    """Read-only {(station, loop): LoopStatus} over the latest results, built per entry on access.

    Building 100,000 objects every tick would cost more than judging the loops, and the API reads a few.
    """

    def __init__(self, results: RuleResults | None) -> None:
        self._results = results

    def __getitem__(self, key: tuple[str, str]) -> LoopStatus:
        r = self._results
        if r is None:
            raise KeyError(key)
        i = r.table.loop_index[key]
        s = int(r.table.loop_station[i])
        conditions = []
        for checks, index, loop in ((r.loop_checks, i, key[1]), (r.station_checks, s, None)):
            for rule, check in checks.items():
                cond = r.lookup((rule, key[0], loop)) if check.active[index] else None
                if cond is not None:
                    conditions.append(ConditionStatus(rule, cond.value, cond.threshold, cond.message))
        status = r.status_name(i)
        return LoopStatus(
            station=key[0],
            loop=key[1],
            district=r.table.districts[s],
            ts=r.now,
            status=status,
            compliant=_COMPLIANT.get(status),
            required_supply_temp=_opt(float(r.required_supply[i])),
            required_return_temp=_opt(float(r.required_return[i])),
            estimated_indoor_temp=_opt(float(r.estimated_indoor[i])),
            delta_t=_opt(float(r.delta_t[i])),
            expected_delta_t=_opt(float(r.expected_delta_t[i])),
            outdoor_temp=_opt(float(r.outdoor[i])),
            conditions=tuple(conditions),
            verdict=r.verdict_name(i),
            measured_indoor_temp=_opt(float(r.measured_indoor[i])),
            indoor_sensors=int(r.indoor_sensors[i]),
            indoor_below_target=int(r.indoor_below_target[i]),
            indoor_below_refund=int(r.indoor_below_refund[i]),
            beyond_design=bool(r.beyond_design[i]),
            setback=bool(r.setback[i]),
            inspection_hour=r.inspection_hour,
        )

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._results.table.loop_index if self._results is not None else ())

    def __len__(self) -> int:
        return self._results.table.n_loops if self._results is not None else 0

    def names(self) -> dict[tuple[str, str], str]:
        """{(station, loop): status word} of every loop, straight from the result arrays (no LoopStatus built)."""
        r = self._results
        if r is None:
            return {}
        t = r.table
        stations = [t.station_ids[s] for s in t.loop_station.tolist()]
        return {
            (sid, lid): STATUS_NAMES[code]
            for sid, lid, code in zip(stations, t.loop_ids, r.status.tolist(), strict=True)
        }

    def counts(self) -> dict[str, int]:
        """Loops per status."""
        r = self._results
        if r is None:
            return {}
        found = np.bincount(r.status.astype(np.int64), minlength=len(STATUS_NAMES))
        return {name: int(found[i]) for i, name in enumerate(STATUS_NAMES)}


# ------------------------------------------------------------------------------------------------------------
# The status documents: GET /api/v1/stations (whole, or filtered and paginated) and GET /api/v1/summary

STATION_DASHBOARD_UID = "stationmon-district"  # configs/grafana/dashboards/stationmon.json: var-station
STATUS_RANK = {"offline": 5, "noncompliant": 4, "sensor_fault": 3, "unknown": 2, "ok": 1}
_LOOP_FIELDS = ("id", "name", "emitter", "design_supply", "design_return", "min_supply", "min_return")


class Judge(Protocol):
    """The evaluator as the status documents read it: its latest results."""

    @property
    def results(self) -> RuleResults | None: ...


class StatusReader(Protocol):
    """What the status documents read from the running service (stationmon.service.Service implements it)."""

    config: Config
    latest: LatestValues
    clock: Callable[[], float]

    @property
    def station_states(self) -> Mapping[str, StationState]: ...
    @property
    def evaluator(self) -> Judge: ...

    # Service documents each of these.
    def station_online(self, station: Station, now: float) -> bool: ...
    def loop_status(self, station: str, loop: str) -> LoopStatus | None: ...
    def active_alerts(self) -> list[AlertSnapshot]: ...


def num(value: Any) -> Any:
    """JSON cannot carry NaN or infinities: they become null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def jsonable(value: Any) -> Any:
    """Plain JSON values from dataclasses, containers and numpy scalars (NaN and infinities as None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return num(value.item())
    return num(value)


def _default(value: Any) -> Any:
    converted = jsonable(value)
    if converted is value:
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")
    return converted


def json_text(doc: Any) -> str:
    """`doc` as compact JSON (UTF-8, NaN and infinities as null, dataclasses as objects)."""
    try:
        # the documents are built from plain values already: the fast path skips the deep walk
        return json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_default)
    except ValueError:  # a NaN or infinity somewhere: walk it and write them as null
        return json.dumps(jsonable(doc), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def grafana_station_url(grafana_url: str, station: str) -> str | None:
    """The station's drill-down on the Station dashboard, or None without `[http] grafana_url`."""
    if not grafana_url:
        return None
    return f"{grafana_url}/d/{STATION_DASHBOARD_UID}?var-station={quote(station, safe='')}"


def _loop_status(status: LoopStatus | None) -> dict[str, Any]:
    """The evaluator's judgement of one loop as JSON fields; null and "unknown" before its first."""
    if status is None:
        return {**dict.fromkeys(_JUDGED_FIELDS), "status": "unknown", "verdict": "none", "reasons": []}
    return {
        **{f: num(getattr(status, f)) for f in _JUDGED_FIELDS},
        "status": status.status,
        "verdict": status.verdict or "none",
        "reasons": status.reasons,
    }


_JUDGED_FIELDS = (
    "required_supply_temp",
    "required_return_temp",
    "estimated_indoor_temp",
    "delta_t",
    "expected_delta_t",
    "outdoor_temp",
    "compliant",
    # issue 12: what the verdict rests on, the households' evidence, the hour's standing
    "verdict",
    "measured_indoor_temp",
    "indoor_sensors",
    "indoor_below_target",
    "indoor_below_refund",
    "beyond_design",
    "setback",
    "inspection_hour",
)


def _sample(sample: Sample, now: float) -> dict[str, Any]:
    return {
        "value": num(sample.value),
        "ts": sample.ts,
        "age_s": round(max(0.0, now - sample.ts), 3),
        "fault": sample.fault,
    }


@dataclasses.dataclass(slots=True)
class StationValues:
    """One station's latest values as JSON: station-level, per loop, household sensors per loop."""

    station: dict[str, Any] = dataclasses.field(default_factory=dict)
    loops: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    indoor: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def add(self, key: SeriesKey, sample: Sample, now: float) -> None:
        """File one series' latest sample under its station, loop or household sensor."""
        _, lid, sensor, qty = key
        doc = _sample(sample, now)
        if lid is None:
            self.station[qty] = doc
        elif sensor is not None:
            self.indoor.setdefault(lid, {})[sensor] = doc
        else:
            self.loops.setdefault(lid, {})[qty] = doc

    def plant_seen(self) -> float | None:
        """The time of the station's newest reading from its own equipment (station and loop points)."""
        times = [v["ts"] for v in self.station.values()]
        times.extend(v["ts"] for loop in self.loops.values() for v in loop.values())
        return max(times, default=None)

    def household_seen(self) -> float | None:
        """The time of the newest household (indoor sensor) reading of the station."""
        return max((v["ts"] for loop in self.indoor.values() for v in loop.values()), default=None)


def _values_by_station(latest: LatestValues, now: float) -> dict[str, StationValues]:
    # one pass over every series, grouped by station (series_of per station would be O(stations²))
    out: dict[str, StationValues] = {}
    for key, sample in list(latest.latest.items()):
        values = out.get(key[0])
        if values is None:
            values = out[key[0]] = StationValues()
        values.add(key, sample, now)
    return out


class SeriesIndex:
    """Series keys by station, for a page of stations without a pass over every series.

    Rebuilt when the number of series changes: LatestValues only ever adds keys (latest and history)."""

    def __init__(self) -> None:
        self._count = -1
        self._by_station: dict[str, list[SeriesKey]] = {}

    def keys_of(self, series: Mapping[SeriesKey, object], station: str) -> list[SeriesKey]:
        """The keys of one station's series in `series` (LatestValues.latest or .history)."""
        if len(series) != self._count:
            by_station: dict[str, list[SeriesKey]] = {}
            for key in list(series):
                by_station.setdefault(key[0], []).append(key)
            self._by_station, self._count = by_station, sum(map(len, by_station.values()))
        return self._by_station.get(station, [])

    def values_of(self, latest: LatestValues, station: str, now: float) -> StationValues:
        """One station's latest values."""
        values = StationValues()
        for key in self.keys_of(latest.latest, station):
            sample = latest.latest.get(key)
            if sample is not None:
                values.add(key, sample, now)
        return values


@dataclasses.dataclass(slots=True)
class AlertIndex:
    """The active alerts by station and by (station, loop), and each station's count per severity."""

    by_station: dict[str, list[AlertSnapshot]] = dataclasses.field(default_factory=dict)
    by_loop: dict[tuple[str, str | None], list[AlertSnapshot]] = dataclasses.field(default_factory=dict)
    counts: dict[str, list[int]] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, alerts: Iterable[AlertSnapshot]) -> AlertIndex:
        """Index `alerts` (oldest first, as the alert book lists them)."""
        out = cls()
        rank = {s: i for i, s in enumerate(SEVERITIES)}
        for a in alerts:
            out.by_station.setdefault(a.station, []).append(a)
            out.by_loop.setdefault((a.station, a.loop), []).append(a)
            if a.severity in rank:
                out.counts.setdefault(a.station, [0] * len(SEVERITIES))[rank[a.severity]] += 1
        return out

    def severities(self, station: str) -> tuple[int, ...]:
        """The station's active alerts per severity, in SEVERITIES order."""
        found = self.counts.get(station)
        return tuple(found) if found is not None else _NO_ALERTS


_NO_ALERTS = (0,) * len(SEVERITIES)


def shown_offline(src: StatusReader, st: Station, online: bool) -> bool:
    """Shown as offline once heard from or its connection failed; before that a station not heard from keeps
    the evaluator's judgement (unknown, then offline after offline_after)."""
    if online:
        return False
    state = src.station_states.get(st.id)
    return st.id in src.latest.last_seen or (state is not None and state.consecutive_failures > 0)


def worst_status(statuses: Iterable[str]) -> str:
    return max(statuses, key=lambda s: STATUS_RANK.get(s, 0), default="unknown")


def _alert_brief(a: AlertSnapshot) -> dict[str, Any]:
    """An active alert as a station card shows it (and acknowledges it by `id`)."""
    return {
        "id": a.id,
        "rule": a.rule,
        "loop": a.loop,
        "severity": a.severity,
        "since": a.since,
        "value": num(a.value),
        "threshold": num(a.threshold),
        "message": a.message,
        "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": a.acknowledged_at,
    }


def _loop_documents(
    src: StatusReader, st: Station, values: StationValues, alerts: AlertIndex, offline: bool
) -> list[dict[str, Any]]:
    loops = []
    for lp in st.loops:
        status = _loop_status(src.loop_status(st.id, lp.id))
        if offline:
            status["status"] = "offline"
        active = alerts.by_loop.get((st.id, lp.id), [])
        loops.append(
            {
                **{f: getattr(lp, f) for f in _LOOP_FIELDS},
                **status,
                "values": values.loops.get(lp.id, {}),
                "indoor_sensors": values.indoor.get(lp.id, {}),
                "active_alerts": len(active),
                # a loop judged "ok" still shows, say, delta_t_low (water-model warnings do not change the
                # status when household sensors decide it)
                "alerts": [{"rule": a.rule, "severity": a.severity, "id": a.id} for a in active],
            }
        )
    return loops


def station_document(
    src: StatusReader, st: Station, values: StationValues, alerts: AlertIndex, now: float, *, detail: bool = False
) -> dict[str, Any]:
    """One station as /api/v1/stations shows it; `detail` adds its alerts in full and its Grafana link."""
    state = src.station_states.get(st.id)
    plant_seen = values.plant_seen()
    online = src.station_online(st, now)
    offline = shown_offline(src, st, online)
    loops = _loop_documents(src, st, values, alerts, offline)
    doc = {
        "id": st.id,
        "name": st.name,
        "district": st.district,
        "company": st.company,
        "heat_source": st.heat_source,
        "area_m2": st.area_m2,
        "households": st.households,
        "status": "offline" if offline else worst_status(lp["status"] for lp in loops),
        "online": online,
        # "seen" is the station's own equipment (the PLC answered, its topics arrived), not a household
        # thermometer: those keep reporting while the station is down
        "last_seen": plant_seen,
        "age_s": None if plant_seen is None else round(max(0.0, now - plant_seen), 3),
        "household_seen": values.household_seen(),
        "values": values.station,
        "connection": jsonable(state) if state is not None else None,
        "active_alerts": len(alerts.by_station.get(st.id, ())),
        "loops": loops,
    }
    if detail:
        doc["alerts"] = [_alert_brief(a) for a in alerts.by_station.get(st.id, ())]
        doc["grafana_url"] = grafana_station_url(src.config.http.grafana_url, st.id)
    return doc


def _header(src: StatusReader, now: float) -> dict[str, Any]:
    cfg = src.config
    return {
        "generated_at": now,
        "site": {f: getattr(cfg.site, f) for f in ("name", "indoor_target", "outdoor_design", "timezone")},
        "margin": cfg.rules.margin,
        "shard": {"index": cfg.cluster.shard, "count": cfg.cluster.shards},  # this instance shows only its shard
    }


def stations_document(src: StatusReader) -> dict[str, Any]:
    """The /api/v1/stations body without parameters: every station, its loops, latest values, status, alerts."""
    now = src.clock()
    alerts = AlertIndex.of(src.active_alerts())
    by_station = _values_by_station(src.latest, now)
    stations = [
        station_document(src, st, by_station.get(st.id) or StationValues(), alerts, now) for st in src.config.stations
    ]
    return {**_header(src, now), "stations": stations}
