"""The MQTT collector: subscribe, route each message by topic, parse it, hand readings to the sink.

Every aiomqtt (and paho) client of stationmon is built here (`new_client`, also used by the alert
publisher); their errors become `stationmon.errors.MqttError` or a logged reconnect, never a crash of
the service.

Delivery: QoS 1 on a persistent session (stable client id, clean start off, MQTT v5 session expiry),
so what the broker queued while stationmon restarted arrives when it returns. At least once: a QoS 1
message is acknowledged (PUBACK, paho's manual acknowledgement) only once its readings are stored
(`when_stored`: written to InfluxDB or synced to the spool), in the order messages arrived; until
then the broker holds it, and a crash or kill -9 makes it send the message again on reconnect. If the
storage reports readings lost, the connection is dropped and made again, so the broker resends every
message not yet acknowledged. MQTT v5 connections announce a Receive Maximum of 65535, so the broker
keeps that many messages in flight while they wait to be stored (MQTT 3.1.1 has no such property: the
broker's own limit applies, mosquitto's `max_inflight_messages` defaults to 20). Every connection
subscribes again (the broker may have lost the session), with "retained only for new subscriptions"
so a reconnect does not replay retained values as if they were new. A watchdog reconnects a connection
that is up but silent for longer than `[mqtt].watchdog`, the failure mode where other consumers stop
without a word after a broker restart.

Bad input (not a number, malformed JSON, oversized, unknown station, NaN, ...) is counted in
`stationmon_mqtt_rejected_total{reason}`, logged at most once a minute per topic and a few times a
minute per reason, and dropped. New series past `max_sensors_per_loop` / `max_quantities_per_loop` are
rejected as `too_many_series` (logged once a minute). Readings without a time of their own carry the
receive time and stay distinct in storage (domain/lineproto.py).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from stationmon.adapters.influx import StoredCallback
from stationmon.backoff import Backoff
from stationmon.config import MqttConfig
from stationmon.domain.model import Reading, ReadingSink
from stationmon.domain.payloads import REJECT_REASONS, parse_payload
from stationmon.domain.plant import Station
from stationmon.domain.topics import SeriesLimits, TopicRouter
from stationmon.errors import MqttError
from stationmon.logutil import FailureLog, RateLimitedLog, printable
from stationmon.metrics import Metrics
from stationmon.redact import redact_url

__all__ = ["MqttCollector", "StorageWatch", "build_tls_context", "new_client"]

log = logging.getLogger("stationmon.mqtt")

_BATCH_MAX = 1000  # readings handed to the sink at once under load
_BACKOFF_INITIAL_S = 0.5
# The broker sends a persistent session's backlog before the SUBACK, and paho reads one packet per
# event-loop round: a big backlog takes a while. The consumer runs meanwhile; a dead connection is
# noticed by keepalive or the watchdog, not by this timeout.
_SUBACK_TIMEOUT_S = 300.0
_MAX_SESSION_EXPIRY_S = 0xFFFFFFFF  # MQTT v5: four bytes; this value means "never expires"
# MQTT v5 Receive Maximum (its largest value): the broker's window of unacknowledged QoS 1/2 messages
# to us. Acknowledging only after storage holds a flush interval's messages in flight; without it
# mosquitto allows 20, which would make ingestion 20 messages per flush.
_RECEIVE_MAXIMUM = 65535

StorageWatch = Callable[[StoredCallback], None]
"""Registers a callback for when everything handed to the sink so far is stored (`InfluxWriter.when_stored`)."""


class _WatchdogExpired(Exception):
    """The connection was up but silent for longer than the watchdog allows."""


class _ReadingsLost(Exception):
    """The storage lost readings of messages not yet acknowledged: reconnect so the broker resends them."""


def _paho(client: aiomqtt.Client) -> Any:
    """aiomqtt's paho client: aiomqtt does not expose manual acknowledgement yet (empicano/aiomqtt#345)."""
    paho_client = getattr(client, "_client", None)
    if paho_client is None or not hasattr(paho_client, "manual_ack_set"):
        raise MqttError("this aiomqtt/paho has no manual acknowledgement (paho-mqtt >= 2.0 is needed)")
    return paho_client


