"""What every alert notifier shares: a bounded queue, a delivery task, retries with capped backoff.

A notifier (Alertmanager, webhook, MQTT) is an async context manager: entering starts its delivery
task, leaving drains what is queued for a moment and then stops it. `notify(event)` is synchronous and
never blocks: it appends to the notifier's own bounded queue (dropping the oldest event when full), so
a slow or dead receiver delays neither the evaluator nor the other receivers. What goes on the wire
is `stationmon.domain.alert_wire`'s; which notifiers a config asks for is `stationmon.wiring`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Iterator, Mapping
from typing import TypedDict

import aiohttp

from stationmon.backoff import Backoff
from stationmon.domain.model import AlertEvent
from stationmon.errors import NotifyError
from stationmon.logutil import FailureLog
from stationmon.metrics import Metrics

__all__ = ["AlertQueue", "DeliveryStats", "JsonHttp", "Notifier", "NotifierOptions", "QueuedNotifier", "RejectedError"]

log = logging.getLogger("stationmon.notify")


class RejectedError(NotifyError):
    """The receiver refused the message for good (HTTP 4xx): retrying cannot help."""


class DeliveryStats:
    """The `stationmon_notify_*` metrics of one notifier."""

    def __init__(self, metrics: Metrics, name: str) -> None:
        self.name = name
        self.sent = metrics.counter(
            "stationmon_notify_sent_total", "Alert messages delivered, per notifier", ("notifier",)
        ).labels(name)
        self.failed = metrics.counter(
            "stationmon_notify_failed_total", "Alert delivery attempts that failed, per notifier", ("notifier",)
        ).labels(name)
        self.retried = metrics.counter(
            "stationmon_notify_retried_total", "Alert delivery attempts that were retries", ("notifier",)
        ).labels(name)
        self.queue_length = metrics.gauge(
            "stationmon_notify_queue_length", "Alert events waiting for delivery", ("notifier",)
        ).labels(name)
        self._dropped = metrics.counter(
            "stationmon_notify_dropped_total",
            "Alert events given up: queue_full, rejected, max_attempts",
            ("notifier", "reason"),
        )

    def dropped(self, reason: str) -> None:
        """Count one event given up for `reason`."""
        self._dropped.labels(self.name, reason).inc()


class AlertQueue:
    """A notifier's bounded FIFO of events: `put` never blocks, the oldest event goes when it is full."""

    def __init__(self, size: int, stats: DeliveryStats, where: str) -> None:
        self.size = size
        self.stats = stats
        self.where = where
        self._events: deque[AlertEvent] = deque()
        self._arrived = asyncio.Event()

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[AlertEvent]:
        return iter(self._events)

    def put(self, event: AlertEvent) -> None:
        """Append one event, dropping (and counting) the oldest when the queue is full."""
        if len(self._events) >= self.size:
            self._events.popleft()
            self.stats.dropped("queue_full")
            log.warning("%s: queue full (%d), dropped the oldest event", self.where, self.size)
        self._events.append(event)
        self.stats.queue_length.set(len(self._events))
        self._arrived.set()

    def take(self) -> AlertEvent | None:
        """The oldest event, or None when empty."""
        event = self._events.popleft() if self._events else None
        self.stats.queue_length.set(len(self._events))
        return event

    def take_all(self) -> list[AlertEvent]:
        """Every queued event, oldest first."""
        events = list(self._events)
        self._events.clear()
        self.stats.queue_length.set(0)
        return events

    async def wait(self, timeout_s: float | None = None) -> None:
        """Return once an event is queued, or after `timeout_s`."""
        if self._events:
            return
        self._arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), timeout_s)


class NotifierOptions(TypedDict, total=False):
    """The delivery settings every notifier passes on to `Notifier`."""

    queue_size: int
    retry_initial_s: float
    retry_max_s: float
    drain_timeout_s: float


