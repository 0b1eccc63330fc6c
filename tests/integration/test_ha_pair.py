"""An active-active pair: two `stationmon run` processes with one config, against one real Alertmanager,
one influxd and one Modbus server (the test's pymodbus server).

Each condition is one alert in Alertmanager (both replicas send it); each Modbus reading and each
`loop_status` point is stored once (both replicas write the same slot-stamped points); an
acknowledgement made through replica A shows on replica B's API within one `resend_interval`; after
`kill -9` of A, B keeps re-sending and resolves; a restarted replica with no state of its own takes
the firing alert's start from Alertmanager.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stationmon.adapters.modbus import automatic_jitter, station_phase
from stationmon.domain.registers import encode_value
from stationmon.domain.silences import parse_ack_silences
from tests.helpers import free_port, wait_until, write_config
from tests.stations_toml import loop_entry, outdoor, station_toml, water

TOKEN = "ha-pair-token"
RESEND_S = 2.0
INTERVAL_S = 0.5  # Modbus polls and evaluations
AM_YAML = "route:\n  receiver: nobody\n  group_wait: 1h\nreceivers:\n  - name: nobody\n"


def _config(tmp: Path, name: str, influx_url: str, db: str, am_url: str, modbus_port: int) -> tuple[Path, int]:
    port = free_port()
    (tmp / "token").write_text(TOKEN)
    interval = f"{INTERVAL_S * 1000:g}ms"
    live = station_toml(
        "st-live",
        port=modbus_port,
        district="daoli",
        interval=interval,
        timeout="300ms",
        loops=[loop_entry("sec1", "floor", design=(50.0, 40.0))],
        points=[outdoor(type="float32"), *water(type="float32")],
    )
    dead = station_toml(
        "st-dead",
        port=free_port(),
        district="daoli",
        interval=interval,
        timeout="300ms",
        loops=(),
        points=[outdoor(type="float32")],
    )
    text = f"""
state_dir = "{tmp / name / "state"}"

[influxdb]
url = "{influx_url}"
api = "v1"
database = "{db}"
spool_dir = "{tmp / name / "spool"}"
flush_interval = "100ms"

[http]
listen = "127.0.0.1:{port}"
token_file = "{tmp / "token"}"

[[alerting.alertmanager]]
url = "{am_url}"
resend_interval = "{RESEND_S:g}s"

[cluster]
notify = "alertmanager"

[rules]
evaluate_every = "{INTERVAL_S * 1000:g}ms"
for = "0s"
clear_for = "0s"
offline_after = "1500ms"
season_start = "01-01"
season_end = "12-31"

