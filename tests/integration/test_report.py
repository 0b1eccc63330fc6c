"""`stationmon report` against the real InfluxDB: a known season written point by point, and every number of
CONTRACT section 8 checked against arithmetic done here by hand.

The season (local time, Asia/Shanghai; hour h counts from 2025-12-01 00:00; the report covers h 0..72):
inspection hours exclude 10:00-14:00, so each day has 20 inspection hours; points every 10 minutes.

station A (company C1, district D1, 10000 m², 100 households, loops a1 a2; outdoor -10 °C day 1, -20 °C day 2)
  a1  h 0-10  ok, 4 sensors, 1 below 20 °C, none below 16; beyond design h 0-5
      h 10-14 noncompliant, all 4 below 16 (outside inspection hours: counts for status, not for households)
      h 14-20 noncompliant, 2 of 4 below 20, 1 below 16
      h 20-24 gap (no points)
      h 24-30 sensor_fault
      h 30-48 ok on the estimate, 21 °C
  a2  h 0-48 ok on the estimate, 19 °C on day 1 and 22 °C on day 2, written WITHOUT interval_s (evaluate_every)
station B (company C1, district D2, 6000 m², 60 households, loop b1; outdoor +25 °C h 0-12, then -5 °C)
  b1  h 0-40 noncompliant, 10 sensors, 5 below 20, 2 below 16; h 40-48 offline
      primary_shortage open from before the period until h 3, and again h 20-26
station C (company C2, district D2, no area, no households, loop c1; no outdoor sensor)
  c1  h 0-24 ok on the estimate at exactly 20 °C, h 24-48 ok at 18 °C
Nothing is written after h 48. fee_per_m2 31 over a 31-day season (12-01..12-31): the daily fee is 1 CNY/m².
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from stationmon.cli import main
from stationmon.cli.report import make_report
from stationmon.config import load_config
from stationmon.domain.lineproto import encode_line
from stationmon.domain.report import parse_time
from stationmon.errors import StorageError
from tests.helpers import write_config
from tests.v2_translator import V2Translator

H = 3600.0
T0 = parse_time("2025-12-01", 0.0, "Asia/Shanghai")  # local midnight, 2025-11-30T16:00:00Z
STEP = 600.0


def _inspection(ts: float) -> bool:
    local_hour = int((ts - T0) // H) % 24
    return not 10 <= local_hour < 14


def _status(station: str, loop: str, ts: float, fields: dict[str, Any], company: str, district: str) -> str:
    fields = {"inspection_hour": _inspection(ts), "beyond_design": False, "setback": False, **fields}
    tags = {"station": station, "loop": loop, "company": company, "district": district}
    return encode_line("loop_status", tags, fields, round(ts * 1000))


def _block(h0: float, h1: float) -> list[float]:
    n = round((h1 - h0) * H / STEP)
    return [T0 + h0 * H + i * STEP for i in range(n)]


def _sensors(n: int, below: int, refund: int) -> dict[str, Any]:
    return {"indoor_sensors": float(n), "indoor_below_target": float(below), "indoor_below_refund": float(refund)}


def _loop_lines() -> list[str]:
    lines = []
    a1 = [
        (0, 5, {"status": "ok", "verdict": "sensors", **_sensors(4, 1, 0), "beyond_design": True}),
        (5, 10, {"status": "ok", "verdict": "sensors", **_sensors(4, 1, 0)}),
        (10, 14, {"status": "noncompliant", "verdict": "sensors", **_sensors(4, 4, 4)}),
        (14, 20, {"status": "noncompliant", "verdict": "sensors", **_sensors(4, 2, 1)}),
        (24, 30, {"status": "sensor_fault", "verdict": "none"}),
        (30, 48, {"status": "ok", "verdict": "estimate", "estimated_indoor_temp": 21.0}),
    ]
    for h0, h1, fields in a1:
        lines += [_status("sa", "a1", ts, {**fields, "interval_s": STEP}, "C1", "D1") for ts in _block(h0, h1)]
    for h0, h1, est in ((0, 24, 19.0), (24, 48, 22.0)):  # no interval_s: written before it existed
        fields = {"status": "ok", "verdict": "estimate", "estimated_indoor_temp": est}
        lines += [_status("sa", "a2", ts, fields, "C1", "D1") for ts in _block(h0, h1)]
    b1 = [
        (0, 40, {"status": "noncompliant", "verdict": "sensors", **_sensors(10, 5, 2)}),
        (40, 48, {"status": "offline", "verdict": "none"}),
    ]
    for h0, h1, fields in b1:
        lines += [_status("sb", "b1", ts, {**fields, "interval_s": STEP}, "C1", "D2") for ts in _block(h0, h1)]
    for h0, h1, est in ((0, 24, 20.0), (24, 48, 18.0)):
        fields = {"status": "ok", "verdict": "estimate", "estimated_indoor_temp": est, "interval_s": STEP}
        lines += [_status("sc", "c1", ts, fields, "C2", "D2") for ts in _block(h0, h1)]
    return lines


def _outdoor_lines() -> list[str]:
    lines = []
    for station, spans in (("sa", ((0, 24, -10.0), (24, 48, -20.0))), ("sb", ((0, 12, 25.0), (12, 48, -5.0)))):
        for h0, h1, temp in spans:
            for i in range(round((h1 - h0) * 2)):
                ts = T0 + h0 * H + i * 1800
                tags = {"station": station, "source": "modbus"}
                lines.append(encode_line("telemetry", tags, {"outdoor_temp": temp}, round(ts * 1000)))
    return lines


def _alert(station: str, loop: str, rule: str, h: float, state: str, alert_id: str = "") -> str:
    tags = {"station": station, "loop": loop, "rule": rule, "severity": "warning"}
    fields: dict[str, Any] = {"state": state, "message": f"{rule} {state}"}
    if alert_id:
        fields["alert_id"] = alert_id
    return encode_line("alert_events", tags, fields, round((T0 + h * H) * 1000))


def _alert_lines() -> list[str]:
    return [
        # a1: acknowledged after 1 h, resolved after 4 h (events without alert_id, as old stationmon wrote them)
        _alert("sa", "a1", "supply_low", 1, "firing"),
        _alert("sa", "a1", "supply_low", 2, "acknowledged"),
        _alert("sa", "a1", "supply_low", 5, "resolved"),
        # a1: acknowledged after 3 h, escalated after 24 h, resolved after 30 h
        _alert("sa", "a1", "indoor_low", 10, "firing", "A.a1.indoor_low.1"),
        _alert("sa", "a1", "indoor_low", 13, "acknowledged", "A.a1.indoor_low.1"),
        _alert("sa", "a1", "indoor_low", 34, "escalated", "A.a1.indoor_low.1"),
        _alert("sa", "a1", "indoor_low", 40, "resolved", "A.a1.indoor_low.1"),
        # a2: fired at h 30, never resolved: open 42 h at the end of the period
        _alert("sa", "a2", "delta_t_low", 30, "firing", "A.a2.delta_t_low.1"),
        # B: a shortage that began before the period (not counted), and one acknowledged at 1 h, resolved at 6 h
        _alert("sb", "", "primary_shortage", -5, "firing", "B..primary_shortage.0"),
        _alert("sb", "", "primary_shortage", 3, "resolved", "B..primary_shortage.0"),
        _alert("sb", "", "primary_shortage", 20, "firing", "B..primary_shortage.1"),
        _alert("sb", "", "primary_shortage", 20, "firing", "B..primary_shortage.1"),  # an HA pair wrote it twice
        _alert("sb", "", "primary_shortage", 21, "acknowledged", "B..primary_shortage.1"),
        _alert("sb", "", "primary_shortage", 26, "resolved", "B..primary_shortage.1"),
        # c1: fired at h 1, never resolved: open 71 h
        _alert("sc", "c1", "sensor_fault", 1, "firing", "C.c1.sensor_fault.1"),
    ]


def _store(influxdb: Any, db: str) -> None:
    lines = _loop_lines() + _outdoor_lines() + _alert_lines()
    for i in range(0, len(lines), 5000):
        influxdb.write(db, "\n".join(lines[i : i + 5000]))


CONFIG = """
[site]
name = "测试供热区"
timezone = "Asia/Shanghai"
indoor_target = 20.0
indoor_refund_below = 16.0
inspection_exclude = ["10:00-14:00"]
fee_per_m2 = 31.0
[rules]
evaluate_every = "10m"
season_start = "12-01"
season_end = "12-31"
[influxdb]
url = "{url}"
{influx}
spool_dir = "{tmp}/spool"
[[stations]]
id = "sa"
company = "C1"
district = "D1"
area_m2 = 10000
households = 100
  [[stations.loops]]
  id = "a1"
  [[stations.loops]]
  id = "a2"
