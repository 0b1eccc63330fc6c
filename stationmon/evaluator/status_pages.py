"""The status page at city scale: a summary per company and district, and stations filtered and paginated.

`StatusPages` builds a `StationIndex` (each station's status, its loops' statuses, its active alerts by
severity) once per evaluation and keeps it, with the summary and the pages asked for, until the evaluator
judges again or an alert is acknowledged here. Each body carries its ETag (a hash of the bytes), so a
viewer whose copy is current gets 304 and nothing else; the summary holds no clock time, so an evaluation
that changes no count keeps its ETag.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stationmon.domain.plant import Station
from stationmon.domain.rules import RuleResults
from stationmon.domain.vocabulary import SEVERITIES, STATUS_NAMES
from stationmon.evaluator.status_view import (
    STATUS_RANK,
    AlertIndex,
    LoopStatusView,
    SeriesIndex,
    StatusReader,
    json_text,
    shown_offline,
    station_document,
    worst_status,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "QUERY_KEYS",
    "SORTS",
    "STATUS_FILTERS",
    "Body",
    "StationIndex",
    "StationQuery",
    "StationRow",
    "StatusPages",
    "build_index",
    "page_document",
    "summary_document",
]

PROBLEM_STATUSES = frozenset({"noncompliant", "sensor_fault", "offline"})
STATUS_FILTERS = (*STATUS_NAMES, "problem")  # "problem": a problem status or an active alert
SORTS = ("worst", "id", "name")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_QUERY_CHARS = 100
QUERY_KEYS = ("company", "district", "status", "q", "sort", "page", "page_size")
WORST_IN_GROUP = 5
WORST_OVERALL = 10
NOT_JUDGED_TTL_S = 1.0  # before the evaluator's first judgement nothing marks a change: rebuild this often
PAGES_KEPT = 64  # distinct (filters, page) bodies kept per evaluation
FLOAT_DIGITS = 3


@dataclass(frozen=True, slots=True)
class StationRow:
    """One station as the summary and the filters see it."""

    station: Station
    status: str  # the station's: offline while it is, else its worst loop's
    loops: tuple[str, ...]  # each loop's status (offline while the station is)
    alerts: tuple[int, ...]  # active alerts per severity, SEVERITIES order
    text: str  # id and name in lower case, for q=

    @property
    def alerts_total(self) -> int:
        """Active alerts of the station and its loops."""
        return sum(self.alerts)

    @property
    def problem(self) -> bool:
        """A problem status (the station's or a loop's) or an active alert."""
        return self.alerts_total > 0 or any(s in PROBLEM_STATUSES for s in (self.status, *self.loops))

    def worst_key(self) -> tuple[Any, ...]:
        """Sort key, worst first: status, then alerts from the most severe, then id."""
        return (-STATUS_RANK.get(self.status, 0), *(-n for n in reversed(self.alerts)), self.station.id)


@dataclass(frozen=True, slots=True)
class StationIndex:
    """Every station's row, and the active alerts, as of one build."""

    built_at: float
    rows: tuple[StationRow, ...]
    alerts: AlertIndex


def build_index(src: StatusReader, now: float) -> StationIndex:
    """The rows of every station: statuses from the evaluator's arrays, alerts from the alert book."""
    names = LoopStatusView(src.evaluator.results).names()
    alerts = AlertIndex.of(src.active_alerts())
    rows = []
    for st in src.config.stations:
        offline = shown_offline(src, st, src.station_online(st, now))
        loops = tuple("offline" if offline else names.get((st.id, lp.id), "unknown") for lp in st.loops)
        rows.append(
            StationRow(
                station=st,
                status="offline" if offline else worst_status(loops),
                loops=loops,
                alerts=alerts.severities(st.id),
                text=f"{st.id}\n{st.name}".lower(),
            )
        )
    return StationIndex(now, tuple(rows), alerts)


# ------------------------------------------------------------------------------------------------------------
# Summary


def _brief(row: StationRow) -> dict[str, Any]:
    st = row.station
    return {
        "id": st.id,
        "name": st.name,
        "district": st.district,
        "company": st.company,
        "status": row.status,
        "alerts": dict(zip(SEVERITIES, row.alerts, strict=True)),
        "alerts_total": row.alerts_total,
    }


