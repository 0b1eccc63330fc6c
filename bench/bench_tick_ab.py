"""Paired A/B of the evaluation tick: the code of a git revision against the working tree, tick by tick.

    .venv/bin/python bench/bench_tick_ab.py [--against REV] [--loops 100000] [--ticks 16]

On a busy machine two separate runs differ by more than a change to the tick: here both engines take
the same ticks of `bench_evaluate.py`'s district alternately, in one process, and each part's ratio is
the median of the per-tick ratios of process CPU time. The revision's `stationmon` is extracted with
`git archive` into a temporary folder and imported as `stationmon_before`. Parts as the bench times
them: `held_masks`, `RuleEngine.evaluate`, and the alert book: `RuleResults.conditions()` +
`AlertBook.update`, or `AlertBook.advance` where the code has it. Every tick, both sides' events must
be the same (field by field), and the alerts' saved state at the last tick: else the script fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_evaluate as bench  # noqa: E402

PARTS = ("held", "evaluate", "book", "total")


def extract(rev: str, into: Path) -> None:
    """The revision's package as `stationmon_before` in `into`, its imports renamed."""
    archive = subprocess.run(["git", "archive", rev, "stationmon"], cwd=ROOT, check=True, capture_output=True).stdout
    tar_path = into / "before.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    package = into / "stationmon_before"
    (into / "stationmon").rename(package)
    for path in package.rglob("*.py"):
        text = path.read_text()
        path.write_text(re.sub(r"\bstationmon\.", "stationmon_before.", text))


def side(pkg: str, district: bench.District, raw: list[Any]) -> tuple[Any, Any, list[Any]]:
    """An engine, an alert book and the ticks' inputs, all of package `pkg`."""
    rules = importlib.import_module(f"{pkg}.domain.rules")
    alerts = importlib.import_module(f"{pkg}.domain.alerts")
    settings = importlib.import_module(f"{pkg}.domain.settings")
    plant = importlib.import_module(f"{pkg}.domain.plant")
    t = district.table
    designs = zip(t.design_supply.tolist(), t.design_return.tolist(), t.exponent.tolist(), strict=True)
    table = rules.LoopTable.build(
        zip(t.station_ids, t.districts, strict=True),
        ((t.station_of(i), t.loop_ids[i], *design, None, None) for i, design in enumerate(designs)),
    )
    setback = plant.Setback(plant.DailyWindow(600, 900), 3.0)
    rules_settings = settings.RulesSettings(outdoor_smoothing_s=3600.0, setbacks=(setback,))

    def convert(inp: Any) -> Any:
        names = ("supply", "return_", "flow", "outdoor", "primary_supply")
        series = {n: rules.Series(*(getattr(getattr(inp, n), f) for f in ("value", "ts", "flagged"))) for n in names}
        return rules.RuleInputs(now=inp.now, station_last_seen=inp.station_last_seen, in_season=True, **series)

    return rules.RuleEngine(table, rules_settings), alerts.AlertBook(rules_settings), [convert(i) for i in raw]


def tick(engine: Any, book: Any, inp: Any) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """One tick as the bench times it: CPU ms per part, and the events as dicts."""
    marks = [time.process_time()]
    held = engine.held_of(book) if hasattr(engine, "held_of") else engine.held_masks(book.held_keys())
    marks.append(time.process_time())
    results = engine.evaluate(inp, held)
    marks.append(time.process_time())
    if hasattr(book, "advance"):
        events = book.advance(inp.now, results)
    else:
        events = book.update(inp.now, results.conditions(), results.lookup)
    marks.append(time.process_time())
    out = {p: (marks[k + 1] - marks[k]) * 1000 for k, p in enumerate(PARTS[:-1])}
    out["total"] = (marks[-1] - marks[0]) * 1000
    return out, [dataclasses.asdict(e) for e in events]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", default="HEAD", help="git revision of the code before (default HEAD)")
    ap.add_argument("--loops", type=int, default=100_000)
    ap.add_argument("--per-station", type=int, default=10)
    ap.add_argument("--ticks", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        extract(args.against, Path(tmp))
        sys.path.insert(0, tmp)
        district = bench.District(args.loops, args.per_station)
        raw = [district.inputs(k) for k in range(args.ticks + 1)]
        sides = {"before": side("stationmon_before", district, raw), "now": side("stationmon", district, raw)}
        times: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
        same = True
        for k in range(len(raw)):
            events = []
            for name, (engine, book, inputs) in sides.items():
                measured, evs = tick(engine, book, inputs[k])
                events.append(evs)
                if k:  # the first tick warms up
                    times[name].append(measured)
            same = same and events[0] == events[1]
        same = same and sides["before"][1].to_dict() == sides["now"][1].to_dict()
    print(f"tick over {args.loops:,} loops, {args.ticks} ticks, CPU ms: {args.against} against the working tree")
    print(f"{'part':<12}{'before med':>11}{'now med':>9}{'before min':>11}{'now min':>9}{'ratio':>8}")
    for p in PARTS:
        before, now = ([t[p] for t in times[name]] for name in sides)
        ratio = statistics.median(b / n for b, n in zip(before, now, strict=True))
        row = (statistics.median(before), statistics.median(now), min(before), min(now))
        print(f"{p:<12}" + "".join(f"{v:>{w}.1f}" for v, w in zip(row, (11, 9, 11, 9), strict=True)) + f"{ratio:>8.2f}")
    print(f"the same events every tick and the same alert state at the end: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
