"""What replicas share through Alertmanager, pure: acknowledgement silences matched by labels, their
expiry, firing alerts' starts taken over by a restarted replica, and `notify = "alertmanager"`."""

from __future__ import annotations

from pathlib import Path

from stationmon.config import parse_config_text
from stationmon.domain.alert_wire import rfc3339, silence_body, silence_marker
from stationmon.domain.alerts import AlertBook, Condition
from stationmon.domain.settings import RulesSettings
from stationmon.domain.silences import (
    adopt_acknowledgements,
    match_acknowledgements,
    parse_ack_silences,
    parse_firing_starts,
)
from stationmon.metrics import Metrics
from stationmon.wiring import build_notifiers

T0 = 1_700_000_000.0
LABELS = {"alertname": "supply_low", "district": "d", "loop": "sec1", "severity": "warning", "station": "s1"}
COND = {("supply_low", "s1", "sec1"): Condition(30.0, 40.0, "low", "d")}


def _silence(labels: dict[str, str], state: str, starts: float, sid: str = "x1", alert_id: str = "a") -> object:
    body = silence_body(labels, starts, 3600, "wang", f"crew sent {silence_marker(alert_id)}")
    return {**body, "id": sid, "status": {"state": state}}


def _book(for_s: float = 600.0) -> AlertBook:
    return AlertBook(RulesSettings(for_s=for_s, clear_for_s=0.0))


def test_only_stationmon_silences_are_read() -> None:
    foreign = {**_silence(LABELS, "active", T0), "comment": "maintenance"}  # type: ignore[dict-item]
    regex = _silence(LABELS, "active", T0)
    regex["matchers"][0]["isRegex"] = True  # type: ignore[index]
    [ours] = parse_ack_silences([foreign, regex, _silence(LABELS, "active", T0), "junk"])
    assert (ours.by, ours.comment, ours.labels, ours.active) == ("wang", "crew sent", LABELS, True)
    assert abs(ours.starts - T0) < 0.001


def test_acknowledgement_made_elsewhere_is_adopted_and_its_expiry_ends_it() -> None:
    book = _book(for_s=0.0)
    [fired] = book.update(T0, COND)
    silences = parse_ack_silences([_silence(LABELS, "active", T0 + 5)])
    acked, ended = match_acknowledgements(silences, {fired.alert_id: LABELS})
    assert list(acked) == [fired.alert_id] and not ended
    assert adopt_acknowledgements(book, acked, ended) == 1
    [snap] = book.active_alerts()
    assert (snap.acknowledged_by, snap.comment) == ("wang", "crew sent")
    assert adopt_acknowledgements(book, acked, ended) == 0  # once
    # someone expired the silence in Alertmanager's UI: the acknowledgement is over on every replica
    acked, ended = match_acknowledgements(
        parse_ack_silences([_silence(LABELS, "expired", T0 + 5)]), {fired.alert_id: LABELS}
    )
    assert adopt_acknowledgements(book, acked, ended) == 1
    assert book.active_alerts()[0].acknowledged_at is None


def test_an_expired_silence_of_an_earlier_life_does_not_end_a_new_acknowledgement() -> None:
    book = _book(for_s=0.0)
    [fired] = book.update(T0, COND)
    assert book.acknowledge(fired.alert_id, "li", None, T0 + 100) is not None
    old = parse_ack_silences([_silence(LABELS, "expired", T0 - 86400)])
    acked, ended = match_acknowledgements(old, {fired.alert_id: LABELS})
    assert adopt_acknowledgements(book, acked, ended) == 0
    assert book.active_alerts()[0].acknowledged_by == "li"


def test_another_severity_is_another_alert() -> None:
    silences = parse_ack_silences([_silence({**LABELS, "severity": "major"}, "active", T0)])
    assert match_acknowledgements(silences, {"a": LABELS}) == ({}, {})


def test_firing_starts_from_alertmanager() -> None:
    def alert(labels: dict[str, str], starts: float, ends: float) -> dict[str, object]:
        return {"labels": labels, "startsAt": rfc3339(starts), "endsAt": rfc3339(ends)}

    now = T0 + 100
    doc = [
        alert(LABELS, T0, now + 60),
        alert({**LABELS, "severity": "major"}, T0 - 50, now + 60),  # the same alert: the earliest start
        alert({**LABELS, "station": "s2"}, T0, now - 1),  # resolved
        alert({"alertname": "station_offline", "station": "s3", "loop": "-"}, T0 + 7, now + 60),
        alert({"alertname": "Watchdog"}, T0, now + 60),  # not ours
    ]
    assert parse_firing_starts(doc, now) == {
        ("supply_low", "s1", "sec1"): T0 - 50,
        ("station_offline", "s3", None): T0 + 7,
    }


def test_a_restarted_replica_fires_at_once_with_the_start_alertmanager_has() -> None:
    book = _book(for_s=600.0)
    book.firing_elsewhere = {("supply_low", "s1", "sec1"): T0 - 30 * 3600}
    [event] = book.update(T0, COND)  # no `for` wait: the other replica saw it pass
    assert (event.state, event.since) == ("firing", T0 - 30 * 3600)
    assert event.severity == "major"  # 24 h escalation kept, not started over
    assert event.alert_id.endswith(str(round((T0 - 30 * 3600) * 1000)))
    assert not book.firing_elsewhere  # used once
    # without the hint the alert waits for `for`, as before
    assert _book(for_s=600.0).update(T0, COND) == []


def test_notify_alertmanager_leaves_webhooks_and_mqtt_to_alertmanager(tmp_path: Path) -> None:
    base = f"""
[influxdb]
url = "http://127.0.0.1:8086"
api = "v1"
database = "x"
spool_dir = "{tmp_path}"
[mqtt]
url = "mqtt://127.0.0.1:1883"
[alerting.mqtt]
enabled = true
[[alerting.alertmanager]]
url = "http://127.0.0.1:9093"
[[alerting.webhook]]
url = "http://127.0.0.1:9999/hook"
[[stations]]
id = "s1"
"""
    kinds = [n.kind for n in build_notifiers(parse_config_text(base), Metrics())]
    assert sorted(kinds) == ["alertmanager", "mqtt", "webhook"]
    cfg = parse_config_text(base + '[cluster]\nnotify = "alertmanager"\n')
    assert [n.kind for n in build_notifiers(cfg, Metrics())] == ["alertmanager"]
