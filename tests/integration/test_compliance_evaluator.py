"""The evaluator with real files and a real event loop: lines, events, metrics, the state file, run()."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from stationmon.config import Config, parse_config_text
from stationmon.domain.latest import LatestValues
from stationmon.domain.model import AlertEvent, Reading, StationState
from stationmon.evaluator import Evaluator
from stationmon.metrics import Metrics
from tests.helpers import wait_until
from tests.stations_toml import loop_entry, station_toml

T0 = 1_760_000_000.0


def make_config(tmp_path: Path, *, loops: str = "rad,floor", extra: str = "", state_file: str = "") -> Config:
    emitters = {"rad": "radiator", "floor": "floor"}
    station = station_toml(
        "s1", district="d1", loops=[loop_entry(n, emitters[n]) for n in loops.split(",") if n], points=()
    )
    text = f"""
state_dir = "{tmp_path}/state"
[rules]
water_smoothing = "0s"
evaluate_every = "50ms"
for = "0s"
clear_for = "30s"
season_start = "01-01"
season_end = "12-31"
outdoor_smoothing = "0s"
{f'state_file = "{state_file}"' if state_file else ""}
{extra}
{station}"""
    return parse_config_text(text, require_influxdb=False)


class Harness:
    """An evaluator with a settable clock, collecting what it writes and emits."""

    def __init__(self, config: Config, latest: LatestValues | None = None) -> None:
        self.now = T0
        self.latest = latest or LatestValues()
        self.lines: list[str] = []
        self.events: list[AlertEvent] = []
        self.metrics = Metrics()
        self.evaluator = Evaluator(
            config,
            self.latest,
            {"s1": StationState("s1")},
            self.metrics,
            write_lines=self.lines.extend,
            emit_event=self.events.append,
            clock=lambda: self.now,
        )

    def feed(
        self, supply: float, ret: float, outdoor: float = -10.0, loops: tuple[str, ...] = ("rad", "floor")
    ) -> None:
        readings = [Reading("s1", "outdoor_temp", outdoor, self.now)]
        for loop in loops:
            readings.append(Reading("s1", "supply_temp", supply, self.now, loop=loop))
            readings.append(Reading("s1", "return_temp", ret, self.now, loop=loop))
        self.latest.update(readings)

    def tick(self, advance: float = 10.0) -> list[AlertEvent]:
        self.now += advance
        return self.evaluator.tick(self.now)


def test_tick_writes_status_and_event_lines_and_metrics(tmp_path: Path) -> None:
    h = Harness(make_config(tmp_path))
    h.feed(41.0, 34.0)
    events = h.tick(1.0)
    assert sorted(e.rule for e in events) == ["delta_t_low", "indoor_estimate_low", "return_low", "supply_low"]
    assert all(e.loop == "rad" and e.state == "firing" for e in events)
    assert h.events == events
    status_lines = [ln for ln in h.lines if ln.startswith("loop_status")]
    event_lines = [ln for ln in h.lines if ln.startswith("alert_events")]
    assert len(status_lines) == 2 and len(event_lines) == 4
    rad = next(ln for ln in status_lines if "loop=rad" in ln)
    assert 'status="noncompliant"' in rad and "compliant=false" in rad and "required_supply_temp=58.75" in rad
    assert rad.endswith(f" {round((T0 + 1.0) * 1000)}")
    floor = next(ln for ln in status_lines if "loop=floor" in ln)
    assert 'status="ok"' in floor and "compliant=true" in floor and "estimated_indoor_temp=18.56" in floor
    supply_line = next(ln for ln in event_lines if "rule=supply_low" in ln)
    assert 'state="firing"' in supply_line and "value=41" in supply_line and "severity=warning" in supply_line
    text = h.metrics.render()
    assert "stationmon_evaluation_seconds_count 1" in text
    assert 'stationmon_alerts{rule="supply_low",state="firing"} 1' in text
    assert 'stationmon_alerts{rule="indoor_low",state="firing"} 0' in text
    assert 'stationmon_loops{status="noncompliant"} 1' in text
    assert 'stationmon_alert_events_total{rule="supply_low",state="firing"} 1' in text
    status = h.evaluator.loop_status[("s1", "rad")]
    assert status.compliant is False and status.reasons[0].startswith("supply_low: supply 41.0 °C below")
    assert set(h.evaluator.loop_status) == {("s1", "rad"), ("s1", "floor")}
    assert h.evaluator.status()["state"] == "ok"


def test_state_file_is_written_atomically_and_restores_without_refiring(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    h = Harness(config)
    h.feed(41.0, 34.0)
    [fired] = [e for e in h.tick(1.0) if e.rule == "supply_low"]
    path = tmp_path / "state" / "alerts.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["version"] == 1 and {a["id"] for a in doc["alerts"]["alerts"]} >= {fired.alert_id}
    assert doc["outdoor_mean"]["s1"][0] == -10.0
    assert [p.name for p in path.parent.iterdir()] == ["alerts.json"]  # no temp file left behind
    ack = h.evaluator.acknowledge(fired.alert_id, "ops", "on it")
    assert ack is not None and ack.state == "acknowledged" and h.events[-1] is ack
    assert any("alert_events" in ln and 'state="acknowledged"' in ln for ln in h.lines)
    assert h.evaluator.acknowledge("nope", "ops") is None

    # a new process: same latest values, same file
    h2 = Harness(config, h.latest)
    h2.now = h.now
    assert h2.tick(5.0) == []
    [snap] = [a for a in h2.evaluator.alerts.active_alerts() if a.rule == "supply_low"]
    assert (snap.id, snap.acknowledged_by, snap.comment) == (fired.alert_id, "ops", "on it")


def test_a_repeated_acknowledgement_is_not_recorded_or_sent_again(tmp_path: Path) -> None:
    h = Harness(make_config(tmp_path))
    h.feed(41.0, 34.0)
    [fired] = [e for e in h.tick(1.0) if e.rule == "supply_low"]
    first = h.evaluator.acknowledge(fired.alert_id, "ops", "on it")
    assert first is not None
    events, lines = len(h.events), len(h.lines)
    saved = (tmp_path / "state" / "alerts.json").read_bytes()
    h.now += 30.0
    again = h.evaluator.acknowledge(fired.alert_id, "night-shift", None)
    assert again is not None
    assert (again.state, again.acknowledged_by, again.acknowledged_at, again.comment) == (
        "acknowledged",
        "ops",
        first.acknowledged_at,
        "on it",
    )
    assert len(h.events) == events and len(h.lines) == lines  # no event, no alert_events line
    assert 'stationmon_alert_events_total{rule="supply_low",state="acknowledged"} 1' in h.metrics.render()
    assert (tmp_path / "state" / "alerts.json").read_bytes() == saved
    [snap] = [a for a in h.evaluator.alerts.active_alerts() if a.id == fired.alert_id]
    assert (snap.acknowledged_by, snap.comment) == ("ops", "on it")


def test_restored_alerts_of_a_removed_loop_resolve(tmp_path: Path) -> None:
    h = Harness(make_config(tmp_path))
    h.feed(41.0, 34.0)
    h.tick(1.0)
    h2 = Harness(make_config(tmp_path, loops="floor"), h.latest)
    h2.now = h.now
    events = h2.tick(1.0)
    assert events and {(e.loop, e.state) for e in events} == {("rad", "resolved")}
    assert all(e.message == "no longer in the configuration" for e in events)
    assert h2.evaluator.alerts.active_alerts() == []


def test_corrupt_state_file_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "custom" / "my-alerts.json"
    state.parent.mkdir()
    state.write_text("{not json", encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="stationmon.evaluator"):
        h = Harness(make_config(tmp_path, state_file=str(state)))
    assert "unreadable alert state" in caplog.text
    assert [p.name for p in state.parent.iterdir()] == [f"my-alerts.json.corrupt-{int(T0)}"]
    h.feed(41.0, 34.0)
    assert h.tick(1.0)
    assert json.loads(state.read_text(encoding="utf-8"))["version"] == 1


def test_unwritable_state_is_reported_once_and_judging_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    h = Harness(make_config(tmp_path, state_file=str(blocker / "alerts.json")))
    with caplog.at_level(logging.DEBUG, logger="stationmon.evaluator"):
        h.feed(41.0, 34.0)
        assert h.tick(1.0)
        h.feed(41.0, 34.0)
        h.evaluator.alerts.dirty = True
        h.tick(1.0)
    saves = [r for r in caplog.records if "cannot save" in r.getMessage()]
    assert [r.levelno for r in saves] == [logging.ERROR, logging.DEBUG]  # ERROR once, then DEBUG
    assert h.evaluator.status()["state_file_ok"] is False


def test_a_failing_listener_does_not_stop_the_others(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[AlertEvent] = []

    def flaky(event: AlertEvent) -> None:
        seen.append(event)
        raise RuntimeError("notifier bug")

    h = Harness(make_config(tmp_path))
    h.evaluator.emit_event = flaky
    h.feed(41.0, 34.0)
    with caplog.at_level(logging.ERROR, logger="stationmon.evaluator"):
        events = h.tick(1.0)
    assert len(seen) == len(events) == 4
    assert "alert event listener failed" in caplog.text


def test_indoor_sensors_appearing_later_are_judged(tmp_path: Path) -> None:
    h = Harness(make_config(tmp_path, extra="[rules.indoor_low]\nmin_sensors = 2\n"))
    h.feed(62.0, 45.0, loops=("rad",))
    h.feed(45.0, 38.0, loops=("floor",))
    assert h.tick(1.0) == []
    h.latest.update(
        [
            Reading("s1", "indoor_temp", 15.5, h.now, loop="floor", sensor="flat-101", source="mqtt"),
            Reading("s1", "indoor_temp", 16.0, h.now, loop="floor", sensor="flat-102", source="mqtt"),
            Reading("s1", "indoor_temp", 21.0, h.now, loop="rad", sensor="flat-201", source="mqtt"),
        ]
    )
    h.feed(62.0, 45.0, loops=("rad",))
    h.feed(45.0, 38.0, loops=("floor",))
    events = h.tick(1.0)
    assert [(e.rule, e.loop, e.value) for e in events] == [("indoor_low", "floor", 15.5)]
    assert "2 of 2 indoor sensors" in events[0].message


async def test_run_ticks_until_cancelled_and_saves_on_the_way_out(tmp_path: Path) -> None:
    latest = LatestValues()
    lines: list[str] = []
    config = make_config(tmp_path)
    evaluator = Evaluator(
        config, latest, {"s1": StationState("s1")}, Metrics(), write_lines=lines.extend, emit_event=lambda e: None
    )
    now = time.time()
    latest.update(
        [
            Reading("s1", "outdoor_temp", -10.0, now),
            Reading("s1", "supply_temp", 41.0, now, loop="rad"),
            Reading("s1", "return_temp", 34.0, now, loop="rad"),
        ]
    )
    task = asyncio.create_task(evaluator.run(), name="evaluator")
    try:
        await wait_until(lambda: sum(ln.startswith("loop_status") for ln in lines) >= 6, message="three ticks")
        assert evaluator.alerts.active_alerts()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    path = tmp_path / "state" / "alerts.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert any(a["rule"] == "supply_low" for a in doc["alerts"]["alerts"])


class SlowDisk:
    """Wraps the real os.fsync: records which thread called it and, off the event loop, holds each call
    until `gate` opens, as a slow or stalled disk would. One write is one file fsync (the directory's
    fsync after the rename passes straight through)."""

    def __init__(self, loop_thread: int) -> None:
        self.loop_thread = loop_thread
        self.gate = threading.Event()
        self.calls = 0
        self.on_loop = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._fsync = os.fsync

    def fsync(self, fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            # atomic_write also syncs the directory after the rename: part of the same write
            self._fsync(fd)
            return
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if threading.get_ident() == self.loop_thread:
                self.on_loop += 1  # never hold the loop: the test would hang instead of failing
            else:
                self.gate.wait(timeout=30)
            self._fsync(fd)
        finally:
            with self._lock:
                self.in_flight -= 1


async def test_run_writes_the_state_off_the_loop_one_write_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    latest = LatestValues()
    lines: list[str] = []
    evaluator = Evaluator(
        make_config(tmp_path),
        latest,
        {"s1": StationState("s1")},
        Metrics(),
        write_lines=lines.extend,
        emit_event=lambda e: None,
    )
    disk = SlowDisk(threading.get_ident())
    monkeypatch.setattr(os, "fsync", disk.fsync)
    path = tmp_path / "state" / "alerts.json"
    now = time.time()
    latest.update(
        [
            Reading("s1", "outdoor_temp", -10.0, now),
            Reading("s1", "supply_temp", 41.0, now, loop="rad"),
            Reading("s1", "return_temp", 34.0, now, loop="rad"),
        ]
    )
    task = asyncio.create_task(evaluator.run(), name="evaluator")
    try:
        # the first tick fires alerts and starts writing them; the disk holds that write
        await wait_until(lambda: disk.calls == 1, message="the first state write")
        ticks = sum(ln.startswith("loop_status") for ln in lines)
        # the loop goes on judging while the write hangs
        await wait_until(
            lambda: sum(ln.startswith("loop_status") for ln in lines) >= ticks + 6, message="ticks during the write"
        )
        # three changes while the write is in flight: no second write starts, they wait as one
        alerts = evaluator.alerts.active_alerts()
        assert len(alerts) == 4  # supply_low, return_low, delta_t_low, indoor_estimate_low
        for i, alert in enumerate(alerts[:3]):
            assert evaluator.acknowledge(alert.id, "ops", f"ack {i}") is not None
        assert disk.calls == 1 and not path.exists()
        disk.gate.set()

        def acks_on_disk() -> bool:
            if not path.exists():
                return False
            doc = json.loads(path.read_text(encoding="utf-8"))
            return sum(a["acknowledged_by"] == "ops" for a in doc["alerts"]["alerts"]) == 3

        await wait_until(acks_on_disk, message="the three acknowledgements written")
        assert disk.calls == 2  # the first write, then one for the three changes
        disk.gate.clear()
        # a change, then shutdown while its write hangs: run() returns only after the final write
        assert evaluator.acknowledge(alerts[3].id, "late", None) is not None
        await wait_until(lambda: disk.in_flight == 1, message="a write in flight")
        task.cancel()
        await asyncio.sleep(0)
        assert not task.done()
        disk.gate.set()
    finally:
        disk.gate.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert disk.on_loop == 0, "the state file was written on the event loop"
    assert disk.max_in_flight == 1
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["saved_at"] >= now
    assert {a["comment"] for a in doc["alerts"]["alerts"] if a["acknowledged_by"] == "ops"} == {
        "ack 0",
        "ack 1",
        "ack 2",
    }
    assert any(a["acknowledged_by"] == "late" for a in doc["alerts"]["alerts"])
    assert [p.name for p in path.parent.iterdir()] == ["alerts.json"]


def test_fast_status_lines_equal_the_generic_encoder(tmp_path: Path) -> None:
    from stationmon.domain.lineproto import encode_loop_status

    text = f"""