def _worst(rows: Iterable[StationRow], n: int) -> list[dict[str, Any]]:
    """The `n` worst stations with a problem (a healthy station is never among the worst)."""
    return [_brief(r) for r in heapq.nsmallest(n, (r for r in rows if r.problem), key=StationRow.worst_key)]


def _group(name: str, rows: list[StationRow], worst: int) -> dict[str, Any]:
    """Counts, compliance and alerts of a set of stations (a company, a district, all)."""
    stations = Counter(r.status for r in rows)
    loops = Counter(s for r in rows for s in r.loops)
    judged = loops["ok"] + loops["noncompliant"]
    alerts = [sum(r.alerts[k] for r in rows) for k in range(len(SEVERITIES))]
    return {
        "name": name,
        "stations": len(rows),
        "loops": sum(loops.values()),
        "stations_by_status": {s: stations[s] for s in STATUS_NAMES},
        "loops_by_status": {s: loops[s] for s in STATUS_NAMES},
        # compliant: judged ok; judged: ok or noncompliant (sensor faults, offline and unknown are not judged)
        "loops_judged": judged,
        "loops_compliant": loops["ok"],
        "share_compliant": round(loops["ok"] / judged, 4) if judged else None,
        "stations_with_alerts": sum(1 for r in rows if r.alerts_total),
        "alerts": dict(zip(SEVERITIES, alerts, strict=True)),
        "alerts_total": sum(alerts),
        "worst": _worst(rows, worst),
    }


def _groups(rows: Iterable[StationRow], key: Callable[[Station], str]) -> list[dict[str, Any]]:
    by: dict[str, list[StationRow]] = {}
    for r in rows:
        by.setdefault(key(r.station), []).append(r)
    return [_group(name, by[name], WORST_IN_GROUP) for name in sorted(by)]


def summary_document(src: StatusReader, index: StationIndex) -> dict[str, Any]:
    """The /api/v1/summary body: totals, per company and per district, the worst stations.

    No clock time in it: an evaluation that changes nothing here leaves the body, and its ETag, as it was."""
    cfg = src.config
    rows = list(index.rows)
    return {
        "site": {f: getattr(cfg.site, f) for f in ("name", "indoor_target", "outdoor_design", "timezone")},
        "shard": {"index": cfg.cluster.shard, "count": cfg.cluster.shards},
        "grafana_url": cfg.http.grafana_url or None,
        "statuses": list(STATUS_NAMES),
        "severities": list(SEVERITIES),
        "totals": _group("", rows, WORST_OVERALL),
        "companies": _groups(rows, lambda st: st.company),
        "districts": _groups(rows, lambda st: st.district),
    }


# ------------------------------------------------------------------------------------------------------------
# Filtered, paginated stations


