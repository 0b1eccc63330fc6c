"""The shipped Grafana dashboard's InfluxQL runs against the real InfluxDB and finds stationmon's data."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from stationmon.domain.lineproto import encode_line, encode_loop_status

DASHBOARD = Path(__file__).parents[2] / "configs" / "grafana" / "dashboards" / "stationmon.json"


def _queries(dash: dict[str, Any]) -> list[tuple[str, str]]:
    out = [(f"panel {p['title']}", t["query"]) for p in dash["panels"] for t in p["targets"]]
    out += [(f"variable {v['name']}", v["query"]) for v in dash["templating"]["list"]]
    out += [(f"annotation {a['name']}", a["query"]) for a in dash["annotations"]["list"]]
    return out


def _grafana_expand(q: str) -> str:
    # what Grafana substitutes before sending the query
    return (
        q.replace("$timeFilter", "time > now() - 1h")
        .replace("$__interval", "1m")
        .replace("$district", ".*")
        .replace("$station", ".*")
        .replace("$loop", ".*")
    )


def test_every_dashboard_query_runs_and_panels_find_data(influxdb, influx_db):  # type: ignore[no-untyped-def]
    now = time.time()
    lines = []
    for i in range(5):
        ts = now - 60 * i
        lines.append(
            encode_loop_status(
                "s1",
                "道里区",
                "sec1",
                ts,
                status="noncompliant" if i else "ok",
                compliant=i == 0,
                required_supply_temp=40.0,
                required_return_temp=33.0,
                estimated_indoor_temp=18.2,
                delta_t=6.5,
            )
        )
        lines.append(
            encode_line(
                "telemetry",
                {"station": "s1", "district": "道里区", "loop": "sec1", "source": "modbus"},
                {"supply_temp": 41.0, "return_temp": 34.0, "flow": 12.0, "supply_pressure": 0.4},
                int(ts * 1000),
            )
        )
        lines.append(
            encode_line(
                "telemetry",
                {"station": "s1", "district": "道里区", "source": "modbus"},
                {"outdoor_temp": -10.0},
                int(ts * 1000),
            )
        )
        lines.append(
            encode_line(
                "telemetry",
                {"station": "s1", "district": "道里区", "loop": "sec1", "sensor": "f301", "source": "mqtt"},
                {"indoor_temp": 19.0},
                int(ts * 1000),
            )
        )
    lines.append(
        encode_line(
            "alert_events",
            {"station": "s1", "district": "道里区", "loop": "sec1", "rule": "supply_low", "severity": "warning"},
            {"state": "firing", "message": "supply low", "value": 35.0, "threshold": 39.0},
            int(now * 1000),
        )
    )
    influxdb.write(influx_db, "\n".join(lines))
    dash = json.loads(DASHBOARD.read_text())
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    found: dict[str, int] = {}
    for name, q in _queries(dash):
        rows = influxdb.query(influx_db, _grafana_expand(q))  # raises on an InfluxQL error
        found[name] = found.get(name, 0) + len(rows)
    empty = [name for name, n in found.items() if n == 0]
    assert empty == [], f"panels, variables or annotations that found nothing: {empty}"
