"""The evaluator's state file: read once at start, written atomically, off the event loop under `run()`.

A restart neither forgets a firing alert nor fires it anew: the alert book and the outdoor running
mean are saved as one JSON document (`files.atomic_write`: temporary file, fsync, rename). While the
evaluator runs, documents are written by a worker thread, one write at a time; a newer snapshot taken
meanwhile replaces an older one still waiting. Outside `run()`, `save` writes at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stationmon.files import atomic_write
from stationmon.logutil import FailureLog

__all__ = ["STATE_FILE_VERSION", "StateFile"]

log = logging.getLogger("stationmon.evaluator")

STATE_FILE_VERSION = 1
StateDocument = dict[str, Any]  # JSON


class StateFile:
    """One state file: `load` at start, `save` after changes, `finished` before shutting down."""

    def __init__(self, path: Path, *, on_failure: Callable[[], None]) -> None:
        """`on_failure` is called when a save fails, so the owner tries again later."""
        self.path = path
        self.on_failure = on_failure
        self.background = False  # set by the owner while an event loop runs it
        self._log = FailureLog(log, f"alert state {path}")
        self._next: StateDocument | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()  # one writer of the temp file, whatever the caller

    @property
    def ok(self) -> bool:
        """False while saving fails."""
        return not self._log.failing

    def load(self, restore: Callable[[Mapping[str, Any]], None], now: float) -> bool:
        """Hand the saved document to `restore`; False if there was none or it was unusable.

        A document that cannot be used (not UTF-8, not JSON, not our schema) is moved aside as
        `<name>.corrupt-<now>` with an ERROR naming it, so the next save keeps the evidence and the
        service starts without it."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("%s: cannot read alert state, starting without: %s", self.path, exc)
            return False
        try:
            doc = json.loads(data.decode("utf-8"))
            if not isinstance(doc, dict) or doc.get("version") != STATE_FILE_VERSION:
                raise ValueError(f"not a stationmon alert state of version {STATE_FILE_VERSION}")
            restore(doc)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
            self._move_aside(f"{type(exc).__name__}: {exc}"[:300], now)
            return False
        return True

    def _move_aside(self, why: str, now: float) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(now)}")
        try:
            self.path.rename(aside)
        except OSError as exc:
            log.error(
                "%s: unreadable alert state (%s); cannot move it aside to %s (%s), starting without",
                self.path,
                why,
                aside,
                exc,
            )
            return
        log.error("%s: unreadable alert state (%s); moved to %s, starting without", self.path, why, aside)

    def save(self, doc: StateDocument) -> None:
        """Write `doc`: at once, or under `run()` by a worker thread; failures are logged, not raised."""
        if not self.background:
            self._saved(self._write(doc))
            return
        self._next = doc
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write_queued(), name="evaluator-save")

    async def finished(self) -> None:
        """Wait until every document handed to the writer is on disk, even if cancelled meanwhile."""
        task = self._task
        while task is not None and not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                continue  # shutting down: the final state must still reach the disk first
        self._task = None

    async def _write_queued(self) -> None:
        # the newest snapshot until none is waiting; changes during a write are written together after
        while self._next is not None:
            doc, self._next = self._next, None
            try:
                error = await asyncio.to_thread(self._write, doc)
            except RuntimeError as exc:  # no worker thread to be had (the loop's executor shut down)
                error = str(exc)
            self._saved(error)

    def _saved(self, error: str | None) -> None:
        if error is None:
            self._log.success()
            return
        self._log.failure(f"cannot save: {error}")
        self.on_failure()

    def _write(self, doc: StateDocument) -> str | None:
        """Write `doc` atomically; the error, or None."""
        with self._lock:
            try:
                data = json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8")
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(self.path, data)
            except (OSError, ValueError, TypeError) as exc:
                return str(exc)
        return None
