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
from typing import Any

from stationmon.domain.model import AlertEvent
from stationmon.domain.settings import RuleSettings, RulesSettings
from stationmon.domain.vocabulary import RULE_NAMES, SEVERITY_ORDER

__all__ = [
    "STATE_VERSION",
    "Alert",
    "AlertBook",
    "AlertKey",
    "AlertSnapshot",
    "Condition",
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

    def __len__(self) -> int:
        return len(self._alerts)

    def get(self, key: AlertKey) -> Alert | None:
        """The pending or firing alert of this key, or None."""
        return self._alerts.get(key)

    def held_keys(self) -> Iterable[AlertKey]:
        """Keys with a pending or firing alert: the rules judge these with hysteresis."""
        return self._alerts.keys()

    def active_alerts(self, *, include_pending: bool = False) -> list[AlertSnapshot]:
        """Firing alerts (and pending ones if asked), oldest first."""
        out = [self._snapshot(a) for a in self._alerts.values() if include_pending or a.state == "firing"]
        out.sort(key=lambda s: (s.since if s.since is not None else s.pending_since, s.station, s.loop or "", s.rule))
        return out

    def snapshot(self, alert_id: str) -> AlertSnapshot | None:
        """The firing alert with this id, or None."""
        key = self._by_id.get(alert_id)
        return self._snapshot(self._alerts[key]) if key is not None else None

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
        """
        inhibit = self._inhibitors(conditions)
        events = self._held(now, conditions, inhibit)
        self._gone(now, conditions, lookup, inhibit, events)
        return events

    def _inhibitors(self, conditions: Mapping[AlertKey, Condition]) -> _Inhibitors | None:
        """Stations offline and sensors faulty now (their dependent conditions count as not judged)."""
        inhibit = _Inhibitors()
        for (rule, station, loop), cond in conditions.items():
            if rule == "station_offline" and rule in self.policies:
                inhibit.offline.add(station)
            elif rule == "sensor_fault" and rule in self.policies and cond.sensors:
                scope = (station, loop)
                inhibit.faults[scope] = inhibit.faults.get(scope, frozenset()) | cond.sensors
        inhibit.stations = inhibit.offline | {station for station, _ in inhibit.faults}
        return inhibit if inhibit.offline or inhibit.faults else None

    def _held(
        self, now: float, conditions: Mapping[AlertKey, Condition], inhibit: _Inhibitors | None
    ) -> list[AlertEvent]:
        """Keys whose condition holds: start pending, fire after `for`, escalate with age."""
        escalate_from = min(self.escalate_major_after_s, self.escalate_critical_after_s)
        events: list[AlertEvent] = []
        alerts = self._alerts
        for key, cond in conditions.items():
            policy = self.policies.get(key[0])
            if policy is None:
                continue
            alert = alerts.get(key)
            # (the station test first: few stations are offline or have a faulty sensor)
            if inhibit is not None and key[1] in inhibit.stations and inhibit.suppresses(key, cond):
                # not judged: a pending alert starts over, a firing one waits
                if alert is not None and alert.state == "pending":
                    del alerts[key]
                    self.dirty = True
                continue
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
            alert.value, alert.threshold, alert.source = cond.value, cond.threshold, cond
            alert.district = cond.district or alert.district
            alert.company = cond.company or alert.company
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
            # (the age test first: escalation is rare and this runs for every held alert every tick)
            if alert.state == "firing" and now - alert.since >= escalate_from and alert.severity != "critical":  # type: ignore[operator]
                event = self._escalate(alert, now)
                if event is not None:
                    events.append(event)
        return events

    def _gone(
        self,
        now: float,
        conditions: Mapping[AlertKey, Condition],
        lookup: Callable[[AlertKey], Condition | None],
        inhibit: _Inhibitors | None,
        events: list[AlertEvent],
    ) -> None:
        """Pending alerts whose condition is gone start over; firing ones resolve after `clear_for` judged clear."""
        alerts = self._alerts
        for key in [k for k in alerts if k not in conditions]:
            alert = alerts[key]
            if alert.state == "pending":
                # pending needs unbroken evidence: gone or not judged, it starts over
                del alerts[key]
                self.dirty = True
                continue
            policy = self.policies.get(key[0])
            seen = lookup(key)
            if seen is None or policy is None or (inhibit is not None and inhibit.suppresses(key, seen)):
                continue  # not judged: neither gone nor there
            if alert.clearing_since is None:
                alert.clearing_since = now
                self.dirty = True
            if now - alert.clearing_since >= policy.clear_for_s:
                events.append(self._resolve(alert, now, seen))

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
        return self._event(alert, "acknowledged", alert.acknowledged_at)

    def retain(self, keep: Callable[[AlertKey], bool], now: float, reason: str = "") -> list[AlertEvent]:
        """Drop alerts whose key `keep` refuses (a loop removed from the config): resolved events."""
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
