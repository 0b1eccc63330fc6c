"""The soak's short variant: bench/soak.py with fewer stations and a 1 s poll interval for about 75 s of load.

Every fault kind is injected at least once (flapping PLCs, influxd stopped, mosquitto restarted, replica A
killed with SIGKILL and restarted); the soak's own account must show nothing lost, nothing duplicated, and
every expected alert delivered through Alertmanager to its webhook receiver, no other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[2]


def test_short_soak_loses_nothing_duplicates_nothing_and_delivers_every_expected_alert(tmp_path: Path) -> None:
    for binary in ("influxd", "mosquitto", "prometheus-alertmanager"):
        require_binary(binary)
    out = tmp_path / "account.json"
    args = ["--minutes", "1.25", "--stations", "80", "--interval", "1", "--json", str(out)]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(proc.stdout)
    assert out.exists(), proc.stderr[-3000:]
    acc = json.loads(out.read_text())
    events = " | ".join(what for _, what in acc["events"])
    for fault in ("influxd stopped", "influxd started", "mosquitto restarted", "killed with SIGKILL", "a restarted"):
        assert fault in events, events
    mb, mq, al = acc["modbus"], acc["mqtt"], acc["alerts"]
    assert mb["slots not served (PLC down or load off)"] > 0  # the flapping PLCs were down
    assert mb["polls served (station, slot)"] > 0 and mq["messages published (acknowledged by the broker)"] > 0
    lost = {k: v for k, v in mb.items() if k.endswith(" lost")}
    assert lost == {"supply_temp lost": 0, "outdoor_temp lost": 0}, mb
    assert mq["messages lost"] == 0, mq
    duplicates = {k: v for k, v in mb.items() if "(duplicates)" in k}
    assert len(duplicates) == 4 and not any(duplicates.values()), duplicates
    assert mq["stored, never published (duplicates)"] == 0, mq
    # the only explained loss: a poll served to the killed replica alone within its last flush
    for key, value in mb.items():
        if "killed replica" in key:
            assert value <= mb["supply_temp lines expected"] * 0.01, mb
    assert acc["stored_readings"]["mqtt"] == 3 * mq["messages stored"]
    # a supply_low per cold loop, a station_offline per long outage of each flapping PLC (at least one each)
    assert al["expected"] >= acc["plan"]["cold"] + acc["plan"]["flapping"], al
    assert al["delivered"] == al["expected"], al
    assert al["unexpected_count"] == 0, al
    assert acc["exit_codes"] == {"a": 0, "b": 0}
    # memory: 75 s of load cannot fill a 5-minute history window, and the soak says so rather than judge
    assert acc["history"]["soak"]["full_after_s"] >= 300 and acc["history"]["default 6h"]["points_per_series"] == 720
    assert set(acc["resources"]) == {"a1", "a2", "b1"}, acc["resources"].keys()
    for life, res in acc["resources"].items():
        assert res["rss"]["status"].startswith("cannot judge: window not filled"), (life, res["rss"])
        assert res["fds"]["status"].startswith("cannot judge: steady phase"), (life, res["fds"])
    assert acc["resources"]["b1"]["cpu_cores"] > 0 and acc["resources"]["b1"]["lateness"]["polls"] > 0
    assert proc.returncode == 0, proc.stdout[-3000:]
