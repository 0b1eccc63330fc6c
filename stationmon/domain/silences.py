"""Acknowledgement as Alertmanager silences: which to create, which to expire, which to look up.

    acknowledged --> to_create --created(id)--> ids[alert] --resolved/escalated--> to_expire --expired-->
                         \\--resolved/escalated before it was created: dropped
                         \\--resolved/escalated while it was being created: created(id) puts it in to_expire
    acknowledged by a previous run (id unknown) --resolved/escalated--> to_find --found(ids)--> to_expire

A silence matches exactly the alert's labels and is expired when the alert resolves or escalates, so
an escalation still goes out. Its comment carries `silence_marker(alert_id)` to be found after a restart.

Replicas share acknowledgements through Alertmanager: each lists the silences (`parse_ack_silences`),
matches the stationmon ones to its own firing alerts by label set (`match_acknowledgements`: alert
ids may differ between replicas, labels do not) and takes them into its alert book
(`adopt_acknowledgements`); an acknowledgement whose silence has expired (by time, or by someone in
Alertmanager's UI) ends the same way. Firing alerts' `startsAt` (`parse_firing_starts`) let a restarted
replica carry on another's (or its own earlier) escalation clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from stationmon.domain.alert_wire import STATION_LEVEL_LOOP, JsonObject, silence_body, silence_marker
from stationmon.domain.alerts import Alert, AlertBook, AlertKey
from stationmon.domain.model import AlertEvent
from stationmon.domain.vocabulary import RULE_NAMES

__all__ = [
    "ACK_SILENCE_S",
    "AckSilence",
    "SilenceBook",
    "adopt_acknowledgements",
    "match_acknowledgements",
    "parse_ack_silences",
    "parse_firing_starts",
]

ACK_SILENCE_S = 7 * 86400.0
_MARKER_HEAD = silence_marker("")[:-1]  # "[stationmon alert "
# the labels that name one alert of one severity (the others, such as district, follow from them)
_IDENTITY = ("alertname", "station", "loop", "severity")


class SilenceBook:
    """The acknowledgement silences of one Alertmanager, and the changes it has not accepted yet."""

    def __init__(self, duration_s: float = ACK_SILENCE_S) -> None:
        self.duration_s = duration_s
        self.ids: dict[str, str] = {}  # alert_id -> Alertmanager's silence id
        self.to_create: dict[str, JsonObject] = {}  # alert_id -> silence body to POST
        self.to_expire: set[str] = set()  # silence ids to DELETE
        self.to_find: set[str] = set()  # alert ids whose silences to look up by marker, then expire
        self._unknown: set[str] = set()  # acknowledged by a previous run: silence id not known

    def restored(self, alert_id: str) -> None:
        """The alert was acknowledged before stationmon restarted: its silence exists, its id is lost."""
        self._unknown.add(alert_id)

    def apply(self, event: AlertEvent, labels: Mapping[str, str], now: float) -> None:
        """Take one alert transition: acknowledgement silences the labels; resolution and escalation end it."""
        if event.state in ("resolved", "escalated", "acknowledged"):
            self._end(event.alert_id)
        if event.state == "acknowledged":
            by = event.acknowledged_by or "stationmon"
            comment = f"{event.comment or 'acknowledged in stationmon'} {silence_marker(event.alert_id)}"
            self.to_create[event.alert_id] = silence_body(labels, now, self.duration_s, by, comment)

    def _end(self, alert_id: str) -> None:
        self.to_create.pop(alert_id, None)
        silence_id = self.ids.pop(alert_id, None)
        if silence_id is not None:
            self.to_expire.add(silence_id)
        elif alert_id in self._unknown:
            self._unknown.discard(alert_id)
            self.to_find.add(alert_id)

    def created(self, alert_id: str, silence_id: str | None) -> None:
        """Alertmanager accepted the silence (None: its reply carried no id) or refused it for good.

        If the alert resolved or escalated while the silence was being created, the silence is expired at
        once: left alone it would silence the same alert's next firing for the rest of its week.
        """
        waiting = self.to_create.pop(alert_id, None) is not None
        if silence_id is None:
            return
        if waiting:
            self.ids[alert_id] = silence_id
        else:
            self.to_expire.add(silence_id)

    def adopted(self, alert_id: str, silence_id: str) -> None:
        """Another replica's silence acknowledges this alert: expire it too when the alert resolves."""
        if alert_id not in self.ids and alert_id not in self.to_create:
            self.ids[alert_id] = silence_id
            self._unknown.discard(alert_id)

    def found(self, alert_id: str, silence_ids: Iterable[str]) -> None:
        """The silences carrying the alert's marker, looked up after a restart: expire them."""
        self.to_find.discard(alert_id)
        self.to_expire.update(silence_ids)

    def expired(self, silence_id: str) -> None:
        """Alertmanager expired the silence (or no longer had it)."""
        self.to_expire.discard(silence_id)

    @property
    def has_work(self) -> bool:
        """Whether anything waits for Alertmanager."""
        return bool(self.to_create or self.to_expire or self.to_find)

    @property
    def pending(self) -> int:
        """Silences to create and to expire."""
        return len(self.to_create) + len(self.to_expire)