state_dir = "{tmp_path}/state"
[rules]
water_smoothing = "0s"
season_start = "01-01"
season_end = "12-31"
[[stations]]
id = "s1"
district = "道里 区,=1"
  [[stations.loops]]
  id = "rad"
  [[stations.loops]]
  id = "floor"
  emitter = "floor"
  [[stations.loops]]
  id = "never"
[[stations]]
id = "s2"
  [[stations.loops]]
  id = "x"
"""
    h = Harness(parse_config_text(text, require_influxdb=False))
    h.now += 120.0  # s2 has never reported: offline once offline_after has passed since the start
    h.feed(41.0, 34.0, loops=("rad",))
    h.feed(850.0, 34.0, loops=("floor",))
    h.tick(1.0)
    r = h.evaluator.results
    assert r is not None
    got = h.evaluator.status_block(r).lines()
    want = []
    for (station, loop), st in h.evaluator.loop_status.items():
        want.append(
            encode_loop_status(
                station,
                st.district,
                loop,
                r.now,
                status=st.status,
                compliant=st.compliant,
                required_supply_temp=st.required_supply_temp,
                required_return_temp=st.required_return_temp,
                estimated_indoor_temp=st.estimated_indoor_temp,
                delta_t=st.delta_t,
                verdict=st.verdict,
                measured_indoor_temp=st.measured_indoor_temp,
                indoor_sensors=st.indoor_sensors,
                indoor_below_target=st.indoor_below_target,
                indoor_below_refund=st.indoor_below_refund,
                flags={"beyond_design": st.beyond_design, "setback": st.setback, "inspection_hour": st.inspection_hour},
                interval_s=10.0,  # evaluate_every's default: each point stands for one evaluation
            )
        )
    assert got == want
    assert {ln.split('status="')[1].split('"')[0] for ln in got} == {
        "noncompliant",
        "sensor_fault",
        "unknown",
        "offline",
    }


def test_season_boundaries_in_local_time(tmp_path: Path) -> None:
    import datetime as dt
    import zoneinfo

    harbin = zoneinfo.ZoneInfo("Asia/Shanghai")
    text = f"""
