"""Small helpers for tests: free ports, waiting for a condition with a deadline, config files."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from stationmon.adapters.spool import Spool
from stationmon.service import Service
from stationmon.sim.servers import free_port, port_open

__all__ = [
    "drain_spool",
    "free_port",
    "port_open",
    "running_service",
    "wait_for_count",
    "wait_until",
    "wait_until_sync",
    "write_config",
]


async def wait_until(
    predicate: Callable[[], Any] | Callable[[], Awaitable[Any]],
    timeout: float = 10.0,
    message: str = "condition",
    interval: float = 0.05,
    seen: Callable[[], Any] | None = None,
) -> Any:
    """Poll `predicate` (sync or async) until it returns something truthy; fail after `timeout` s.

    The failure names `message` and what was last seen: the predicate's last AssertionError or falsy
    result, and `seen()` (the state worth knowing when it never came: a count, a status) if given."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
            if inspect.isawaitable(last):
                last = await last
            if last:
                return last
        except AssertionError as exc:  # let predicates assert while we wait
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(timeout, message, last, seen))
        await asyncio.sleep(interval)


def _timed_out(timeout: float, message: str, last: Any, seen: Callable[[], Any] | None) -> str:
    text = f"timed out after {timeout:g}s waiting for {message}"
    if isinstance(last, AssertionError):
        text += f": {last}"
    elif last is not None and last is not False:
        text += f" (it last returned {repr(last)[:200]})"
    if seen is not None:
        try:
            text += f"; last seen: {seen()}"
        except Exception as exc:  # the report must not hide the timeout
            text += f"; last seen: unavailable ({type(exc).__name__}: {exc})"
    return text


def wait_until_sync(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    message: str = "condition",
    interval: float = 0.05,
    seen: Callable[[], Any] | None = None,
) -> Any:
    """The blocking form of `wait_until`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(timeout, message, last, seen))
        time.sleep(interval)


async def wait_for_count(
    read: Callable[[], Any] | Callable[[], Awaitable[Any]],
    target: float,
    message: str,
    *,
    stall_s: float = 30.0,
    timeout: float = 240.0,
    interval: float = 0.1,
    seen: Callable[[], Any] | None = None,
) -> float:
    """Wait until the counter `read()` (sync or async) is exactly `target`.

    For counts that a busy machine makes slow but that must come out exact: the wait lasts while the
    count moves (failing after `stall_s` without progress, or `timeout` in all), and fails at once when
    it passes `target` (something counted twice: the message says so, with `seen()`)."""
    started = time.monotonic()
    moved_at, last = started, None
    while True:
        value = read()
        if inspect.isawaitable(value):
            value = await value
        now = time.monotonic()
        if value == target:
            return float(value)
        extra = f"; last seen: {seen()}" if seen is not None else ""
        if value is not None and value > target:
            raise AssertionError(f"{message}: counted {value}, past the {target} expected (counted twice?){extra}")
        if value != last:
            moved_at, last = now, value
        if now - moved_at > stall_s or now - started > timeout:
            why = f"no progress for {stall_s:g}s" if now - moved_at > stall_s else f"not done after {timeout:g}s"
            raise AssertionError(f"{message}: {why}, at {value} of {target}{extra}")
        await asyncio.sleep(interval)


def drain_spool(spool: Spool, limit: int = 100_000) -> list[list[str]]:
    """Every pending record's lines in order, acknowledging each.

    Bounded: an acknowledgement that does not move the spool on (the same record comes back) fails at
    once, and more than `limit` records fail too, instead of looping until the global test timeout."""
    out: list[list[str]] = []
    previous: tuple[int, int] | None = None
    while (record := spool.peek()) is not None:
        where = (record.segment, record.offset)
        assert where != previous, f"ack did not move the spool on: record at segment {where[0]} byte {where[1]} again"
        assert len(out) < limit, f"more than {limit} records drained; the last at segment {where[0]} byte {where[1]}"
        previous = where
        out.append(record.lines)
        spool.ack(record)
    return out


def write_config(tmp_path: Path, text: str, name: str = "stationmon.toml") -> Path:
    """Write a config file into tmp_path and return its path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@contextlib.asynccontextmanager
async def running_service(service: Service, *, stop_timeout_s: float = 30.0) -> AsyncIterator[Service]:
    """Run `service` (its `run(stop)`, as the task "service") while the block runs; stop it on exit.

    The service's failure is the test's: a task that raises (or returns) before it is asked to stop
    cancels the block at once, as a TaskGroup does, and its exception is raised in the block's place; one
    that raises on stop raises it from here; one that does not stop within `stop_timeout_s` is cancelled
    and fails the test with a message naming the timeout. An exception of the block itself is still the
    one raised, with any failure of stopping the service added to it as a note."""
    body = asyncio.current_task()
    assert body is not None, "running_service needs a running task"
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop), name="service")
    interrupted = False

    def ended(_: asyncio.Task[None]) -> None:
        nonlocal interrupted
        if not stop.is_set():  # it ended by itself: stop waiting for whatever the block awaits
            interrupted = True
            body.cancel()

    task.add_done_callback(ended)
    try:
        yield service
    except asyncio.CancelledError as cancelled:
        if not interrupted:
            await _note_stop_failure(task, stop, stop_timeout_s, cancelled)
            raise
        body.uncancel()  # the cancellation was ours: the service's end is the failure to report
    except BaseException as exc:
        await _note_stop_failure(task, stop, stop_timeout_s, exc)
        raise
    else:
        if interrupted:  # the block swallowed the cancellation that reported the service's end
            body.uncancel()
    failure = await _stop_service(task, stop, stop_timeout_s)
    if failure is not None:  # raised as it is: its own cause and traceback kept
        raise failure


async def _note_stop_failure(task: asyncio.Task[None], stop: asyncio.Event, timeout: float, exc: BaseException) -> None:
    """Stop the service while the block's `exc` is on its way; a failure to stop becomes its note."""
    failure = await _stop_service(task, stop, timeout)
    if failure is not None:
        exc.add_note(f"and stopping the service failed too: {type(failure).__name__}: {failure}")


async def _stop_service(task: asyncio.Task[None], stop: asyncio.Event, timeout: float) -> BaseException | None:
    """Set `stop` and wait for the task: its exception, an AssertionError for a hang or an early end, or None."""
    early = task.done()
    stop.set()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=timeout)
        return AssertionError(f"the service did not stop within {timeout:g}s of stop being set (cancelled it)")
    if task.cancelled():
        return asyncio.CancelledError("the service task was cancelled")
    failure = task.exception()
    if failure is None and early:
        return AssertionError("Service.run returned before it was asked to stop")
    return failure