def _one_of(name: str, value: str, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def _positive(name: str, value: str | None, default: int, most: int | None = None) -> int:
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or len(value) > 9 or int(value) < 1:
        raise ValueError(f"{name}={value!r}: expected a whole number from 1")
    if most is not None and int(value) > most:
        raise ValueError(f"{name}={value}: at most {most}")
    return int(value)


@dataclass(frozen=True, slots=True)
class StationQuery:
    """GET /api/v1/stations parameters: filters (all must hold), sort order and page (from 1)."""

    company: str = ""
    district: str = ""
    status: frozenset[str] = frozenset()  # any of them, the station's or a loop's
    q: str = ""  # a substring of the id or the name, any case
    sort: str = "worst"
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> StationQuery:
        """From the query string; ValueError naming the parameter if one is unknown or malformed."""
        unknown = sorted(set(params) - set(QUERY_KEYS))
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r}: expected {', '.join(QUERY_KEYS)}")
        q = params.get("q", "").strip()
        if len(q) > MAX_QUERY_CHARS:
            raise ValueError(f"q: at most {MAX_QUERY_CHARS} characters")
        statuses = [s.strip() for s in params.get("status", "").split(",") if s.strip()]
        return cls(
            company=params.get("company", ""),
            district=params.get("district", ""),
            status=frozenset(_one_of("status", s, STATUS_FILTERS) for s in statuses),
            q=q.lower(),
            sort=_one_of("sort", params.get("sort", "worst"), SORTS),
            page=_positive("page", params.get("page"), 1),
            page_size=_positive("page_size", params.get("page_size"), DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
        )

    def matches(self, row: StationRow) -> bool:
        """Whether the station passes every filter."""
        st = row.station
        if (self.company and st.company != self.company) or (self.district and st.district != self.district):
            return False
        if self.q and self.q not in row.text:
            return False
        if not self.status:
            return True
        if "problem" in self.status and row.problem:
            return True
        return row.status in self.status or any(s in self.status for s in row.loops)

    def filters(self) -> dict[str, Any]:
        """The filters as the response echoes them."""
        return {"company": self.company, "district": self.district, "status": sorted(self.status), "q": self.q}


_SORT_KEYS: dict[str, Callable[[StationRow], Any]] = {
    "worst": StationRow.worst_key,
    "id": lambda r: r.station.id,
    "name": lambda r: (r.station.name or r.station.id, r.station.id),
}


def _rounded(value: Any) -> Any:
    """Floats to FLOAT_DIGITS decimals (a reading's 15 digits are noise on a page, a third of its bytes)."""
    if isinstance(value, float):
        return round(value, FLOAT_DIGITS) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def page_document(src: StatusReader, index: StationIndex, query: StationQuery, series: SeriesIndex) -> dict[str, Any]:
    """The /api/v1/stations body with parameters: the matching stations' page, with the totals."""
    matching = sorted((r for r in index.rows if query.matches(r)), key=_SORT_KEYS[query.sort])
    start = (query.page - 1) * query.page_size
    now = src.clock()
    stations = [
        _rounded(
            station_document(
                src, r.station, series.values_of(src.latest, r.station.id, now), index.alerts, now, detail=True
            )
        )
        for r in matching[start : start + query.page_size]
    ]
    cfg = src.config
    return {
        "generated_at": now,
        "site": {f: getattr(cfg.site, f) for f in ("name", "indoor_target", "outdoor_design", "timezone")},
        "margin": cfg.rules.margin,
        "shard": {"index": cfg.cluster.shard, "count": cfg.cluster.shards},
        "total": len(index.rows),
        "matching": len(matching),
        "page": query.page,
        "page_size": query.page_size,
        "pages": math.ceil(len(matching) / query.page_size),
        "sort": query.sort,
        "filters": query.filters(),
        "stations": stations,
    }


# ------------------------------------------------------------------------------------------------------------
# Built once per evaluation


@dataclass(frozen=True, slots=True)
class Body:
    """A serialised JSON body and its ETag (a quoted hash of the bytes)."""

    data: bytes
    etag: str

    @classmethod
    def of(cls, doc: Any) -> Body:
        """`doc` as compact UTF-8 JSON with its ETag."""
        data = json_text(doc).encode()
        return cls(data, f'"{hashlib.blake2b(data, digest_size=12).hexdigest()}"')


class StatusPages:
    """The summary and the pages of stations, each built once per evaluation and served until the next."""

    def __init__(self, src: StatusReader, clock: Callable[[], float] = time.monotonic) -> None:
        self.src = src
        self.clock = clock
        self.builds = 0  # index builds, for the tests and the bench
        self._series = SeriesIndex()
        self._results: RuleResults | None = None
        self._judged_at: float | None = None
        self._built_at = -math.inf
        self._index: StationIndex | None = None
        self._summary: Body | None = None
        self._pages: OrderedDict[StationQuery, Body] = OrderedDict()

    def invalidate(self) -> None:
        """Build afresh on the next request (an alert was acknowledged)."""
        self._index = None

    def _current(self) -> StationIndex:
        results = self.src.evaluator.results
        judged_at = results.now if results is not None else None
        stale = results is None and self.clock() - self._built_at >= NOT_JUDGED_TTL_S
        # a new evaluation is a new results object; its time too, should the evaluator ever reuse one
        if self._index is None or results is not self._results or judged_at != self._judged_at or stale:
            self._results, self._judged_at, self._built_at = results, judged_at, self.clock()
            self._index = build_index(self.src, self.src.clock())
            self._summary = None
            self._pages.clear()
            self.builds += 1
        return self._index

    def summary(self) -> Body:
        """The /api/v1/summary body of the latest evaluation."""
        index = self._current()
        if self._summary is None:
            self._summary = Body.of(summary_document(self.src, index))
        return self._summary

    def page(self, query: StationQuery) -> Body:
        """The /api/v1/stations body for `query` as of the latest evaluation."""
        index = self._current()
        body = self._pages.get(query)
        if body is None:
            body = self._pages[query] = Body.of(page_document(self.src, index, query, self._series))
            while len(self._pages) > PAGES_KEPT:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(query)
        return body