{live}
{dead}"""
    (tmp / name).mkdir(exist_ok=True)
    return write_config(tmp / name, text), port


class Replica:
    """One `stationmon run` subprocess and its HTTP API."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stationmon", "run", "-c", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            )

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.loads(resp.read())

    def healthy(self) -> bool:
        try:
            return bool(self.get("/healthz")["status"] == "ok")
        except (OSError, ValueError):
            assert self.proc.poll() is None, self.log.read_text()
            return False

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/alerts")["alerts"])

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def acknowledge(self, alert_id: str) -> int:
        body = json.dumps({"by": "wang", "comment": "crew sent"}).encode()
        req = urllib.request.Request(
            f"{self.url}/api/v1/alerts/{alert_id}/ack",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait(timeout=10)


def _am_get(am_url: str, path: str) -> Any:
    with urllib.request.urlopen(am_url + path, timeout=5) as resp:
        return json.loads(resp.read())


def _am_alerts(am_url: str, station: str) -> list[dict[str, Any]]:
    return [a for a in _am_get(am_url, "/api/v2/alerts") if a["labels"].get("station") == station]


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def _offline_alert(replica: Replica, station: str) -> dict[str, Any] | None:
    found = [a for a in replica.alerts() if a["station"] == station and a["rule"] == "station_offline"]
    assert len(found) <= 1, found
    return found[0] if found else None


async def test_two_replicas_store_once_alert_once_share_acks_and_survive_a_kill(  # type: ignore[no-untyped-def]
    tmp_path, influxdb, influx_db, alertmanager_factory, modbus_server_factory, replicas
):
    am = alertmanager_factory(AM_YAML)
    plc = await modbus_server_factory()
    for address, value in ((0, -10.0), (2, 40.0), (4, 33.0)):
        plc.set_holding(address, encode_value(value, "float32", "ABCD"))
    cfg_a, port_a = _config(tmp_path, "a", influxdb.url, influx_db, am.url, plc.port)
    cfg_b, port_b = _config(tmp_path, "b", influxdb.url, influx_db, am.url, plc.port)
    a = Replica(cfg_a, port_a, tmp_path / "a.log")
    b = Replica(cfg_b, port_b, tmp_path / "b.log")
    replicas += [a, b]
    for r in (a, b):
        await wait_until(r.healthy, timeout=30, message=f"{r.url} healthy")

    # each condition is one alert in Alertmanager, though both replicas send it
    await wait_until(lambda: _offline_alert(a, "st-dead") and _offline_alert(b, "st-dead"), 20, "both see st-dead")
    await wait_until(lambda: a.metric('stationmon_notify_sent_total{notifier="alertmanager"}') > 0, 10, "A sent")
    await wait_until(lambda: b.metric('stationmon_notify_sent_total{notifier="alertmanager"}') > 0, 10, "B sent")
    [in_am] = _am_alerts(am.url, "st-dead")
    assert in_am["labels"]["alertname"] == "station_offline"

    # each reading and each loop_status point stored once: count stored vs produced over a window
    readings = 'stationmon_readings_total{source="modbus"}'
    ticks = "stationmon_evaluation_seconds_count"
    t1 = time.time()
    start = [(r.metric(readings), r.metric(ticks)) for r in (a, b)]
    await wait_until(lambda: b.metric(ticks) - start[1][1] >= 12, 30, "12 evaluations in the window")
    end = [(r.metric(readings), r.metric(ticks)) for r in (a, b)]
    t2 = time.time()
    polls = [(e[0] - s[0]) / 3 for s, e in zip(start, end, strict=True)]  # three points per poll
    evaluations = [e[1] - s[1] for s, e in zip(start, end, strict=True)]
    window = f"time > {int(t1 * 1000)}ms AND time <= {int(t2 * 1000)}ms"

    def stored(q: str) -> list[dict[str, Any]]:
        return influxdb.query(influx_db, q)

    readings_q = f"SELECT supply_temp FROM telemetry WHERE station = 'st-live' AND {window}"
    await wait_until(lambda: len(stored(readings_q)) >= polls[1] - 2, 10, "the window's readings stored")
    telemetry = stored(readings_q)
    status = stored(f"SELECT status FROM loop_status WHERE station = 'st-live' AND {window}")
    for produced in polls:
        assert abs(len(telemetry) - produced) <= 2, (len(telemetry), polls)
    for produced in evaluations:
        assert abs(len(status) - produced) <= 2, (len(status), evaluations)
    # every point sits on its slot: the station's phase on the poll grid, the evaluation grid
    phase = station_phase("st-live", min(automatic_jitter(INTERVAL_S, 2), INTERVAL_S))
    for row in telemetry:
        offset = (row["time"] / 1000 - phase) / INTERVAL_S
        assert abs(offset - round(offset)) < 0.01, row
    assert all(row["time"] % int(INTERVAL_S * 1000) == 0 for row in status), status[:3]

    # an acknowledgement through A shows on B within one resend_interval
    alert_id = _offline_alert(a, "st-dead")["id"]  # type: ignore[index]
    assert a.acknowledge(alert_id) == 200
    acked_at = time.monotonic()
    await wait_until(
        lambda: (_offline_alert(b, "st-dead") or {}).get("acknowledged_by") == "wang",
        timeout=RESEND_S + 1.5,  # one resend_interval, plus the time a loaded test machine takes to answer
        message="B shows A's acknowledgement",
    )
    print(f"acknowledgement reached B after {time.monotonic() - acked_at:.2f}s")
    assert (_offline_alert(b, "st-dead") or {}).get("comment") == "crew sent"
    [silence] = [s for s in parse_ack_silences(_am_get(am.url, "/api/v2/silences")) if s.active]
    assert silence.labels["station"] == "st-dead"

    # kill -9 A: B keeps the alert alive in Alertmanager, and fires and resolves on its own
    a.proc.kill()
    a.proc.wait(timeout=10)
    killed = time.time()
    await wait_until(
        lambda: _ts(_am_alerts(am.url, "st-dead")[0]["endsAt"]) > killed + 4 * RESEND_S + 0.5,
        timeout=3 * RESEND_S,
        message="B re-sends st-dead's alert after A died",
    )
    await plc.stop()
    await wait_until(lambda: _am_alerts(am.url, "st-live"), 20, "st-live offline reaches Alertmanager from B")
    assert len(_am_alerts(am.url, "st-live")) == 1
    await plc.start()
    await wait_until(lambda: not _am_alerts(am.url, "st-live"), 20, "B resolves st-live in Alertmanager")
    assert _offline_alert(b, "st-live") is None

    # a replica restarted without its state takes the firing alert's start from Alertmanager
    starts_at = _ts(_am_alerts(am.url, "st-dead")[0]["startsAt"])
    cfg_c, port_c = _config(tmp_path, "c", influxdb.url, influx_db, am.url, plc.port)
    c = Replica(cfg_c, port_c, tmp_path / "c.log")
    replicas.append(c)
    await wait_until(c.healthy, timeout=30, message="restarted replica healthy")
    restarted = await wait_until(lambda: _offline_alert(c, "st-dead"), 20, "restarted replica sees st-dead")
    assert abs(restarted["since"] - starts_at) < 0.002, (restarted["since"], starts_at)
    await wait_until(  # and the acknowledgement, from the silence
        lambda: (_offline_alert(c, "st-dead") or {}).get("acknowledged_by") == "wang", RESEND_S + 1.5, "C's ack"
    )
    assert len(_am_alerts(am.url, "st-dead")) == 1

    for r in (b, c):
        assert r.stop() == 0, r.log.read_text()[-3000:]
