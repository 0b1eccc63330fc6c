"""Prometheus Alertmanager: `POST /api/v2/alerts`, kept in step with stationmon's active alerts.

Unlike the webhook, this notifier keeps state: the alerts that are active (from the events it saw) are
re-sent every `resend_interval`, each with `endsAt` = now + 4 x resend_interval (what Prometheus does),
so Alertmanager keeps them while stationmon runs, gets them back after its own restart, and lets them
expire by themselves if stationmon dies. A resolution is sent once with `endsAt` = the resolution time.
An escalation changes the `severity` label and so the alert's identity in Alertmanager: the old label
set is ended at the same moment the new one fires, so the escalation is a new notification.

Acknowledgement maps onto Alertmanager's own mechanism, a silence matching exactly the alert's labels;
which silences to create and expire is `stationmon.domain.silences.SilenceBook`'s to decide, this
module only does the HTTP.

Events are applied in the order they came; a failed POST keeps the batch and retries with capped
backoff, merging newer changes into it, so after an outage Alertmanager receives the latest state.

Replicas (an HA pair): with `on_sync`, the notifier reads Alertmanager back at start and every
`resend_interval` (`GET /api/v2/silences`, `GET /api/v2/alerts`) and hands the owner an
`AlertmanagerState`: the acknowledgements of its firing alerts (silences another replica made, matched
by labels) and which stationmon alerts fire with which `startsAt`. A silence learned that way is
expired by this replica too when the alert resolves, should the one that made it be gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Unpack

from stationmon.adapters.notify import JsonHttp, Notifier, NotifierOptions, RejectedError
from stationmon.config import AlertmanagerConfig
from stationmon.domain.alert_wire import JsonObject, PostableAlert, postable_alert, silence_marker
from stationmon.domain.alerts import AlertKey
from stationmon.domain.model import AlertEvent
from stationmon.domain.silences import (
    ACK_SILENCE_S,
    AckSilence,
    SilenceBook,
    match_acknowledgements,
    parse_ack_silences,
    parse_firing_starts,
)
from stationmon.errors import NotifyError
from stationmon.logutil import FailureLog
from stationmon.metrics import Metrics
from stationmon.redact import redact_url

__all__ = ["AlertmanagerNotifier", "AlertmanagerState"]

log = logging.getLogger("stationmon.notify")


@dataclass(frozen=True, slots=True)
class AlertmanagerState:
    """What Alertmanager holds that replicas share (see the module docstring)."""

    acknowledged: dict[str, AckSilence]  # our firing alert_id -> the silence acknowledging it
    ended: dict[str, float]  # our firing alert_id -> start of the expired silence that acknowledged it
    firing_starts: dict[AlertKey, float]  # stationmon alerts firing in Alertmanager -> startsAt


class AlertmanagerNotifier(Notifier):
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
        ack_silence_s: float = ACK_SILENCE_S,
        on_sync: Callable[[AlertmanagerState], None] | None = None,
        clock: Callable[[], float] = time.time,
        **options: Unpack[NotifierOptions],
    ) -> None:
        super().__init__(name, redact_url(config.url), metrics, **options)
        self.config = config
        self.external_url = external_url
        self.active_alerts = active_alerts
        self.clock = clock
        self.active: dict[str, PostableAlert] = {}  # alert_id -> what Alertmanager should hold
        self.outbox: dict[str, PostableAlert] = {}  # fingerprint -> to send on the next flush
        self.acks = SilenceBook(ack_silence_s)
        self.on_sync = on_sync
        self.synced = asyncio.Event()  # set after the first read-back (done or failed)
        self._sync_log = FailureLog(log, f"alertmanager {self.target}: reading back silences and alerts")
        self._sending = 0  # alerts of the POST in flight
        headers = {} if config.bearer_token is None else {"Authorization": f"Bearer {config.bearer_token.get()}"}
        self.http: JsonHttp = JsonHttp(f"{self.kind} {self.target}", config.timeout_s, headers)

    @property
    def silences(self) -> dict[str, str]:
        """The acknowledgement silences this process created: alert_id -> Alertmanager's silence id."""
        return self.acks.ids

    @property
    def pending(self) -> int:
        """Alerts and silence changes not yet accepted by Alertmanager, plus queued events."""
        return len(self.queue) + len(self.outbox) + self._sending + self.acks.pending + len(self.acks.to_find)

    def _apply(self, event: AlertEvent) -> None:
        """Bring the alerts Alertmanager should hold, and the silences, up to date with one event."""
        alert = postable_alert(event, self.external_url)
        prev = self.active.get(event.alert_id)
        if prev is not None and prev.fingerprint != alert.fingerprint:
            # Severity changed: end the old label set, or Alertmanager shows both until it expires.
            self.outbox[prev.fingerprint] = replace(prev, ends=event.ts)
        self.outbox[alert.fingerprint] = alert
        if event.state == "resolved":
            self.active.pop(event.alert_id, None)
        else:
            self.active[event.alert_id] = alert
        self.acks.apply(event, alert.labels, self.clock())

    def _restore(self) -> None:
        """Alerts restored from the evaluator's state file: assert them again at once."""
        for event in self.active_alerts() if self.active_alerts is not None else ():
            if event.state != "resolved":
                self._apply(replace(event, state="firing"))
                if event.acknowledged_at is not None:
                    self.acks.restored(event.alert_id)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        resend_s = self.config.resend_interval_s
        self._restore()
        await self._sync()
        next_resend = loop.time() + resend_s
        retry_at: float | None = None
        while True:
            for event in self.queue.take_all():
                self._apply(event)
            now = loop.time()
            has_work = self.outbox or self.acks.has_work
            deadline = retry_at if retry_at is not None else now if has_work else next_resend
            if deadline > now:
                await self._wait(deadline - now)
                continue
            if now >= next_resend:
                for alert in self.active.values():
                    self.outbox.setdefault(alert.fingerprint, alert)
                next_resend = now + resend_s
                await self._sync()
            if retry_at is not None:
                self.stats.retried.inc()
                retry_at = None
            try:
                await self._flush()
            except NotifyError as exc:
                self.stats.failed.inc()
                self.failures.failure(str(exc))
                retry_at = loop.time() + self.backoff.next_delay()
            else:
                self.backoff.reset()
                self.failures.success()

    async def _flush(self) -> None:
        """Send pending alerts, then silence changes; NotifyError leaves the rest pending."""
        await self._post_alerts()
        for alert_id, silence in list(self.acks.to_create.items()):
            self.acks.created(alert_id, await self._create_silence(alert_id, silence))
        for alert_id in list(self.acks.to_find):
            self.acks.found(alert_id, await self._find_silences(alert_id))
        for silence_id in list(self.acks.to_expire):
            await self._expire_silence(silence_id)
            self.acks.expired(silence_id)

    async def _post_alerts(self) -> None:
        if not self.outbox:
            return
        batch, self.outbox = self.outbox, {}
        firing_ends = self.clock() + 4 * self.config.resend_interval_s
        body = json.dumps([a.to_json(firing_ends) for a in batch.values()], ensure_ascii=False)
        self._sending = len(batch)
        try:
            await self.http.post_json(f"{self.config.url}/api/v2/alerts", body.encode("utf-8"))
        except RejectedError as exc:
            self.stats.failed.inc()
            self.stats.dropped("rejected")
            log.error("alertmanager %s: rejected %d alerts, dropped: %s", self.target, len(batch), exc)
        except NotifyError:
            # Changes that came in meanwhile are newer than the batch: they win.
            self.outbox = {**batch, **self.outbox}
            raise
        else:
            self.stats.sent.inc()
        finally:
            self._sending = 0

    async def _create_silence(self, alert_id: str, silence: JsonObject) -> str | None:
        """POST the silence; its id, or None if Alertmanager refused it for good (logged)."""
        body = json.dumps(silence, ensure_ascii=False).encode("utf-8")
        try:
            reply = await self.http.post_json(f"{self.config.url}/api/v2/silences", body)
        except RejectedError as exc:
            log.error("alertmanager %s: silence for %s rejected: %s", self.target, alert_id, exc)
            return None
        try:
            return str(json.loads(reply)["silenceID"])
        except (ValueError, KeyError, TypeError):
            return None

    async def _find_silences(self, alert_id: str) -> list[str]:
        """The ids of the unexpired silences whose comment carries the alert's marker."""
        status, reply = await self.http.request("GET", f"{self.config.url}/api/v2/silences")
        if status >= 300:
            raise NotifyError(f"listing silences: HTTP {status}")
        try:
            silences = json.loads(reply)
        except ValueError as exc:
            raise NotifyError(f"listing silences: {exc}") from exc
        marker = silence_marker(alert_id)
        return [
            str(s["id"])
            for s in silences
            if isinstance(s, dict)
            and s.get("status", {}).get("state") != "expired"
            and marker in str(s.get("comment", ""))
        ]

    async def _expire_silence(self, silence_id: str) -> None:
        status, _ = await self.http.request("DELETE", f"{self.config.url}/api/v2/silence/{silence_id}")
        # 404: already gone (expired, or Alertmanager lost its data): nothing left to do.
        if status >= 300 and status != 404:
            raise NotifyError(f"expiring silence {silence_id}: HTTP {status}")

    async def _sync(self) -> None:
        """Read back the silences and alerts the replicas share; hand them to `on_sync`. Failures are logged."""
        if self.on_sync is None:
            self.synced.set()
            return
        try:
            silences = await self._get_json("/api/v2/silences")
            alerts = await self._get_json("/api/v2/alerts?active=true&silenced=true&inhibited=true")
        except NotifyError as exc:
            self._sync_log.failure(str(exc))
            return
        finally:
            self.synced.set()
        self._sync_log.success()
        labels = {alert_id: alert.labels for alert_id, alert in self.active.items()}
        acknowledged, ended = match_acknowledgements(parse_ack_silences(silences), labels)
        for alert_id, silence in acknowledged.items():
            self.acks.adopted(alert_id, silence.silence_id)
        self.on_sync(AlertmanagerState(acknowledged, ended, parse_firing_starts(alerts, self.clock())))

    async def _get_json(self, path: str) -> object:
        status, reply = await self.http.request("GET", f"{self.config.url}{path}")
        if status >= 300:
            raise NotifyError(f"GET {path}: HTTP {status}")
        try:
            return json.loads(reply)
        except ValueError as exc:
            raise NotifyError(f"GET {path}: {exc}") from exc
