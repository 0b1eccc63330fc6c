"""The alert lifecycle: a pure state machine, time given as a parameter.

Each alert is keyed by (rule, station, loop), loop None for station-level alerts:

    inactive --condition--> pending --held for `for`--> firing --gone for `clear_for`--> resolved
                               |                           |  \\--age >= escalate_*_after--> escalated
                               \\--gone: back to inactive   \\--acknowledge()--> acknowledged

Not judged (data missing, out of season, inhibited) never counts as gone: a firing alert keeps firing
without running its clear timer, a pending one starts over, because firing needs `for` of unbroken
evidence. An offline station inhibits its loops' conditions (one alert per outage), a sensor fault the
conditions that read a faulty sensor. Hysteresis on values is the rules' job (`held_keys()`). The
state serialises to JSON so a restart neither forgets a firing alert nor fires it anew.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from stationmon.domain.model import AlertEvent
from stationmon.domain.settings import RuleSettings, RulesSettings
from stationmon.domain.vocabulary import RULE_NAMES, SEVERITY_ORDER

__all__ = [
    "STATE_VERSION",
    "ActiveChecks",
    "Alert",
    "AlertBook",
    "AlertKey",
    "AlertSnapshot",
    "Condition",
    "LoopColumn",
    "make_alert_id",
]

AlertKey = tuple[str, str, str | None]  # rule, station, loop (None: station level)

STATE_VERSION = 1


class Condition:
    """What a rule saw for one key this tick; `sensors` are the quantities read (sensor_fault: the faulty ones).

    `describe` builds the message on first read: thousands of conditions hold every tick, few are read;
    given `at`, it is called with it, so one describer serves every condition of a rule.
    `severity` raises the alert above its rule's severity (a legal tier), `cause` says whose shortfall
    it is ("heat_source" while the station's primary supply falls short, else "station"). Every
    argument may be given by position: `RuleResults.conditions` builds thousands per tick with `map`.
    """

    __slots__ = (
        "_at",
        "_describe",
        "_message",
        "cause",
        "company",
        "district",
        "sensors",
        "severity",
        "threshold",
        "value",
    )

    def __init__(
        self,
        value: float | None = None,
        threshold: float | None = None,
        message: str = "",
        district: str = "",
        sensors: frozenset[str] = frozenset(),
        describe: Callable[..., str] | None = None,
        severity: str | None = None,
        cause: str = "station",
        company: str = "",
        at: int | None = None,
    ) -> None:
        self.value = value
        self.threshold = threshold
        self.district = district
        self.company = company  # the station's heating company (a tag and a label), like the district
        self.sensors = sensors
        self.severity = severity
        self.cause = cause
        self._message = message
        self._describe = describe
        self._at = at

    @property
    def message(self) -> str:
        """The human description (built on first use)."""
        if self._describe is not None:
            self._message = self._describe() if self._at is None else self._describe(self._at)
            self._describe = None
        return self._message

    def __repr__(self) -> str:
        return (
            f"Condition(value={self.value!r}, threshold={self.threshold!r}, message={self.message!r}, "
            f"district={self.district!r}, company={self.company!r}, sensors={set(self.sensors)!r}, "
            f"severity={self.severity!r}, cause={self.cause!r})"
        )


class LoopColumn(NamedTuple):
    """One loop rule's active loops this evaluation, as arrays (ascending loop indexes)."""

    rule: str
    loops: NDArray[np.int64]
    critical: NDArray[np.bool_] | None  # per active loop: the condition is at the critical tier
    heat_source: NDArray[np.bool_]  # per active loop: its cause is the heat source


class ActiveChecks(Protocol):
    """One evaluation as `AlertBook.advance` reads it (`RuleResults`): the loop rules as columns, a
    Condition built only for a key whose alert changes or is read."""

    @property
    def table(self) -> object: ...  # the loops' layout: the book indexes its alerts by it

    @property
    def n_loops(self) -> int: ...

    def station_conditions(self) -> dict[AlertKey, Condition]: ...

    def loop_columns(self) -> list[LoopColumn]: ...

    def loop_conditions(self, rule: str, idx: NDArray[np.int64]) -> tuple[list[AlertKey], list[Condition]]: ...

    def loop_sensors(self, rule: str, idx: NDArray[np.int64]) -> list[frozenset[str]]: ...

    def loop_keys(self, rule: str, idx: NDArray[np.int64]) -> list[AlertKey]: ...

    def loop_position(self, station: str, loop: str) -> int | None: ...

    def station_values(self, values: Mapping[str, int]) -> NDArray[np.int64]: ...

    def lookup(self, key: AlertKey) -> Condition | None: ...


@dataclass(slots=True)
class Alert:
    """One pending or firing alert (mutable, owned by the AlertBook)."""

    rule: str
    station: str
    loop: str | None
    district: str
    state: str  # "pending" or "firing"
    pending_since: float
    base_severity: str
    severity: str
    alert_id: str = ""
    since: float | None = None  # when it started firing
    value: float | None = None
    threshold: float | None = None
    message: str = ""
    clearing_since: float | None = None
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    comment: str | None = None
    cause: str = "station"  # fixed when it fires: a label change would make it another alert downstream
    company: str = ""  # the station's heating company, from the condition like the district
    source: Condition | None = field(default=None, repr=False, compare=False)  # message not yet read

    @property
    def key(self) -> AlertKey:
        return (self.rule, self.station, self.loop)

    def text(self) -> str:
        """The message of the latest condition (built now if it was not needed before)."""
        if self.source is not None:
            self.message = self.source.message
            self.source = None
        return self.message


@dataclass(frozen=True, slots=True)
class AlertSnapshot:
    """A read-only view of one alert for the HTTP API and the status page."""

    id: str
    rule: str
    station: str
    district: str
    loop: str | None
    severity: str
    state: str
    since: float | None
    pending_since: float
    value: float | None
    threshold: float | None
    message: str
    acknowledged_by: str | None
    acknowledged_at: float | None
    comment: str | None
    cause: str = "station"
    company: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (NaN values become None)."""
        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        doc["value"], doc["threshold"] = _clean(self.value), _clean(self.threshold)
        return doc


def _clean(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def make_alert_id(rule: str, station: str, loop: str | None, since: float) -> str:
    """Stable, URL-safe id of one alert's life: station.loop.rule.<start in ms>."""
    return f"{station}.{loop or ''}.{rule}.{round(since * 1000)}"


# the snapshot fields an Alert holds under the same name
_SNAPSHOT_FROM_ALERT = tuple(f.name for f in fields(AlertSnapshot) if f.name not in ("id", "message"))
# the event fields an Alert holds under the same name; `_event` sets state, since, value, threshold itself
_EVENT_FROM_ALERT = {f.name for f in fields(AlertEvent)} & {f.name for f in fields(Alert)} - {"message"}
_NO_LOOKUP: Callable[[AlertKey], Condition | None] = lambda key: None  # noqa: E731


@dataclass(slots=True)
class _Inhibitors:
    offline: set[str] = field(default_factory=set)
    faults: dict[tuple[str, str | None], frozenset[str]] = field(default_factory=dict)
    stations: set[str] = field(default_factory=set)  # offline or with a faulty sensor: the only ones to test
    # `advance`: per loop, its station is offline; the bits (`bits`) of the sensors faulty there
    offline_loops: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    fault_bits: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sensor_bit: dict[str, int] = field(default_factory=dict)  # a bit per sensor name seen (a few)
    set_bits: dict[frozenset[str], int] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        conditions: Mapping[AlertKey, Condition],
        policies: Mapping[str, RuleSettings],
        results: ActiveChecks | None = None,
        columns: Iterable[LoopColumn] = (),
    ) -> _Inhibitors | None:
        """Stations offline and sensors faulty now (their dependent conditions count as not judged), from
        `conditions` and the loop `columns` of `results`; None if there are none."""
        inhibit = cls()
        for (rule, station, loop), cond in conditions.items():
            if rule == "station_offline" and rule in policies:
                inhibit.offline.add(station)
            elif rule == "sensor_fault" and rule in policies and cond.sensors:
                inhibit.fault((station, loop), cond.sensors)
        if results is not None:
            inhibit.index(results, columns, "sensor_fault" in policies)
        inhibit.stations = inhibit.offline | {station for station, _ in inhibit.faults}
        return inhibit if inhibit.offline or inhibit.faults else None

    def fault(self, scope: tuple[str, str | None], sensors: frozenset[str]) -> None:
        self.faults[scope] = self.faults.get(scope, frozenset()) | sensors

    def index(self, results: ActiveChecks, columns: Iterable[LoopColumn], faults_on: bool) -> None:
        """Add the loop sensor faults of `columns`, and index offline stations and faulty sensors by loop."""
        station_bits = {station: self.bits(bad) for (station, loop), bad in self.faults.items() if loop is None}
        self.fault_bits = results.station_values(station_bits)
        self.offline_loops = results.station_values(dict.fromkeys(self.offline, 1)) == 1
        for c in columns:
            if c.rule == "sensor_fault" and faults_on:
                # (one condition per loop: nothing to merge, unlike the station's scope)
                sensors = results.loop_sensors(c.rule, c.loops)
                keys = results.loop_keys(c.rule, c.loops)
                self.faults.update({(st, lp): bad for (_, st, lp), bad in zip(keys, sensors, strict=True) if bad})
                loop_bits = np.zeros_like(self.fault_bits)
                loop_bits[c.loops] = [self.bits(bad) for bad in sensors]
                self.fault_bits = self.fault_bits | loop_bits  # the station's faulty sensors and the loop's

    def suppressed(self, results: ActiveChecks, c: LoopColumn) -> NDArray[np.bool_]:
        """Per active loop of `c`: its condition is suppressed (`suppresses`, by loop)."""
        out = self.offline_loops[c.loops]
        if c.rule == "sensor_fault":
            return out
        bad = self.fault_bits[c.loops]
        (maybe,) = np.nonzero(~out & (bad != 0))
        if maybe.size:
            sensors = results.loop_sensors(c.rule, c.loops[maybe])
            out[maybe] = (np.array([self.bits(s) for s in sensors]) & bad[maybe]) != 0
        return out

    def bits(self, sensors: frozenset[str]) -> int:
        """The bits of a set of sensor names."""
        bits = self.set_bits.get(sensors)
        if bits is None:
            bits = 0
            for name in sensors:
                bits |= 1 << self.sensor_bit.setdefault(name, len(self.sensor_bit))
            self.set_bits[sensors] = bits
        return bits

    def suppresses(self, key: AlertKey, cond: Condition) -> bool:
        rule, station, loop = key
        if rule == "station_offline":
            return False
        if station in self.offline:
            # the outage is the one alert; the station's loop alerts and sensor faults wait
            return True
        if rule == "sensor_fault" or not cond.sensors:
            return False
        for scope in ((station, loop), (station, None)):
            bad = self.faults.get(scope)
            if bad and not bad.isdisjoint(cond.sensors):
                return True
        return False


