"""Alert delivery against the real things: Prometheus Alertmanager, an HTTP receiver, Mosquitto.

The HTTP receiver is an aiohttp server in the test: it stands for the webhook endpoint and for the
receiver Alertmanager itself notifies (its `webhook_configs`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import aiomqtt
import pytest
import pytest_asyncio
import yaml
from aiohttp import web

from stationmon.adapters.alertmanager import AlertmanagerNotifier
from stationmon.adapters.mqtt_alerts import MqttAlertNotifier
from stationmon.adapters.webhook import WebhookNotifier
from stationmon.config import (
    AlertmanagerConfig,
    MqttAlertConfig,
    MqttConfig,
    Secret,
    WebhookConfig,
)
from stationmon.domain.alert_wire import label_fingerprint, silence_marker
from stationmon.domain.model import AlertEvent
from stationmon.metrics import Metrics
from tests.helpers import free_port, wait_until


@dataclass
class Received:
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str]


@dataclass
class Receiver:
    """An HTTP receiver: answers with `statuses` in turn (then 200), records what it accepted."""

    url: str
    statuses: list[int] = field(default_factory=list)
    hang: asyncio.Event | None = None  # when set to an Event: hold every request until it is set
    accepted: list[Received] = field(default_factory=list)
    attempts: int = 0


@pytest_asyncio.fixture
async def receiver_factory() -> AsyncIterator[Callable[[], Any]]:
    runners: list[web.AppRunner] = []
    receivers: list[Receiver] = []

    async def make() -> Receiver:
        port = free_port()
        rec = Receiver(url=f"http://127.0.0.1:{port}/hook")

        async def hook(request: web.Request) -> web.Response:
            rec.attempts += 1
            raw = await request.read()
            if rec.hang is not None:
                await rec.hang.wait()
            status = rec.statuses.pop(0) if rec.statuses else 200
            if status == 200:
                rec.accepted.append(Received(json.loads(raw), raw, dict(request.headers)))
            return web.Response(status=status, text="ok" if status == 200 else "broken")

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        receivers.append(rec)
        return rec

    yield make
    for rec in receivers:
        if rec.hang is not None:
            rec.hang.set()
    for runner in runners:
        await runner.cleanup()


def make_event(
    state: str = "firing",
    *,
    loop: str | None = "sec1",
    rule: str = "supply_low",
    station: str = "daoli-334",
    severity: str = "warning",
    since: float | None = None,
    ts: float | None = None,
    **extra: Any,
) -> AlertEvent:
    now = time.time()
    since = now if since is None else since
    return AlertEvent(
        alert_id=f"{station}/{loop or '-'}/{rule}/{int(since)}",
        rule=rule,
        station=station,
        district="daoli",
        loop=loop,
        severity=severity,
        state=state,
        ts=now if ts is None else ts,
        since=since,
        value=38.0,
        threshold=40.0,
        message="supply too low",
        **extra,
    )


def counter(metrics: Metrics, name: str, *labels: str) -> float:
    metric = metrics.get(name)
    return 0.0 if metric is None else metric.value(*labels)  # type: ignore[attr-defined, no-any-return]


# ----------------------------------------------------------------------------------------------------
# Webhook


async def test_webhook_500_then_200_is_retried_and_delivered_once(receiver_factory: Any) -> None:
    rec = await receiver_factory()
    rec.statuses = [500, 500]
    metrics = Metrics()
    config = WebhookConfig(url=rec.url, hmac_secret=Secret("k3y"), hmac_header="X-Signature")
    notifier = WebhookNotifier(config, metrics, external_url="http://mon:9640", name="hook", retry_initial_s=0.05)
    event = make_event()
    async with notifier:
        notifier.notify(event)
        await wait_until(lambda: rec.accepted, message="the webhook delivered")
        await wait_until(lambda: notifier.pending == 0, message="the queue empty")
    assert rec.attempts == 3
    assert len(rec.accepted) == 1
    got = rec.accepted[0]
    assert got.body["version"] == "4"
    assert got.body["status"] == "firing"
    assert got.body["alerts"][0]["labels"]["alertname"] == "supply_low"
    expected = "sha256=" + hmac.new(b"k3y", got.raw, hashlib.sha256).hexdigest()
    assert got.headers["X-Signature"] == expected
    assert counter(metrics, "stationmon_notify_sent_total", "hook") == 1
    assert counter(metrics, "stationmon_notify_failed_total", "hook") == 2
    assert counter(metrics, "stationmon_notify_retried_total", "hook") == 2


async def test_webhook_receiver_down_then_up(receiver_factory: Any) -> None:
    port = free_port()
    metrics = Metrics()
    notifier = WebhookNotifier(
        WebhookConfig(url=f"http://127.0.0.1:{port}/hook"),
        metrics,
        external_url="http://mon",
        name="hook",
        retry_initial_s=0.05,
        retry_max_s=0.2,
    )
    async with notifier:
        notifier.notify(make_event())
        notifier.notify(make_event("resolved"))
        await wait_until(
            lambda: counter(metrics, "stationmon_notify_failed_total", "hook") >= 2, message="failed attempts"
        )
        # now the receiver comes up on that port
        app = web.Application()
        got: list[dict[str, Any]] = []

        async def hook(request: web.Request) -> web.Response:
            got.append(await request.json())
            return web.Response(text="ok")

        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            await wait_until(lambda: len(got) == 2, message="both transitions delivered")
        finally:
            await runner.cleanup()
    assert [m["status"] for m in got] == ["firing", "resolved"]


async def test_a_hung_receiver_does_not_delay_another(receiver_factory: Any) -> None:
    slow = await receiver_factory()
    slow.hang = asyncio.Event()
    fast = await receiver_factory()
    metrics = Metrics()
    slow_notifier = WebhookNotifier(
        WebhookConfig(url=slow.url, timeout_s=60), metrics, external_url="", name="slow", drain_timeout_s=0.1
    )
    fast_notifier = WebhookNotifier(WebhookConfig(url=fast.url), metrics, external_url="", name="fast")
    async with slow_notifier, fast_notifier:
        for i in range(20):
            event = make_event(station=f"s{i}")
            slow_notifier.notify(event)
            fast_notifier.notify(event)
        await wait_until(lambda: len(fast.accepted) == 20, message="the fast receiver got everything")
        assert slow.attempts == 1  # still stuck in its first request
        assert slow_notifier.pending == 20


async def test_webhook_4xx_is_not_retried(receiver_factory: Any) -> None:
    rec = await receiver_factory()
    rec.statuses = [400]
    metrics = Metrics()
    notifier = WebhookNotifier(WebhookConfig(url=rec.url), metrics, external_url="", name="hook")
    async with notifier:
        notifier.notify(make_event())
        notifier.notify(make_event("resolved"))
        await wait_until(lambda: rec.accepted, message="the second message")
    assert rec.attempts == 2
    assert rec.accepted[0].body["status"] == "resolved"
    assert counter(metrics, "stationmon_notify_dropped_total", "hook", "rejected") == 1


# ----------------------------------------------------------------------------------------------------
# Alertmanager


def am_yaml(receiver_url: str, *, group_by: str = "[alertname, station]") -> str:
    return f"""
