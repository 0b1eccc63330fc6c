"""Reading TOML tables: typed getters that record every problem as `FILE: key.path: message`.

Nothing here knows stationmon's sections. A getter that finds a bad value records the problem and
returns the default, so one run reports every problem at once, cross-field checks included; `finish()`
reports the keys nobody asked for, with a "did you mean" where one is close.
"""

from __future__ import annotations

import difflib
import math
import reprlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from stationmon.domain.durations import parse_duration
from stationmon.redact import redact_url

__all__ = ["MAX_DURATION_S", "Problems", "Table", "check_url", "show", "split_listen", "suggest"]

T = TypeVar("T")

_A_DURATION = 'a duration string such as "500ms", "10s", "5m" or "24h"'
# Past these a value is a typo or an attack, never a setting: 100 years, and a 64-bit integer.
MAX_DURATION_S = 100 * 365 * 86400.0
_MAX_INT = 2**63 - 1
_MAX_LISTEN_PORT = 65535
_MAX_MESSAGE = 600

# Values quoted in messages: short, and safe for any nesting depth or size the TOML parser lets through.
_SHOW = reprlib.Repr()
_SHOW.maxstring = 80
_SHOW.maxother = 80
_SHOW.maxlist = _SHOW.maxdict = _SHOW.maxtuple = 6
_SHOW.maxlevel = 3


def show(value: object) -> str:
    """`repr(value)` shortened for a message: a 10 MB array or a 900-deep table quotes as a few dozen characters."""
    return _SHOW.repr(value)


_TYPE_NAMES: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    list: "array",
    dict: "table",
}


class Problems:
    """Every problem found in one file, and the defaults a user may not expect (for check-config)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: list[str] = []
        self.notices: list[str] = []
        self.of_environment: list[str] = []  # the lines about this machine, not the file (an unset secret)

    def add(self, path: str, message: str) -> None:
        """Record one problem at a key path; a message quoting a huge value keeps its start and its end."""
        if len(message) > _MAX_MESSAGE:
            half = _MAX_MESSAGE // 2
            message = f"{message[:half]}...{message[-half:]}"
        self.lines.append(f"{self.file}: {path}: {message}")

    def add_environment(self, path: str, message: str) -> None:
        """Record a problem of the machine the file is read on (the loader decides whether it is an error)."""
        self.add(path, message)
        self.of_environment.append(self.lines[-1])


def suggest(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest choice, or "" when none is close."""
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _range(lo: float | None, hi: float | None) -> str:
    return f"{lo}..{hi}" if hi is not None else f">= {lo}"


def _outside(value: float, lo: float | None, hi: float | None) -> bool:
    return (lo is not None and value < lo) or (hi is not None and value > hi)