_CAUSE_CODES = {"station": 0, "heat_source": 1}  # any other cause: 2
_CRITICAL = SEVERITY_ORDER["critical"]


@dataclass(slots=True)
class _Column:
    """One loop rule's alerts as arrays over the loops: what `advance` tests of every held alert."""

    state: NDArray[np.int8]  # 0 none, 1 pending, 2 firing
    pending_since: NDArray[np.float64]
    since: NDArray[np.float64]  # NaN while pending
    severity: NDArray[np.int8]  # SEVERITY_ORDER
    clearing: NDArray[np.bool_]  # clearing_since set
    cause: NDArray[np.int8]  # _CAUSE_CODES
    lazy: NDArray[np.bool_]  # held at the last `advance` and not visited: its values are in `_source`

    @classmethod
    def empty(cls, n: int) -> _Column:
        return cls(
            np.zeros(n, np.int8),
            np.full(n, np.nan),
            np.full(n, np.nan),
            np.zeros(n, np.int8),
            np.zeros(n, bool),
            np.zeros(n, np.int8),
            np.zeros(n, bool),
        )

    def put(self, i: int, alert: Alert | None) -> None:
        """Loop `i`'s alert as it is now (None: none)."""
        if alert is None:
            self.state[i] = 0
            return
        self.state[i] = 2 if alert.state == "firing" else 1
        self.pending_since[i] = alert.pending_since
        self.since[i] = math.nan if alert.since is None else alert.since
        self.severity[i] = SEVERITY_ORDER[alert.severity]
        self.clearing[i] = alert.clearing_since is not None
        self.cause[i] = _CAUSE_CODES.get(alert.cause, 2)

    def due(self, now: float, c: LoopColumn, for_s: float, escalate_from: float) -> NDArray[np.bool_]:
        """Per active loop of `c`: its alert may change now (`_hold` decides), else only its values do:
        new, clearing, a pending one's cause changed or `for` passed, a firing one old enough to
        escalate, a graver tier."""
        loops = c.loops
        state, severity = self.state[loops], self.severity[loops]
        with np.errstate(invalid="ignore"):
            due: NDArray[np.bool_] = (state == 0) | self.clearing[loops]
            stale = (self.cause[loops] != c.heat_source) | (now - self.pending_since[loops] >= for_s)
            due |= (state == 1) & stale
            due |= (state == 2) & (severity != _CRITICAL) & (now - self.since[loops] >= escalate_from)
        if c.critical is not None:
            due |= c.critical & (severity < _CRITICAL)
        return due


