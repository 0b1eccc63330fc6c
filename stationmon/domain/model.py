"""The values that flow through stationmon: readings, station state, alert events. Times are Unix seconds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "AlertEvent",
    "Reading",
    "ReadingSink",
    "StationState",
]


@dataclass(slots=True)
class Reading:
    """One value of one quantity at one time; `fault` says why it cannot be trusted (stored flagged), or None."""

    station: str
    quantity: str
    value: float
    ts: float
    loop: str | None = None
    sensor: str | None = None
    source: str = "modbus"
    fault: str | None = None
    # the time is when stationmon received it (the payload had none): the series' readings must stay
    # distinct in storage even when a broker delivers a burst within one timestamp unit
    received: bool = False


# Collectors hand batches of readings to the service through one of these; it must not block.
ReadingSink = Callable[[Sequence[Reading]], None]


@dataclass(slots=True)
class StationState:
    """What the collectors know about one station's connection, for rules, the API and metrics."""

    station: str
    online: bool = False
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    consecutive_failures: int = 0
    polls: int = 0
    failures: int = 0
    # the read plan a strict device made the poller adopt (request descriptions); empty: as planned
    adapted_read_plan: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One transition ("firing", "escalated", "acknowledged", "resolved") of one alert, as notifiers deliver it."""

    alert_id: str
    rule: str
    station: str
    district: str
    loop: str | None
    severity: str
    state: str
    ts: float
    since: float
    value: float | None = None
    threshold: float | None = None
    message: str = ""
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    comment: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    company: str = ""  # the station's heating company (a tag and a label), carried like the district
