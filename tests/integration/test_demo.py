"""`stationmon demo` started as a user would: the real command in a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
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


def _acknowledge(base: str, alert_id: str, token: str) -> int:
    """POST the page's acknowledgement of one alert with `token`; the HTTP status."""
    request = urllib.request.Request(
        f"{base}/api/v1/alerts/{urllib.parse.quote(alert_id, safe='')}/ack",
        data=json.dumps({"by": "test_demo"}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


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
    # the weather held at Harbin's winter mean: by the clock, a cold hour (below about -16 °C) cools the seed's
    # flats under 20 °C and its verdict, asserted below, turns noncompliant
    proc = _start(["--duration", "40", "--listen", f"127.0.0.1:{port}", "--outdoor", "-12"], tmp_path)
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

        # the page's acknowledge button works in the demo: its token is in the work dir and the banner
        token = (tmp_path / "work" / "http-token").read_text().strip()
        alert = next(a for a in _get_json(base + "/api/v1/alerts")["alerts"] if a["rule"] == "supply_low")
        assert _acknowledge(base, alert["id"], "wrong") == 401
        assert _acknowledge(base, alert["id"], token) == 200

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
    # the offline station comes back (its household sensors a poll before its PLC): no stale-sensor alerts
    back = re.escape(stations[4].name)
    assert not re.search(rf"ALERT FIRING +\w+ +sensor_fault +{back}", out), out
    assert re.search(r"ALERT FIRING +warning +supply_low", out), out
    assert "demo summary after" in out and re.search(r"alerts +\d+ fired", out)
    assert "verdicts (what each loop's compliance rests on):" in out
    assert re.search(r"households +thermometers on \d+ of \d+ loops", out), out
    assert "weather       outdoor held at -12 °C (--outdoor)" in out, out
    assert f"acknowledge   token {token} " in out, out
    assert re.search(r"ALERT ACKNOWLEDGED +warning +supply_low", out), out
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


class _RunWatch:
    """What the demo's API showed while the district ran: every status of each station and loop, the last
    evaluation's time (/healthz), and whether every station was online in the latest answer."""

    def __init__(self, base: str, proc: subprocess.Popen[str]) -> None:
        self.base, self.proc = base, proc
        self.stations: dict[str, set[str]] = {}
        self.loops: dict[tuple[str, str], set[str]] = {}
        self.names: dict[str, str] = {}
        self.last_judged = 0.0
        self.all_online = False

    def look(self) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            pytest.fail(f"the demo ended ({self.proc.returncode}) while the test watched it")
        health = _get_json(self.base + "/healthz")  # 503 (a degraded component) reads as None: look again
        doc = _get_json(self.base + "/api/v1/stations")
        if doc is None or health is None:
            return None
        self.last_judged = health["components"]["evaluator"]["last_evaluation"] or 0.0
        for st in doc["stations"]:
            self.names[st["name"] or st["id"]] = st["id"]
            self.stations.setdefault(st["id"], set()).add(st["status"])
            for lp in st["loops"]:
                self.loops.setdefault((st["id"], lp["id"]), set()).add(lp["status"])
        self.all_online = all(st["online"] for st in doc["stations"])
        return doc  # type: ignore[no-any-return]

    def settled(self) -> bool:
        """Every station online, and every loop judged by the evaluator (no longer unknown)."""
        doc = self.look()
        return (
            bool(doc)
            and self.all_online
            and all(lp["status"] != "unknown" for s in doc["stations"] for lp in s["loops"])
        )


def _summary_loops(out: str) -> dict[str, str]:
    """The summary's verdict lines as {"station name/loop": status}."""
    loops: dict[str, str] = {}
    for m in re.finditer(r"^ +by \w+ +\d+ loops?: (.*)$|^ +not judged +\d+ loops?: (.*)$", out, re.M):
        for item in (m[1] or m[2]).split(", "):
            assert not item.startswith("..."), f"the summary left loops out: {m[0]}"
            where, _, status = item.rpartition(" ")
            loops[where] = status
    return loops


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_summary_after_a_signal_tells_the_statuses_seen_while_running_not_offline(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """Stopped by SIGTERM (a service manager, `timeout`) or SIGINT (Ctrl-C), the summary reports the last
    judgement of the run, not stations the shutdown itself took offline (the pollers close their links)."""
    port = free_port()
    proc = _start(["--stations", "4", "--listen", f"127.0.0.1:{port}"], tmp_path)  # no offline fault in 4
    watch = _RunWatch(f"http://127.0.0.1:{port}", proc)
    try:
        wait_until_sync(watch.settled, timeout=90, message="every station online and judged", seen=lambda: watch.loops)
        # what counts is what was shown from here on (every station online and judged); stop just after a
        # fresh judgement, so none can change a status between the last look and the signal
        judged = watch.last_judged
        watch.stations.clear()
        watch.loops.clear()
        wait_until_sync(
            lambda: watch.look() and watch.all_online and watch.last_judged > judged,
            timeout=60,
            message="the next judgement with every station online",
        )
        proc.send_signal(sig)
        out = _finish(proc, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    stderr = (tmp_path / "demo.stderr").read_text()
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    m = re.search(r"^  stations +(.*)$", out, re.M)
    assert m, out
    counts = {status: int(n) for n, status in re.findall(r"(\d+) (\w+)", m[1])}
    assert sum(counts.values()) == 4, m[0]
    for status, n in counts.items():  # no more stations with a status than showed it while running
        showed = sum(status in seen for seen in watch.stations.values())
        assert n <= showed, f"summary {m[0]!r}; statuses shown while running: {watch.stations}"
    loops = _summary_loops(out)
    assert len(loops) == len(watch.loops), out
    for where, status in loops.items():
        name, _, loop = where.rpartition("/")
        seen = watch.loops[(watch.names[name], loop)]
        assert status in seen, f"summary says {where} {status}; while running it was {sorted(seen)}\n{out}"


def _children(pid: int) -> dict[int, str]:
    """The processes `pid` started (any of its threads), by name."""
    found: dict[int, str] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                found[int(child)] = Path(f"/proc/{child}/comm").read_text().strip()
    return found


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's zombie waits for a reaper that may never come)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_a_killed_demo_leaves_no_influxd_or_mosquitto_running(tmp_path: Path) -> None:
    """SIGKILL gives the demo no chance to stop its servers: the kernel ends them with it (the parent-death
    signal), so a killed demo does not leave a private influxd and mosquitto running on the machine."""
    env = {**os.environ, "STATIONMON_DEMO_BROKER": "mosquitto"}
    port = free_port()
    proc = _start(["--stations", "2", "--listen", f"127.0.0.1:{port}"], tmp_path, env=env)
    try:
        wait_until_sync(
            lambda: _get_json(f"http://127.0.0.1:{port}/api/v1/stations"), timeout=60, message="the demo's API"
        )
        servers = {pid: name for pid, name in _children(proc.pid).items() if name in ("influxd", "mosquitto")}
        assert sorted(servers.values()) == ["influxd", "mosquitto"], _children(proc.pid)
        proc.kill()
        proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    try:
        wait_until_sync(
            lambda: not any(_running(pid) for pid in servers),
            timeout=20,
            message="the killed demo's servers to end",
            seen=lambda: {pid: name for pid, name in servers.items() if _running(pid)},
        )
    finally:
        for pid in servers:  # never leave them behind, even when the test fails
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
