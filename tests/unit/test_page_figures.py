"""The status page's figures (app.js `fmt`, `fmtPair`) run in Node: a value never shown equal to its threshold.

The page showed an alert's "41.0 / 41.0" for a supply of 40.96 °C against 41 °C, as the messages did.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import stationmon

APP_JS = Path(stationmon.__file__).parent / "web" / "static" / "app.js"


def _function(source: str, name: str) -> str:
    """The text of one top-level function of app.js (up to the closing brace at the line start)."""
    m = re.search(rf"^function {name}\(.*?^\}}\n", source, re.M | re.S)
    assert m, name
    return m[0]


def _run(calls: list[str]) -> list[object]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: apt-get install -y nodejs", pytrace=False)
    source = APP_JS.read_text()
    script = "\n".join(_function(source, n) for n in ("fmt", "fmtPair"))
    script += f"\nconsole.log(JSON.stringify([{', '.join(calls)}]));\n"
    out = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60, check=True)
    result: list[object] = json.loads(out.stdout)
    return result


def test_page_pairs_print_the_value_apart_from_its_threshold() -> None:
    got = _run(
        [
            "fmtPair(40.96, 41.0)",
            "fmtPair(41.04, 41.0)",
            "fmtPair(45.4, 64.6)",
            "fmtPair(-12.04, -12.0)",
            "fmtPair(-0.04, 0.0)",
            "fmtPair(0.996, 1.0, 2)",
            "fmtPair(40.9, null)",
            "fmt(-0.04)",
            "fmt(-0.4)",
            "fmt(undefined)",
        ]
    )
    assert got == [
        ["40.96", "41.00"],
        ["41.04", "41.00"],
        ["45.4", "64.6"],
        ["-12.04", "-12.00"],
        ["-0.04", "0.00"],
        ["0.996", "1.000"],
        ["40.9", "–"],
        "0.0",
        "-0.4",
        "–",
    ]


def test_page_pairs_within_0_05_of_the_threshold_never_print_alike() -> None:
    values = [t + k / 1000 for t in (-25.0, -0.02, 0.0, 18.0, 41.0, 64.6) for k in range(-50, 51, 3) if k]
    thresholds = [t for t in (-25.0, -0.02, 0.0, 18.0, 41.0, 64.6) for k in range(-50, 51, 3) if k]
    got = _run([f"fmtPair({v!r}, {t!r})" for v, t in zip(values, thresholds, strict=True)])
    for (v, t), value, threshold in zip(got, values, thresholds, strict=True):  # type: ignore[misc]
        assert v != t, (value, threshold, v, t)
        assert (float(v) < float(t)) == (value < threshold), (value, threshold, v, t)