class _Acknowledger:
    """One connection's QoS 1/2 messages awaiting storage; acknowledged in arrival order once stored."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self._ack: Callable[[int, int], object] = _paho(client).ack
        self._pending: deque[list[Any]] = deque()  # [stored: bool | None, [(mid, qos), ...]]
        self._open = True
        self.lost = asyncio.Event()

    def track(self, mids: list[tuple[int, int]]) -> StoredCallback:
        """Hold these messages' acknowledgements; the returned callback releases them (first call counts)."""
        entry: list[Any] = [None, mids]
        self._pending.append(entry)

        def settled(stored: bool) -> None:
            if entry[0] is None:
                entry[0] = stored
                self._release()

        return settled

    def _release(self) -> None:
        pending = self._pending
        while pending and pending[0][0] is not None:
            stored, mids = pending.popleft()
            if not self._open:
                continue
            if not stored:
                self._open = False  # nothing more on this connection: the broker resends after a reconnect
                self.lost.set()
                continue
            ack = self._ack
            for mid, qos in mids:
                ack(mid, qos)

    def close(self) -> None:
        """The connection is gone: its message ids mean nothing on the next one."""
        self._open = False
        self._pending.clear()


def build_tls_context(config: MqttConfig) -> ssl.SSLContext:
    """The client TLS context: the system CAs or `ca_file`, plus the client certificate if given."""
    try:
        ctx = ssl.create_default_context(cafile=config.ca_file or None)
        if config.cert_file:
            ctx.load_cert_chain(config.cert_file, config.key_file or None)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise MqttError(f"MQTT TLS files (ca_file, cert_file, key_file): {exc}") from exc
    return ctx


def new_client(
    config: MqttConfig,
    *,
    identifier: str,
    persistent: bool,
    timeout_s: float = 10.0,
    queue_type: type[asyncio.Queue[aiomqtt.Message]] | None = None,
    manual_ack: bool = False,
) -> aiomqtt.Client:
    """A client for `[mqtt]`'s broker: its credentials, TLS, protocol and keepalive.

    `persistent` keeps the session across reconnects (clean start as configured, the v5 session
    expiry, a Receive Maximum of 65535), which a subscriber needs; a publisher asks for a clean session.
    `manual_ack`: QoS 1/2 messages are acknowledged by the caller (`_Acknowledger`), not on arrival.
    MqttError on bad TLS files.
    """
    v5 = config.protocol == "5"
    properties: Properties | None = None
    if v5 and persistent:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho has no hints here
        properties.SessionExpiryInterval = min(int(config.session_expiry_s), _MAX_SESSION_EXPIRY_S)
        properties.ReceiveMaximum = _RECEIVE_MAXIMUM
    clean = config.clean_start if persistent else True
    client = aiomqtt.Client(
        config.host,
        config.port,
        username=config.username or None,
        password=config.password.get() if config.password is not None else None,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        # 3.1.1 has no session expiry: clean_session=False keeps the session until the broker drops it
        clean_start=clean if v5 else MQTT_CLEAN_START_FIRST_ONLY,
        clean_session=None if v5 else clean,
        keepalive=max(1, int(config.keepalive_s)),
        properties=properties,
        tls_context=build_tls_context(config) if config.tls else None,
        timeout=timeout_s,
        # paho logs socket errors we report ourselves; "aiomqtt" is the logger the CLI quietens
        logger=logging.getLogger("aiomqtt"),
        queue_type=queue_type,
    )
    if manual_ack:
        _paho(client).manual_ack_set(True)
    return client


