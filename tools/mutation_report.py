"""The mutation score from mutmut's results: one line per scope, the surviving mutants, exit 1 below a bar.

Run after `mutmut run` (the Makefile's `mutation` and `mutation-fast` targets do both), from the project
root: mutmut keeps each source file's results in `mutants/<path>.meta` (JSON, `exit_code_by_key`).

    python tools/mutation_report.py "stationmon.domain.rules.*" "stationmon.domain.registers.*" --fail-under 90

Score = killed / (mutants - equivalent). Killed includes a timeout (the mutant made a test hang) and a
type-check catch. A survivor, a mutant no test reaches ("no tests") and a suspicious one count against
the score. Mutants listed in the equivalents file (`docs/mutation-equivalents.txt`: `name  # reason`,
one per line) are left out of the score; one that no longer survives is reported as stale, and so is
one that names no mutant now (renamed code). A mutant not yet checked (an interrupted run) fails the
report: the score would be a guess.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# mutmut's killed, timeout, caught by type check, and a segfault (-11: the mutant crashed the test process, so
# the tests did not pass: e.g. a numpy array made with a wrong dtype in latest.py)
KILLED_CODES = frozenset({1, 3, 24, -24, 36, 37, 152, 255, -11})
SURVIVED_CODES = frozenset({0})
NO_TEST_CODES = frozenset({5, 33})
EQUIVALENTS = Path("docs/mutation-equivalents.txt")


@dataclass
class Scope:
    """The results of the mutants matching one pattern."""

    pattern: str
    counts: Counter[str] = field(default_factory=Counter)
    survivors: list[str] = field(default_factory=list)

    @property
    def judged(self) -> int:
        return self.counts["killed"] + self.counts["survived"] + self.counts["no tests"] + self.counts["suspicious"]

    @property
    def score(self) -> float:
        return 100.0 * self.counts["killed"] / self.judged if self.judged else 100.0

    def line(self) -> str:
        c = self.counts
        return (
            f"mutation score {self.pattern}: {c['killed']}/{self.judged} killed ({self.score:.1f} %); "
            f"{c['survived']} survived, {c['no tests']} without tests, {c['suspicious']} suspicious, "
            f"{c['equivalent']} equivalent, {c['not checked']} not checked"
        )


def read_results(root: Path) -> dict[str, int | None]:
    """Every mutant's exit code (None: not checked) from mutmut's `.meta` files under `root`."""
    out: dict[str, int | None] = {}
    for meta in sorted(root.rglob("*.py.meta")):
        out.update(_meta(meta).get("exit_code_by_key", {}))
    return out


def _meta(path: Path, attempts: int = 20) -> dict[str, Any]:
    """One `.meta` file; a running `mutmut run` rewrites them in place, so a half-written one is read again."""
    for attempt in range(attempts):
        try:
            doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return doc
        except json.JSONDecodeError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def read_equivalents(path: Path) -> dict[str, str]:
    """Mutant name -> why it is equivalent, from `name  # reason` lines (blank and `#` lines skipped)."""
    if not path.exists():
        return {}
    found: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, _, reason = line.partition("#")
            found[name.strip()] = reason.strip()
    return found


def status(code: int | None) -> str:
    """mutmut's exit code of a mutant as this report counts it."""
    if code is None:
        return "not checked"
    if code in KILLED_CODES:
        return "killed"
    if code in SURVIVED_CODES:
        return "survived"
    if code in NO_TEST_CODES:
        return "no tests"
    if code == 34:
        return "skipped"
    return "suspicious"


def tally(results: dict[str, int | None], patterns: list[str], equivalents: dict[str, str]) -> list[Scope]:
    """One Scope per pattern (a mutant counts in the first pattern it matches)."""
    scopes = [Scope(p) for p in patterns]
    for name, code in sorted(results.items()):
        scope = next((s for s in scopes if fnmatch.fnmatch(name, s.pattern)), None)
        if scope is None:
            continue
        state = status(code)
        if name in equivalents and state in ("survived", "no tests"):
            state = "equivalent"
        scope.counts[state] += 1
        if state in ("survived", "no tests", "suspicious"):
            scope.survivors.append(f"{name}: {state}")
    return scopes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("patterns", nargs="+", help='mutant name patterns, e.g. "stationmon.domain.*"')
    parser.add_argument("--fail-under", type=float, default=None, help="exit 1 if a scope scores below this %%")
    parser.add_argument("--mutants", type=Path, default=Path("mutants"), help="mutmut's folder")
    parser.add_argument("--equivalents", type=Path, default=EQUIVALENTS)
    args = parser.parse_args(argv)
    results = read_results(args.mutants)
    if not results:
        print(f"no mutmut results under {args.mutants}/: run `mutmut run` first", file=sys.stderr)
        return 1
    equivalents = read_equivalents(args.equivalents)
    scopes = tally(results, args.patterns, equivalents)
    failed = False
    for scope in scopes:
        if scope.survivors:
            print(f"surviving mutants of {scope.pattern} (`mutmut show NAME` prints the change):")
            print("\n".join(f"  {s}" for s in scope.survivors))
    stale = [n for n in equivalents if n in results and status(results[n]) == "killed"]
    if stale:
        print("listed as equivalent but killed now (remove from the list): " + ", ".join(stale))
    gone = [n for n in equivalents if n not in results and any(fnmatch.fnmatch(n, p) for p in args.patterns)]
    if gone:  # the function was renamed, removed or renumbered: the reason no longer names a mutant
        print("listed as equivalent but no such mutant now (drop or renumber): " + ", ".join(sorted(gone)))
    for scope in scopes:
        print(scope.line())
        if scope.counts["not checked"]:
            print(f"  {scope.pattern}: {scope.counts['not checked']} mutants not checked: the run did not finish")
            failed = True
        if args.fail_under is not None and scope.score < args.fail_under:
            print(f"  {scope.pattern}: below the required {args.fail_under:.0f} %")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
