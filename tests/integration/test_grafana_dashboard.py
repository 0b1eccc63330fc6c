"""Every query of the shipped Grafana dashboards runs against the real InfluxDB and finds stationmon's data.

Queries are sent as Grafana sends them: `$timeFilter` and `$__interval` replaced, variables formatted the way
Grafana's InfluxQL data source formats them (a multi-value or "All"-able variable as an escaped regex
alternation `(a|b)`, "All" as its allValue `.*`). The key figures are checked against numbers worked out by hand
from the points written here; Grafana-side transformations (merge, grouping to matrix) are replayed on the rows.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

import pytest

from stationmon.domain.alerts import make_alert_id
from stationmon.domain.lineproto import encode_alert_event, encode_line, encode_loop_status
from stationmon.domain.model import AlertEvent
from tests.integration.test_grafana_provisioning import all_panels, load_dashboards

A, B = "道里热力", "南岗热力"  # two heating companies
D1, D2 = "道里区", "南岗区"
STEP_S = 300  # one loop_status point per loop every 5 minutes
N_POINTS = 24
ALL = "$__all"

# dashboard uid -> variable selections to run every query with; the first one must find data in every panel
SELECTIONS: dict[str, list[dict[str, Any]]] = {
    "stationmon-city": [
        {"district": ALL, "company": ALL},
        {"district": [D1, D2], "company": [A, B]},
        {"district": [D2], "company": [B]},
    ],
    "stationmon-company": [{"company": A}, {"company": B}],
    "stationmon-district": [
        {"company": ALL, "district": ALL, "station": ALL, "loop": ALL},
        {"company": ALL, "district": ALL, "station": ["s2"], "loop": ALL},  # the status page's link
        {"company": [A], "district": [D1], "station": ["s1", "s2"], "loop": ["sec1"]},
    ],
}


def _escape_regex(text: str) -> str:
    # Grafana's escapeRegex
    return re.sub(r"([\\^$*+?.()|\[\]{}/])", r"\\\1", text)


def grafana_format(variable: dict[str, Any], value: str | list[str]) -> str:
    """A variable's value as Grafana's InfluxQL data source interpolates it (interpolateQueryExpr)."""
    if value == ALL:
        return str(variable["allValue"])
    if not variable.get("multi") and not variable.get("includeAll"):
        return value if isinstance(value, str) else value[0]
    values = [value] if isinstance(value, str) else value
    escaped = [_escape_regex(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def grafana_expand(query: str, dash: dict[str, Any], selection: dict[str, Any]) -> str:
    """The query as Grafana sends it for a relative range of 6 hours at a 1-minute interval."""
    query = query.replace("$timeFilter", "time > now() - 6h").replace("$__interval", "1m")
    variables = sorted(dash["templating"]["list"], key=lambda v: -len(v["name"]))
    for v in variables:
        text = grafana_format(v, selection[v["name"]])
        query = query.replace("${" + v["name"] + "}", text).replace("$" + v["name"], text)
    assert "$" not in query.replace("$/", ""), query  # nothing left for Grafana to fill in
    return query


def queries(dash: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, refId, query) for every panel target, variable and annotation."""
    out = [(f"panel {p['title']}", t["refId"], t["query"]) for p in all_panels(dash["panels"]) for t in p["targets"]]
    out += [(f"variable {v['name']}", "", v["query"]) for v in dash["templating"]["list"]]
    out += [(f"annotation {a['name']}", "", a["query"]) for a in dash["annotations"]["list"]]
    return out


def _point(station: str, district: str, company: str, loop: str, ts: float, status: str, **kw: Any) -> str:
    """One loop_status line as the evaluator writes it."""
    flags = {"beyond_design": False, "setback": False, "inspection_hour": kw.pop("inspection", True)}
    judged = status in ("ok", "noncompliant")
    return encode_loop_status(
        station, district, loop, ts, status=status, company=company, compliant=status == "ok" if judged else None,
        required_supply_temp=40.0, required_return_temp=33.0, estimated_indoor_temp=18.5, delta_t=6.0,
        verdict="sensors" if kw.get("indoor_sensors") else "estimate", flags=flags, **kw,
    )  # fmt: skip


