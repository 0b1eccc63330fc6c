"""Alert delivery: the wire format (formatting, fingerprints), backoff, and the queue semantics."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from stationmon.adapters.notify import QueuedNotifier, RejectedError
from stationmon.adapters.webhook import WebhookNotifier, sign_body
from stationmon.backoff import Backoff
from stationmon.config import Secret, WebhookConfig, parse_config_text
from stationmon.domain.alert_wire import (
    ZERO_TIME,
    PostableAlert,
    alert_annotations,
    alert_labels,
    alert_payload,
    alert_topic,
    generator_url,
    group_key,
    label_fingerprint,
    postable_alert,
    rfc3339,
    silence_body,
    webhook_message,
)
from stationmon.domain.model import AlertEvent
from stationmon.errors import NotifyError
from stationmon.metrics import Metrics
from stationmon.redact import redact_url
from stationmon.wiring import build_notifiers, external_url_of
from tests.helpers import wait_until

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z

FIRING = AlertEvent(
    alert_id="daoli-334/sec1/supply_low/1700000000",
    rule="supply_low",
    station="daoli-334",
    district="道里区",
    loop="sec1",
    severity="warning",
    state="firing",
    ts=T0 + 60,
    since=T0,
    value=38.25,
    threshold=40.1,
    message="supply 38.2 °C below the required 40.1 °C",
)


# ----------------------------------------------------------------------------------------------------
# Formatting


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (T0, "2023-11-14T22:13:20.000Z"),
        (T0 + 0.1234, "2023-11-14T22:13:20.123Z"),
    ],
)
def test_rfc3339(ts: float, text: str) -> None:
    assert rfc3339(ts) == text


def test_labels_follow_the_contract() -> None:
    assert alert_labels(FIRING) == {
        "alertname": "supply_low",
        "district": "道里区",
        "loop": "sec1",
        "severity": "warning",
        "cause": "station",
        "station": "daoli-334",
    }


def test_station_level_alert_has_loop_dash_and_empty_district_is_dropped() -> None:
    event = replace(FIRING, rule="station_offline", loop=None, district="")
    labels = alert_labels(event)
    assert labels["loop"] == "-"
    assert "district" not in labels
    assert alert_topic("stationmon/alerts", event) == "stationmon/alerts/daoli-334/-/station_offline"


def test_extra_labels_cannot_override_the_contract_labels() -> None:
    event = replace(FIRING, labels={"team": "north", "severity": "bogus"})
    labels = alert_labels(event)
    assert labels["team"] == "north"
    assert labels["severity"] == "warning"


def test_annotations() -> None:
    ann = alert_annotations(FIRING)
    assert ann == {
        "summary": "supply_low at daoli-334 loop sec1",
        "description": "supply 38.2 °C below the required 40.1 °C",
        "value": "38.25",
        "threshold": "40.1",
    }
    acked = replace(FIRING, state="acknowledged", acknowledged_by="wang", acknowledged_at=T0 + 120, comment="on it")
    ann = alert_annotations(acked)
    assert ann["acknowledged_by"] == "wang"
    assert ann["acknowledged_at"] == "2023-11-14T22:15:20.000Z"
    assert ann["comment"] == "on it"


def test_annotations_without_a_number_still_carry_value_and_threshold() -> None:
    # CONTRACT 5: summary, description, value, threshold, always; "" when there is no number
    fault = replace(FIRING, rule="sensor_fault", value=None, threshold=None, message="")
    ann = alert_annotations(fault)
    assert ann == {
        "summary": "sensor_fault at daoli-334 loop sec1",
        "description": ann["summary"],
        "value": "",
        "threshold": "",
    }
    # the same four in the webhook body (the alert and commonAnnotations) and the Alertmanager body
    msg = webhook_message(fault, "http://x")
    assert msg["alerts"][0]["annotations"] == ann and msg["commonAnnotations"] == ann
    assert postable_alert(fault, "http://x").to_json(T0)["annotations"] == ann
    # an acknowledgement without a comment adds who and when, and no empty comment
    acked = replace(fault, state="acknowledged", acknowledged_by="wang", acknowledged_at=T0)
    assert set(alert_annotations(acked)) == {
        "summary",
        "description",
        "value",
        "threshold",
        "acknowledged_by",
        "acknowledged_at",
    }


@pytest.mark.parametrize(
    ("labels", "fingerprint"),
    [
        # prometheus/common model/signature_test.go
        ({}, f"{14695981039346656037:016x}"),
        ({"name": "garland, briggs", "fear": "love is not enough"}, f"{5799056148416392346:016x}"),
    ],
)
def test_fingerprint_matches_prometheus(labels: dict[str, str], fingerprint: str) -> None:
    assert label_fingerprint(labels) == fingerprint


def test_fingerprint_depends_on_every_label() -> None:
    labels = alert_labels(FIRING)
    assert label_fingerprint(labels) != label_fingerprint({**labels, "severity": "major"})
    assert label_fingerprint(labels) == label_fingerprint(dict(reversed(list(labels.items()))))


def test_webhook_message_is_alertmanager_version_4() -> None:
    msg = webhook_message(FIRING, "http://mon.example:9640")
    assert set(msg) == {
        "receiver",
        "status",
        "alerts",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "version",
        "groupKey",
        "truncatedAlerts",
    }
    assert msg["version"] == "4"
    assert msg["status"] == "firing"
    assert msg["truncatedAlerts"] == 0
    assert msg["externalURL"] == "http://mon.example:9640"
    [alert] = msg["alerts"]
    assert set(alert) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
    assert alert["startsAt"] == "2023-11-14T22:13:20.000Z"
    assert alert["endsAt"] == ZERO_TIME
    assert alert["generatorURL"] == "http://mon.example:9640/#station-daoli-334"
    assert alert["fingerprint"] == label_fingerprint(alert["labels"])
    assert msg["groupLabels"] == {"alertname": "supply_low", "station": "daoli-334", "loop": "sec1"}
    assert msg["commonLabels"] == alert["labels"]
    assert msg["groupKey"] == '{}:{alertname="supply_low", loop="sec1", station="daoli-334"}'


def test_webhook_message_resolved() -> None:
    msg = webhook_message(replace(FIRING, state="resolved", ts=T0 + 600), "http://x")
    assert msg["status"] == "resolved"
    assert msg["alerts"][0]["status"] == "resolved"
    assert msg["alerts"][0]["endsAt"] == "2023-11-14T22:23:20.000Z"


def test_escalation_is_still_firing_with_the_new_severity() -> None:
    msg = webhook_message(replace(FIRING, state="escalated", severity="major"), "http://x")
    assert msg["status"] == "firing"
    assert msg["commonLabels"]["severity"] == "major"


def test_group_key_quotes_like_go() -> None:
    assert group_key({"b": 'x"y', "a": "1"}) == '{}:{a="1", b="x\\"y"}'


def test_generator_url_escapes_the_station() -> None:
    assert generator_url("http://h:1/", replace(FIRING, station="a b")) == "http://h:1/#station-a%20b"


def test_redact_url_hides_keys() -> None:
    assert redact_url("https://user:pw@qyapi.example/cgi-bin/send?key=SECRET#x") == "https://qyapi.example/cgi-bin/send"
    assert redact_url("http://127.0.0.1:9093") == "http://127.0.0.1:9093"


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert sign_body("s3cret", body) == "sha256=" + expected


def test_webhook_encode_signs_exactly_the_bytes_sent() -> None:
    config = WebhookConfig(url="http://x/hook", hmac_secret=Secret("k"), hmac_header="X-Sig")
    notifier = WebhookNotifier(config, Metrics(), external_url="http://mon")
    body, headers = notifier.encode(FIRING)
    assert headers == {"X-Sig": sign_body("k", body)}
    assert json.loads(body)["alerts"][0]["labels"]["district"] == "道里区"


def test_webhook_send_resolved_off_skips_resolutions() -> None:
    notifier = WebhookNotifier(WebhookConfig(url="http://x", send_resolved=False), Metrics(), external_url="")
    notifier.notify(replace(FIRING, state="resolved"))
    assert notifier.pending == 0
    notifier.notify(FIRING)
    assert notifier.pending == 1


def test_mqtt_payload() -> None:
    doc = json.loads(alert_payload(FIRING))
    assert doc["id"] == FIRING.alert_id
    assert doc["severity"] == "warning"
    assert doc["since"] == "2023-11-14T22:13:20.000Z"
    assert doc["value"] == 38.25
    assert doc["acknowledged_by"] is None
    assert alert_payload(replace(FIRING, state="resolved")) == b""
    assert alert_topic("p/", FIRING) == "p/daoli-334/sec1/supply_low"


def test_postable_alert_firing_and_resolved() -> None:
    labels = alert_labels(FIRING)
    alert = PostableAlert(labels, {"summary": "s"}, T0, None, "http://g")
    assert alert.to_json(T0 + 240)["endsAt"] == rfc3339(T0 + 240)
    assert replace(alert, ends=T0 + 5).to_json(T0 + 240)["endsAt"] == rfc3339(T0 + 5)
    assert alert.fingerprint == label_fingerprint(labels)


def test_silence_matches_exactly_the_labels() -> None:
    body = silence_body({"alertname": "supply_low", "station": "s"}, T0, 3600, "wang", "on it")
    assert body["matchers"] == [
        {"name": "alertname", "value": "supply_low", "isRegex": False, "isEqual": True},
        {"name": "station", "value": "s", "isRegex": False, "isEqual": True},
    ]
    assert body["endsAt"] == rfc3339(T0 + 3600)
    assert body["createdBy"] == "wang"


# ----------------------------------------------------------------------------------------------------
# Backoff


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    backoff = Backoff(0.5, 4.0, rand=random.Random(7).random)
    delays = [backoff.next_delay() for _ in range(8)]
    bases = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    for delay, base in zip(delays, bases, strict=True):
        assert base * 0.5 <= delay <= base
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_backoff_survives_many_attempts() -> None:
    backoff = Backoff(0.5, 60.0)
    for _ in range(5000):
        assert backoff.next_delay() <= 60.0


# ----------------------------------------------------------------------------------------------------
# The queue: an in-memory receiver that fails on demand exercises the base class itself.


class _Receiver(QueuedNotifier):
    kind = "test"

    def __init__(self, metrics: Metrics, fail: list[Exception], **kwargs: object) -> None:
        super().__init__("test", "memory", metrics, retry_initial_s=0.001, retry_max_s=0.01, **kwargs)  # type: ignore[arg-type]
        self.fail = fail
        self.got: list[AlertEvent] = []

    async def deliver(self, event: AlertEvent) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.got.append(event)


def _counter(metrics: Metrics, name: str, *labels: str) -> float:
    metric = metrics.get(name)
    assert metric is not None
    return metric.value(*labels)  # type: ignore[attr-defined, no-any-return]


async def test_retries_then_delivers_once_in_order() -> None:
    metrics = Metrics()
    receiver = _Receiver(metrics, [NotifyError("down"), NotifyError("down")])
    async with receiver:
        receiver.notify(FIRING)
        receiver.notify(replace(FIRING, state="resolved"))
        await wait_until(lambda: len(receiver.got) == 2, message="both events delivered")
    assert [e.state for e in receiver.got] == ["firing", "resolved"]
    assert _counter(metrics, "stationmon_notify_sent_total", "test") == 2
    assert _counter(metrics, "stationmon_notify_failed_total", "test") == 2
    assert _counter(metrics, "stationmon_notify_retried_total", "test") == 2


async def test_rejected_is_dropped_without_retry() -> None:
    metrics = Metrics()
    receiver = _Receiver(metrics, [RejectedError("HTTP 400")])
    async with receiver:
        receiver.notify(FIRING)
        receiver.notify(replace(FIRING, state="resolved"))
        await wait_until(lambda: len(receiver.got) == 1, message="the second event delivered")
    assert receiver.got[0].state == "resolved"
    assert _counter(metrics, "stationmon_notify_retried_total", "test") == 0
    assert _counter(metrics, "stationmon_notify_dropped_total", "test", "rejected") == 1


async def test_max_attempts_gives_up() -> None:
    metrics = Metrics()
    receiver = _Receiver(metrics, [NotifyError("x")] * 3, max_attempts=2)
    async with receiver:
        receiver.notify(FIRING)
        receiver.notify(replace(FIRING, state="resolved"))
        await wait_until(lambda: receiver.got, message="a delivery")
    # attempts 1-2 fail on the first event (dropped), the third failure hits the second event's first try
    assert [e.state for e in receiver.got] == ["resolved"]
    assert _counter(metrics, "stationmon_notify_dropped_total", "test", "max_attempts") == 1


def test_full_queue_drops_the_oldest_and_never_blocks() -> None:
    metrics = Metrics()
    receiver = _Receiver(metrics, [], queue_size=3)
    for i in range(5):
        receiver.notify(replace(FIRING, ts=T0 + i))
    assert receiver.pending == 3
    assert [e.ts for e in receiver.queue] == [T0 + 2, T0 + 3, T0 + 4]
    assert _counter(metrics, "stationmon_notify_dropped_total", "test", "queue_full") == 2
    assert _counter(metrics, "stationmon_notify_queue_length", "test") == 3


async def test_exit_drains_the_queue_then_stops() -> None:
    receiver = _Receiver(Metrics(), [])
    async with receiver:
        for i in range(50):
            receiver.notify(replace(FIRING, ts=T0 + i))
    assert len(receiver.got) == 50


async def test_exit_does_not_hang_on_a_dead_receiver() -> None:
    receiver = _Receiver(Metrics(), [NotifyError("down")] * 10_000, drain_timeout_s=0.2)
    async with receiver:
        receiver.notify(FIRING)
    assert receiver.got == []
    assert receiver._task is None


async def test_events_queued_before_start_are_delivered() -> None:
    receiver = _Receiver(Metrics(), [])
    receiver.notify(FIRING)
    async with receiver:
        await wait_until(lambda: receiver.got, message="the early event")
    assert receiver.got == [FIRING]


def test_build_notifiers_from_config(tmp_path: Path) -> None:
    config = parse_config_text(
        f"""
[influxdb]
api = "v1"
database = "d"
spool_dir = "{tmp_path}"
[mqtt]
url = "mqtt://127.0.0.1:1883"
[http]
listen = "10.0.0.5:9640"
[[alerting.alertmanager]]
url = "http://am1:9093"
[[alerting.alertmanager]]
url = "http://am2:9093"
[[alerting.webhook]]
url = "https://hook.example/x?key=secret"
[alerting.mqtt]
enabled = true
[[stations]]
id = "s1"
""",
        require_influxdb=False,
    )
    notifiers = build_notifiers(config, Metrics())
    assert [(n.kind, n.name) for n in notifiers] == [
        ("alertmanager", "alertmanager-0"),
        ("alertmanager", "alertmanager-1"),
        ("webhook", "webhook"),
        ("mqtt", "mqtt"),
    ]
    assert notifiers[2].target == "https://hook.example/x"  # the key stays out of logs
    assert external_url_of(config) == "http://10.0.0.5:9640"
