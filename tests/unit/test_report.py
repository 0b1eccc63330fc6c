"""Compliance report arithmetic and time parsing (pure)."""

from __future__ import annotations

import json

import pytest

from stationmon.config import parse_config_text
from stationmon.domain.report import LoopAggregates, build_report, parse_time, render

NOW = 1_764_000_000.0

CONFIG = """
[influxdb]
url = "http://127.0.0.1:8086"
api = "v1"
database = "d"
spool_dir = "/tmp/x"
[site]
name = "道里区供热"
[[stations]]
id = "s1"
name = "友谊路334号换热站"
district = "道里区"
  [[stations.loops]]
  id = "sec1"
  emitter = "floor"
  design_supply = 50.0
  design_return = 40.0
  [[stations.loops]]
  id = "sec2"
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-24h", NOW - 86400),
        ("-30m", NOW - 1800),
        ("+1h", NOW + 3600),
        ("2025-11-24T16:00:00Z", 1764000000.0),
        ("2025-11-25T00:00:00+08:00", 1764000000.0),
    ],
)
def test_parse_time(text: str, expected: float) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "-24 hours", "2025-11-25T00:00:00", ""])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text, NOW)


def test_build_report_shares_hours_and_verdicts() -> None:
    config = parse_config_text(CONFIG, "r.toml")
    aggregates = {
        ("s1", "sec1"): LoopAggregates(
            samples={"ok": 270, "noncompliant": 90, "offline": 36},
            estimated_indoor_mean=19.04,
            estimated_indoor_min=16.5,
            alerts={"supply_low": 2, "station_offline": 1},
        )
    }
    rows = build_report(config.stations, aggregates, sample_interval_s=10.0)
    assert [(r.station, r.loop) for r in rows] == [("s1", "sec1"), ("s1", "sec2")]
    r = rows[0]
    assert r.samples == 396
    assert r.compliant_share == 0.75
    assert r.hours_ok == 0.75 and r.hours_noncompliant == 0.25 and r.hours_offline == 0.1
    assert r.verdict == "noncompliant"
    assert r.mean_estimated_indoor_temp == 19.0
    assert r.alerts_fired == 3 and r.alerts_by_rule == "station_offline=1 supply_low=2"
    assert rows[1].verdict == "no data" and rows[1].compliant_share is None


def test_render_formats() -> None:
    config = parse_config_text(CONFIG, "r.toml")
    rows = build_report(config.stations, {("s1", "sec1"): LoopAggregates(samples={"ok": 100})}, 10.0)
    doc = json.loads(render(rows, "json", site=config.site, start=NOW - 3600, stop=NOW))
    assert doc["loops"][0]["verdict"] == "compliant"
    assert doc["from"].endswith("+08:00")
    csv_text = render(rows, "csv", site=config.site, start=NOW - 3600, stop=NOW)
    assert csv_text.splitlines()[0].startswith("station,station_name,district,loop")
    assert "友谊路334号换热站" in csv_text
    page = render(rows, "html", site=config.site, start=NOW - 3600, stop=NOW)
    assert "<td class=ok>compliant</td>" in page and "道里区供热" in page
