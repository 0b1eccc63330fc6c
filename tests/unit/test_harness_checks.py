"""The harness's own guarantees: a test that leaks tasks or threads fails."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

LEAKY = """
import asyncio, threading, time

async def test_leaks_a_task():
    asyncio.create_task(asyncio.sleep(60), name="leaky-task")

def test_leaks_a_thread():
    threading.Thread(target=time.sleep, args=(6,), name="leaky-thread", daemon=True).start()

async def test_clean():
    task = asyncio.create_task(asyncio.sleep(0))
    await task
"""


def test_leaking_tests_fail(pytester: pytest.Pytester) -> None:
    root = Path(__file__).parents[2]
    pytester.makeconftest((root / "tests" / "conftest.py").read_text())
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "__init__.py").write_text("")
    for name in ("helpers.py", "servers.py"):
        (pytester.path / "tests" / name).write_text((root / "tests" / name).read_text())
    pytester.makepyfile(test_leaky=LEAKY)
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=2)
    out = result.stdout.str()
    assert "test leaked asyncio tasks: ['leaky-task']" in out
    assert "test leaked threads: ['leaky-thread']" in out
