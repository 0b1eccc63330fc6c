"""Wiring of the alert notifiers: which ones a config asks for, built with their settings.

The one place that knows every notifier kind, so `adapters/notify.py` (their shared base) imports none
of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from stationmon.adapters.alertmanager import AlertmanagerNotifier, AlertmanagerState
from stationmon.adapters.mqtt_alerts import MqttAlertNotifier
from stationmon.adapters.notify import Notifier, NotifierOptions
from stationmon.adapters.webhook import WebhookNotifier
from stationmon.config import Config
from stationmon.domain.model import AlertEvent
from stationmon.metrics import Metrics

__all__ = ["build_notifiers", "external_url_of"]


def external_url_of(config: Config) -> str:
    """The URL our alerts link to: `[http] external_url`, else http://<listen>."""
    return (config.http.external_url or f"http://{config.http.listen}").rstrip("/")


def build_notifiers(
    config: Config,
    metrics: Metrics,
    active_alerts: Callable[[], Iterable[AlertEvent]] | None = None,
    on_sync: Callable[[AlertmanagerState], None] | None = None,
) -> list[Notifier]:
    """One notifier per `[[alerting.alertmanager]]` and `[[alerting.webhook]]`, plus MQTT if enabled.

    `active_alerts` lists the evaluator's active alerts (restored from its state file) so Alertmanager
    gets them again after a restart of stationmon; `on_sync` takes what Alertmanager holds that replicas
    share (acknowledgements, firing alerts' starts). With `[cluster] notify = "alertmanager"` only the
    Alertmanagers are fed: webhooks and MQTT alerts are left to Alertmanager's receivers, which
    deduplicate what the replicas of an HA pair send.
    """
    alerting = config.alerting
    external_url = external_url_of(config)
    options: NotifierOptions = {"queue_size": alerting.queue_size, "retry_max_s": alerting.retry_max_s}
    numbered = len(alerting.alertmanager) > 1
    notifiers: list[Notifier] = [
        AlertmanagerNotifier(
            am,
            metrics,
            external_url=external_url,
            name=f"alertmanager-{i}" if numbered else "alertmanager",
            active_alerts=active_alerts,
            on_sync=on_sync,
            **options,
        )
        for i, am in enumerate(alerting.alertmanager)
    ]
    if config.cluster.notify == "alertmanager":
        return notifiers
    numbered = len(alerting.webhook) > 1
    notifiers += [
        WebhookNotifier(
            hook,
            metrics,
            external_url=external_url,
            name=f"webhook-{i}" if numbered else "webhook",
            **options,
        )
        for i, hook in enumerate(alerting.webhook)
    ]
    # The config refuses [alerting.mqtt] without [mqtt]; the second test only narrows the type.
    if alerting.mqtt.enabled and config.mqtt is not None:
        notifiers.append(MqttAlertNotifier(alerting.mqtt, config.mqtt, metrics, **options))
    return notifiers