def _loop_status_lines(base: float) -> list[str]:
    lines = []
    for k in range(N_POINTS):  # k = 0 is the latest point
        ts = base - k * STEP_S
        lines.append(_point("s1", D1, A, "sec1", ts, "ok", indoor_sensors=10, indoor_below_target=1))
        if k < 12:  # s2/sec1 turned noncompliant an hour ago
            cold = {"indoor_sensors": 8, "indoor_below_target": 4, "indoor_below_refund": 2}
            lines.append(_point("s2", D1, A, "sec1", ts, "noncompliant", **cold))
        else:
            lines.append(_point("s2", D1, A, "sec1", ts, "ok", indoor_sensors=8))
        lines.append(_point("s2", D1, A, "sec2", ts, "offline"))
        lines.append(_point("s3", D2, B, "sec1", ts, "noncompliant" if k < 18 else "ok"))
        if k < 6:  # cold midday hours excluded from the inspection, before the period above: they must not count
            earlier = base - (N_POINTS + k) * STEP_S
            cold = {"indoor_sensors": 10, "indoor_below_target": 10, "indoor_below_refund": 10}
            lines.append(_point("s1", D1, A, "sec1", earlier, "noncompliant", inspection=False, **cold))
    return lines


def _telemetry_lines(base: float) -> list[str]:
    lines = []
    for k in range(N_POINTS):
        ts_ms = round((base - k * STEP_S) * 1000)
        for station, district, company in (("s1", D1, A), ("s2", D1, A), ("s3", D2, B)):
            tags = {"station": station, "district": district, "company": company, "source": "modbus"}
            lines.append(encode_line("telemetry", tags, {"outdoor_temp": -12.0}, ts_ms))
            loop_fields = {"supply_temp": 41.0, "return_temp": 34.0, "flow": 12.0, "supply_pressure": 0.4}
            lines.append(encode_line("telemetry", {**tags, "loop": "sec1"}, loop_fields, ts_ms))
            sensor_tags = {**tags, "loop": "sec1", "sensor": "f301", "source": "mqtt"}
            lines.append(encode_line("telemetry", sensor_tags, {"indoor_temp": 19.0}, ts_ms))
    return lines


# alert_id -> (station, district, company, loop, rule, [(minutes before base, state, severity)])
ALERTS = {
    "indoor": ("s2", D1, A, "sec1", "indoor_low", [(100, "firing", "major"), (80, "acknowledged", "major"),
                                                   (10, "resolved", "major")]),
    "offline": ("s2", D1, A, None, "station_offline", [(60, "firing", "critical")]),
    "delta": ("s1", D1, A, "sec1", "delta_t_low", [(50, "firing", "warning"), (20, "escalated", "major")]),
    "supply": ("s3", D2, B, "sec1", "supply_low", [(80, "firing", "warning"), (30, "resolved", "warning")]),
}  # fmt: skip


def _alert_lines(base: float) -> tuple[list[str], dict[str, str]]:
    lines, ids = [], {}
    for key, (station, district, company, loop, rule, events) in ALERTS.items():
        since = base - events[0][0] * 60
        ids[key] = make_alert_id(rule, station, loop, since)
        for minutes, state, severity in events:
            event = AlertEvent(
                alert_id=ids[key], rule=rule, station=station, district=district, loop=loop, severity=severity,
                state=state, ts=base - minutes * 60, since=since, value=15.0, threshold=18.0,
                message=f"{rule} at {station}", company=company,
            )  # fmt: skip
            lines.append(encode_alert_event(event))
    return lines, ids


@pytest.fixture
def heating_db(influxdb, influx_db):  # type: ignore[no-untyped-def]
    """A database with two companies' stations: loop_status, telemetry and alert_events of the last hours."""
    base = math.floor(time.time() / 60) * 60 - 60
    alert_lines, ids = _alert_lines(base)
    lines = _loop_status_lines(base) + _telemetry_lines(base) + alert_lines
    influxdb.write(influx_db, "\n".join(lines))
    return influx_db, ids