def _take(alert: Alert, cond: Condition) -> None:
    """The alert's condition holds: its value, threshold and message are this one's."""
    alert.value, alert.threshold, alert.source = cond.value, cond.threshold, cond
    alert.district = cond.district or alert.district
    alert.company = cond.company or alert.company


class AlertBook:
    """Every pending and firing alert, and the transitions between them."""

    def __init__(self, settings: RulesSettings, *, keep_resolved: int = 100) -> None:
        # the enabled rules' timing and base severity; alerts of other rules are never kept
        self.policies: dict[str, RuleSettings] = {
            name: rule for name in RULE_NAMES if (rule := settings.rule(name)).enabled
        }
        self.escalate_major_after_s = settings.escalate_major_after_s
        self.escalate_critical_after_s = settings.escalate_critical_after_s
        self._alerts: dict[AlertKey, Alert] = {}
        self._by_id: dict[str, AlertKey] = {}
        self.recently_resolved: deque[AlertSnapshot] = deque(maxlen=keep_resolved)
        # alerts another replica (or this one before a restart) has firing, as Alertmanager reports them
        self.firing_elsewhere: dict[AlertKey, float] = {}  # key -> its startsAt
        self.dirty = False  # set on every change worth persisting; the owner clears it after saving
        # `advance`'s index of the loop rules' alerts (None: to build), the alerts outside it, the
        # insertion order of every alert (the order `update` visits gone keys in), the lazy values' source
        self._cols: dict[str, _Column] | None = None
        self._layout: object | None = None
        self._loose: set[AlertKey] = set()
        self._seq: dict[AlertKey, int] = {}
        self._next_seq = 0
        self._source: ActiveChecks | None = None

    def __len__(self) -> int:
        return len(self._alerts)

    def get(self, key: AlertKey) -> Alert | None:
        """The pending or firing alert of this key, or None (its values as of the last update)."""
        self._settle(key)
        return self._alerts.get(key)

    def held_keys(self) -> Iterable[AlertKey]:
        """Keys with a pending or firing alert: the rules judge these with hysteresis."""
        return self._alerts.keys()

    def held_loops(self, layout: object) -> tuple[dict[str, NDArray[np.bool_]], list[AlertKey]] | None:
        """The held keys as `advance` indexed them for `layout` (the results' table): per loop rule a mask of
        the loops held, and the other keys; None if not indexed for `layout` (use `held_keys`)."""
        if self._cols is None or self._layout is not layout:
            return None
        return {rule: col.state != 0 for rule, col in self._cols.items()}, list(self._loose)

    def active_alerts(self, *, include_pending: bool = False) -> list[AlertSnapshot]:
        """Firing alerts (and pending ones if asked), oldest first."""
        self._settle()
        out = [self._snapshot(a) for a in self._alerts.values() if include_pending or a.state == "firing"]
        out.sort(key=lambda s: (s.since if s.since is not None else s.pending_since, s.station, s.loop or "", s.rule))
        return out

    def snapshot(self, alert_id: str) -> AlertSnapshot | None:
        """The firing alert with this id, or None."""
        key = self._by_id.get(alert_id)
        if key is None:
            return None
        self._settle(key)
        return self._snapshot(self._alerts[key])

    def counts(self) -> dict[tuple[str, str], int]:
        """Number of alerts per (rule, state) for the metrics gauge (every known rule, zeros too)."""
        out = {(rule, state): 0 for rule in self.policies for state in ("pending", "firing")}
        for a in self._alerts.values():  # only enabled rules' alerts are kept, each pending or firing
            out[(a.rule, a.state)] += 1
        return out

    @staticmethod
    def _snapshot(a: Alert) -> AlertSnapshot:
        shared = {name: getattr(a, name) for name in _SNAPSHOT_FROM_ALERT}
        return AlertSnapshot(id=a.alert_id, message=a.text(), **shared)

    def update(
        self,
        now: float,
        conditions: Mapping[AlertKey, Condition],
        lookup: Callable[[AlertKey], Condition | None] = _NO_LOOKUP,
    ) -> list[AlertEvent]:
        """Advance every alert to `now`; return the events of the transitions made.

        `conditions` hold now; `lookup(key)` gives any other key's judged-clear Condition, None if not judged.
        (`advance` does the same from an evaluation's columns, without a Condition per held key.)
        """
        self._unindex()
        inhibit = _Inhibitors.of(conditions, self.policies)
        escalate_from = min(self.escalate_major_after_s, self.escalate_critical_after_s)
        events: list[AlertEvent] = []
        for key, cond in conditions.items():
            self._hold(now, key, cond, inhibit, events, escalate_from)
        for key in [k for k in self._alerts if k not in conditions]:
            self._gone(now, key, lookup, inhibit, events)
        return events

    def advance(self, now: float, results: ActiveChecks) -> list[AlertEvent]:
        """`update(now, results.conditions(), results.lookup)`, the same events and state, but a held
        alert whose condition still holds and changes nothing costs no Python object: the loop rules'
        alerts are indexed by loop in arrays (`_Column`), a Condition is built only for a key that
        starts, changes state or tier, is inhibited or gone, and the other held alerts take their value,
        threshold and message from `results` when read (`get`, snapshots, `to_dict`, events)."""
        columns = results.loop_columns()
        if self._cols is None or self._layout is not results.table:
            self._index(results, [c.rule for c in columns])
        cols = self._cols
        assert cols is not None
        columns = [c for c in columns if c.rule in cols]
        stations = results.station_conditions()
        inhibit = _Inhibitors.of(stations, self.policies, results, columns)
        visits = self._plan(now, results, columns, inhibit)
        escalate_from = min(self.escalate_major_after_s, self.escalate_critical_after_s)
        events: list[AlertEvent] = []
        for key, cond in stations.items():
            self._hold(now, key, cond, inhibit, events, escalate_from)
            self._sync(key)
        for rule, col, loops in visits:
            keys, conditions = results.loop_conditions(rule, loops)
            for i, key, cond in zip(loops.tolist(), keys, conditions, strict=True):
                self._hold(now, key, cond, inhibit, events, escalate_from)
                self._sync(key, col, i)
        for _, key, gone_col, i in sorted(self._gone_keys(results, stations, columns), key=lambda g: g[0]):
            self._gone(now, key, results.lookup, inhibit, events)
            self._sync(key, gone_col, i)
        return events

    def _hold(
        self,
        now: float,
        key: AlertKey,
        cond: Condition,
        inhibit: _Inhibitors | None,
        events: list[AlertEvent],
        escalate_from: float,
    ) -> None:
        """A key whose condition holds: start pending, fire after `for`, escalate with age."""
        policy = self.policies.get(key[0])
        if policy is None:
            return
        alerts = self._alerts
        alert = alerts.get(key)
        # (the station test first: few stations are offline or have a faulty sensor)
        if inhibit is not None and key[1] in inhibit.stations and inhibit.suppresses(key, cond):
            # not judged: a pending alert starts over, a firing one waits
            if alert is not None and alert.state == "pending":
                del alerts[key]
                self.dirty = True
            return
        if alert is None:
            alert = alerts[key] = Alert(
                rule=key[0],
                station=key[1],
                loop=key[2],
                district=cond.district,
                company=cond.company,
                state="pending",
                pending_since=now,
                base_severity=policy.severity,
                severity=policy.severity,
            )
            self.dirty = True
        _take(alert, cond)
        if alert.state == "pending" and alert.cause != cond.cause:
            alert.cause = cond.cause
            self.dirty = True
        if alert.clearing_since is not None:
            alert.clearing_since = None
            self.dirty = True
        if cond.severity is not None and SEVERITY_ORDER[cond.severity] > SEVERITY_ORDER[alert.severity]:
            event = self._raise(alert, cond.severity, now)
            if event is not None:
                events.append(event)
        if alert.state == "pending" and (now - alert.pending_since >= policy.for_s or key in self.firing_elsewhere):
            # firing elsewhere: that replica already saw `for` pass; take its start (escalation clock)
            events.append(self._fire(alert, now, self.firing_elsewhere.get(key)))
        # (the age test first: escalation is rare)
        if alert.state == "firing" and now - alert.since >= escalate_from and alert.severity != "critical":  # type: ignore[operator]
            event = self._escalate(alert, now)
            if event is not None:
                events.append(event)

    def _gone(
        self,
        now: float,
        key: AlertKey,
        lookup: Callable[[AlertKey], Condition | None],
        inhibit: _Inhibitors | None,
        events: list[AlertEvent],
    ) -> None:
        """A held key whose condition is gone: pending starts over; firing resolves after `clear_for` judged clear."""
        alert = self._alerts[key]
        if alert.state == "pending":
            # pending needs unbroken evidence: gone or not judged, it starts over
            del self._alerts[key]
            self.dirty = True
            return
        policy = self.policies.get(key[0])
        seen = lookup(key)
        if seen is None or policy is None or (inhibit is not None and inhibit.suppresses(key, seen)):
            return  # not judged: neither gone nor there
        if alert.clearing_since is None:
            alert.clearing_since = now
            self.dirty = True
        if now - alert.clearing_since >= policy.clear_for_s:
            events.append(self._resolve(alert, now, seen))

    # -- the columns of `advance` --------------------------------------------------------------------

    def _index(self, results: ActiveChecks, rules: Iterable[str]) -> None:
        """Index every alert of `results`' loops in the columns of its rule; the others are `_loose`."""
        self._unindex()
        cols = {rule: _Column.empty(results.n_loops) for rule in rules if rule in self.policies}
        for seq, (key, alert) in enumerate(self._alerts.items()):
            self._seq[key] = seq
            rule, station, loop = key
            col = cols.get(rule) if loop is not None else None
            i = results.loop_position(station, loop) if col is not None and loop is not None else None
            if col is None or i is None:
                self._loose.add(key)
            else:
                col.put(i, alert)
        self._next_seq = len(self._alerts)
        self._cols, self._layout = cols, results.table

    def _unindex(self) -> None:
        """Drop the columns (the alerts change elsewhere): every held alert takes its values first."""
        self._settle()
        self._cols = self._layout = self._source = None
        self._loose, self._seq = set(), {}

    def _plan(
        self, now: float, results: ActiveChecks, columns: list[LoopColumn], inhibit: _Inhibitors | None
    ) -> list[tuple[str, _Column, NDArray[np.int64]]]:
        """Per loop rule, the active loops to visit (`_hold`); the others only take their values from
        `results` from now on (lazily), and the alerts that stop doing so take them from the last ones."""
        assert self._cols is not None
        escalate_from = min(self.escalate_major_after_s, self.escalate_critical_after_s)
        elsewhere: dict[str, list[int]] = {}
        for rule, station, loop in self.firing_elsewhere:
            if loop is not None and rule in self._cols and (i := results.loop_position(station, loop)) is not None:
                elsewhere.setdefault(rule, []).append(i)
        visits = []
        for c in columns:
            col = self._cols[c.rule]
            visit = col.due(now, c, self.policies[c.rule].for_s, escalate_from)
            if c.rule in elsewhere:
                visit |= np.isin(c.loops, elsewhere[c.rule])
            # suppressed (not judged): a pending alert starts over, a firing one keeps its values
            suppressed = inhibit.suppressed(results, c) if inhibit is not None else np.zeros(len(visit), dtype=bool)
            visit = (visit & ~suppressed) | (suppressed & (col.state[c.loops] == 1))
            lazy = np.zeros(len(col.lazy), dtype=bool)
            lazy[c.loops[~visit & ~suppressed]] = True
            if self._source is not None:
                self._refresh(self._source, c.rule, np.flatnonzero(col.lazy & ~lazy))
            col.lazy = lazy
            visits.append((c.rule, col, c.loops[visit]))
        self._source = results
        return visits

    def _gone_keys(
        self, results: ActiveChecks, stations: Mapping[AlertKey, Condition], columns: list[LoopColumn]
    ) -> list[tuple[int, AlertKey, _Column | None, int]]:
        """The held keys whose condition does not hold: (insertion order, key, column, loop)."""
        assert self._cols is not None
        seq = self._seq
        gone: list[tuple[int, AlertKey, _Column | None, int]] = [
            (seq[k], k, None, -1) for k in self._loose if k not in stations
        ]
        for c in columns:
            col = self._cols[c.rule]
            held = col.state != 0
            held[c.loops] = False
            idx = np.flatnonzero(held)
            for i, key in zip(idx.tolist(), results.loop_keys(c.rule, idx), strict=True):
                gone.append((seq[key], key, col, i))
        return gone

    def _sync(self, key: AlertKey, col: _Column | None = None, i: int = -1) -> None:
        """The index of `key` after `_hold` or `_gone` (col None: a `_loose` key)."""
        alert = self._alerts.get(key)
        known = key in self._loose if col is None else bool(col.state[i])
        if alert is not None and not known:
            self._seq[key] = self._next_seq
            self._next_seq += 1
        elif alert is None and known:
            del self._seq[key]
        if col is None:
            if alert is None:
                self._loose.discard(key)
            else:
                self._loose.add(key)
        else:
            col.put(i, alert)

    def _refresh(self, source: ActiveChecks, rule: str, idx: NDArray[np.int64]) -> None:
        """Give the alerts of `rule` at the loops `idx` their values of `source`, where their conditions
        held (see `advance`)."""
        if idx.size:
            alerts = self._alerts
            for key, cond in zip(*source.loop_conditions(rule, idx), strict=True):
                _take(alerts[key], cond)

    def _settle(self, key: AlertKey | None = None) -> None:
        """Every held alert (or the one of `key`) takes its values of the last `advance`, to be read."""
        source, cols = self._source, self._cols
        if source is None or cols is None:
            return
        for rule, col in cols.items():
            if key is None:
                idx = np.flatnonzero(col.lazy)
            elif key[0] != rule or key[2] is None or (i := source.loop_position(key[1], key[2])) is None:
                continue
            else:
                idx = np.array([i] if col.lazy[i] else [], dtype=np.int64)
            self._refresh(source, rule, idx)
            col.lazy[idx] = False

    def _fire(self, alert: Alert, now: float, since: float | None = None) -> AlertEvent:
        since = now if since is None else min(since, now)
        self.firing_elsewhere.pop(alert.key, None)
        alert.state = "firing"
        alert.since = since
        alert.alert_id = make_alert_id(alert.rule, alert.station, alert.loop, since)
        self._by_id[alert.alert_id] = alert.key
        self.dirty = True
        # an alert that fires after a long pending time (or started elsewhere) may already be past a deadline
        self._escalate(alert, now)
        return self._event(alert, "firing", since)

    def _raise(self, alert: Alert, severity: str, now: float) -> AlertEvent | None:
        """The condition reached a graver tier: a pending alert fires at it, a firing one escalates."""
        alert.severity = severity
        self.dirty = True
        if alert.state != "firing":
            return None
        event = self._event(alert, "escalated", now)
        alert.acknowledged_by = alert.acknowledged_at = alert.comment = None
        return event

    def _escalate(self, alert: Alert, now: float) -> AlertEvent | None:
        assert alert.since is not None
        age = now - alert.since
        due = alert.base_severity
        if age >= self.escalate_critical_after_s:
            due = "critical"
        elif age >= self.escalate_major_after_s and SEVERITY_ORDER[due] < SEVERITY_ORDER["major"]:
            due = "major"
        if SEVERITY_ORDER[due] <= SEVERITY_ORDER[alert.severity]:
            return None
        alert.severity = due
        self.dirty = True
        event = self._event(alert, "escalated", now)  # says who had acknowledged it, if anyone
        # The escalated alert is news to whoever answers at the new severity: it can be acknowledged
        # (and silenced) again; the earlier acknowledgement stays in alert_events.
        alert.acknowledged_by = alert.acknowledged_at = alert.comment = None
        return event

    def _resolve(self, alert: Alert, now: float, seen: Condition) -> AlertEvent:
        del self._alerts[alert.key]
        self.firing_elsewhere.pop(alert.key, None)  # what Alertmanager said is older than this
        self._by_id.pop(alert.alert_id, None)
        alert.value, alert.threshold = seen.value, seen.threshold
        alert.source = None
        alert.message = seen.message or alert.message
        self.dirty = True
        event = self._event(alert, "resolved", now)
        self.recently_resolved.append(self._snapshot(alert))
        return event

    def acknowledge(self, alert_id: str, who: str, comment: str | None, now: float) -> AlertEvent | None:
        """Acknowledge a firing alert; None if no firing alert has this id.

        Idempotent: a repeat returns the first acknowledgement unchanged (check `acknowledgement` first).
        """
        key = self._by_id.get(alert_id)
        if key is None:
            return None
        self._settle(key)
        alert = self._alerts[key]
        if alert.acknowledged_at is not None:
            return self._event(alert, "acknowledged", alert.acknowledged_at)
        alert.acknowledged_by, alert.acknowledged_at, alert.comment = who, now, comment
        self.dirty = True
        return self._event(alert, "acknowledged", now)

    def acknowledgement(self, alert_id: str) -> AlertEvent | None:
        """The acknowledgement of a firing alert as it was made; None if not firing or not acknowledged."""
        key = self._by_id.get(alert_id)
        alert = self._alerts[key] if key is not None else None
        if alert is None or alert.acknowledged_at is None:
            return None
        self._settle(key)
        return self._event(alert, "acknowledged", alert.acknowledged_at)

    def retain(self, keep: Callable[[AlertKey], bool], now: float, reason: str = "") -> list[AlertEvent]:
        """Drop alerts whose key `keep` refuses (a loop removed from the config): resolved events."""
        self._unindex()
        events = []
        for key in [k for k in self._alerts if not keep(k)]:
            alert = self._alerts[key]
            if alert.state == "firing":
                events.append(self._resolve(alert, now, Condition(message=reason)))
            else:
                del self._alerts[key]
            self.dirty = True
        return events

    @staticmethod
    def _event(alert: Alert, state: str, now: float) -> AlertEvent:
        doc = {name: getattr(alert, name) for name in _EVENT_FROM_ALERT}
        since = alert.since if alert.since is not None else alert.pending_since
        doc.update(state=state, since=since, value=_clean(alert.value), threshold=_clean(alert.threshold))
        labels = {
            "alertname": alert.rule,
            "station": alert.station,
            "district": alert.district,
            "loop": alert.loop or "",
            "severity": alert.severity,
            "cause": alert.cause,
        }
        return AlertEvent(ts=now, message=alert.text(), labels=labels, **doc)

    def to_dict(self) -> dict[str, Any]:
        """The whole state as a JSON-able dict."""
        self._settle()
        return {"version": STATE_VERSION, "alerts": [_alert_to_dict(a) for a in self._alerts.values()]}

    def load_dict(self, data: Mapping[str, Any], companies: Mapping[str, str] | None = None) -> int:
        """Replace the state with one saved by `to_dict`; returns alerts restored.

        Malformed entries and those of disabled rules are skipped; ValueError for a wrong document or version.
        An alert saved without a company (before alerts kept it) takes its station's from `companies`.
        """
        if not isinstance(data, Mapping) or data.get("version") != STATE_VERSION:
            raise ValueError(f"not an alert state of version {STATE_VERSION}")
        alerts: dict[AlertKey, Alert] = {}
        for item in data.get("alerts", ()):
            try:
                alert = _alert_from_dict(item)
            except (KeyError, TypeError, ValueError):
                continue
            policy = self.policies.get(alert.rule)
            if policy is None:
                continue
            if SEVERITY_ORDER[policy.severity] > SEVERITY_ORDER[alert.severity]:
                alert.severity = policy.severity  # the config raised the rule's severity since
            alert.base_severity = policy.severity
            alert.company = alert.company or (companies or {}).get(alert.station, "")
            alerts[alert.key] = alert
        self._unindex()
        self._alerts = alerts
        self._by_id = {a.alert_id: a.key for a in alerts.values() if a.state == "firing"}
        self.dirty = False
        return len(alerts)


