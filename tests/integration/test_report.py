"""`stationmon report` against the real InfluxDB: numbers computed from what was stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stationmon.cli import main
from stationmon.domain.lineproto import encode_line, encode_loop_status
from tests.helpers import write_config

T0 = 1_764_000_000  # 2025-11-24T16:00:00Z


def _store(influxdb, db: str) -> None:  # type: ignore[no-untyped-def]
    lines = []
    # one hour of loop_status every 10 s: 300 ok then 60 noncompliant for sec1
    for i in range(360):
        status = "ok" if i < 300 else "noncompliant"
        lines.append(
            encode_loop_status(
                "s1",
                "道里区",
                "sec1",
                T0 + 10 * i,
                status=status,
                compliant=status == "ok",
                required_supply_temp=40.0,
                required_return_temp=33.0,
                estimated_indoor_temp=19.0 if i < 300 else 16.0,
                delta_t=7.0,
            )
        )
        lines.append(
            encode_line(
                "telemetry",
                {"station": "s1", "loop": "sec1", "source": "modbus"},
                {"supply_temp": 41.0, "return_temp": 34.0},
                (T0 + 10 * i) * 1000,
            )
        )
    lines.append(
        encode_line(
            "telemetry",
            {"station": "s1", "loop": "sec1", "sensor": "flat-301", "source": "mqtt"},
            {"indoor_temp": 19.5},
            T0 * 1000,
        )
    )
    lines.append(
        encode_line(
            "alert_events",
            {"station": "s1", "loop": "sec1", "rule": "supply_low", "severity": "warning"},
            {"state": "firing", "message": "supply low", "value": 35.0},
            (T0 + 3000) * 1000,
        )
    )
    influxdb.write(db, "\n".join(lines))


def _config(tmp_path: Path, influxdb, db: str, api: str) -> Path:  # type: ignore[no-untyped-def]
    influx = (
        f'api = "v1"\ndatabase = "{db}"' if api == "v1" else f'api = "v2"\norg = "o"\nbucket = "{db}"\ntoken_env = "T"'
    )
    return write_config(
        tmp_path,
        f"""
[influxdb]
url = "{influxdb.url}"
{influx}
spool_dir = "{tmp_path}/spool"
[[stations]]
id = "s1"
name = "友谊路334号换热站"
district = "道里区"
  [[stations.loops]]
  id = "sec1"
  emitter = "floor"
  design_supply = 50.0
  design_return = 40.0
""",
    )


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_report_reads_compliance_from_influxdb(api, tmp_path, influxdb, influx_db, capsys, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("T", "token")
    _store(influxdb, influx_db)
    config = _config(tmp_path, influxdb, influx_db, api)
    rc = main(
        [
            "report",
            "-c",
            str(config),
            "--from",
            "2025-11-24T16:00:00Z",
            "--to",
            "2025-11-24T17:30:00Z",
            "--format",
            "json",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    row = json.loads(out)["loops"][0]
    assert row["samples"] == 360
    assert row["compliant_share"] == round(300 / 360, 4)
    assert row["hours_noncompliant"] == round(60 * 10 / 3600, 2)
    assert row["mean_estimated_indoor_temp"] == 18.5
    assert row["min_estimated_indoor_temp"] == 16.0
    assert row["mean_supply_temp"] == 41.0 and row["mean_return_temp"] == 34.0
    assert row["mean_indoor_sensor_temp"] == 19.5
    assert row["alerts_fired"] == 1 and row["alerts_by_rule"] == "supply_low=1"
    assert row["verdict"] == "noncompliant"
    # a window that holds only the compliant first 50 minutes
    html_path = tmp_path / "r.html"
    rc = main(
        [
            "report",
            "-c",
            str(config),
            "--from",
            "2025-11-24T16:00:00Z",
            "--to",
            "2025-11-24T16:50:00Z",
            "--format",
            "html",
            "-o",
            str(html_path),
        ]
    )
    assert rc == 0
    assert "<td class=ok>compliant</td>" in html_path.read_text()


def test_report_bad_time_and_dead_server(tmp_path, influxdb, influx_db, capsys):  # type: ignore[no-untyped-def]
    config = _config(tmp_path, influxdb, influx_db, "v1")
    assert main(["report", "-c", str(config), "--from", "yesterday"]) == 2
    assert "bad time 'yesterday'" in capsys.readouterr().err
    dead = write_config(tmp_path, config.read_text().replace(influxdb.url, "http://127.0.0.1:9"), "dead.toml")
    assert main(["report", "-c", str(dead), "--from", "-1h"]) == 1
    assert "stationmon report: http://127.0.0.1:9/query" in capsys.readouterr().err