def _dashboard(uid: str) -> dict[str, Any]:
    return next(d for d in load_dashboards().values() if d["uid"] == uid)


def run(influxdb: Any, db: str, uid: str, title: str, ref: str, selection: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one panel target of one dashboard, as Grafana would get them."""
    dash = _dashboard(uid)
    panel = next(p for p in all_panels(dash["panels"]) if p["title"] == title)
    query = next(t["query"] for t in panel["targets"] if t["refId"] == ref)
    return influxdb.query(db, grafana_expand(query, dash, selection))  # type: ignore[no-any-return]


def test_every_dashboard_query_runs_and_every_panel_finds_data(influxdb, heating_db):  # type: ignore[no-untyped-def]
    db, _ = heating_db
    for dash in load_dashboards().values():
        for i, selection in enumerate(SELECTIONS[dash["uid"]]):
            found: dict[str, int] = {}
            for what, _ref, query in queries(dash):
                rows = influxdb.query(db, grafana_expand(query, dash, selection))  # raises on an InfluxQL error
                found[what] = found.get(what, 0) + len(rows)
            empty = [what for what, n in found.items() if n == 0]
            if i == 0:
                assert empty == [], f"{dash['uid']}: panels, variables or annotations that found nothing: {empty}"


def test_city_compliance_rates_by_hand(influxdb, heating_db):  # type: ignore[no-untyped-def]
    db, _ = heating_db
    city, every = "stationmon-city", SELECTIONS["stationmon-city"][0]
    # A: s1 24 ok; s2/sec1 12 ok + 12 noncompliant; the 6 noncompliant points outside inspection hours don't count
    (overall,) = run(influxdb, db, city, "Compliance rate (loop time)", "A", every)
    assert overall["compliance rate"] == pytest.approx((36 + 6) / (48 + 24))
    by_company = {r["company"]: r["compliance rate"] for r in run(influxdb, db, city, "Company ranking", "A", every)}
    assert by_company == pytest.approx({A: 36 / 48, B: 6 / 24})
    sensors = {r["company"]: r["sensors at target"] for r in run(influxdb, db, city, "Company ranking", "B", every)}
    assert sensors == pytest.approx({A: 1 - (24 + 48) / (240 + 192)})  # B's station has no household sensors
    coverage = {r["company"]: r["monitored share"] for r in run(influxdb, db, city, "Company ranking", "C", every)}
    assert coverage == pytest.approx({A: (48 + 6) / (48 + 6 + 24), B: 1.0})  # s2/sec2 is offline
    series = run(influxdb, db, city, "Compliance rate by district", "A", every)
    assert {r["district"] for r in series} == {D1, D2}
    assert all(0 <= r["compliance rate"] <= 1 for r in series)
    # a company without any ok point is at 0, not missing
    (only_b,) = run(influxdb, db, city, "Compliance rate (loop time)", "A", {"district": [D2], "company": [B]})
    sel_b = {"district": ALL, "company": [B]}
    assert only_b["compliance rate"] == pytest.approx(0.25)
    assert {r["compliance rate"] for r in run(influxdb, db, city, "Compliance rate by company", "A", sel_b)} == {0, 1}


def test_city_loops_and_alerts_now(influxdb, heating_db):  # type: ignore[no-untyped-def]
    db, _ = heating_db
    city, every = "stationmon-city", SELECTIONS["stationmon-city"][0]
    rows = run(influxdb, db, city, "Loops noncompliant or offline now", "A", every)
    assert {(r["station"], r["loop"], r["status"]) for r in rows} == {
        ("s2", "sec1", "noncompliant"),
        ("s2", "sec2", "offline"),
        ("s3", "sec1", "noncompliant"),
    }
    counts = [run(influxdb, db, city, "Loops noncompliant / offline now", ref, every) for ref in "AB"]
    assert [c[0]["noncompliant" if i == 0 else "offline"] for i, c in enumerate(counts)] == [2, 1]
    open_now = run(influxdb, db, city, "Alerts open now", "A", every)
    assert {(r["rule"], r["state"], r["severity"]) for r in open_now} == {
        ("station_offline", "firing", "critical"),
        ("delta_t_low", "escalated", "major"),  # the escalation's severity, not the firing's
    }
    severities = [run(influxdb, db, city, "Alerts open by severity", ref, every) for ref in "ABC"]
    by_severity = zip(severities, ("critical", "major", "warning"), strict=True)
    assert [rows[0][sev] if rows else 0 for rows, sev in by_severity] == [1, 1, 0]


def test_company_refund_figures_and_station_ranking(influxdb, heating_db):  # type: ignore[no-untyped-def]
    db, _ = heating_db
    company, sel = "stationmon-company", {"company": A}
    sensors, below_target, below_refund = 24 * 10 + 24 * 8, 24 * 1 + 12 * 4, 12 * 2
    (row,) = run(influxdb, db, company, "Below indoor_target (50 % refund tier and below)", "A", sel)
    assert row["below target"] == pytest.approx(below_target / sensors)
    (row,) = run(influxdb, db, company, "Below indoor_refund_below (100 % refund tier)", "A", sel)
    assert row["below refund"] == pytest.approx(below_refund / sensors)
    (row,) = run(influxdb, db, company, "Refund factor (share of daily fees owed)", "A", sel)
    # 50 % for a household at 16..20 °C, 100 % below 16 °C
    assert row["refund factor"] == pytest.approx((0.5 * (below_target - below_refund) + below_refund) / sensors)
    ranking = run(influxdb, db, company, "Stations ranked by compliance", "A", sel)
    assert {r["station"]: r["compliance rate"] for r in ranking} == pytest.approx({"s1": 1.0, "s2": 0.5})
    now = run(influxdb, db, company, "Loops noncompliant or offline now", "A", {"company": B})
    assert [(r["station"], r["status"]) for r in now] == [("s3", "noncompliant")]


def grouping_to_matrix(rows: list[dict[str, Any]], row_field: str, column_field: str) -> dict[str, dict[str, Any]]:
    """Grafana's "grouping to matrix" transformation with the row's time as the value (the latest one wins)."""
    matrix: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["time"]):
        matrix.setdefault(r[row_field], {})[r[column_field]] = r["time"]
    return matrix


def test_company_response_times_from_the_alert_event_pivot(influxdb, heating_db):  # type: ignore[no-untyped-def]
    db, ids = heating_db
    dash = _dashboard("stationmon-company")
    panel = next(p for p in dash["panels"] if p["title"] == "Response times: alert events by alert")
    (pivot,) = panel["transformations"]
    assert pivot["id"] == "groupingToMatrix" and pivot["options"]["valueField"] == "Time"
    rows = run(influxdb, db, "stationmon-company", panel["title"], "A", {"company": A})
    matrix = grouping_to_matrix(rows, pivot["options"]["rowField"], pivot["options"]["columnField"])
    assert set(matrix) == {ids["indoor"], ids["offline"], ids["delta"]}
    indoor = matrix[ids["indoor"]]
    assert indoor["acknowledged"] - indoor["firing"] == 20 * 60 * 1000  # time to acknowledge, ms
    assert indoor["resolved"] - indoor["firing"] == 90 * 60 * 1000  # time to resolve
    assert set(matrix[ids["offline"]]) == {"firing"}  # still open: nothing to time yet


def test_stations_written_before_the_company_tag_are_still_listed_under_all(influxdb, heating_db):  # type: ignore[no-untyped-def]
    db, _ = heating_db
    influxdb.write(db, _point("s9", D1, "", "sec1", time.time() - 600, "unknown"))  # no company tag
    dash = _dashboard("stationmon-district")
    station_var = next(v for v in dash["templating"]["list"] if v["name"] == "station")
    every = SELECTIONS["stationmon-district"][0]
    listed = {r["value"] for r in influxdb.query(db, grafana_expand(station_var["query"], dash, every))}
    assert listed == {"s1", "s2", "s3", "s9"}
    only_a = {**every, "company": [A]}
    assert {r["value"] for r in influxdb.query(db, grafana_expand(station_var["query"], dash, only_a))} == {"s1", "s2"}
