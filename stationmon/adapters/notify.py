"""What every alert notifier shares: a bounded queue, a delivery task, retries with capped backoff.

A notifier (Alertmanager, webhook, MQTT) is an async context manager: entering starts its delivery
task, leaving drains what is queued for a moment and then stops it. `notify(event)` is synchronous and
never blocks: it appends to the notifier's own bounded queue (dropping the oldest event when full), so
a slow or dead receiver delays neither the evaluator nor the other receivers.

The pure half of this module turns an `AlertEvent` into what Alertmanager and its webhook receivers
expect: labels, annotations, RFC 3339 times, Alertmanager's own label fingerprint, and the webhook
message of version "4". Station-level alerts (no loop) carry `loop="-"` everywhere (labels and MQTT
topics), so the `loop` label is always present and a topic always has three levels below the prefix.

Metrics, per notifier (label `notifier`): `stationmon_notify_sent_total` (messages delivered),
`stationmon_notify_failed_total` (attempts that failed), `stationmon_notify_retried_total` (attempts
that were retries), `stationmon_notify_dropped_total{reason}` (events given up: `queue_full`,
`rejected`, `max_attempts`) and the gauge `stationmon_notify_queue_length`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp

from stationmon.config import Config
from stationmon.domain.model import AlertEvent
from stationmon.errors import NotifyError
from stationmon.logutil import FailureLog
from stationmon.metrics import Metrics

__all__ = [
    "STATION_LEVEL_LOOP",
    "ZERO_TIME",
    "Backoff",
    "QueuedNotifier",
    "RejectedError",
    "alert_annotations",
    "alert_labels",
    "generator_url",
    "group_key",
    "label_fingerprint",
    "post_json",
    "redact_url",
    "rfc3339",
    "webhook_alert",
    "webhook_message",
]

log = logging.getLogger("stationmon.notify")

STATION_LEVEL_LOOP = "-"
# Alertmanager's webhook sends Go's zero time for "not ended yet".
ZERO_TIME = "0001-01-01T00:00:00Z"


class RejectedError(NotifyError):
    """The receiver refused the message for good (HTTP 4xx): retrying cannot help."""


# ----------------------------------------------------------------------------------------------------
# Pure formatting


def rfc3339(ts: float) -> str:
    """Unix seconds as RFC 3339 UTC with milliseconds, the way Alertmanager accepts and echoes it."""
    when = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def alert_labels(event: AlertEvent) -> dict[str, str]:
    """Alertmanager labels of CONTRACT section 5 plus the event's extra labels; empty values dropped.

    Empty values are dropped because Alertmanager treats an empty label as an absent one; dropping them
    keeps our fingerprints equal to its own.
    """
    labels = {
        **event.labels,
        "alertname": event.rule,
        "station": event.station,
        "district": event.district,
        "loop": event.loop or STATION_LEVEL_LOOP,
        "severity": event.severity,
    }
    return {k: v for k, v in sorted(labels.items()) if v}


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def alert_annotations(event: AlertEvent) -> dict[str, str]:
    """Annotations: summary, description, value, threshold, and who acknowledged the alert, if anyone.

    The four of CONTRACT section 5 are always there: `value` and `threshold` are "" when the alert has
    no number (a sensor fault), so receivers can read them without checking. The acknowledgement ones
    appear only once acknowledged, and only those with content.
    """
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


def _label_set_string(labels: Mapping[str, str]) -> str:
    # model.LabelSet.String(): sorted, `name="value"` joined by ", ", in braces
    return "{" + ", ".join(f"{k}={json.dumps(labels[k], ensure_ascii=False)}" for k in sorted(labels)) + "}"


def group_key(group_labels: Mapping[str, str]) -> str:
    """A groupKey shaped like Alertmanager's (root route `{}`, then the group's labels)."""
    return "{}:" + _label_set_string(group_labels)


# The labels a webhook message is grouped by: one alert of one rule at one loop.
WEBHOOK_GROUP_BY = ("alertname", "station", "loop")


def webhook_alert(event: AlertEvent, external_url: str) -> dict[str, Any]:
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


def webhook_message(event: AlertEvent, external_url: str, receiver: str = "stationmon") -> dict[str, Any]:
    """The body Alertmanager's own webhook sends (version "4"), for one alert transition."""
    alert = webhook_alert(event, external_url)
    labels: dict[str, str] = alert["labels"]
    group_labels = {k: labels[k] for k in WEBHOOK_GROUP_BY if k in labels}
    return {
        "receiver": receiver,
        "status": alert["status"],
        "alerts": [alert],
        "groupLabels": group_labels,
        "commonLabels": dict(labels),
        "commonAnnotations": dict(alert["annotations"]),
        "externalURL": external_url,
        "version": "4",
        "groupKey": group_key(group_labels),
        "truncatedAlerts": 0,
    }


