"""Prometheus Alertmanager: `POST /api/v2/alerts`, kept in step with stationmon's active alerts.

Unlike the webhook, this notifier keeps state: the alerts that are active (from the events it saw) are
re-sent every `resend_interval`, each with `endsAt` = now + 4 x resend_interval (what Prometheus does),
so Alertmanager keeps them while stationmon runs, gets them back after its own restart, and lets them
expire by themselves if stationmon dies. A resolution is sent once with `endsAt` = the resolution time.
An escalation changes the `severity` label and so the alert's identity in Alertmanager: the old label
set is ended at the same moment the new one fires, so the escalation is a new notification.

Acknowledgement maps onto Alertmanager's own mechanism: a silence matching exactly the alert's labels
(created by whoever acknowledged, with their comment), so repeat notifications stop while the alert
stays visible as active and suppressed. The silence is expired when the alert resolves or escalates,
so an escalation of an acknowledged alert still goes out. The silence's own end (`ack_silence_s`,
7 days) only matters if stationmon is gone by then.

Events are applied in the order they came; a failed POST keeps the batch and retries with capped
backoff, merging newer changes into it, so after an outage Alertmanager receives the latest state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from stationmon.adapters.notify import (
    HttpNotifier,
    RejectedError,
    alert_annotations,
    alert_labels,
    generator_url,
    label_fingerprint,
    post_json,
    redact_url,
    rfc3339,
)
from stationmon.config import AlertmanagerConfig
from stationmon.domain.model import AlertEvent
from stationmon.errors import NotifyError
from stationmon.metrics import Metrics

__all__ = ["AlertmanagerNotifier", "PostableAlert", "event_from_snapshot", "silence_body", "silence_marker"]

log = logging.getLogger("stationmon.notify")

ACK_SILENCE_S = 7 * 86400.0


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

    def to_json(self, firing_ends: float) -> dict[str, Any]:
        """The API object; a firing alert ends at `firing_ends` unless re-sent before."""
        return {
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": rfc3339(self.starts),
            "endsAt": rfc3339(self.ends if self.ends is not None else firing_ends),
            "generatorURL": self.generator_url,
        }


def silence_marker(alert_id: str) -> str:
    """The tag in an acknowledgement silence's comment that names its alert (found again after a restart)."""
    return f"[stationmon alert {alert_id}]"


def silence_body(labels: dict[str, str], now: float, duration_s: float, by: str, comment: str) -> dict[str, Any]:
    """A silence matching exactly this label set, from `now` for `duration_s`."""
    return {
        "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in sorted(labels.items())],
        "startsAt": rfc3339(now),
        "endsAt": rfc3339(now + duration_s),
        "createdBy": by,
        "comment": comment,
    }


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def event_from_snapshot(snapshot: Any, now: float) -> AlertEvent:
    """An active alert as the evaluator lists it (an AlertSnapshot), as a "firing" event."""
    since = snapshot.since if snapshot.since is not None else snapshot.pending_since
    return AlertEvent(
        alert_id=snapshot.id,
        rule=snapshot.rule,
        station=snapshot.station,
        district=snapshot.district,
        loop=snapshot.loop,
        severity=snapshot.severity,
        state="firing",
        ts=now,
        since=since,
        value=_finite(snapshot.value),
        threshold=_finite(snapshot.threshold),
        message=snapshot.message,
        acknowledged_by=snapshot.acknowledged_by,
        acknowledged_at=snapshot.acknowledged_at,
        comment=snapshot.comment,
    )