class MqttCollector:
    """Subscribes to `[mqtt]`'s topics and passes readings to `sink`; `await run()` until cancelled.

    With `when_stored` (the storage's `InfluxWriter.when_stored`), QoS 1/2 messages are acknowledged once
    the readings handed to `sink` are stored; without it, once `sink` returns.
    """

    name = "mqtt"

    def __init__(
        self,
        config: MqttConfig,
        stations: Sequence[Station],
        sink: ReadingSink,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        when_stored: StorageWatch | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self.when_stored = when_stored
        self.clock = clock
        self.router = TopicRouter(stations, config.subscriptions, point_qos=config.qos, share_group=config.share_group)
        self.filters = self.router.filters()
        self.limits = SeriesLimits(config.max_sensors_per_loop, config.max_quantities_per_loop, stations)
        self._max_bytes = config.max_payload_bytes
        self._subscribed = False
        self.connected = False
        self.last_error: str | None = None
        self.last_message_at: float | None = None  # clock() time of the newest message
        self._where = f"MQTT broker {redact_url(config.url)}"
        self._failures = FailureLog(log, self._where)
        self._bad_input = RateLimitedLog(log, 60.0)
        self._last_activity = 0.0  # loop time of the last message or (re)connection
        self._messages = metrics.counter(
            "stationmon_mqtt_messages_total", "MQTT messages received (good and bad)"
        ).labels()
        self._rejected_metric = metrics.counter(
            "stationmon_mqtt_rejected_total",
            "MQTT messages (or json_fields entries) not stored, by reason",
            ("reason",),
        )
        self._rejected = {reason: self._rejected_metric.labels(reason) for reason in REJECT_REASONS}
        self._connected_gauge = metrics.gauge(
            "stationmon_mqtt_connected", "1 while connected to the MQTT broker and subscribed"
        ).labels()
        self._reconnects = metrics.counter(
            "stationmon_mqtt_reconnects_total", "MQTT connections lost or refused, and watchdog reconnects"
        ).labels()

    def status(self) -> dict[str, object]:
        """For /healthz: connected or not, the broker, the last error, the age of the newest message."""
        age = None if self.last_message_at is None else round(self.clock() - self.last_message_at, 3)
        return {
            "state": "ok" if self.connected else ("failing" if self._failures.failing else "connecting"),
            "broker": redact_url(self.config.url),
            "client_id": self.config.client_id,
            "subscriptions": [f for f, _ in self.filters],
            "last_error": self.last_error,
            "last_message_age_s": age,
        }

    async def run(self) -> None:
        """Connect, subscribe and consume; reconnect with capped, jittered backoff. Runs until cancelled."""
        backoff = Backoff(_BACKOFF_INITIAL_S, self.config.reconnect_max_s)
        try:
            while True:
                if await self._session():
                    backoff.reset()  # a fresh outage starts from a short wait
                self._reconnects.inc()
                await asyncio.sleep(backoff.next_delay())
        finally:
            self._set_connected(False)

    async def _session(self) -> bool:
        """One connection: connect, subscribe, consume until it fails. True if it got subscribed."""
        self._subscribed = False
        inbox: asyncio.Queue[aiomqtt.Message] | None = None
        acks: _Acknowledger | None = None
        try:
            client, inbox = self._client()
            acks = _Acknowledger(client)
            async with client:
                await self._consume_watched(client, inbox, acks)
        except* (aiomqtt.MqttError, MqttError) as group:
            self._failed(_describe(group))
        except* _WatchdogExpired:
            self._failed(f"no message for {self.config.watchdog_s:g}s (watchdog): reconnecting")
        except* _ReadingsLost:
            self._failed("readings of unacknowledged messages could not be stored: reconnecting to receive them again")
        finally:
            self._set_connected(False)
            if acks is not None:
                acks.close()
            if inbox is not None:
                self._drain(inbox)
        return self._subscribed

    def _client(self) -> tuple[aiomqtt.Client, asyncio.Queue[aiomqtt.Message]]:
        """A new client and the queue it fills with incoming messages (`queue_type` is aiomqtt's hook)."""
        made: list[asyncio.Queue[aiomqtt.Message]] = []

        class _Inbox(asyncio.Queue[aiomqtt.Message]):
            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(maxsize)
                made.append(self)

        client = new_client(
            self.config, identifier=self.config.client_id, persistent=True, queue_type=_Inbox, manual_ack=True
        )
        if len(made) != 1:  # an aiomqtt that no longer builds its queue from queue_type
            raise MqttError("aiomqtt did not create its message queue from queue_type")
        return client, made[0]

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        """Subscribe (again) to every filter; runs beside the consumer, so a session's backlog, which
        the broker sends before the SUBACK, is taken while we wait."""
        topics: list[tuple[str, Any]] = [
            (f, SubscribeOptions(qos=qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB))
            if self.config.protocol == "5"
            else (f, qos)
            for f, qos in self.filters
        ]
        if topics:
            codes = await client.subscribe(topics, timeout=_SUBACK_TIMEOUT_S)
            refused = [
                f"{f} ({code})"
                for (f, _), code in zip(self.filters, codes, strict=False)
                if getattr(code, "is_failure", False) or (isinstance(code, int) and code >= 0x80)
            ]
            if refused:
                # running on with a refused subscription is exactly the silent stop we must not have
                raise MqttError(f"subscription refused: {', '.join(refused)}")
        self._subscribed = True
        self._set_connected(True)
        self._failures.success()
        log.info("%s: connected, subscribed to %s", self._where, ", ".join(f for f, _ in self.filters))

    async def _consume_watched(
        self, client: aiomqtt.Client, inbox: asyncio.Queue[aiomqtt.Message], acks: _Acknowledger
    ) -> None:
        self._last_activity = asyncio.get_running_loop().time()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._consume(client, inbox, acks), name="mqtt-consume")
            tg.create_task(_raise_when_lost(acks), name="mqtt-storage-watch")
            tg.create_task(self._subscribe(client), name="mqtt-subscribe")
            if self.config.watchdog_s > 0:
                tg.create_task(self._watchdog(), name="mqtt-watchdog")

    def _drain(self, inbox: asyncio.Queue[aiomqtt.Message]) -> None:
        """Deliver the QoS 0 messages the queue still holds (the broker resends the unacknowledged others)."""
        batch: list[Reading] = []
        count = 0
        while not inbox.empty():
            message = inbox.get_nowait()
            if message.qos == 0:
                self._take(message, batch)
                count += 1
        if count:
            self._messages.inc(count)
        self._deliver(batch, None)

    async def _watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        limit = self.config.watchdog_s
        while True:
            silent = loop.time() - self._last_activity
            if silent > limit:
                raise _WatchdogExpired
            await asyncio.sleep(max(limit - silent, 0.0) + 0.01)

    async def _consume(
        self, client: aiomqtt.Client, inbox: asyncio.Queue[aiomqtt.Message], acks: _Acknowledger
    ) -> None:
        # The hot path. aiomqtt's iterator costs a task and an event-loop round per message, so it is
        # used only to wait for the first message of a burst (and to notice a disconnect); the rest
        # of the burst is taken straight from the queue aiomqtt fills, up to _BATCH_MAX at a time.
        messages = client.messages
        loop_time = asyncio.get_running_loop().time
        take = self._take
        batch: list[Reading] = []
        async for message in messages:
            take(message, batch)
            held = [(message.mid, message.qos)] if message.qos else []
            count = 1
            while count < _BATCH_MAX and not inbox.empty():
                message = inbox.get_nowait()
                take(message, batch)
                if message.qos:
                    held.append((message.mid, message.qos))
                count += 1
            self._last_activity = loop_time()
            self.last_message_at = self.clock()
            self._messages.inc(count)
            self._deliver(batch, acks.track(held) if held else None)
            batch = []

    def _take(self, message: aiomqtt.Message, batch: list[Reading]) -> None:
        topic = message.topic.value
        payload = message.payload
        if not isinstance(payload, bytes):  # paho always gives bytes; guard the type
            payload = str(payload).encode()
        routes = self.router.route(topic)
        if isinstance(routes, str):
            self._reject(topic, routes, payload)
            return
        now = self.clock()
        admit = self.limits.admit
        for route in routes:
            readings, reason = parse_payload(payload, route, now, max_bytes=self._max_bytes)
            for reading in readings:
                if admit(reading):
                    batch.append(reading)
                else:
                    self._reject(topic, "too_many_series", payload)
            if reason is not None:
                self._reject(topic, reason, payload)

    def _deliver(self, batch: list[Reading], settled: StoredCallback | None) -> None:
        """Hand readings to the sink; `settled` acknowledges their messages once they are stored."""
        if batch:
            try:
                self.sink(batch)
            except Exception:
                # the sink is the service's; a bug there must not stop ingestion of the next message, and
                # the messages are acknowledged all the same (resent, they would fail again and again)
                log.exception("%s: the reading sink failed on a batch of %d readings", self._where, len(batch))
        if settled is None:
            return
        if self.when_stored is None or not batch:
            settled(True)  # nothing to wait for; the acknowledger still keeps arrival order
        else:
            self.when_stored(settled)

    def _reject(self, topic: str, reason: str, payload: bytes) -> None:
        counter = self._rejected.get(reason)
        if counter is None:
            counter = self._rejected[reason] = self._rejected_metric.labels(reason)
        counter.inc()
        # topics and payloads come from the network: escaped, so they cannot forge a log line
        if reason == "too_many_series":
            self._bad_input.warning(
                reason,
                "MQTT %s: dropped a reading (too_many_series: past [mqtt] max_sensors_per_loop %d or "
                "max_quantities_per_loop %d for its loop); more are counted in stationmon_mqtt_rejected_total",
                printable(topic),
                self.config.max_sensors_per_loop,
                self.config.max_quantities_per_loop,
            )
            return
        self._bad_input.warning(
            topic, "MQTT %s: dropped a message (%s): %r", printable(topic), reason, payload[:100], group=reason
        )

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self._connected_gauge.set(1.0 if connected else 0.0)

    def _failed(self, reason: str) -> None:
        self.last_error = reason
        self._failures.failure(reason)


async def _raise_when_lost(acks: _Acknowledger) -> None:
    await acks.lost.wait()
    raise _ReadingsLost


def _describe(group: BaseExceptionGroup[BaseException]) -> str:
    parts = []
    for exc in group.exceptions:
        text = str(exc) or type(exc).__name__
        if exc.__cause__ is not None and str(exc.__cause__):
            text += f": {exc.__cause__}"  # aiomqtt's "Disconnected..." carries paho's reason here
        parts.append(text)
    return "; ".join(parts)
