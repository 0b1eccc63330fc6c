"""`stationmon demo` started as a user would: the real command in a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from stationmon.sim.district import FAULT_PLAN, SEED_STATION_ID, demo_stations
from tests.helpers import free_port, wait_until_sync

VENV_BIN = Path(sys.executable).parent
STATIONMON = VENV_BIN / "stationmon"


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()


def _get_json(url: str) -> Any:
    try:
        status, ctype, body = _get(url)
    except (OSError, urllib.error.URLError):
        return None
    assert status == 200 and ctype.startswith("application/json")
    return json.loads(body)


def _start(args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    with (tmp_path / "demo.stderr").open("w") as stderr:  # the child keeps its own copy
        return subprocess.Popen(
            [str(STATIONMON), "demo", "--workdir", str(tmp_path / "work"), *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
            cwd=tmp_path,
        )


def _finish(proc: subprocess.Popen[str], timeout: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return out


def test_demo_runs_the_district_with_page_api_metrics_and_alerts_then_exits_0(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    proc = _start(["--duration", "40", "--listen", f"127.0.0.1:{port}"], tmp_path)
    try:
        doc = wait_until_sync(lambda: _get_json(base + "/api/v1/stations"), timeout=30, message="the demo's API")
        stations = demo_stations(12)
        assert [s["id"] for s in doc["stations"]] == [s.id for s in stations]
        assert {s["district"] for s in doc["stations"]} >= {"道里区", "南岗区"}
        # the seed's station, and the stations' companies
        seed = doc["stations"][0]
        assert (seed["id"], seed["name"], seed["area_m2"], seed["households"]) == (
            SEED_STATION_ID,
            "友谊路334号换热站",
            160000.0,
            3000,
        )
        assert len({s["company"] for s in doc["stations"]}) == 3 and all(s["heat_source"] for s in doc["stations"])
        assert doc["site"]["indoor_target"] == 20.0
        emitters = {lp["emitter"] for s in doc["stations"] for lp in s["loops"]}
        assert emitters == {"floor", "radiator"}

        # every scheduled fault raises its alert while the demo runs: an ordering (before the demo's own
        # --duration ends it), not a number of seconds (about 30 s on an idle machine, more on a busy one)
        expected = {
            "undersupply": "supply_low",
            "swapped_sensors": "sensor_fault",
            "offline": "station_offline",
            "low_delta_t": "delta_t_low",
            "flatline": "sensor_fault",
            "cold_households": "indoor_low",
            "pump_stop": "no_circulation",
            "primary_shortage": "primary_shortage",
            "probe_sentinel": "sensor_fault",
            "outdoor_probe_fail": "sensor_fault",
        }
        want = {(stations[i].id, expected[kind]) for i, (kind, *_rest) in FAULT_PLAN.items()}

        def alerts_fired() -> bool:
            alerts = (_get_json(base + "/api/v1/alerts") or {}).get("alerts", [])
            got = {(a["station"], a["rule"]) for a in alerts}
            if proc.poll() is not None:
                pytest.fail(f"the demo ended ({proc.returncode}) before alerts for {sorted(want - got)}")
            assert want <= got, f"missing {sorted(want - got)}"
            return True

        # bounded by the demo's end (above); the timeout only guards against a demo that never ends
        wait_until_sync(alerts_fired, timeout=120, message="alerts for every fault")
        first_alerts_after = time.monotonic() - started

        # readings from both collectors, every station reporting, online by stationmon's own judgement
        doc = _get_json(base + "/api/v1/stations")
        assert all(s["age_s"] is not None for s in doc["stations"]), doc["stations"]
        offline = {s["id"] for s in doc["stations"] if not s["online"]}
        assert offline <= {stations[4].id}, offline  # at most the one whose fault takes it offline
        status, ctype, page = _get(base + "/")
        assert status == 200 and ctype.startswith("text/html") and "/static/app.js" in page
        status, ctype, metrics = _get(base + "/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        readings = {
            m[1]: float(m[2])
            for m in re.finditer(r'^stationmon_readings_total\{source="(\w+)"\} (\S+)$', metrics, re.M)
        }
        assert readings.get("modbus", 0) > 0 and readings.get("mqtt", 0) > 0, readings
        assert 'stationmon_alerts_active{rule="supply_low"' in metrics
        health = _get_json(base + "/healthz")
        assert health["status"] == "ok" and health["stations"]["total"] == 12

        out = _finish(proc, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    stderr = (tmp_path / "demo.stderr").read_text()
    assert proc.returncode == 0, stderr[-3000:]
    elapsed = time.monotonic() - started
    assert elapsed >= 40, "stopped before --duration"
    assert f"http://127.0.0.1:{port}/" in out
    assert "storage       private InfluxDB" in out  # influxd is on PATH here
    assert "embedded broker (amqtt, MQTT 3.1.1)" in out  # and the MQTT readings above came through it
    assert re.search(r"ALERT FIRING +major +station_offline", out), out
    assert re.search(r"ALERT FIRING +warning +supply_low", out), out
    assert "demo summary after" in out and re.search(r"alerts +\d+ fired", out)
    assert "verdicts (what each loop's compliance rests on):" in out
    assert re.search(r"households +thermometers on \d+ of \d+ loops", out), out
    # the seed's station: its flats are warm on its household sensors, whatever the water model says
    assert re.search(r"by sensors +\d+ loops: .*友谊路334号换热站/sec1 ok", out), out
    assert re.search(r"by estimate +\d+ loops: ", out), out
    m = re.search(r"InfluxDB \S+: (\d+) supply readings stored", out)
    assert m and int(m[1]) > 0, out
    assert "Traceback" not in stderr, stderr[-3000:]
    print(f"first alerts for every fault after {first_alerts_after:.1f} s")


def test_demo_without_influxd_uses_spool_and_a_private_mosquitto_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    # a PATH with nothing but the venv: no influxd (Debian's mosquitto is found in /usr/sbin)
    env = {**os.environ, "PATH": str(VENV_BIN), "STATIONMON_DEMO_BROKER": "mosquitto"}
    port = free_port()
    proc = _start(["--stations", "4", "--listen", f"127.0.0.1:{port}"], tmp_path, env=env)
    try:
        doc = wait_until_sync(
            lambda: _get_json(f"http://127.0.0.1:{port}/api/v1/stations"), timeout=30, message="the demo's API"
        )
        assert len(doc["stations"]) == 4

        def every_station_reports() -> bool:
            doc = _get_json(f"http://127.0.0.1:{port}/api/v1/stations")
            # the fourth station reports over MQTT only
            return all(any(lp["values"] for lp in s["loops"]) for s in doc["stations"])

        wait_until_sync(every_station_reports, timeout=30, message="readings from every station")
        proc.send_signal(signal.SIGINT)
        out = _finish(proc, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    stderr = (tmp_path / "demo.stderr").read_text()
    assert proc.returncode == 0, stderr[-3000:]
    assert "no influxd on PATH: readings are kept in the local spool" in out
    assert "private mosquitto" in out
    assert "demo summary after" in out
    assert "Traceback" not in stderr, stderr[-3000:]
    spool = tmp_path / "work" / "spool"
    assert spool.is_dir() and any(p.stat().st_size > 0 for p in spool.rglob("*") if p.is_file()), list(spool.rglob("*"))