route:
  receiver: test
  group_by: {group_by}
  group_wait: 200ms
  group_interval: 500ms
  repeat_interval: 1h
receivers:
  - name: test
    webhook_configs:
      - url: {receiver_url}
        send_resolved: true
inhibit_rules:
  - source_matchers: ['alertname = station_offline']
    target_matchers: ['alertname != station_offline']
    equal: [station]
"""


def am_notifier(url: str, metrics: Metrics, **kwargs: Any) -> AlertmanagerNotifier:
    config = AlertmanagerConfig(url=url, resend_interval_s=kwargs.pop("resend_interval_s", 60.0), timeout_s=2.0)
    return AlertmanagerNotifier(
        config, metrics, external_url="http://mon:9640", retry_initial_s=0.05, retry_max_s=0.5, **kwargs
    )


async def am_get(url: str, path: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(f"{url}{path}") as resp:
        assert resp.status == 200
        return await resp.json()


def alerts_in(received: list[Received], status: str) -> list[dict[str, Any]]:
    return [a for r in received if r.body["status"] == status for a in r.body["alerts"]]


async def test_alertmanager_groups_then_resolves(alertmanager_factory: Any, receiver_factory: Any) -> None:
    rec = await receiver_factory()
    am = alertmanager_factory(am_yaml(rec.url))
    metrics = Metrics()
    sec1 = make_event(loop="sec1")
    sec2 = make_event(loop="sec2")
    other = make_event(station="daoli-7")
    async with am_notifier(am.url, metrics) as notifier:
        notifier.notify(sec1)
        notifier.notify(sec2)
        notifier.notify(other)
        await wait_until(lambda: len(rec.accepted) >= 2, message="two groups notified")
        groups = {r.body["groupLabels"]["station"]: r.body for r in rec.accepted}
        # grouped by alertname and station: both loops of daoli-334 in one notification
        assert sorted(a["labels"]["loop"] for a in groups["daoli-334"]["alerts"]) == ["sec1", "sec2"]
        assert len(groups["daoli-7"]["alerts"]) == 1
        first = groups["daoli-334"]["alerts"][0]
        assert first["generatorURL"] == "http://mon:9640/#station-daoli-334"
        assert first["annotations"]["threshold"] == "40"
        assert set(first["labels"]) == {
            "alertname",
            "station",
            "district",
            "loop",
            "severity",
            "cause",
        }  # cause: issue 12
        # our fingerprint is Alertmanager's own
        api = await am_get(am.url, "/api/v2/alerts")
        assert {a["fingerprint"] for a in api} == {
            label_fingerprint(a["labels"]) for r in rec.accepted for a in r.body["alerts"]
        }

        notifier.notify(replace(sec1, state="resolved", ts=time.time()))
        await wait_until(
            lambda: [a for r in rec.accepted for a in r.body["alerts"] if a["status"] == "resolved"],
            message="the resolution notified",
        )
        resolved = [a for r in rec.accepted for a in r.body["alerts"] if a["status"] == "resolved"]
        assert [a["labels"]["loop"] for a in resolved] == ["sec1"]
        active = await am_get(am.url, "/api/v2/alerts?active=true")
        assert sorted((a["labels"]["station"], a["labels"]["loop"]) for a in active) == [
            ("daoli-334", "sec2"),
            ("daoli-7", "sec1"),
        ]
    assert counter(metrics, "stationmon_notify_failed_total", "alertmanager") == 0


async def test_an_alert_without_a_number_keeps_value_and_threshold(
    alertmanager_factory: Any, receiver_factory: Any
) -> None:
    """CONTRACT 5: annotations summary, description, value, threshold, also for a sensor fault (no
    number): the webhook body carries them, and so does what Alertmanager received and passes on."""
    hook, am_hook = await receiver_factory(), await receiver_factory()
    am = alertmanager_factory(am_yaml(am_hook.url))
    fault = replace(make_event(rule="sensor_fault"), value=None, threshold=None)
    metrics = Metrics()
    webhook = WebhookNotifier(WebhookConfig(url=hook.url), metrics, external_url="http://mon", name="hook")
    async with webhook, am_notifier(am.url, metrics) as notifier:
        webhook.notify(fault)
        notifier.notify(fault)
        await wait_until(lambda: hook.accepted and am_hook.accepted, message="both receivers notified")
        api = await am_get(am.url, "/api/v2/alerts")
    want = {"summary", "description", "value", "threshold"}
    sent = hook.accepted[0].body
    assert set(sent["alerts"][0]["annotations"]) == want and set(sent["commonAnnotations"]) == want
    assert (sent["alerts"][0]["annotations"]["value"], sent["alerts"][0]["annotations"]["threshold"]) == ("", "")
    [stored] = api
    assert stored["annotations"]["value"] == "" and stored["annotations"]["threshold"] == ""
    relayed = am_hook.accepted[0].body["alerts"][0]["annotations"]
    assert (relayed["value"], relayed["threshold"]) == ("", "")


async def test_alertmanager_down_then_up_gets_the_alert(alertmanager_factory: Any, receiver_factory: Any) -> None:
    rec = await receiver_factory()
    am = alertmanager_factory(am_yaml(rec.url))
    am.stop()
    metrics = Metrics()
    async with am_notifier(am.url, metrics) as notifier:
        notifier.notify(make_event())
        await wait_until(
            lambda: counter(metrics, "stationmon_notify_failed_total", "alertmanager") >= 2,
            message="failed attempts while Alertmanager is down",
        )
        assert rec.accepted == []
        am.start()
        await wait_until(lambda: rec.accepted, message="the alert after Alertmanager came back")
    assert rec.accepted[0].body["alerts"][0]["labels"]["station"] == "daoli-334"
    assert counter(metrics, "stationmon_notify_retried_total", "alertmanager") >= 1
    assert counter(metrics, "stationmon_notify_sent_total", "alertmanager") >= 1


async def test_alertmanager_restart_gets_active_alerts_back_by_resending(alertmanager_factory: Any) -> None:
    am = alertmanager_factory(am_yaml("http://127.0.0.1:9/unused"))
    metrics = Metrics()
    async with am_notifier(am.url, metrics, resend_interval_s=0.3) as notifier:
        notifier.notify(make_event())
        await wait_until(lambda: am.alerts(), message="the alert in Alertmanager")
        am.stop()
        am.start()  # Alertmanager keeps silences on disk, but not alerts
        alerts = await wait_until(lambda: am.alerts(), message="the alert re-sent after the restart")
    assert alerts[0]["labels"]["alertname"] == "supply_low"
    # endsAt is set ahead (4 x resend interval) so a dead stationmon's alerts expire by themselves
    assert alerts[0]["status"]["state"] == "active"


async def test_acknowledged_alert_is_silenced_until_it_escalates(
    alertmanager_factory: Any, receiver_factory: Any
) -> None:
    rec = await receiver_factory()
    am = alertmanager_factory(am_yaml(rec.url))
    metrics = Metrics()
    firing = make_event()
    async with am_notifier(am.url, metrics, resend_interval_s=0.5) as notifier:
        notifier.notify(firing)
        await wait_until(lambda: rec.accepted, message="the firing alert")
        notifier.notify(
            replace(firing, state="acknowledged", acknowledged_by="wang", acknowledged_at=time.time(), comment="fixing")
        )

        async def suppressed() -> list[str]:
            alerts = await am_get(am.url, "/api/v2/alerts")
            return [s for a in alerts if a["status"]["state"] == "suppressed" for s in a["status"]["silencedBy"]]

        [silence_id] = await wait_until(suppressed, message="the alert silenced")
        silence = await am_get(am.url, f"/api/v2/silence/{silence_id}")
        assert silence["createdBy"] == "wang"
        assert silence["comment"] == f"fixing {silence_marker(firing.alert_id)}"
        alerts = await am_get(am.url, "/api/v2/alerts")
        assert alerts[0]["annotations"]["acknowledged_by"] == "wang"

        notifier.notify(replace(firing, state="escalated", severity="major", ts=time.time()))

        def escalation_notified() -> bool:
            return any(a["labels"]["severity"] == "major" for a in alerts_in(rec.accepted, "firing"))

        await wait_until(escalation_notified, message="the escalation notified despite the acknowledgement")

        async def silence_expired() -> bool:
            s = await am_get(am.url, f"/api/v2/silence/{silence_id}")
            return bool(s["status"]["state"] == "expired")

        await wait_until(silence_expired, message="the acknowledgement silence expired")
        active = await am_get(am.url, "/api/v2/alerts?active=true")
        # the warning label set was ended when the alert escalated: only the major one is left
        assert [a["labels"]["severity"] for a in active] == ["major"]


async def test_acknowledgement_silence_is_found_again_after_a_restart(alertmanager_factory: Any) -> None:
    """stationmon restarts with an acknowledged alert restored from its state: the resolution still
    expires the silence the previous run created (found by the marker in its comment)."""
    am = alertmanager_factory(am_yaml("http://127.0.0.1:9/unused"))
    firing = make_event()
    acked = replace(firing, state="acknowledged", acknowledged_by="li", acknowledged_at=time.time())

    async def silences() -> list[dict[str, Any]]:
        got = await am_get(am.url, "/api/v2/silences")
        return [s for s in got if s["status"]["state"] == "active"]

    async with am_notifier(am.url, Metrics()) as first:
        first.notify(firing)
        first.notify(acked)
        [silence] = await wait_until(silences, message="the acknowledgement silence")
    async with am_notifier(am.url, Metrics(), active_alerts=lambda: [acked]) as second:
        assert second.silences == {}  # a new process does not know the silence id
        second.notify(replace(firing, state="resolved", ts=time.time()))
        await wait_until(lambda: second.pending == 0, message="the resolution delivered")
    after = await am_get(am.url, f"/api/v2/silence/{silence['id']}")
    assert after["status"]["state"] == "expired"


async def test_station_offline_inhibits_its_loop_alerts(alertmanager_factory: Any, receiver_factory: Any) -> None:
    """The inhibit rule of configs/alertmanager.yml, on a real Alertmanager."""
    with open("configs/alertmanager.yml", encoding="utf-8") as f:
        inhibit = yaml.safe_load(f)["inhibit_rules"]
    rec = await receiver_factory()
    config = yaml.safe_load(am_yaml(rec.url))
    config["inhibit_rules"] = inhibit
    am = alertmanager_factory(yaml.safe_dump(config))
    async with am_notifier(am.url, Metrics()) as notifier:
        notifier.notify(make_event(rule="station_offline", loop=None, severity="major"))
        notifier.notify(make_event(loop="sec1"))
        notifier.notify(make_event(loop="sec1", station="daoli-7"))

        expected = {
            ("daoli-334", "-"): "active",
            ("daoli-334", "sec1"): "suppressed",
            ("daoli-7", "sec1"): "active",
        }
        last: dict[tuple[str, str], str] = {}

        async def inhibited() -> bool:
            # Alertmanager marks inhibition when a group is flushed, so it settles within group_wait.
            alerts = await am_get(am.url, "/api/v2/alerts")
            last.clear()
            last.update({(a["labels"]["station"], a["labels"]["loop"]): a["status"]["state"] for a in alerts})
            return last == expected

        await wait_until(inhibited, message="the loop alert of the offline station inhibited")


# ----------------------------------------------------------------------------------------------------
# MQTT


async def retained(host: str, port: int, topic_filter: str, settle: str) -> dict[str, bytes]:
    """Every retained message under `topic_filter`, read by a fresh client (up to the `settle` topic)."""
    got: dict[str, bytes] = {}
    async with aiomqtt.Client(host, port, identifier=f"probe-{time.monotonic_ns()}") as client:
        await client.subscribe(topic_filter, qos=1)
        await client.subscribe(settle, qos=1)
        async for message in client.messages:
            if str(message.topic) == settle:
                break
            got[str(message.topic)] = bytes(message.payload)  # type: ignore[arg-type]
    return got


async def publish_marker(host: str, port: int, topic: str) -> None:
    async with aiomqtt.Client(host, port, identifier=f"marker-{time.monotonic_ns()}") as client:
        await client.publish(topic, b"x", qos=1, retain=True)


async def test_mqtt_retained_alerts_cleared_on_resolve_and_reconnect(mosquitto: Any) -> None:
    mqtt = MqttConfig(url=mosquitto.url, host=mosquitto.host, port=mosquitto.port)
    metrics = Metrics()
    # a publish to a broker that went away may only fail at its timeout: keep it well inside the wait below
    notifier = MqttAlertNotifier(
        MqttAlertConfig(enabled=True), mqtt, metrics, retry_initial_s=0.05, publish_timeout_s=3.0
    )
    loop_alert = make_event()
    station_alert = make_event(rule="station_offline", loop=None, severity="major")
    marker = "test/marker"
    await publish_marker(mosquitto.host, mosquitto.port, marker)

    async def snapshot() -> dict[str, bytes]:
        return await asyncio.wait_for(retained(mosquitto.host, mosquitto.port, "stationmon/alerts/#", marker), 10)

    async with notifier:
        notifier.notify(loop_alert)
        notifier.notify(station_alert)
        await wait_until(lambda: notifier.pending == 0, message="published")
        got = await snapshot()
        assert set(got) == {
            "stationmon/alerts/daoli-334/sec1/supply_low",
            "stationmon/alerts/daoli-334/-/station_offline",
        }
        doc = json.loads(got["stationmon/alerts/daoli-334/sec1/supply_low"])
        assert doc["state"] == "firing" and doc["severity"] == "warning" and doc["loop"] == "sec1"

        notifier.notify(replace(loop_alert, state="resolved"))
        await wait_until(lambda: notifier.pending == 0, message="cleared")
        got = await snapshot()
        assert set(got) == {"stationmon/alerts/daoli-334/-/station_offline"}

        # the broker restarts: the notifier reconnects and publishes the escalation
        mosquitto.stop()
        notifier.notify(replace(station_alert, state="escalated", severity="critical"))
        await wait_until(
            lambda: counter(metrics, "stationmon_notify_failed_total", "mqtt") >= 1,
            timeout=20,
            message="a failed publish",
        )
        mosquitto.start()
        await wait_until(lambda: notifier.pending == 0, timeout=20, message="published after the restart")
        got = await snapshot()
        assert json.loads(got["stationmon/alerts/daoli-334/-/station_offline"])["severity"] == "critical"
    assert counter(metrics, "stationmon_notify_sent_total", "mqtt") == 4


# ----------------------------------------------------------------------------------------------------
# configs/alertmanager.yml, checked by Alertmanager's own tools


def _amtool() -> str:
    amtool = shutil.which("amtool")
    assert amtool is not None, "amtool is not installed (apt-get install prometheus-alertmanager)"
    return amtool


def test_example_config_is_valid() -> None:
    # Debian's alertmanager 0.25 has no --check-config flag; amtool is its checker.
    result = subprocess.run(
        [_amtool(), "check-config", "configs/alertmanager.yml"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["district=道里区", "severity=warning"], "daoli-wechat"),
        (["district=道里区", "severity=major"], "daoli-wechat-and-email"),
        (["district=道里区", "severity=critical"], "oncall-webhook,daoli-wechat-and-email"),
        (["district=南岗区", "severity=warning"], "nangang-wechat"),
        (["district=香坊区", "severity=critical"], "oncall-webhook,dispatch-email"),
        (["district=香坊区", "severity=warning"], "dispatch-email"),
    ],
)
def test_example_config_routes_by_district_and_severity(labels: list[str], receivers: str) -> None:
    result = subprocess.run(
        [
            _amtool(),
            "config",
            "routes",
            "test",
            "--config.file=configs/alertmanager.yml",
            "alertname=supply_low",
            *labels,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.strip() == receivers, result.stderr