@dataclass(frozen=True, slots=True)
class AckSilence:
    """A stationmon acknowledgement silence as Alertmanager lists it."""

    silence_id: str
    labels: dict[str, str]  # its equality matchers
    by: str
    starts: float
    ends: float
    comment: str  # without the marker
    active: bool  # False: expired (or not started)

    @property
    def identity(self) -> tuple[str, ...]:
        """The labels that name the alert it acknowledges."""
        return tuple(self.labels.get(k, "") for k in _IDENTITY)


def _time(value: object) -> float | None:
    try:
        return dt.datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _ack_silence(item: object) -> AckSilence | None:
    if not isinstance(item, dict):
        return None
    comment = str(item.get("comment", ""))
    head = comment.find(_MARKER_HEAD)
    silence_id = item.get("id")  # without one it could never be expired
    starts, ends = _time(item.get("startsAt")), _time(item.get("endsAt"))
    matchers = item.get("matchers")
    if head < 0 or not silence_id or starts is None or ends is None or not isinstance(matchers, list):
        return None
    labels = {}
    for m in matchers:
        if not isinstance(m, dict) or m.get("isRegex") or m.get("isEqual", True) is False:
            return None  # not one of ours: ours match labels exactly
        labels[str(m.get("name"))] = str(m.get("value"))
    status = item.get("status")
    state = status.get("state") if isinstance(status, dict) else None
    return AckSilence(
        silence_id=str(silence_id),
        labels=labels,
        by=str(item.get("createdBy", "")),
        starts=starts,
        ends=ends,
        comment=comment[:head].strip(),
        active=state == "active",
    )


def parse_ack_silences(doc: object) -> list[AckSilence]:
    """The stationmon acknowledgement silences in a `GET /api/v2/silences` reply (others are skipped)."""
    found = [_ack_silence(item) for item in doc] if isinstance(doc, list) else []
    return [s for s in found if s is not None]


def match_acknowledgements(
    silences: Iterable[AckSilence], active: Mapping[str, Mapping[str, str]]
) -> tuple[dict[str, AckSilence], dict[str, float]]:
    """(acknowledged, ended) among `active` (alert_id -> its Alertmanager labels).

    acknowledged: an active silence matches the alert's labels (the earliest, if several: of equal starts
    the first listed, so every replica adopts the same one, Alertmanager listing them alike); ended: only
    expired ones do (alert_id -> the latest one's start), so an acknowledgement from then is over.
    """
    live: dict[tuple[str, ...], AckSilence] = {}
    expired: dict[tuple[str, ...], float] = {}
    for s in silences:
        if s.active:
            kept = live.get(s.identity)
            if kept is None or s.starts < kept.starts:
                live[s.identity] = s
        else:
            expired[s.identity] = max(s.starts, expired.get(s.identity, s.starts))
    acknowledged: dict[str, AckSilence] = {}
    ended: dict[str, float] = {}
    for alert_id, labels in active.items():
        identity = tuple(labels.get(k, "") for k in _IDENTITY)
        if identity in live:
            acknowledged[alert_id] = live[identity]
        elif identity in expired:
            ended[alert_id] = expired[identity]
    return acknowledged, ended


def parse_firing_starts(doc: object, now: float) -> dict[AlertKey, float]:
    """Alert key -> earliest `startsAt` of stationmon's alerts still firing in a `GET /api/v2/alerts` reply."""
    out: dict[AlertKey, float] = {}
    for item in doc if isinstance(doc, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("labels"), dict):
            continue
        labels = item["labels"]
        rule, station, loop = labels.get("alertname"), labels.get("station"), labels.get("loop")
        starts, ends = _time(item.get("startsAt")), _time(item.get("endsAt"))
        if rule not in RULE_NAMES or not station or starts is None or (ends is not None and ends <= now):
            continue
        key = (str(rule), str(station), None if loop in (None, STATION_LEVEL_LOOP) else str(loop))
        out[key] = min(starts, out.get(key, starts))
    return out


def adopt_acknowledgements(book: AlertBook, acknowledged: Mapping[str, AckSilence], ended: Mapping[str, float]) -> int:
    """Take acknowledgements made through another replica into `book`, end expired ones; the number changed.

    An acknowledgement ends only if the expired silence started with it (not before: that silence
    belonged to an earlier life of the same label set). Nothing is emitted: the replica that took the
    acknowledgement recorded and sent it.
    """
    changed = 0
    for alert_id, silence in acknowledged.items():
        alert = _firing(book, alert_id)
        if alert is not None and alert.acknowledged_at is None:
            alert.acknowledged_by, alert.acknowledged_at = silence.by or "alertmanager", silence.starts
            alert.comment = silence.comment or None
            changed += 1
    for alert_id, silence_starts in ended.items():
        alert = _firing(book, alert_id)
        if alert is not None and alert.acknowledged_at is not None and silence_starts >= alert.acknowledged_at - 1.0:
            alert.acknowledged_by = alert.acknowledged_at = alert.comment = None
            changed += 1
    if changed:
        book.dirty = True
    return changed


def _firing(book: AlertBook, alert_id: str) -> Alert | None:
    snapshot = book.snapshot(alert_id)
    return None if snapshot is None else book.get((snapshot.rule, snapshot.station, snapshot.loop))