def _alert_to_dict(a: Alert) -> dict[str, Any]:
    doc = {f.name: getattr(a, f.name) for f in fields(Alert) if f.name not in ("alert_id", "source")}
    doc.update(id=a.alert_id, value=_clean(a.value), threshold=_clean(a.threshold), message=a.text())
    return doc


def _opt_float(x: Any) -> float | None:
    return None if x is None else float(x)


def _opt_str(x: Any) -> str | None:
    return None if x is None else str(x)


def _alert_from_dict(d: Mapping[str, Any]) -> Alert:
    state = str(d["state"])
    severity = str(d["severity"])
    if state not in ("pending", "firing") or severity not in SEVERITY_ORDER:
        raise ValueError(state)
    since = _opt_float(d.get("since"))
    alert_id = str(d.get("id") or "")
    if state == "firing" and (since is None or not alert_id):
        raise ValueError("firing without since/id")
    return Alert(
        rule=str(d["rule"]),
        station=str(d["station"]),
        loop=_opt_str(d.get("loop")),
        district=str(d.get("district", "")),
        state=state,
        pending_since=float(d["pending_since"]),
        base_severity=severity,  # load_dict sets the rule's configured one (the saved one may be outdated)
        severity=severity,
        alert_id=alert_id,
        since=since,
        value=_opt_float(d.get("value")),
        threshold=_opt_float(d.get("threshold")),
        message=str(d.get("message", "")),
        clearing_since=_opt_float(d.get("clearing_since")),
        acknowledged_by=_opt_str(d.get("acknowledged_by")),
        acknowledged_at=_opt_float(d.get("acknowledged_at")),
        comment=_opt_str(d.get("comment")),
        cause=str(d.get("cause") or "station"),
        company=str(d.get("company") or ""),
    )
