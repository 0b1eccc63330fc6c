"""tools/mutation_report.py: the score line, the survivors, equivalents and the exit code from mutmut's files."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "mutation_report.py"


@pytest.fixture(scope="module")
def report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_report", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation_report"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _write(root: Path, path: str, codes: dict[str, int | None]) -> None:
    meta = root / (path + ".meta")
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes}))


def _mutants(tmp_path: Path) -> Path:
    root = tmp_path / "mutants"
    rules = {f"stationmon.domain.rules.checks.x_f__mutmut_{i}": 1 for i in range(1, 9)}
    rules["stationmon.domain.rules.checks.x_f__mutmut_9"] = 0  # survived
    rules["stationmon.domain.rules.checks.x_f__mutmut_10"] = 36  # timeout: killed
    _write(root, "stationmon/domain/rules/checks.py", rules)
    _write(root, "stationmon/domain/registers.py", {"stationmon.domain.registers.x_g__mutmut_1": 33})  # no tests
    return root


def test_score_survivors_and_threshold(report: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _mutants(tmp_path)
    args = ["stationmon.domain.rules.*", "stationmon.domain.registers.*", "--mutants", str(root)]
    assert report.main([*args, "--equivalents", str(tmp_path / "none.txt")]) == 0
    out = capsys.readouterr().out
    assert "mutation score stationmon.domain.rules.*: 9/10 killed (90.0 %); 1 survived" in out
    assert "stationmon.domain.rules.checks.x_f__mutmut_9: survived" in out
    assert "stationmon.domain.registers.x_g__mutmut_1: no tests" in out
    assert "mutation score stationmon.domain.registers.*: 0/1 killed (0.0 %)" in out
    assert report.main([args[0], "--mutants", str(root), "--fail-under", "90"]) == 0
    assert report.main([args[0], "--mutants", str(root), "--fail-under", "91"]) == 1
    assert "below the required 91 %" in capsys.readouterr().out


def test_equivalents_leave_the_score_and_stale_ones_are_named(
    report: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _mutants(tmp_path)
    listed = tmp_path / "eq.txt"
    listed.write_text(
        "# comment\n"
        "stationmon.domain.rules.checks.x_f__mutmut_9  # a copy of the value, never read\n"
        "stationmon.domain.rules.checks.x_f__mutmut_1  # killed by now\n"
        "stationmon.domain.rules.checks.x_gone__mutmut_3  # its function was renamed since\n"
        "stationmon.other.x_g__mutmut_1  # another scope's: not reported here\n"
    )
    assert report.main(["stationmon.domain.*", "--mutants", str(root), "--equivalents", str(listed)]) == 0
    out = capsys.readouterr().out
    assert "stationmon.domain.*: 9/10 killed (90.0 %); 0 survived, 1 without tests, 0 suspicious, 1 equivalent" in out
    assert "killed now (remove from the list): stationmon.domain.rules.checks.x_f__mutmut_1" in out
    assert "no such mutant now (drop or renumber): stationmon.domain.rules.checks.x_gone__mutmut_3\n" in out


def test_an_unfinished_run_fails(report: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "mutants"
    _write(root, "stationmon/domain/heating.py", {"stationmon.domain.heating.x_h__mutmut_1": None})
    assert report.main(["stationmon.domain.*", "--mutants", str(root)]) == 1
    assert "1 mutants not checked" in capsys.readouterr().out
    assert report.main(["stationmon.domain.*", "--mutants", str(tmp_path / "absent")]) == 1


def test_a_mutant_that_crashes_the_tests_is_killed_and_an_unknown_code_suspicious(report: ModuleType) -> None:
    """-11: the test process died of a segfault under the mutant (the tests did not pass); 2 (pytest's
    interrupted/usage error) says nothing about the mutant."""
    assert (report.status(-11), report.status(0), report.status(33), report.status(2)) == (
        "killed",
        "survived",
        "no tests",
        "suspicious",
    )
