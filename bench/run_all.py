"""Run every benchmark in bench/, one after another (each prints its own table with its baseline).

    make bench                       # or: .venv/bin/python bench/run_all.py [--only modbus,mqtt]

Each benchmark measures stationmon against a baseline in the same run (a raw client, a bare consumer,
a plain Python loop, a raw HTTP POST), so the ratios hold on a busy machine better than the absolutes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHES = ["evaluate", "influx", "modbus", "mqtt", "http", "alert_latency"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(BENCHES))
    args = parser.parse_args()
    chosen = [b for b in BENCHES if not args.only or b in args.only.split(",")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    failed = []
    for name in chosen:
        script = ROOT / "bench" / f"bench_{name}.py"
        print(f"\n=== bench_{name}.py ===", flush=True)
        started = time.monotonic()
        rc = subprocess.call([sys.executable, str(script)], cwd=ROOT, env=env)
        print(f"=== bench_{name}.py: exit {rc}, {time.monotonic() - started:.0f} s ===", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
