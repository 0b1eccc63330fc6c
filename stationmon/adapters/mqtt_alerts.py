"""Alerts over MQTT: one retained JSON message per active alert, cleared when it resolves.

Topic `{topic_prefix}/{station}/{loop}/{rule}` (prefix `stationmon/alerts`); station-level alerts use
the loop level `-`. A dashboard that subscribes to `stationmon/alerts/#` receives every active alert at
once (they are retained) and sees each one disappear (an empty retained payload deletes it). Escalation
and acknowledgement republish the alert with its new severity / acknowledgement fields.

The connection is built like the collector's (`adapters.mqtt.new_client`) but with its own client id
(`<client_id>-alerts`) and a clean session, so it never takes over the subscriber's session; it is
opened on first use and re-opened after a failure, with the shared backoff.
"""

from __future__ import annotations

import contextlib
from typing import Unpack

import aiomqtt

from stationmon.adapters.mqtt import new_client
from stationmon.adapters.notify import NotifierOptions, QueuedNotifier
from stationmon.config import MqttAlertConfig, MqttConfig
from stationmon.domain.alert_wire import alert_payload, alert_topic
from stationmon.domain.model import AlertEvent
from stationmon.errors import MqttError, NotifyError
from stationmon.metrics import Metrics

__all__ = ["MqttAlertNotifier"]


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
        publish_timeout_s: float = 10.0,
        **options: Unpack[NotifierOptions],
    ) -> None:
        options["retry_max_s"] = min(options.get("retry_max_s", 30.0), mqtt.reconnect_max_s)
        super().__init__(name, f"{mqtt.host}:{mqtt.port}", metrics, **options)
        self.config = config
        self.mqtt = mqtt
        self.publish_timeout_s = publish_timeout_s
        self.identifier = f"{mqtt.client_id}-alerts"
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: aiomqtt.Client | None = None

    async def _connected(self) -> aiomqtt.Client:
        if self._client is not None:
            return self._client
        stack = contextlib.AsyncExitStack()
        try:
            client = await stack.enter_async_context(
                new_client(self.mqtt, identifier=self.identifier, persistent=False, timeout_s=self.publish_timeout_s)
            )
        except (aiomqtt.MqttError, MqttError, OSError) as exc:
            await stack.aclose()
            raise NotifyError(f"cannot connect: {exc}") from exc
        self._stack, self._client = stack, client
        return client

    async def _close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            # The connection may already be gone; closing it can only fail the same way.
            with contextlib.suppress(aiomqtt.MqttError, OSError):
                await stack.aclose()

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
            await self._close()
            raise NotifyError(f"publish failed: {exc}") from exc
