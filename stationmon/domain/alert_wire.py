"""Alerts on the wire: what Alertmanager, its webhook receivers and MQTT dashboards receive.

Station-level alerts carry `loop="-"` in labels and MQTT topics, so the `loop` label is always present
and a topic always has three levels below the prefix.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from urllib.parse import quote

from stationmon.domain.alerts import AlertSnapshot
from stationmon.domain.model import AlertEvent

__all__ = [
    "STATION_LEVEL_LOOP",
    "WEBHOOK_GROUP_BY",
    "ZERO_TIME",
    "JsonObject",
    "PostableAlert",
    "alert_annotations",
    "alert_labels",
    "alert_payload",
    "alert_topic",
    "event_from_snapshot",
    "generator_url",
    "group_key",
    "label_fingerprint",
    "postable_alert",
    "rfc3339",
    "silence_body",
    "silence_marker",
    "webhook_alert",
    "webhook_message",
]

STATION_LEVEL_LOOP = "-"
# Alertmanager's webhook sends Go's zero time for "not ended yet".
ZERO_TIME = "0001-01-01T00:00:00Z"
# The labels a webhook message is grouped by: one alert of one rule at one loop.
WEBHOOK_GROUP_BY = ("alertname", "station", "loop")

JsonObject = dict[str, object]


def rfc3339(ts: float) -> str:
    """Unix seconds as RFC 3339 UTC with milliseconds, the way Alertmanager accepts and echoes it."""
    when = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def alert_labels(event: AlertEvent) -> dict[str, str]:
    """Alertmanager labels of CONTRACT section 5 plus the event's extra labels.

    Empty values are dropped: Alertmanager treats them as absent, so our fingerprints equal its own.
    """
    labels = {
        **event.labels,
        "alertname": event.rule,
        "station": event.station,
        "district": event.district,
        "company": event.company,
        "loop": event.loop or STATION_LEVEL_LOOP,
        "severity": event.severity,
        "cause": event.labels.get("cause") or "station",  # heat_source while the station's primary falls short
    }
    return {k: v for k, v in sorted(labels.items()) if v}


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def alert_annotations(event: AlertEvent) -> dict[str, str]:
    """Annotations: the four of CONTRACT section 5 (always there, "" without a number), then any acknowledgement."""
    where = event.station if event.loop is None else f"{event.station} loop {event.loop}"
    annotations = {
        "summary": f"{event.rule} at {where}",
        "description": event.message or f"{event.rule} at {where}",
        "value": _num(event.value),
        "threshold": _num(event.threshold),
    }
    if event.acknowledged_by:
        annotations["acknowledged_by"] = event.acknowledged_by
    if event.acknowledged_at is not None:
        annotations["acknowledged_at"] = rfc3339(event.acknowledged_at)
    if event.comment and (event.acknowledged_by or event.acknowledged_at is not None):
        annotations["comment"] = event.comment
    return annotations


def generator_url(external_url: str, event: AlertEvent) -> str:
    """The status page of the alert's station (its anchor on `GET /`)."""
    return f"{external_url.rstrip('/')}/#station-{quote(event.station, safe='')}"


# FNV-1a 64, as in prometheus/common model.LabelSet.Fingerprint(), which Alertmanager uses.
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK64 = (1 << 64) - 1
_SEPARATOR = 0xFF


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set: 16 hex digits, equal to what its API reports."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode("utf-8"):
                h = ((h ^ byte) * _FNV_PRIME) & _MASK64
            h = ((h ^ _SEPARATOR) * _FNV_PRIME) & _MASK64
    return f"{h:016x}"


def group_key(group_labels: Mapping[str, str]) -> str:
    """A groupKey shaped like Alertmanager's (root route `{}`, then the group's labels)."""
    # model.LabelSet.String(): sorted, `name="value"` joined by ", ", in braces
    pairs = ", ".join(f"{k}={json.dumps(group_labels[k], ensure_ascii=False)}" for k in sorted(group_labels))
    return "{}:{" + pairs + "}"


@dataclass(frozen=True, slots=True)
class PostableAlert:
    """One alert as Alertmanager's API takes it; `ends` None while firing (filled in when sent)."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts: float
    ends: float | None
    generator_url: str

    @property
    def fingerprint(self) -> str:
        """Alertmanager's identity of the alert: the fingerprint of its labels."""
        return label_fingerprint(self.labels)

    def to_json(self, firing_ends: float) -> JsonObject:
        """The API object; a firing alert ends at `firing_ends` unless re-sent before."""
        return {
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": rfc3339(self.starts),
            "endsAt": rfc3339(self.ends if self.ends is not None else firing_ends),
            "generatorURL": self.generator_url,
        }


