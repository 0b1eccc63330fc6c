"""Small helpers for tests: free ports, waiting for a condition with a deadline, config files."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from stationmon.sim.servers import free_port, port_open

__all__ = ["free_port", "port_open", "wait_until", "wait_until_sync", "write_config"]


async def wait_until(
    predicate: Callable[[], Any] | Callable[[], Awaitable[Any]],
    timeout: float = 10.0,
    message: str = "condition",
    interval: float = 0.05,
) -> Any:
    """Poll `predicate` (sync or async) until it returns something truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
        except AssertionError as exc:  # let predicates assert while we wait
            last_exc = exc
        if time.monotonic() > deadline:
            detail = f": {last_exc}" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}{detail}")
        await asyncio.sleep(interval)


def wait_until_sync(
    predicate: Callable[[], Any], timeout: float = 10.0, message: str = "condition", interval: float = 0.05
) -> Any:
    """The blocking form of `wait_until`."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except AssertionError as exc:
            last_exc = exc
        if time.monotonic() > deadline:
            detail = f": {last_exc}" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}{detail}")
        time.sleep(interval)


def write_config(tmp_path: Path, text: str, name: str = "stationmon.toml") -> Path:
    """Write a config file into tmp_path and return its path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path