class Table:
    """A TOML table being read: typed getters that record problems and the keys used."""

    def __init__(self, data: Mapping[str, Any], path: str, problems: Problems) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self.known: set[str] = set()

    def key(self, name: str) -> str:
        """The full key path of `name` in this table."""
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        """Whether the key is set (and mark it known)."""
        self.known.add(name)
        return name in self.data

    def add(self, name: str, message: str) -> None:
        """Record a problem at this table's key `name`."""
        self.problems.add(self.key(name), message)

    def _read(self, name: str, check: Callable[[object], bool], expected: str) -> object | None:
        """The value if set and of the right kind; None (a problem recorded if set) otherwise."""
        self.known.add(name)
        if name not in self.data:
            return None
        value: object = self.data[name]
        if not check(value):
            self.add(name, f"expected {expected}, got {_type_name(value)} {show(value)}")
            return None
        return value

    def text(self, name: str, default: T) -> str | T:
        """A string, or `default`."""
        value = self._read(name, lambda v: isinstance(v, str), "a string")
        return value if isinstance(value, str) else default

    def flag(self, name: str, default: T) -> bool | T:
        """true or false, or `default`."""
        value = self._read(name, lambda v: isinstance(v, bool), "true or false")
        return value if isinstance(value, bool) else default

    def integer(self, name: str, default: T, *, lo: int | None = None, hi: int | None = None) -> int | T:
        """An integer within lo..hi, or `default`."""
        value = self._read(name, _is_int, "an integer")
        if not isinstance(value, int):
            return default
        if abs(value) > _MAX_INT:
            self.add(name, f"{show(value)} is far too large (expected {_range(lo, hi)})")
            return default
        if _outside(value, lo, hi):
            self.add(name, f"{value} is out of range (expected {_range(lo, hi)})")
            return default
        return value

    def number(self, name: str, default: T, *, lo: float | None = None, hi: float | None = None) -> float | T:
        """A finite number (integers accepted) within lo..hi, or `default`."""
        value = self._read(name, _is_number, "a number")
        if not isinstance(value, int | float):
            return default
        try:
            number = float(value)
        except OverflowError:  # a TOML integer of hundreds of digits
            self.add(name, f"{show(value)} is too large for a number (expected {_range(lo, hi)})")
            return default
        if number != number:
            self.add(name, "NaN is not allowed")
            return default
        if not math.isfinite(number):
            self.add(name, f"{number} is not allowed (expected a finite number)")
            return default
        if _outside(number, lo, hi):
            self.add(name, f"{number:g} is out of range (expected {_range(lo, hi)})")
            return default
        return number

    def duration(self, name: str, default: float, *, allow_zero: bool = True) -> float:
        """A duration string such as "10s" in seconds, or `default`."""
        value = self._read(name, lambda v: isinstance(v, str), _A_DURATION)
        if not isinstance(value, str):
            return default
        try:
            seconds = parse_duration(value)
        except ValueError:
            self.add(name, f'bad duration {show(value)} (expected a number and a unit: "500ms", "10s", "5m", "24h")')
            return default
        if not seconds <= MAX_DURATION_S:  # also catches inf from hundreds of digits
            self.add(name, f"{show(value)} is too long (at most {MAX_DURATION_S / 86400 / 365:.0f} years)")
            return default
        if seconds == 0 and not allow_zero:
            self.add(name, "must be longer than 0s")
            return default
        return seconds

    def choice(self, name: str, choices: tuple[str, ...], default: str, what: str = "value") -> str:
        """One of `choices`, or `default`; a near miss gets a suggestion."""
        value = self.text(name, None)
        if value is None:
            return default
        if value not in choices:
            self.add(
                name, f"unknown {what} {show(value)} (expected one of {', '.join(choices)}){suggest(value, choices)}"
            )
            return default
        return value

    def table(self, name: str) -> Table | None:
        """A sub-table, or None if absent (or not a table: a problem)."""
        value = self._read(name, lambda v: isinstance(v, dict), "a table")
        return Table(value, self.key(name), self.problems) if isinstance(value, dict) else None

    def table_or_empty(self, name: str) -> Table:
        """A sub-table, or an empty one to read defaults from."""
        return self.table(name) or Table({}, self.key(name), self.problems)

    def tables(self, name: str) -> Iterator[tuple[int, Table]]:
        """(index, table) of an array of tables ([[name]])."""
        self.known.add(name)
        value = self.data.get(name)
        if value is None:
            return
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.add(name, f"expected an array of tables ([[{self.key(name)}]]), got {_type_name(value)}")
            return
        for i, item in enumerate(value):
            yield i, Table(item, f"{self.key(name)}[{i}]", self.problems)

    def finish(self) -> None:
        """Report keys that were never asked for, with a suggestion."""
        for name in self.data:
            if name not in self.known:
                self.add(name, f"unknown key{suggest(name, sorted(self.known))}")


def check_url(value: str, path: str, problems: Problems, schemes: tuple[str, ...], show: bool = True) -> bool:
    """Scheme, host and port of a URL; `show=False` keeps a secret URL out of the message."""
    try:
        parts = urlsplit(value)
        parts.hostname  # noqa: B018 - raises on a malformed IPv6 literal in some versions
    except ValueError as exc:  # "Invalid IPv6 URL": the URL itself may hold a secret, so only the reason
        problems.add(path, f"malformed URL: {exc}")
        return False
    if parts.username or parts.password:
        problems.add(path, "must not carry credentials (user:password@); use the *_env or *_file keys")
        return False
    if parts.scheme not in schemes or not parts.hostname:
        got = f", got {redact_url(value)!r}" if show else ""
        problems.add(path, f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}{got}")
        return False
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        # redact_url has nothing to show for a URL whose port does not parse: name the port instead
        port = parts.netloc.rpartition(":")[2]
        problems.add(path, f"bad port {port!r} in URL (expected a number 0..65535)")
        return False
    return True


def split_listen(value: str, path: str, problems: Problems) -> tuple[str, int] | None:
    """HOST:PORT -> (host, port); None and a problem if malformed. An empty host means all interfaces."""
    host, sep, port = value.rpartition(":")
    # isdigit() alone admits "²" and other digits int() refuses; five ASCII digits at most
    if not sep or not (port.isascii() and port.isdigit() and len(port) <= 5) or int(port) > _MAX_LISTEN_PORT:
        problems.add(path, f"expected HOST:PORT such as 127.0.0.1:9640, got {show(value)}")
        return None
    return host.strip("[]") or "0.0.0.0", int(port)