[[stations]]
id = "sb"
company = "C1"
district = "D2"
area_m2 = 6000
households = 60
  [[stations.loops]]
  id = "b1"
[[stations]]
id = "sc"
company = "C2"
district = "D2"
  [[stations.loops]]
  id = "c1"
"""


def _config(tmp_path: Path, url: str, db: str, api: str = "v1", name: str = "stationmon.toml") -> Path:
    influx = (
        f'api = "v1"\ndatabase = "{db}"' if api == "v1" else f'api = "v2"\norg = "o"\nbucket = "{db}"\ntoken_env = "T"'
    )
    return write_config(tmp_path, CONFIG.format(url=url, influx=influx, tmp=tmp_path), name)


# ---- the expected figures, by hand ----------------------------------------------------------------------
PERIOD = 72.0  # hours per loop
INSPECTION_DAY = 20.0  # inspection hours per day
# a1: ok 10 + 18, noncompliant 4 + 6; judged inspection hours: 10 (h0-10) + 6 (h14-20) + 18 - 4 (h34-38 excluded)
A1_JUDGED, A1_GOOD = 10 + 6 + 14, 10 * 3 / 4 + 6 * 2 / 4 + 14
A1_BELOW_T, A1_BELOW_R = 10 * 1 / 4 + 6 * 2 / 4, 6 * 1 / 4  # sensor-share hours, inspection only
# a2: ok 48; judged inspection 48 - 8; good only on day 2 (22 °C): 24 - 4
A2_JUDGED, A2_GOOD = 48 - 8, 24 - 4
# b1: noncompliant 40; judged inspection 40 - 8 = 32, half the sensors warm
B1_JUDGED, B1_GOOD = 32, 32 * 5 / 10
B1_BELOW_T, B1_BELOW_R = 32 * 5 / 10, 32 * 2 / 10
# c1: ok 48; judged inspection 40; good on day 1 only (20 °C is at the target): 20
C1_JUDGED, C1_GOOD = 40, 20
DAILY_FEE_A = 31.0 * (10000 / 100) / 31  # CNY per household per day
DAILY_FEE_B = 31.0 * (6000 / 60) / 31
A_DAYS_T, A_DAYS_R = A1_BELOW_T / INSPECTION_DAY * 50, A1_BELOW_R / INSPECTION_DAY * 50  # a1 has half of A's homes
B_DAYS_T, B_DAYS_R = B1_BELOW_T / INSPECTION_DAY * 60, B1_BELOW_R / INSPECTION_DAY * 60
A_REFUND = DAILY_FEE_A * (0.5 * (A_DAYS_T - A_DAYS_R) + A_DAYS_R)
B_REFUND = DAILY_FEE_B * (0.5 * (B_DAYS_T - B_DAYS_R) + B_DAYS_R)

EXPECTED_STATION = {
    "sa": {
        "loops": 2, "area_m2": 10000, "households": 100,
        "monitored_share": (38 + 48) / (2 * PERIOD),
        "compliant_hours": 28 + 48, "noncompliant_hours": 10, "unknown_hours": 2 * PERIOD - 86,
        "beyond_design_hours": 5,
        "compliance_rate": (A1_GOOD + A2_GOOD) / (A1_JUDGED + A2_JUDGED),  # equal areas per loop
        "household_days_below_target": A_DAYS_T, "household_days_below_refund": A_DAYS_R,
        "refund_estimate_cny": A_REFUND, "heat_source_hours": 0,
        "alerts": 3, "ack_p50_h": (1 + 3) / 2, "ack_max_h": 3, "resolve_p50_h": (4 + 30) / 2, "resolve_max_h": 30,
        "past_24h": 2, "past_48h": 0,  # indoor_low (30 h) and delta_t_low (open 72 - 30 = 42 h)
        "outdoor_mean": (-10 * 24 - 20 * 24) / 48, "degree_hours": 30 * 24 + 40 * 24,
    },
    "sb": {
        "loops": 1, "area_m2": 6000, "households": 60,
        "monitored_share": 40 / PERIOD,
        "compliant_hours": 0, "noncompliant_hours": 40, "unknown_hours": PERIOD - 40, "beyond_design_hours": 0,
        "compliance_rate": B1_GOOD / B1_JUDGED,
        "household_days_below_target": B_DAYS_T, "household_days_below_refund": B_DAYS_R,
        "refund_estimate_cny": B_REFUND,
        "heat_source_hours": 3 + 6,  # shortage h 0-3 (open at the start) and h 20-26, all noncompliant
        "alerts": 1, "ack_p50_h": 1, "ack_max_h": 1, "resolve_p50_h": 6, "resolve_max_h": 6,
        "past_24h": 0, "past_48h": 0,
        "outdoor_mean": (25 * 12 - 5 * 36) / 48, "degree_hours": 25 * 36,
    },
    "sc": {
        "loops": 1, "area_m2": None, "households": None,
        "monitored_share": 48 / PERIOD,
        "compliant_hours": 48, "noncompliant_hours": 0, "unknown_hours": PERIOD - 48, "beyond_design_hours": 0,
        "compliance_rate": C1_GOOD / C1_JUDGED,
        "household_days_below_target": None, "household_days_below_refund": None, "refund_estimate_cny": None,
        "heat_source_hours": 0,
        "alerts": 1, "ack_p50_h": None, "ack_max_h": None, "resolve_p50_h": None, "resolve_max_h": None,
        "past_24h": 1, "past_48h": 1,  # open 72 - 1 = 71 h
        "outdoor_mean": None, "degree_hours": None,
    },
}  # fmt: skip

EXPECTED_COMPANY = {
    "C1": {
        "loops": 3, "area_m2": 16000, "households": 160,
        "monitored_share": (86 + 40) / (3 * PERIOD),
        "compliant_hours": 76, "noncompliant_hours": 50, "unknown_hours": 3 * PERIOD - 126, "beyond_design_hours": 5,
        # area-weighted: 5000 m² per loop of A, 6000 m² for b1
        "compliance_rate": (5000 * A1_GOOD + 5000 * A2_GOOD + 6000 * B1_GOOD)
        / (5000 * A1_JUDGED + 5000 * A2_JUDGED + 6000 * B1_JUDGED),
        "household_days_below_target": A_DAYS_T + B_DAYS_T, "household_days_below_refund": A_DAYS_R + B_DAYS_R,
        "refund_estimate_cny": A_REFUND + B_REFUND, "heat_source_hours": 9,
        "alerts": 4, "ack_p50_h": 1, "ack_max_h": 3, "resolve_p50_h": 6, "resolve_max_h": 30,  # acks 1 3 1; 4 30 6
        "past_24h": 2, "past_48h": 0,
        "outdoor_mean": (-720 + 120) / 96, "degree_hours": (1680 + 900) / 2,  # degree-hours: the stations' mean
    },
    "C2": {**EXPECTED_STATION["sc"]},
}  # fmt: skip


def _check(row: dict[str, Any], expected: dict[str, Any], what: str) -> None:
    for key, value in expected.items():
        got = row[key]
        if value is None:
            assert got is None, f"{what} {key}: {got} (expected none)"
        else:
            assert got == pytest.approx(value, abs=0.011), f"{what} {key}: {got} (expected {value})"


def _by(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {str(r[key]): r for r in rows}


@pytest.mark.parametrize(("rollup", "rp"), [("off", ""), ("use", ""), ("use", "rollups")])
def test_every_section_8_number_by_station_and_company(rollup, rp, tmp_path, influxdb, influx_db):  # type: ignore[no-untyped-def]
    _store(influxdb, influx_db)
    if rp:  # rollups in their own retention policy, one shard a year
        influxdb.post_query(
            f'CREATE RETENTION POLICY "{rp}" ON "{influx_db}" DURATION INF REPLICATION 1 SHARD DURATION 52w'
        )
    config = load_config(str(_config(tmp_path, influxdb.url, influx_db)))
    start, stop = T0, T0 + PERIOD * H
    now = stop + H  # the last hour is not settled: read raw even when rollups are used
    for attempt in range(2 if rollup == "use" else 1):  # the second run reads the rollups the first one stored
        tables = asyncio.run(make_report(config, start, stop, by="station", now=now, rollup=rollup, rollup_rp=rp))
        stations = _by(tables.levels["station"], "station")
        for sid, expected in EXPECTED_STATION.items():
            _check(stations[sid], expected, f"station {sid} (rollup {rollup}, run {attempt})")
        companies = _by(tables.levels["company"], "company")
        for cid, expected in EXPECTED_COMPANY.items():
            _check(companies[cid], expected, f"company {cid} (rollup {rollup}, run {attempt})")
        if rollup == "use":
            written = (tables.meta["rollup_hours_written"], tables.meta["rollup_days_written"])
            # two whole days and 23 settled hours of day 3 on the first run; nothing on the second
            assert written == ((48 + 23, 2) if attempt == 0 else (0, 0))
    if rp:
        stored = influxdb.query(influx_db, f'SELECT count("ok") FROM "{rp}"."report_loop_1d"')
        assert stored and stored[0]["count"] == 2 * 3  # two days of the three loops with ok time
    loops = tables.levels["loop"]
    assert [(r["station"], r["loop"]) for r in loops] == [("sa", "a1"), ("sa", "a2"), ("sb", "b1"), ("sc", "c1")]
    a1 = loops[0]
    assert (a1["compliant_hours"], a1["noncompliant_hours"], a1["unknown_hours"]) == (28, 10, PERIOD - 38)
    assert a1["compliance_rate"] == pytest.approx(A1_GOOD / A1_JUDGED, abs=1e-4)
    assert a1["alerts"] == 2 and loops[1]["alerts"] == 1 and loops[2]["alerts"] == 0  # B's is station-level
    districts = _by(tables.levels["district"], "district")
    assert sorted(districts) == ["D1", "D2"]
    assert (districts["D1"]["loops"], districts["D2"]["loops"]) == (2, 2)
    assert (districts["D2"]["alerts"], districts["D2"]["compliant_hours"]) == (2, 48)
    # D2 mixes a station without area: compliance is weighted by loop time there
    assert districts["D2"]["compliance_rate"] == pytest.approx((B1_GOOD + C1_GOOD) / (B1_JUDGED + C1_JUDGED), abs=1e-4)
    # the site as one row (the html summary's city figures): the sum of its districts where figures add up
    total, both = tables.total, list(districts.values())
    assert total["loops"] == 4 and total["alerts"] == sum(d["alerts"] for d in both)  # type: ignore[misc]
    for key in ("compliant_hours", "noncompliant_hours", "unknown_hours", "heat_source_hours"):
        assert total[key] == pytest.approx(sum(d[key] for d in both), abs=0.02), key  # type: ignore[misc]
    judged_h = total["compliant_hours"] + total["noncompliant_hours"]  # type: ignore[operator]
    assert total["monitored_share"] == pytest.approx(judged_h / (4 * PERIOD), abs=1e-4)


def test_late_points_after_a_rollup_are_seen_with_rebuild(tmp_path, influxdb, influx_db):  # type: ignore[no-untyped-def]
    _store(influxdb, influx_db)
    config = load_config(str(_config(tmp_path, influxdb.url, influx_db)))
    start, stop, now = T0, T0 + PERIOD * H, T0 + PERIOD * H + 10 * H
    before = asyncio.run(make_report(config, start, stop, now=now)).levels["station"][0]["compliant_hours"]
    # a spool replays one more hour of a1 (h 20-21, in the gap) after the rollups were stored
    late = [_status("sa", "a1", ts, {"status": "ok", "interval_s": STEP}, "C1", "D1") for ts in _block(20, 21)]
    influxdb.write(influx_db, "\n".join(late))
    same = asyncio.run(make_report(config, start, stop, now=now)).levels["station"][0]["compliant_hours"]
    rebuilt = asyncio.run(make_report(config, start, stop, now=now, rollup="rebuild")).levels["station"][0]
    assert (before, same, rebuilt["compliant_hours"]) == (76, 76, 77)


def test_v2_influxql_compatibility_with_a_token(tmp_path, influxdb, influx_db, monkeypatch):  # type: ignore[no-untyped-def]
    from tests.servers import free_port

    _store(influxdb, influx_db)
    monkeypatch.setenv("T", "s3cret")
    rollups = influx_db + "_rollups"
    influxdb.create_database(rollups)

    async def run() -> tuple[Any, V2Translator, str]:
        translator = V2Translator(influxdb.url, token="s3cret", org="o")
        await translator.start(free_port())
        try:
            config = load_config(str(_config(tmp_path, translator.url, influx_db, "v2")))
            stop = T0 + PERIOD * H
            tables = await make_report(config, T0, stop, by="company", now=stop + H)
            # rollups in their own bucket (one with long shards): the same figures
            in_bucket = await make_report(config, T0, stop, by="company", now=stop + H, rollup_rp=rollups)
            assert in_bucket.levels == tables.levels
            monkeypatch.setenv("T", "wrong")
            wrong = load_config(str(_config(tmp_path, translator.url, influx_db, "v2", "wrong.toml")))
            try:
                await make_report(wrong, T0, stop, now=stop + H)
            except StorageError as exc:
                return tables, translator, str(exc)
            return tables, translator, ""
        finally:
            await translator.stop()

    tables, translator, refused = asyncio.run(run())
    assert translator.queries and len(translator.seen) > 0  # read through /query, rollups written via /api/v2/write
    companies = _by(tables.levels["company"], "company")
    for cid, expected in EXPECTED_COMPANY.items():
        _check(companies[cid], expected, f"company {cid} over v2")
    assert "HTTP 401" in refused
    assert influxdb.query(rollups, 'SELECT count("ok") FROM "report_loop_1d"')[0]["count"] == 2 * 3


def test_cli_csv_json_and_exit_codes(tmp_path, influxdb, influx_db, capsys):  # type: ignore[no-untyped-def]
    _store(influxdb, influx_db)
    config = str(_config(tmp_path, influxdb.url, influx_db))
    period = ["--from", "2025-12-01", "--to", "2025-12-04"]
    assert main(["report", "-c", config, *period, "--by", "company", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["by"] == "company" and [r["company"] for r in doc["rows"]] == ["C1", "C2"]
    _check(doc["rows"][0], EXPECTED_COMPANY["C1"], "company C1 (json)")
    out = tmp_path / "r.csv"
    assert main(["report", "-c", config, *period, "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["station"] for r in rows] == ["sa", "sb", "sc"]
    assert float(rows[1]["heat_source_hours"]) == 9 and rows[2]["refund_estimate_cny"] == ""
    assert main(["report", "-c", config, "--from", "yesterday"]) == 2
    assert "bad time 'yesterday'" in capsys.readouterr().err
    half_hour = ["--from", "2025-12-02T10:20:00Z", "--to", "2025-12-02T10:50:00Z"]
    assert main(["report", "-c", config, *half_hour]) == 2  # no whole hour
    assert "no whole hour" in capsys.readouterr().err
    dead = str(_config(tmp_path, "http://127.0.0.1:9", influx_db, name="dead.toml"))
    assert main(["report", "-c", dead, *period]) == 1
    assert "stationmon report: InfluxDB failed: http://127.0.0.1:9/query" in capsys.readouterr().err


def test_cli_html_xlsx_and_the_season(tmp_path, influx_db, influxdb, capsys):  # type: ignore[no-untyped-def]
    import openpyxl

    config = str(_config(tmp_path, influxdb.url, influx_db))
    _store(influxdb, influx_db)
    period = ["--from", "2025-12-01", "--to", "2025-12-04", "--rollup", "off"]
    html_out, xlsx_out = tmp_path / "r.html", tmp_path / "r.xlsx"
    assert main(["report", "-c", config, *period, "--format", "html", "-o", str(html_out)]) == 0
    page = html_out.read_text(encoding="utf-8")
    assert "室温合格率" in page and "sa" in page and "C1" in page
    assert main(["report", "-c", config, *period, "--by", "company", "--format", "xlsx", "-o", str(xlsx_out)]) == 0
    book = openpyxl.load_workbook(xlsx_out)
    assert len(book.sheetnames) == 5  # company (asked) first, then the other levels, then "about"
    first = book.worksheets[0]
    assert {first.cell(row=r, column=1).value for r in range(2, first.max_row + 1)} == {"C1", "C2"}
    assert main(["report", "-c", config, *period, "--format", "html", "--lang", "en", "-o", str(html_out)]) == 0
    assert "compliance rate" in html_out.read_text(encoding="utf-8").lower()
    assert main(["report", "-c", config, "--from", "season", "--format", "json", "--rollup", "off"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["from"].startswith(f"{time.gmtime().tm_year - 1}-12-01") or doc["from"].startswith(
        f"{time.gmtime().tm_year}-12-01"
    )