state_dir = "{tmp_path}/state"
[rules]
water_smoothing = "0s"
for = "0s"
clear_for = "1m"
season_start = "10-20"
season_end = "04-20"
[[stations]]
id = "s1"
district = "d1"
  [[stations.loops]]
  id = "rad"
"""
    h = Harness(parse_config_text(text, require_influxdb=False))
    # 19 Oct, 23:59:30 in Harbin (15:59:30 UTC): not yet the season
    h.now = dt.datetime(2025, 10, 19, 23, 59, 30, tzinfo=harbin).timestamp()
    h.feed(41.0, 34.0, loops=("rad",))
    assert h.tick(10.0) == []
    assert h.evaluator.loop_status[("s1", "rad")].status == "unknown"
    # midnight: 20 Oct, the season starts and the cold loop fires
    h.now = dt.datetime(2025, 10, 20, 0, 0, 0, tzinfo=harbin).timestamp() - 5
    h.feed(41.0, 34.0, loops=("rad",))
    assert "supply_low" in {e.rule for e in h.tick(5.0)}
    assert h.evaluator.loop_status[("s1", "rad")].status == "noncompliant"
    # across the new year it keeps firing, no new events
    # (a little movement in the water: a value frozen for 30 min would be a flatline fault)
    h.now = dt.datetime(2026, 1, 1, 0, 0, 5, tzinfo=harbin).timestamp() - 5
    h.feed(41.3, 34.2, outdoor=-10.4, loops=("rad",))
    assert {e.state for e in h.tick(5.0)} <= {"escalated"}
    assert any(a.rule == "supply_low" for a in h.evaluator.alerts.active_alerts())
    # 21 Apr: the season is over; the still-cold loop's alerts resolve after clear_for
    h.now = dt.datetime(2026, 4, 21, 0, 0, 0, tzinfo=harbin).timestamp()
    h.feed(40.8, 34.1, outdoor=-9.7, loops=("rad",))
    h.tick(1.0)
    h.feed(40.8, 34.1, outdoor=-9.7, loops=("rad",))
    events = h.tick(60.0)
    assert "supply_low" in {e.rule for e in events if e.state == "resolved"}
    assert next(e for e in events if e.rule == "supply_low").message == "outside the heating season"
    assert h.evaluator.alerts.active_alerts() == []


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'\xff\xfe{\x00"version": 1}', "UnicodeDecodeError"),  # not UTF-8 (a UTF-16 editor's save)
        (b"[" * 100_000, "RecursionError"),  # nested past the parser's depth
        (b'{"version": 1, "alerts": 17}', "Error"),  # JSON, but not our schema
    ],
)
def test_any_unreadable_state_file_is_moved_aside_with_its_new_path_and_the_start_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, why: str
) -> None:
    state = tmp_path / "state" / "alerts.json"
    state.parent.mkdir()
    state.write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="stationmon.evaluator"):
        h = Harness(make_config(tmp_path, state_file=str(state)))
    aside = state.with_name(f"alerts.json.corrupt-{int(T0)}")
    assert aside.read_bytes() == content  # the evidence kept
    [record] = [r for r in caplog.records if "unreadable alert state" in r.getMessage()]
    assert record.levelno == logging.ERROR and str(aside) in record.getMessage() and why in record.getMessage()
    assert not record.exc_info
    h.feed(41.0, 34.0)
    assert h.tick(1.0)  # judging goes on, and the next save writes a good file
    assert json.loads(state.read_text(encoding="utf-8"))["version"] == 1
