"""Alerts over a report's period, from `alert_events`: each alert's life (fired, acknowledged, resolved) and the
times a heat-source shortage held. Pure.

An alert is one firing event and what followed it: events carrying the same `alert_id`, or (events written
before `alert_id` existed) the next events of the same station, loop and rule. Alerts that fired before the
period are not counted; a life still open at the period's end is open until then.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["AlertLife", "Event", "alert_figures", "alert_lives", "shortage_intervals"]

HOUR = 3600.0
OPEN_STATES = frozenset({"firing", "escalated", "acknowledged"})


@dataclass(frozen=True)
class Event:
    """One `alert_events` point."""

    ts: float
    station: str
    loop: str  # "" for station-level alerts
    rule: str
    state: str
    alert_id: str = ""


@dataclass
class AlertLife:
    """One alert: when it fired, was first acknowledged, resolved (None: not in the period)."""

    station: str
    loop: str
    rule: str
    fired: float
    acknowledged: float | None = None
    resolved: float | None = None

    def open_s(self, stop: float) -> float:
        """How long it was open: until resolved, or until `stop` if still open."""
        return (self.resolved if self.resolved is not None else stop) - self.fired


def alert_lives(events: Iterable[Event]) -> list[AlertLife]:
    """Every alert that fired among `events`, with what followed it."""
    by_id: dict[str, AlertLife] = {}
    current: dict[tuple[str, str, str], AlertLife] = {}
    lives: list[AlertLife] = []
    for e in sorted(events, key=lambda e: e.ts):
        key = (e.station, e.loop, e.rule)
        if e.state == "firing":
            if e.alert_id and e.alert_id in by_id:
                continue  # the same alert written twice (an HA pair)
            life = AlertLife(e.station, e.loop, e.rule, e.ts)
            lives.append(life)
            current[key] = life
            if e.alert_id:
                by_id[e.alert_id] = life
            continue
        found = by_id.get(e.alert_id) if e.alert_id else current.get(key)
        if found is None or found.resolved is not None:
            continue  # fired before the period, or a repeat after it resolved
        if e.state == "acknowledged" and found.acknowledged is None:
            found.acknowledged = e.ts
        elif e.state == "resolved":
            found.resolved = e.ts
    return lives


def _p50_max(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return round(statistics.median(values) / HOUR, 2), round(max(values) / HOUR, 2)


def alert_figures(lives: Sequence[AlertLife], stop: float) -> dict[str, float | int | None]:
    """Section 8's alert keys: count, acknowledge and resolve times (p50, max, hours), alerts open past 24/48 h."""
    ack_p50, ack_max = _p50_max([a.acknowledged - a.fired for a in lives if a.acknowledged is not None])
    res_p50, res_max = _p50_max([a.resolved - a.fired for a in lives if a.resolved is not None])
    return {
        "alerts": len(lives),
        "ack_p50_h": ack_p50,
        "ack_max_h": ack_max,
        "resolve_p50_h": res_p50,
        "resolve_max_h": res_max,
        "past_24h": sum(1 for a in lives if a.open_s(stop) > 24 * HOUR),
        "past_48h": sum(1 for a in lives if a.open_s(stop) > 48 * HOUR),
    }


def shortage_intervals(
    events: Iterable[Event], open_at_start: Iterable[str], start: float, stop: float, rule: str = "primary_shortage"
) -> dict[str, list[tuple[float, float]]]:
    """Per station, the merged times within [start, stop) while its station-level `rule` alert was open;
    `open_at_start`: stations whose alert was already open at `start`."""
    since: dict[str, float | None] = {s: start for s in open_at_start}
    out: dict[str, list[tuple[float, float]]] = {}
    for e in sorted((e for e in events if e.rule == rule and not e.loop), key=lambda e: e.ts):
        opened = since.get(e.station)
        if e.state in OPEN_STATES and opened is None:
            since[e.station] = e.ts
        elif e.state == "resolved" and opened is not None:
            out.setdefault(e.station, []).append((opened, e.ts))
            since[e.station] = None
    for station, opened in since.items():
        if opened is not None:
            out.setdefault(station, []).append((opened, stop))
    return {
        s: [(max(a, start), min(b, stop)) for a, b in spans if min(b, stop) > max(a, start)] for s, spans in out.items()
    }
