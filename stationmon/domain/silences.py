"""Acknowledgement as Alertmanager silences: which to create, which to expire, which to look up.

    acknowledged --> to_create --created(id)--> ids[alert] --resolved/escalated--> to_expire --expired-->
                         \\--resolved/escalated before it was created: dropped
    acknowledged by a previous run (id unknown) --resolved/escalated--> to_find --found(ids)--> to_expire

A silence matches exactly the alert's labels and is expired when the alert resolves or escalates, so
an escalation still goes out. Its comment carries `silence_marker(alert_id)` to be found after a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from stationmon.domain.alert_wire import JsonObject, silence_body, silence_marker
from stationmon.domain.model import AlertEvent

__all__ = ["ACK_SILENCE_S", "SilenceBook"]

ACK_SILENCE_S = 7 * 86400.0


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
        """Alertmanager accepted the silence (None: its reply carried no id) or refused it for good."""
        self.to_create.pop(alert_id, None)
        if silence_id is not None:
            self.ids[alert_id] = silence_id

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