def redact_url(url: str) -> str:
    """The URL without credentials, query or fragment, for logs (webhook URLs often carry a key)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# ----------------------------------------------------------------------------------------------------
# Retry timing


class Backoff:
    """Capped exponential backoff with jitter: initial, 2x, 4x ... up to `max_s`, each scaled by 0.5-1.

    Jitter keeps many stationmon instances that lost the same receiver from retrying in lockstep.
    """

    def __init__(self, initial_s: float = 0.5, max_s: float = 60.0, rng: random.Random | None = None) -> None:
        self.initial_s = initial_s
        self.max_s = max(max_s, initial_s)
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The wait before the next retry; each call doubles the base until the cap."""
        base = min(self.max_s, self.initial_s * (2.0 ** min(self.attempt, 60)))
        self.attempt += 1
        return base * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self.attempt = 0


# ----------------------------------------------------------------------------------------------------
# HTTP


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """POST a JSON body; return the response body. NotifyError if it may work later, RejectedError if not."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    try:
        async with session.post(
            url, data=body, headers=all_headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as resp:
            text = await resp.read()
            if resp.status < 300:
                return text
            detail = f"HTTP {resp.status}: {text[:200].decode('utf-8', 'replace').strip()}"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise NotifyError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
    # 408 and 429 say "later"; other 4xx say the message itself is wrong.
    if 400 <= resp.status < 500 and resp.status not in (408, 429):
        raise RejectedError(detail)
    raise NotifyError(detail)


# ----------------------------------------------------------------------------------------------------
# The queue and the delivery task


class QueuedNotifier:
    """Base of the notifiers: a bounded queue of events, one delivery task, retries with backoff.

    Subclasses implement `deliver(event)` (raise NotifyError to retry, RejectedError to give up) and
    may override `accepts`, `_open` and `_close`, or `_run` for a different delivery model.
    """

    kind = "notifier"

    def __init__(
        self,
        name: str,
        target: str,
        metrics: Metrics,
        *,
        queue_size: int = 10000,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 60.0,
        max_attempts: int = 0,
        drain_timeout_s: float = 2.0,
    ) -> None:
        self.name = name
        self.target = target
        self.queue_size = queue_size
        self.max_attempts = max_attempts
        self.drain_timeout_s = drain_timeout_s
        self.backoff = Backoff(retry_initial_s, retry_max_s)
        self._events: deque[AlertEvent] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0
        self.failures = FailureLog(log, f"{self.kind} {target}")
        self._sent = metrics.counter(
            "stationmon_notify_sent_total", "Alert messages delivered, per notifier", ("notifier",)
        ).labels(name)
        self._failed = metrics.counter(
            "stationmon_notify_failed_total",
            "Alert delivery attempts that failed, per notifier",
            ("notifier",),
        ).labels(name)
        self._retried = metrics.counter(
            "stationmon_notify_retried_total", "Alert delivery attempts that were retries", ("notifier",)
        ).labels(name)
        self._dropped_total = metrics.counter(
            "stationmon_notify_dropped_total",
            "Alert events given up: queue_full, rejected, max_attempts",
            ("notifier", "reason"),
        )
        self._queue_length = metrics.gauge(
            "stationmon_notify_queue_length", "Alert events waiting for delivery", ("notifier",)
        ).labels(name)

    # -- the producer side ---------------------------------------------------------------------------

    def accepts(self, event: AlertEvent) -> bool:
        """Whether this notifier delivers this kind of event at all."""
        return True

    def notify(self, event: AlertEvent) -> None:
        """Queue one alert transition for delivery. Never blocks; drops the oldest event when full."""
        if not self.accepts(event):
            return
        if len(self._events) >= self.queue_size:
            self._events.popleft()
            self._dropped("queue_full")
            log.warning("%s %s: queue full (%d), dropped the oldest event", self.kind, self.target, self.queue_size)
        self._events.append(event)
        self._queue_length.set(len(self._events))
        self._idle.clear()
        self._wakeup.set()

    @property
    def pending(self) -> int:
        """Events queued and not yet delivered."""
        return len(self._events) + self._in_flight

    def _dropped(self, reason: str) -> None:
        self._dropped_total.labels(self.name, reason).inc()

    # -- lifecycle -----------------------------------------------------------------------------------

    async def __aenter__(self) -> QueuedNotifier:
        await self._open()
        self._task = asyncio.create_task(self._run(), name=f"notify-{self.name}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            # Give what is queued (a resolution at shutdown) a moment to go out, then stop.
            if not task.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), self.drain_timeout_s)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close()

    async def _open(self) -> None:
        """Open what delivery needs (an HTTP session)."""

    async def _close(self) -> None:
        """Close what `_open` opened."""

    # -- the delivery task ---------------------------------------------------------------------------

    async def _next_event(self) -> AlertEvent:
        while not self._events:
            self._idle.set()
            self._wakeup.clear()
            await self._wakeup.wait()
        event = self._events.popleft()
        self._queue_length.set(len(self._events))
        return event

    async def _run(self) -> None:
        while True:
            event = await self._next_event()
            self._in_flight = 1
            try:
                await self._deliver_with_retry(event)
            finally:
                self._in_flight = 0

    async def _deliver_with_retry(self, event: AlertEvent) -> None:
        """Deliver one event, retrying with backoff; in order, so one event's retries hold the rest."""
        attempts = 0
        self.backoff.reset()
        while True:
            if attempts:
                self._retried.inc()
            attempts += 1
            try:
                await self.deliver(event)
            except RejectedError as exc:
                self._failed.inc()
                self._dropped("rejected")
                log.error(
                    "%s %s: rejected %s of %s, dropped: %s",
                    self.kind,
                    self.target,
                    event.state,
                    event.alert_id,
                    exc,
                )
                return
            except NotifyError as exc:
                self._failed.inc()
                self.failures.failure(str(exc))
                if self.max_attempts and attempts >= self.max_attempts:
                    self._dropped("max_attempts")
                    log.error(
                        "%s %s: gave up on %s of %s after %d attempts",
                        self.kind,
                        self.target,
                        event.state,
                        event.alert_id,
                        attempts,
                    )
                    return
                await asyncio.sleep(self.backoff.next_delay())
                continue
            self._sent.inc()
            self.failures.success()
            return

    async def deliver(self, event: AlertEvent) -> None:
        """Send one event; NotifyError to retry, RejectedError to give up."""
        raise NotImplementedError


