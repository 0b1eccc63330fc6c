"""Run every benchmark in bench/, one after another (each prints its own table with its baseline).

    make bench                       # or: .venv/bin/python bench/run_all.py [--only modbus,mqtt]

Each benchmark measures stationmon against a baseline in the same run (a raw client, a bare consumer,
a plain Python loop, a raw HTTP POST), so the ratios hold on a busy machine better than the absolutes.

Every benchmark runs to its end. A missed target is a measurement, not a failure: the lines that say
MISSED (or "NOT met") are collected into a summary at the end and the exit status stays 0. The exit
status is 1 only when a benchmark could not measure: it crashed (a traceback, a signal) or ran past
its time limit.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHES = ["evaluate", "influx", "modbus", "mqtt", "http", "alert_latency", "report"]
TIME_LIMIT_S = 1800.0  # per benchmark: a hung one is stopped and reported, the others still run
_MISSED = re.compile(r"\bMISSED\b|\bNOT met\b|\*\*missed\*\*", re.IGNORECASE)


def _run(name: str) -> tuple[int, list[str], bool]:
    """Run bench_<name>.py, echoing its output: (exit status, its lines, whether it hit the time limit)."""
    script = ROOT / "bench" / f"bench_{name}.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    expired = threading.Event()

    def stop() -> None:  # the whole group: a benchmark's own servers go with it
        expired.set()
        os.killpg(proc.pid, signal.SIGKILL)

    watchdog = threading.Timer(TIME_LIMIT_S, stop)
    watchdog.start()
    lines: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
        rc = proc.wait()
    finally:
        watchdog.cancel()
    return rc, lines, expired.is_set()


def _verdict(rc: int, lines: list[str], timed_out: bool) -> str:
    """ "ok", "missed" (ran to its end, some target missed) or why it could not measure."""
    if timed_out:
        return f"stopped after {TIME_LIMIT_S:.0f} s"
    if rc < 0:
        return f"killed by signal {-rc}"
    crashed = any(line.startswith("Traceback") for line in lines)
    missed = any(_MISSED.search(line) for line in lines)
    if rc != 0 and (crashed or not missed):
        return f"failed (exit {rc})"
    return "missed" if missed else "ok"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(BENCHES))
    args = parser.parse_args()
    chosen = [b for b in BENCHES if not args.only or b in args.only.split(",")]
    verdicts: dict[str, str] = {}
    missed_lines: list[str] = []
    for name in chosen:
        print(f"\n=== bench_{name}.py ===", flush=True)
        started = time.monotonic()
        rc, lines, timed_out = _run(name)
        verdicts[name] = _verdict(rc, lines, timed_out)
        missed_lines += [f"  bench_{name}.py: {line.strip()}" for line in lines if _MISSED.search(line)]
        print(f"=== bench_{name}.py: {verdicts[name]}, {time.monotonic() - started:.0f} s ===", flush=True)
    print("\n=== summary ===")
    for name, verdict in verdicts.items():
        print(f"  bench_{name}.py: {verdict}")
    if missed_lines:
        print("targets missed (measured, reported, not an error):")
        print("\n".join(missed_lines))
    failed = [n for n, v in verdicts.items() if v not in ("ok", "missed")]
    if failed:
        print(f"could not measure: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
