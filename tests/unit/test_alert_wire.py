"""The alert wire format: events in, the dicts and bytes receivers get out (no event loop, no sockets)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from stationmon.domain.alert_wire import (
    ZERO_TIME,
    alert_payload,
    alert_topic,
    event_from_snapshot,
    postable_alert,
    webhook_alert,
)
from stationmon.domain.alerts import AlertSnapshot
from stationmon.domain.model import AlertEvent

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
URL = "http://mon:9640"

LOOP = AlertEvent(
    alert_id="a1",
    rule="supply_low",
    station="s1",
    district="d",
    loop="sec1",
    severity="warning",
    state="firing",
    ts=T0 + 60,
    since=T0,
    value=38.5,
    threshold=40.0,
    message="low",
)
STATION = replace(LOOP, alert_id="a2", rule="station_offline", loop=None, severity="major", value=None, threshold=None)
LABELS = {"alertname": "supply_low", "district": "d", "loop": "sec1", "severity": "warning", "station": "s1"}
LABELS["cause"] = "station"  # issue 12: every alert says whose shortfall it is (heat_source or station)
ANNOTATIONS = {"summary": "supply_low at s1 loop sec1", "description": "low", "value": "38.5", "threshold": "40"}
STATION_LABELS = {**LABELS, "alertname": "station_offline", "loop": "-", "severity": "major"}
STATION_ANNOTATIONS = {"summary": "station_offline at s1", "description": "low", "value": "", "threshold": ""}


@pytest.mark.parametrize(
    ("event", "body"),
    [
        (
            LOOP,
            {
                "labels": LABELS,
                "annotations": ANNOTATIONS,
                "startsAt": "2023-11-14T22:13:20.000Z",
                "endsAt": "2023-11-14T22:17:20.000Z",  # the caller's firing end: T0 + 240
                "generatorURL": "http://mon:9640/#station-s1",
            },
        ),
        (
            replace(LOOP, state="resolved", ts=T0 + 600),
            {
                "labels": LABELS,
                "annotations": ANNOTATIONS,
                "startsAt": "2023-11-14T22:13:20.000Z",
                "endsAt": "2023-11-14T22:23:20.000Z",  # resolved: ends when it resolved
                "generatorURL": "http://mon:9640/#station-s1",
            },
        ),
        (
            STATION,
            {
                "labels": STATION_LABELS,
                "annotations": STATION_ANNOTATIONS,
                "startsAt": "2023-11-14T22:13:20.000Z",
                "endsAt": "2023-11-14T22:17:20.000Z",
                "generatorURL": "http://mon:9640/#station-s1",
            },
        ),
    ],
)
def test_alertmanager_v2_body(event: AlertEvent, body: dict[str, object]) -> None:
    assert postable_alert(event, URL).to_json(T0 + 240) == body


@pytest.mark.parametrize(
    ("event", "status", "ends", "labels"),
    [
        (LOOP, "firing", ZERO_TIME, LABELS),
        (replace(LOOP, state="escalated", severity="major"), "firing", ZERO_TIME, {**LABELS, "severity": "major"}),
        (replace(LOOP, state="acknowledged"), "firing", ZERO_TIME, LABELS),
        (replace(LOOP, state="resolved", ts=T0 + 600), "resolved", "2023-11-14T22:23:20.000Z", LABELS),
        (STATION, "firing", ZERO_TIME, STATION_LABELS),
    ],
)
def test_webhook_alert(event: AlertEvent, status: str, ends: str, labels: dict[str, str]) -> None:
    alert = webhook_alert(event, URL)
    assert (alert["status"], alert["endsAt"], alert["labels"]) == (status, ends, labels)
    assert alert["startsAt"] == "2023-11-14T22:13:20.000Z"


@pytest.mark.parametrize(
    ("event", "topic", "doc"),
    [
        (
            LOOP,
            "stationmon/alerts/s1/sec1/supply_low",
            {"id": "a1", "loop": "sec1", "severity": "warning", "state": "firing", "value": 38.5, "threshold": 40.0},
        ),
        (
            STATION,
            "stationmon/alerts/s1/-/station_offline",
            {"id": "a2", "loop": None, "severity": "major", "state": "firing", "value": None, "threshold": None},
        ),
        (
            replace(LOOP, state="acknowledged", acknowledged_by="wang", acknowledged_at=T0 + 120, labels={"t": "n"}),
            "stationmon/alerts/s1/sec1/supply_low",
            {"state": "acknowledged", "acknowledged_by": "wang", "acknowledged_at": "2023-11-14T22:15:20.000Z"}
            | {"labels": {"t": "n"}},
        ),
        (replace(LOOP, state="resolved"), "stationmon/alerts/s1/sec1/supply_low", None),
    ],
)
def test_mqtt_topic_and_payload(event: AlertEvent, topic: str, doc: dict[str, object] | None) -> None:
    assert alert_topic("stationmon/alerts/", event) == topic
    payload = alert_payload(event)
    if doc is None:
        assert payload == b""  # a resolved alert clears its retained message
    else:
        got = json.loads(payload)
        assert {k: got[k] for k in doc} == doc
        assert (got["since"], got["ts"]) == ("2023-11-14T22:13:20.000Z", "2023-11-14T22:14:20.000Z")


def _snapshot(**changes: object) -> AlertSnapshot:
    base = AlertSnapshot(
        id="a1",
        rule="supply_low",
        station="s1",
        district="d",
        loop="sec1",
        severity="major",
        state="acknowledged",
        since=T0,
        pending_since=T0 - 600,
        value=38.5,
        threshold=40.0,
        message="low",
        acknowledged_by="wang",
        acknowledged_at=T0 + 5,
        comment="on it",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("snapshot", "since", "value"),
    [
        (_snapshot(), T0, 38.5),
        (_snapshot(since=None), T0 - 600, 38.5),  # not yet firing: it started when it became pending
        (_snapshot(value=math.nan), T0, None),  # NaN has no JSON
    ],
)
def test_event_from_snapshot(snapshot: AlertSnapshot, since: float, value: float | None) -> None:
    event = event_from_snapshot(snapshot, T0 + 99)
    assert (event.state, event.ts, event.since, event.value) == ("firing", T0 + 99, since, value)
    assert (event.alert_id, event.severity, event.acknowledged_by, event.comment) == ("a1", "major", "wang", "on it")


def test_company_is_a_label_and_in_the_mqtt_payload() -> None:
    event = replace(LOOP, company="冰城热力有限公司")
    assert postable_alert(event, URL).labels == {**LABELS, "company": "冰城热力有限公司"}
    assert webhook_alert(event, URL)["labels"] == {**LABELS, "company": "冰城热力有限公司"}
    assert json.loads(alert_payload(event))["company"] == "冰城热力有限公司"
    assert "company" not in postable_alert(LOOP, URL).labels  # none configured: absent, as Alertmanager reads it