class HttpNotifier(QueuedNotifier):
    """A QueuedNotifier that owns an aiohttp session for its lifetime."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session: aiohttp.ClientSession | None = None

    async def _open(self) -> None:
        self.session = aiohttp.ClientSession(headers={"User-Agent": "stationmon"})

    async def _close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            raise NotifyError(f"{self.kind} {self.target}: used outside `async with`")
        return self.session


__all__ += ["HttpNotifier"]


def external_url_of(config: Config) -> str:
    """The URL our alerts link to: `[http] external_url`, else http://<listen>."""
    return (config.http.external_url or f"http://{config.http.listen}").rstrip("/")


def build_notifiers(
    config: Config,
    metrics: Metrics,
    active_alerts: Callable[[], Iterable[AlertEvent]] | None = None,
) -> list[QueuedNotifier]:
    """One notifier per `[[alerting.alertmanager]]` and `[[alerting.webhook]]`, plus MQTT if enabled.

    `active_alerts` lists the evaluator's active alerts (restored from its state file) so Alertmanager
    gets them again after a restart of stationmon.
    """
    # Imported here: these modules build on this one.
    from stationmon.adapters.alertmanager import AlertmanagerNotifier
    from stationmon.adapters.mqtt_alerts import MqttAlertNotifier
    from stationmon.adapters.webhook import WebhookNotifier

    alerting = config.alerting
    external_url = external_url_of(config)
    common: dict[str, Any] = {"queue_size": alerting.queue_size, "retry_max_s": alerting.retry_max_s}
    notifiers: list[QueuedNotifier] = []
    many = len(alerting.alertmanager) > 1
    for i, am in enumerate(alerting.alertmanager):
        notifiers.append(
            AlertmanagerNotifier(
                am,
                metrics,
                external_url=external_url,
                name=f"alertmanager-{i}" if many else "alertmanager",
                active_alerts=active_alerts,
                **common,
            )
        )
    many = len(alerting.webhook) > 1
    for i, hook in enumerate(alerting.webhook):
        notifiers.append(
            WebhookNotifier(
                hook, metrics, external_url=external_url, name=f"webhook-{i}" if many else "webhook", **common
            )
        )
    if alerting.mqtt.enabled:
        if config.mqtt is None:
            # config.py does not tie [alerting.mqtt] to [mqtt]; say so once instead of failing later.
            log.error("alerting.mqtt: enabled, but there is no [mqtt] table with the broker's url; not publishing")
        else:
            notifiers.append(MqttAlertNotifier(alerting.mqtt, config.mqtt, metrics, **common))
    return notifiers


__all__ += ["build_notifiers", "external_url_of"]
