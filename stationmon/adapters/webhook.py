"""A direct webhook: every alert transition as the body Alertmanager's own webhook sends (version "4").

Receivers written for Alertmanager work unchanged. One message per transition: firing, escalated (still
"firing", with the new severity), acknowledged ("firing", with `acknowledged_by`/`acknowledged_at`
annotations) and resolved (unless `send_resolved = false`). With `hmac_secret`, the header named by
`hmac_header` carries `sha256=<hex HMAC-SHA256 of the exact body bytes>`, as GitHub-style receivers
expect. Retries and drops are `QueuedNotifier`'s (forever, or `max_attempts`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Unpack

from stationmon.adapters.notify import JsonHttp, NotifierOptions, QueuedNotifier
from stationmon.config import WebhookConfig
from stationmon.domain.alert_wire import webhook_message
from stationmon.domain.model import AlertEvent
from stationmon.metrics import Metrics
from stationmon.redact import redact_url

__all__ = ["WebhookNotifier", "sign_body"]


def sign_body(secret: str, body: bytes) -> str:
    """The signature header value for `body`: `sha256=` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookNotifier(QueuedNotifier):
    """POSTs Alertmanager-format webhook messages to one URL, from its own queue."""

    kind = "webhook"

    def __init__(
        self,
        config: WebhookConfig,
        metrics: Metrics,
        *,
        external_url: str,
        name: str = "webhook",
        **options: Unpack[NotifierOptions],
    ) -> None:
        super().__init__(name, redact_url(config.url), metrics, max_attempts=config.max_attempts, **options)
        self.config = config
        self.external_url = external_url
        self.http: JsonHttp = JsonHttp(f"{self.kind} {self.target}", config.timeout_s)

    def accepts(self, event: AlertEvent) -> bool:
        """Every transition, except resolutions when `send_resolved` is off."""
        return self.config.send_resolved or event.state != "resolved"

    def encode(self, event: AlertEvent) -> tuple[bytes, dict[str, str]]:
        """The body bytes and extra headers (the signature) for one event."""
        message = webhook_message(event, self.external_url)
        body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers: dict[str, str] = {}
        if self.config.hmac_secret is not None:
            headers[self.config.hmac_header] = sign_body(self.config.hmac_secret.get(), body)
        return body, headers

    async def deliver(self, event: AlertEvent) -> None:
        """POST one message."""
        body, headers = self.encode(event)
        await self.http.post_json(self.config.url, body, headers)