class Notifier:
    """Base of the notifiers: the queue, the metrics, the backoff and the delivery task's lifecycle.

    Subclasses implement `_run` (the delivery task) and may override `pending`, `accepts`, `_close`.
    """

    kind = "notifier"
    http: JsonHttp | None = None  # opened and closed with the notifier

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
        self.max_attempts = max_attempts  # per event, 0: forever (QueuedNotifier)
        self.target = target
        self.drain_timeout_s = drain_timeout_s
        self.stats = DeliveryStats(metrics, name)
        self.queue = AlertQueue(queue_size, self.stats, f"{self.kind} {target}")
        self.backoff = Backoff(retry_initial_s, retry_max_s)
        self.failures = FailureLog(log, f"{self.kind} {target}")
        self._drained = asyncio.Event()
        self._drained.set()
        self._task: asyncio.Task[None] | None = None

    def accepts(self, event: AlertEvent) -> bool:
        """Whether this notifier delivers this kind of event at all."""
        return True

    def notify(self, event: AlertEvent) -> None:
        """Queue one alert transition for delivery. Never blocks; drops the oldest event when full."""
        if self.accepts(event):
            self.queue.put(event)
            self._drained.clear()

    @property
    def pending(self) -> int:
        """Events (or changes) not yet delivered."""
        return len(self.queue)

    async def __aenter__(self) -> Notifier:
        await self._open()
        self._task = asyncio.create_task(self._run(), name=f"notify-{self.name}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            # Give what is queued (a resolution at shutdown) a moment to go out, then stop.
            if not task.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drained.wait(), self.drain_timeout_s)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close()

    async def _open(self) -> None:
        if self.http is not None:
            await self.http.open()

    async def _close(self) -> None:
        if self.http is not None:
            await self.http.close()

    async def _wait(self, timeout_s: float | None = None) -> None:
        """Wait for new events (or `timeout_s`); with nothing pending the notifier counts as drained."""
        if self.pending == 0:
            self._drained.set()
        await self.queue.wait(timeout_s)

    async def _run(self) -> None:
        """The delivery task."""
        raise NotImplementedError


class QueuedNotifier(Notifier):
    """A notifier that delivers one event at a time, in order, retrying each with backoff.

    Subclasses implement `deliver(event)`: raise NotifyError to retry, RejectedError to give up.
    """

    _in_flight = 0

    @property
    def pending(self) -> int:
        """Events queued and not yet delivered."""
        return len(self.queue) + self._in_flight

    async def _run(self) -> None:
        while True:
            event = self.queue.take()
            if event is None:
                await self._wait()
                continue
            self._in_flight = 1
            try:
                await self._deliver_with_retry(event)
            finally:
                self._in_flight = 0

    async def _deliver_with_retry(self, event: AlertEvent) -> None:
        """Deliver one event, retrying with backoff; in order, so one event's retries hold the rest."""
        what = f"{self.kind} {self.target}"
        self.backoff.reset()
        for attempt in itertools.count(1):
            if attempt > 1:
                self.stats.retried.inc()
            try:
                await self.deliver(event)
            except RejectedError as exc:
                self.stats.failed.inc()
                self.stats.dropped("rejected")
                log.error("%s: rejected %s of %s, dropped: %s", what, event.state, event.alert_id, exc)
                return
            except NotifyError as exc:
                self.stats.failed.inc()
                self.failures.failure(str(exc))
                if self.max_attempts and attempt >= self.max_attempts:
                    self.stats.dropped("max_attempts")
                    log.error("%s: gave up on %s of %s after %d attempts", what, event.state, event.alert_id, attempt)
                    return
                await asyncio.sleep(self.backoff.next_delay())
                continue
            self.stats.sent.inc()
            self.failures.success()
            return

    async def deliver(self, event: AlertEvent) -> None:
        """Send one event; NotifyError to retry, RejectedError to give up."""
        raise NotImplementedError


class JsonHttp:
    """A notifier's HTTP side: one aiohttp session while open; aiohttp's errors become NotifyError."""

    def __init__(self, where: str, timeout_s: float, headers: Mapping[str, str] | None = None) -> None:
        self.where = where
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Open the session (entering the notifier)."""
        self._session = aiohttp.ClientSession(headers={"User-Agent": "stationmon", **self.headers})

    async def close(self) -> None:
        """Close the session (leaving the notifier)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def request(
        self, method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        """The response's status and body; NotifyError if the request itself failed."""
        if self._session is None:
            raise NotifyError(f"{self.where}: used outside `async with`")
        try:
            async with self._session.request(method, url, data=body, headers=headers, timeout=self.timeout) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise NotifyError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc

    async def post_json(self, url: str, body: bytes, headers: Mapping[str, str] | None = None) -> bytes:
        """POST a JSON body; the reply's body. NotifyError if it may work later, RejectedError if not."""
        status, text = await self.request("POST", url, body, {"Content-Type": "application/json", **(headers or {})})
        if status < 300:
            return text
        detail = f"HTTP {status}: {text[:200].decode('utf-8', 'replace').strip()}"
        # 408 and 429 say "later"; other 4xx say the message itself is wrong.
        if 400 <= status < 500 and status not in (408, 429):
            raise RejectedError(detail)
        raise NotifyError(detail)