def postable_alert(event: AlertEvent, external_url: str) -> PostableAlert:
    """The event as Alertmanager should hold it: open-ended while active, ended at `ts` once resolved."""
    return PostableAlert(
        labels=alert_labels(event),
        annotations=alert_annotations(event),
        starts=event.since,
        ends=event.ts if event.state == "resolved" else None,
        generator_url=generator_url(external_url, event),
    )


def silence_marker(alert_id: str) -> str:
    """The tag in an acknowledgement silence's comment that names its alert (found again after a restart)."""
    return f"[stationmon alert {alert_id}]"


def silence_body(labels: Mapping[str, str], now: float, duration_s: float, by: str, comment: str) -> JsonObject:
    """A silence matching exactly this label set, from `now` for `duration_s`."""
    return {
        "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in sorted(labels.items())],
        "startsAt": rfc3339(now),
        "endsAt": rfc3339(now + duration_s),
        "createdBy": by,
        "comment": comment,
    }


# the fields an event and a snapshot share
_SHARED_WITH_SNAPSHOT = {f.name for f in fields(AlertEvent)} & {f.name for f in fields(AlertSnapshot)}


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def event_from_snapshot(snapshot: AlertSnapshot, now: float) -> AlertEvent:
    """An active alert as the evaluator lists it, as a "firing" event (re-asserted after a restart)."""
    doc = {name: getattr(snapshot, name) for name in _SHARED_WITH_SNAPSHOT}
    since = snapshot.since if snapshot.since is not None else snapshot.pending_since
    doc.update(state="firing", since=since, value=_finite(snapshot.value), threshold=_finite(snapshot.threshold))
    return AlertEvent(alert_id=snapshot.id, ts=now, labels={"cause": snapshot.cause}, **doc)


def webhook_alert(event: AlertEvent, external_url: str) -> JsonObject:
    """One entry of a webhook message's `alerts` list."""
    labels = alert_labels(event)
    resolved = event.state == "resolved"
    return {
        "status": "resolved" if resolved else "firing",
        "labels": labels,
        "annotations": alert_annotations(event),
        "startsAt": rfc3339(event.since),
        "endsAt": rfc3339(event.ts) if resolved else ZERO_TIME,
        "generatorURL": generator_url(external_url, event),
        "fingerprint": label_fingerprint(labels),
    }


def webhook_message(event: AlertEvent, external_url: str, receiver: str = "stationmon") -> JsonObject:
    """The body Alertmanager's own webhook sends (version "4"), for one alert transition."""
    labels = alert_labels(event)
    group_labels = {k: labels[k] for k in WEBHOOK_GROUP_BY if k in labels}
    return {
        "receiver": receiver,
        "status": "resolved" if event.state == "resolved" else "firing",
        "alerts": [webhook_alert(event, external_url)],
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": alert_annotations(event),
        "externalURL": external_url,
        "version": "4",
        "groupKey": group_key(group_labels),
        "truncatedAlerts": 0,
    }


def alert_topic(prefix: str, event: AlertEvent) -> str:
    """The MQTT topic `{prefix}/{station}/{loop}/{rule}`, loop `-` for station-level alerts."""
    return f"{prefix.rstrip('/')}/{event.station}/{event.loop or STATION_LEVEL_LOOP}/{event.rule}"


def alert_payload(event: AlertEvent) -> bytes:
    """The retained MQTT message of an active alert (JSON); empty bytes for a resolved one (clears it)."""
    if event.state == "resolved":
        return b""
    doc: JsonObject = {
        "id": event.alert_id,
        "rule": event.rule,
        "station": event.station,
        "district": event.district,
        "company": event.company,
        "loop": event.loop,
        "severity": event.severity,
        "state": event.state,
        "since": rfc3339(event.since),
        "ts": rfc3339(event.ts),
        "value": event.value,
        "threshold": event.threshold,
        "message": event.message,
        "acknowledged_by": event.acknowledged_by,
        "acknowledged_at": None if event.acknowledged_at is None else rfc3339(event.acknowledged_at),
        "comment": event.comment,
    }
    if event.labels:
        doc["labels"] = dict(event.labels)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
