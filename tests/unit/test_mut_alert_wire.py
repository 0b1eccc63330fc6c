"""The alert wire formats byte for byte: what MQTT dashboards, webhook receivers and Alertmanager get.

Each test names the one-line bug it would catch (mutation testing, issue 17). Expected values are
written out by hand from CONTRACT section 5 and Alertmanager's own formats, not computed by the code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from stationmon.domain.alert_wire import (
    alert_annotations,
    alert_labels,
    alert_payload,
    alert_topic,
    event_from_snapshot,
    generator_url,
    group_key,
    rfc3339,
    webhook_message,
)
from stationmon.domain.alerts import AlertSnapshot
from stationmon.domain.model import AlertEvent

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z

ACKED = AlertEvent(
    alert_id="daoli-334.sec1.supply_low.1700000000000",
    rule="supply_low",
    station="daoli-334",
    district="道里区",
    loop="sec1",
    severity="major",
    state="acknowledged",
    ts=T0 + 60,
    since=T0,
    value=38.25,
    threshold=40.1,
    message="供水 38.2 °C 低于 40.1 °C",
    acknowledged_by="王工",
    acknowledged_at=T0 + 120.5,
    comment="在路上",
    labels={"cause": "heat_source"},
    company="冰城热力",
)


def test_the_retained_mqtt_message_is_this_exact_json() -> None:
    """Dashboards parse these bytes: a renamed key ("XXruleXX", "STATION", "MESSAGE", "COMMENT"...),
    `ensure_ascii` dropped (Chinese as \\u escapes) or the default `", "` separators would change them."""
    expected = (
        '{"id":"daoli-334.sec1.supply_low.1700000000000","rule":"supply_low","station":"daoli-334",'
        '"district":"道里区","company":"冰城热力","loop":"sec1","severity":"major","state":"acknowledged",'
        '"since":"2023-11-14T22:13:20.000Z","ts":"2023-11-14T22:14:20.000Z","value":38.25,"threshold":40.1,'
        '"message":"供水 38.2 °C 低于 40.1 °C","acknowledged_by":"王工",'
        '"acknowledged_at":"2023-11-14T22:15:20.500Z","comment":"在路上","labels":{"cause":"heat_source"}}'
    )
    assert alert_payload(ACKED) == expected.encode("utf-8")


def test_a_station_level_mqtt_message_without_numbers_or_labels() -> None:
    """No labels: no "labels" key; a station-level alert keeps `loop` null in the JSON (the topic says `-`)."""
    event = replace(
        ACKED,
        rule="station_offline",
        loop=None,
        state="firing",
        value=None,
        threshold=None,
        message="",
        acknowledged_by=None,
        acknowledged_at=None,
        comment=None,
        labels={},
        company="",
        district="",
    )
    expected = (
        '{"id":"daoli-334.sec1.supply_low.1700000000000","rule":"station_offline","station":"daoli-334",'
        '"district":"","company":"","loop":null,"severity":"major","state":"firing",'
        '"since":"2023-11-14T22:13:20.000Z","ts":"2023-11-14T22:14:20.000Z","value":null,"threshold":null,'
        '"message":"","acknowledged_by":null,"acknowledged_at":null,"comment":null}'
    )
    assert alert_payload(event) == expected.encode("utf-8")
    assert alert_topic("stationmon/alerts", event) == "stationmon/alerts/daoli-334/-/station_offline"


@pytest.mark.parametrize(
    ("prefix", "topic"),
    [
        ("stationmon/alerts", "stationmon/alerts/daoli-334/sec1/supply_low"),
        ("stationmon/alerts/", "stationmon/alerts/daoli-334/sec1/supply_low"),
        # a prefix ending in X keeps its X: rstrip("XX/XX") would cut it to "plant/MU"
        ("plant/MUX/", "plant/MUX/daoli-334/sec1/supply_low"),
    ],
)
def test_alert_topic_strips_only_the_trailing_slash(prefix: str, topic: str) -> None:
    assert alert_topic(prefix, ACKED) == topic


@pytest.mark.parametrize(
    ("external_url", "station", "url"),
    [
        ("http://mon.example:9640", "daoli-334", "http://mon.example:9640/#station-daoli-334"),
        # only slashes are stripped: a base path ending in X keeps it (rstrip("XX/XX") would not)
        ("https://gw.example/heat/BOX/", "daoli-334", "https://gw.example/heat/BOX/#station-daoli-334"),
        # a slash in a station name is escaped too (quote's default safe="/" would leave it)
        ("http://mon", "a/b c", "http://mon/#station-a%2Fb%20c"),
    ],
)
def test_generator_url(external_url: str, station: str, url: str) -> None:
    assert generator_url(external_url, replace(ACKED, station=station)) == url


def test_the_cause_label_comes_from_the_event() -> None:
    """`cause` is heat_source while the station's primary falls short (CONTRACT 5); reading another key
    (`labels.get("CAUSE")`) would always say "station"."""
    labels = alert_labels(ACKED)
    assert labels == {
        "alertname": "supply_low",
        "cause": "heat_source",
        "company": "冰城热力",
        "district": "道里区",
        "loop": "sec1",
        "severity": "major",
        "station": "daoli-334",
    }
    assert alert_labels(replace(ACKED, labels={}))["cause"] == "station"


@pytest.mark.parametrize(
    ("by", "at", "shown"),
    [
        ("王工", T0, {"acknowledged_by": "王工", "acknowledged_at": "2023-11-14T22:13:20.000Z", "comment": "在路上"}),
        # `and` for `or`: an acknowledgement known by its time only (or by its author only) lost its comment
        (None, T0, {"acknowledged_at": "2023-11-14T22:13:20.000Z", "comment": "在路上"}),
        ("王工", None, {"acknowledged_by": "王工", "comment": "在路上"}),
        # `is None` for `is not None`: a comment left over without any acknowledgement would be shown
        (None, None, {}),
    ],
)
def test_the_comment_is_shown_only_with_an_acknowledgement(by: str | None, at: float | None, shown: dict) -> None:
    annotations = alert_annotations(replace(ACKED, acknowledged_by=by, acknowledged_at=at))
    assert annotations == {
        "summary": "supply_low at daoli-334 loop sec1",
        "description": "供水 38.2 °C 低于 40.1 °C",
        "value": "38.25",
        "threshold": "40.1",
        **shown,
    }


def test_the_webhook_message_names_the_stationmon_receiver() -> None:
    """Receivers written for Alertmanager route on `receiver`; stationmon's own is "stationmon"."""
    message = webhook_message(ACKED, "http://mon")
    assert message["receiver"] == "stationmon"
    assert webhook_message(ACKED, "http://mon", receiver="ops")["receiver"] == "ops"


