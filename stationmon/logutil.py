"""Logging setup (text or JSON lines) and the failure/recovery pattern every component follows.

The first failure of a component is logged at ERROR, repeats at DEBUG until it recovers, and the
recovery is logged once at INFO, so a dead PLC polled every 10 s does not flood the log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

__all__ = ["FailureLog", "RateLimitedLog", "setup_logging"]


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is when a record is emitted, not when the handler was made
    (tests and embedding programs swap sys.stderr; a handler bound to a closed stream would fail)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Configure the root logger for the CLI: `fmt` is "text" or "json"."""
    handler = _StderrHandler()
    text = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handler.setFormatter(_JsonFormatter() if fmt == "json" else text)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Our dependencies are chatty at INFO/WARNING about things we already report ourselves.
    for name in ("pymodbus", "aiomqtt", "amqtt", "transitions", "aiohttp.access"):
        logging.getLogger(name).setLevel(max(logging.ERROR, root.level))


class FailureLog:
    """ERROR on the first failure, DEBUG on repeats, INFO once on recovery."""

    __slots__ = ("failing", "logger", "what")

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what
        self.failing = False

    def failure(self, reason: str) -> None:
        """Record a failure of `what` (a URL, a station id and address...)."""
        if self.failing:
            self.logger.debug("%s: still failing: %s", self.what, reason)
        else:
            self.failing = True
            self.logger.error("%s: %s", self.what, reason)

    def success(self) -> None:
        """Record a success; logs the recovery once if it was failing."""
        if self.failing:
            self.failing = False
            self.logger.info("%s: recovered", self.what)


class RateLimitedLog:
    """At most one message per key per `interval_s` (malformed payloads: once a minute per topic)."""

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0, max_keys: int = 10000) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._last: dict[str, float] = {}

    def warning(self, key: str, msg: str, *args: object, now: float | None = None) -> bool:
        """Log unless `key` was logged within the interval; True if it logged."""
        now = time.monotonic() if now is None else now
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            return False
        if len(self._last) >= self.max_keys:
            self._last.clear()
        self._last[key] = now
        self.logger.warning(msg, *args)
        return True