class AlertmanagerNotifier(HttpNotifier):
    """Feeds one Alertmanager (one per `[[alerting.alertmanager]]`; several for an HA cluster)."""

    kind = "alertmanager"

    def __init__(
        self,
        config: AlertmanagerConfig,
        metrics: Metrics,
        *,
        external_url: str,
        name: str = "alertmanager",
        active_alerts: Callable[[], Iterable[AlertEvent]] | None = None,
        queue_size: int = 10000,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 60.0,
        ack_silence_s: float = ACK_SILENCE_S,
        drain_timeout_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            name,
            redact_url(config.url),
            metrics,
            queue_size=queue_size,
            retry_initial_s=retry_initial_s,
            retry_max_s=retry_max_s,
            drain_timeout_s=drain_timeout_s,
        )
        self.config = config
        self.external_url = external_url
        self.active_alerts = active_alerts
        self.ack_silence_s = ack_silence_s
        self.clock = clock
        self.active: dict[str, PostableAlert] = {}  # alert_id -> what Alertmanager should hold
        self._pending: dict[str, PostableAlert] = {}  # fingerprint -> to send on the next flush
        self._silence_create: dict[str, dict[str, Any]] = {}  # alert_id -> silence to create
        self.silences: dict[str, str] = {}  # alert_id -> Alertmanager's silence id
        self._silence_expire: set[str] = set()  # silence ids to expire
        self._acked_unknown: set[str] = set()  # acknowledged before we started: silence id unknown
        self._silence_lookup: set[str] = set()  # alert ids whose silences to find and expire
        self._headers: dict[str, str] = {}
        if config.bearer_token is not None:
            self._headers["Authorization"] = f"Bearer {config.bearer_token.get()}"

    # -- applying events (pure bookkeeping, in the delivery task) --------------------------------------

    def _postable(self, event: AlertEvent, ends: float | None) -> PostableAlert:
        return PostableAlert(
            labels=alert_labels(event),
            annotations=alert_annotations(event),
            starts=event.since,
            ends=ends,
            generator_url=generator_url(self.external_url, event),
        )

    def _apply(self, event: AlertEvent) -> None:
        resolved = event.state == "resolved"
        alert = self._postable(event, event.ts if resolved else None)
        prev = self.active.get(event.alert_id)
        if prev is not None and prev.fingerprint != alert.fingerprint:
            # Severity changed: end the old label set, or Alertmanager shows both until it expires.
            self._pending[prev.fingerprint] = replace(prev, ends=event.ts)
        self._pending[alert.fingerprint] = alert
        if resolved:
            self.active.pop(event.alert_id, None)
        else:
            self.active[event.alert_id] = alert
        if event.state in ("resolved", "escalated"):
            self._unsilence(event.alert_id)
        elif event.state == "acknowledged":
            by = event.acknowledged_by or "stationmon"
            comment = f"{event.comment or 'acknowledged in stationmon'} {silence_marker(event.alert_id)}"
            self._unsilence(event.alert_id)
            self._silence_create[event.alert_id] = silence_body(
                alert.labels, self.clock(), self.ack_silence_s, by, comment
            )

    def _unsilence(self, alert_id: str) -> None:
        self._silence_create.pop(alert_id, None)
        silence_id = self.silences.pop(alert_id, None)
        if silence_id is not None:
            self._silence_expire.add(silence_id)
        elif alert_id in self._acked_unknown:
            # Acknowledged before a restart: the silence id is lost, find it by its marker.
            self._acked_unknown.discard(alert_id)
            self._silence_lookup.add(alert_id)

    def _apply_queued(self) -> None:
        while self._events:
            self._apply(self._events.popleft())
        self._queue_length.set(0)

    def _queue_resend(self) -> None:
        for alert in self.active.values():
            self._pending.setdefault(alert.fingerprint, alert)

    def _has_work(self) -> bool:
        return bool(self._pending or self._silence_create or self._silence_expire or self._silence_lookup)

    @property
    def pending(self) -> int:
        """Alerts and silence changes not yet accepted by Alertmanager, plus queued events."""
        return len(self._events) + len(self._pending) + len(self._silence_create) + len(self._silence_expire)

    # -- the delivery task ----------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        resend_s = self.config.resend_interval_s
        if self.active_alerts is not None:
            # Alerts restored from the evaluator's state file: assert them again at once.
            for event in self.active_alerts():
                if event.state != "resolved":
                    self._apply(replace(event, state="firing"))
                    if event.acknowledged_at is not None:
                        self._acked_unknown.add(event.alert_id)
        next_resend = loop.time() + resend_s
        retry_at: float | None = None
        self.backoff.reset()
        while True:
            self._apply_queued()
            now = loop.time()
            if retry_at is not None:
                deadline = retry_at
            elif self._has_work():
                deadline = now
            else:
                deadline = next_resend
            if deadline > now:
                self._wakeup.clear()
                if not self._has_work():
                    self._idle.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), deadline - now)
                continue
            if now >= next_resend:
                self._queue_resend()
                next_resend = now + resend_s
            if retry_at is not None:
                self._retried.inc()
                retry_at = None
            try:
                await self._flush()
            except NotifyError as exc:
                self._failed.inc()
                self.failures.failure(str(exc))
                retry_at = loop.time() + self.backoff.next_delay()
            else:
                self.backoff.reset()
                self.failures.success()

    async def _flush(self) -> None:
        """Send pending alerts, then silence changes; NotifyError leaves the rest pending."""
        session = self._session()
        if self._pending:
            batch, self._pending = self._pending, {}
            firing_ends = self.clock() + 4 * self.config.resend_interval_s
            body = json.dumps([a.to_json(firing_ends) for a in batch.values()], ensure_ascii=False)
            try:
                await post_json(
                    session,
                    f"{self.config.url}/api/v2/alerts",
                    body.encode("utf-8"),
                    timeout_s=self.config.timeout_s,
                    headers=self._headers,
                )
            except RejectedError as exc:
                self._failed.inc()
                self._dropped("rejected")
                log.error("alertmanager %s: rejected %d alerts, dropped: %s", self.target, len(batch), exc)
            except NotifyError:
                # Changes that came in meanwhile are newer than the batch: they win.
                self._pending = {**batch, **self._pending}
                raise
            else:
                self._sent.inc()
        for alert_id, silence in list(self._silence_create.items()):
            try:
                reply = await post_json(
                    session,
                    f"{self.config.url}/api/v2/silences",
                    json.dumps(silence, ensure_ascii=False).encode("utf-8"),
                    timeout_s=self.config.timeout_s,
                    headers=self._headers,
                )
            except RejectedError as exc:
                log.error("alertmanager %s: silence for %s rejected: %s", self.target, alert_id, exc)
                self._silence_create.pop(alert_id, None)
                continue
            self._silence_create.pop(alert_id, None)
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.silences[alert_id] = str(json.loads(reply)["silenceID"])
        for alert_id in list(self._silence_lookup):
            self._silence_expire.update(await self._find_silences(session, alert_id))
            self._silence_lookup.discard(alert_id)
        for silence_id in list(self._silence_expire):
            await self._expire_silence(session, silence_id)
            self._silence_expire.discard(silence_id)

    async def _find_silences(self, session: aiohttp.ClientSession, alert_id: str) -> list[str]:
        marker = silence_marker(alert_id)
        try:
            async with session.get(
                f"{self.config.url}/api/v2/silences",
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_s),
            ) as resp:
                if resp.status >= 300:
                    raise NotifyError(f"listing silences: HTTP {resp.status}")
                silences = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise NotifyError(f"listing silences: {type(exc).__name__}: {exc}") from exc
        return [
            str(s["id"])
            for s in silences
            if isinstance(s, dict)
            and s.get("status", {}).get("state") != "expired"
            and marker in str(s.get("comment", ""))
        ]

    async def _expire_silence(self, session: aiohttp.ClientSession, silence_id: str) -> None:
        url = f"{self.config.url}/api/v2/silence/{silence_id}"
        try:
            async with session.delete(
                url, headers=self._headers, timeout=aiohttp.ClientTimeout(total=self.config.timeout_s)
            ) as resp:
                await resp.read()
                # 404: already gone (expired, or Alertmanager lost its data): nothing left to do.
                if resp.status >= 300 and resp.status != 404:
                    raise NotifyError(f"expiring silence {silence_id}: HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise NotifyError(f"expiring silence {silence_id}: {type(exc).__name__}: {exc}") from exc