def test_the_group_key_keeps_chinese_like_go() -> None:
    """Go's %q keeps printable non-ASCII; `ensure_ascii=True` would write \\u9053 and the key would differ
    from the one Alertmanager's webhook sends for the same group."""
    assert (
        group_key({"station": "道里-1", "alertname": "supply_low"}) == '{}:{alertname="supply_low", station="道里-1"}'
    )
    message = webhook_message(replace(ACKED, station="道里-1"), "http://mon")
    assert message["groupKey"] == '{}:{alertname="supply_low", loop="sec1", station="道里-1"}'


@pytest.fixture
def harbin_local_time() -> Iterator[None]:
    """The host's local time zone set to China's (UTC+8), as on a station server."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TZ", "Asia/Harbin")
    time.tzset()
    try:
        yield
    finally:
        mp.undo()
        time.tzset()


@pytest.mark.usefixtures("harbin_local_time")
def test_rfc3339_is_utc_whatever_the_local_time_zone() -> None:
    """`fromtimestamp` without tz=UTC gives local time: on a UTC+8 host every startsAt would be 8 h off."""
    assert time.localtime(T0).tm_hour == 6  # the zone took effect: 22:13 UTC is 06:13 in Harbin
    assert rfc3339(T0) == "2023-11-14T22:13:20.000Z"


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (T0 + 0.5, "2023-11-14T22:13:20.500Z"),  # microsecond // 1001 would say 499
        (T0 + 0.999, "2023-11-14T22:13:20.999Z"),
        (T0 + 0.001, "2023-11-14T22:13:20.001Z"),
    ],
)
def test_rfc3339_milliseconds(ts: float, text: str) -> None:
    assert rfc3339(ts) == text


def _snapshot(**changes: object) -> AlertSnapshot:
    base = AlertSnapshot(
        id="s1.sec1.supply_low.1700000000000",
        rule="supply_low",
        station="s1",
        district="d1",
        loop="sec1",
        severity="major",
        state="firing",
        since=T0,
        pending_since=T0 - 600,
        value=38.5,
        threshold=40.0,
        message="low",
        acknowledged_by=None,
        acknowledged_at=None,
        comment=None,
        cause="heat_source",
        company="c1",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("snapshot", "threshold"),
    [
        (_snapshot(), 40.0),
        (_snapshot(threshold=math.inf), None),  # not finite: no JSON for it
        (_snapshot(threshold=math.nan), None),
    ],
)
def test_event_from_snapshot_is_the_whole_firing_event(snapshot: AlertSnapshot, threshold: float | None) -> None:
    """Re-asserted after a restart, the event must carry the threshold (annotation "threshold") and the
    cause (label "cause"): dropping either would re-send the alert with other annotations or labels."""
    event = event_from_snapshot(snapshot, T0 + 99)
    assert event == AlertEvent(
        alert_id="s1.sec1.supply_low.1700000000000",
        rule="supply_low",
        station="s1",
        district="d1",
        loop="sec1",
        severity="major",
        state="firing",
        ts=T0 + 99,
        since=T0,
        value=38.5,
        threshold=threshold,
        message="low",
        labels={"cause": "heat_source"},
        company="c1",
    )
    assert alert_labels(event)["cause"] == "heat_source"
