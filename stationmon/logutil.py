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

__all__ = ["FailureLog", "OneLineExceptions", "RateLimitedLog", "printable", "quieten_server_log", "setup_logging"]

_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)} | {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x5C: "\\\\"}
_CONTROL.update({c: f"\\u{c:04x}" for c in (0x85, 0x2028, 0x2029)})  # line breaks to str.splitlines()


def printable(text: str, limit: int = 300) -> str:
    """`text` safe for one log line: control characters and backslashes escaped, at most `limit` characters.

    A request path, topic or payload from the network goes through this before it reaches a log line,
    so a `%0a` in a URL cannot forge a line of its own.
    """
    if len(text) > limit:
        text = text[:limit] + "..."
    return text.translate(_CONTROL)


class OneLineExceptions(logging.Filter):
    """Turns a record's traceback into one line: `message: ExceptionType: text`, at WARNING.

    For loggers of libraries that log a traceback per malformed request (aiohttp.server): an internet
    scanner must not write a hundred lines per probe, nor forge lines through the text it sent.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        exc = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        if exc is not None:
            message = f"{message}: {type(exc).__name__}: {' '.join(str(exc).split())}"  # its lines in one
            record.exc_info = None
            record.exc_text = None
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg, record.args = printable(message, 500), None
        return True


def quieten_server_log(name: str = "aiohttp.server") -> None:
    """Install `OneLineExceptions` on a library's server logger, once."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, OneLineExceptions) for f in logger.filters):
        logger.addFilter(OneLineExceptions())


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
    quieten_server_log()


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
    """At most one message per key per `interval_s`, and at most `per_group` per group and interval.

    Keys are topics (malformed payloads: once a minute per topic); groups are reasons, so a flood of
    distinct topics (50,000 unknown stations) writes a handful of lines a minute, not one per topic.
    What a group held back is summed up in one line when it next logs after its interval.
    """

    def __init__(
        self, logger: logging.Logger, interval_s: float = 60.0, max_keys: int = 10000, per_group: int = 5
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.max_keys = max_keys
        self.per_group = per_group
        self._last: dict[str, float] = {}
        self._groups: dict[str, list[float]] = {}  # group -> [window start, logged in it, held back]

    def warning(self, key: str, msg: str, *args: object, group: str = "", now: float | None = None) -> bool:
        """Log unless `key` was logged within the interval or `group` used its lines; True if it logged."""
        now = time.monotonic() if now is None else now
        last = self._last.get(key)
        window = self._window(group, now) if group else None
        if (last is not None and now - last < self.interval_s) or (window is not None and window[1] >= self.per_group):
            if window is not None:
                window[2] += 1
            return False
        if len(self._last) >= self.max_keys:
            self._last.clear()
        self._last[key] = now
        if window is not None:
            window[1] += 1
        self.logger.warning(msg, *args)
        return True

    def _window(self, group: str, now: float) -> list[float]:
        window = self._groups.get(group)
        if window is None:
            window = self._groups[group] = [now, 0.0, 0.0]
        elif now - window[0] >= self.interval_s:
            if window[2]:
                self.logger.warning(
                    "%d more like this (%s) not logged in the last %.0fs", window[2], group, now - window[0]
                )
            window[:] = [now, 0.0, 0.0]
        return window
