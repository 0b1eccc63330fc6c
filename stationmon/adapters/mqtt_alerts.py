"""Alerts over MQTT: one retained JSON message per active alert, cleared when it resolves.

Topic `{topic_prefix}/{station}/{loop}/{rule}` (prefix `stationmon/alerts`); station-level alerts use
the loop level `-`. A dashboard that subscribes to `stationmon/alerts/#` receives every active alert at
once (they are retained) and sees each one disappear (an empty retained payload deletes it). Escalation
and acknowledgement republish the alert with its new severity / acknowledgement fields.

The connection has its own client id (`<client_id>-alerts`) so it never takes over the subscriber's
session; it is opened on first use and re-opened after a failure, with the shared backoff.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import aiomqtt

from stationmon.adapters.notify import STATION_LEVEL_LOOP, QueuedNotifier, rfc3339
from stationmon.config import MqttAlertConfig, MqttConfig
from stationmon.domain.model import AlertEvent
from stationmon.errors import NotifyError
from stationmon.metrics import Metrics

__all__ = ["MqttAlertNotifier", "alert_payload", "alert_topic"]

log = logging.getLogger("stationmon.notify")


def alert_topic(prefix: str, event: AlertEvent) -> str:
    """`{prefix}/{station}/{loop}/{rule}`, loop `-` for station-level alerts."""
    return f"{prefix.rstrip('/')}/{event.station}/{event.loop or STATION_LEVEL_LOOP}/{event.rule}"


def alert_payload(event: AlertEvent) -> bytes:
    """The retained message of an active alert (JSON); empty bytes for a resolved one (clears it)."""
    if event.state == "resolved":
        return b""
    doc: dict[str, Any] = {
        "id": event.alert_id,
        "rule": event.rule,
        "station": event.station,
        "district": event.district,
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


class MqttAlertNotifier(QueuedNotifier):
    """Publishes retained alert messages to the broker of `[mqtt]`, from its own queue."""

    kind = "mqtt"

    def __init__(
        self,
        config: MqttAlertConfig,
        mqtt: MqttConfig,
        metrics: Metrics,
        *,
        name: str = "mqtt",
        queue_size: int = 10000,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        publish_timeout_s: float = 10.0,
        drain_timeout_s: float = 2.0,
    ) -> None:
        super().__init__(
            name,
            f"{mqtt.host}:{mqtt.port}",
            metrics,
            queue_size=queue_size,
            retry_initial_s=retry_initial_s,
            retry_max_s=min(retry_max_s, mqtt.reconnect_max_s),
            drain_timeout_s=drain_timeout_s,
        )
        self.config = config
        self.mqtt = mqtt
        self.publish_timeout_s = publish_timeout_s
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: aiomqtt.Client | None = None

    def _new_client(self) -> aiomqtt.Client:
        tls = None
        if self.mqtt.tls:
            tls = aiomqtt.TLSParameters(
                ca_certs=self.mqtt.ca_file or None,
                certfile=self.mqtt.cert_file or None,
                keyfile=self.mqtt.key_file or None,
            )
        return aiomqtt.Client(
            self.mqtt.host,
            self.mqtt.port,
            username=self.mqtt.username or None,
            password=self.mqtt.password.get() if self.mqtt.password else None,
            identifier=f"{self.mqtt.client_id}-alerts",
            keepalive=max(1, int(self.mqtt.keepalive_s)),
            tls_params=tls,
            timeout=self.publish_timeout_s,
            logger=logging.getLogger("aiomqtt"),
        )

    async def _connected(self) -> aiomqtt.Client:
        if self._client is not None:
            return self._client
        stack = contextlib.AsyncExitStack()
        try:
            client = await stack.enter_async_context(self._new_client())
        except (aiomqtt.MqttError, OSError) as exc:
            await stack.aclose()
            raise NotifyError(f"cannot connect: {exc}") from exc
        self._stack, self._client = stack, client
        return client

    async def _disconnect(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            # The connection may already be gone; closing it can only fail the same way.
            with contextlib.suppress(aiomqtt.MqttError, OSError):
                await stack.aclose()

    async def _close(self) -> None:
        await self._disconnect()

    async def deliver(self, event: AlertEvent) -> None:
        """Publish (or clear) the alert's retained message; NotifyError and reconnect on failure."""
        client = await self._connected()
        try:
            await client.publish(
                alert_topic(self.config.topic_prefix, event),
                alert_payload(event),
                qos=self.config.qos,
                retain=True,
                timeout=self.publish_timeout_s,
            )
        except (aiomqtt.MqttError, OSError) as exc:
            await self._disconnect()
            raise NotifyError(f"publish failed: {exc}") from exc
