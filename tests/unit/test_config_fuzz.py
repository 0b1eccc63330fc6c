"""Property-based fuzzing of `check-config`: whatever a mutated `configs/example.toml` holds, the answer is
exit 0 or exit 2 with `FILE: ...` lines on stderr, never a traceback.

Mutations are of two kinds: bytes (flip, insert, delete, truncate: broken UTF-8 and broken TOML syntax)
and tokens (a value replaced by a hostile one: integers too large for a float, infinities, non-ASCII
digits, malformed URLs, over-long names, deep nesting, wrong types; lines deleted or duplicated; keys
renamed). The command runs in-process through `stationmon.cli.main`, so a few hundred variants take
seconds. Derandomised: the same variants every run, so a failure reproduces.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stationmon.cli import main

EXAMPLE = (Path(__file__).resolve().parents[2] / "configs" / "example.toml").read_text(encoding="utf-8")
LINES = EXAMPLE.splitlines(keepends=True)
_ASSIGNMENT = re.compile(r"\s*[A-Za-z_][\w.-]*\s*=")  # `key = value` lines: token mutations replace the value

HOSTILE_VALUES = [
    "1" + "0" * 400,  # an integer too large for a float
    "-" + "9" * 30,  # too large for 64 bits
    "1" + "0" * 5000,  # more digits than int() converts
    "inf",
    "-inf",
    "+inf",
    "nan",
    "1e308",
    "-1e308",
    "0",
    "-1",
    "65536",
    "2147483648",
    "true",
    '""',
    '" "',
    '"²"',
    '"127.0.0.1:²"',
    '"[::1]:9640"',
    '":"',
    '"http://[::1:8086"',
    '"http://[fe80::1%eth0]:8086"',
    '"mqtt://user:secret@host:1883"',
    '"mqtt://host:99999"',
    '"A' + "x" * 300 + '"',
    '"Asia/' + "x" * 5000 + '"',
    '"../../etc/passwd"',
    '"\\u0000"',
    '"\\n[forged]"',
    '"' + "9" * 400 + 's"',
    '"1e9s"',
    '"0s"',
    '"-5s"',
    '"٣s"',
    '"{station}/{station}"',
    '"#/x"',
    '"%s%n%x"',
    "[1, 2]",
    "[]",
    '["a", 1]',
    "{a = 1}",
    "{}",
    "[" * 60 + "]" * 60,
    "[" * 3000 + "]" * 3000,  # past tomllib's recursion limit
    "{a=" * 3000 + "1" + "}" * 3000,
    "1979-05-27T07:32:00Z",
    "07:32:00",
]
HOSTILE_KEYS = ["slave", "Id", "id.x", '"quoted key"', "x" * 200, "timezone", "url"]
HOSTILE_HEADERS = [
    "[site]",
    "[[stations]]",
    "[[stations.loops]]",
    "[mqtt]",
    "[[mqtt.subscriptions]]",
    "[stations]",
    "[rules.nonexistent]",
    "[[alerting.webhook]]",
    "[simulator]",
    "[[simulator.faults]]",
]


def _assignments(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if _ASSIGNMENT.match(line)] or [0]


def _replace_value(lines: list[str], data: st.DataObject) -> None:
    i = data.draw(st.sampled_from(_assignments(lines)))
    key = lines[i].split("=", 1)[0]
    value = data.draw(st.sampled_from(HOSTILE_VALUES))
    lines[i] = f"{key}= {value}\n"


def _replace_key(lines: list[str], data: st.DataObject) -> None:
    i = data.draw(st.sampled_from(_assignments(lines)))
    _, sep, value = lines[i].partition("=")
    lines[i] = data.draw(st.sampled_from(HOSTILE_KEYS)) + " =" + (value if sep else " 1\n")


def _token_mutation(data: st.DataObject) -> str:
    lines = list(LINES)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["value", "value", "value", "key", "delete", "duplicate", "header"]))
        if kind == "value":
            _replace_value(lines, data)
        elif kind == "key":
            _replace_key(lines, data)
        elif kind == "delete":
            del lines[data.draw(st.integers(0, len(lines) - 1))]
        elif kind == "duplicate":
            i = data.draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
        else:
            at = data.draw(st.integers(0, len(lines)))
            lines.insert(at, data.draw(st.sampled_from(HOSTILE_HEADERS)) + "\n")
    return "".join(lines)


def _byte_mutation(data: st.DataObject) -> bytes:
    raw = bytearray(EXAMPLE.encode("utf-8"))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(raw) - 1))
        kind = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if kind == "flip":
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del raw[at : at + data.draw(st.integers(1, 40))]
        else:
            del raw[at:]
        if not raw:
            break
    return bytes(raw)


@contextlib.contextmanager
def _secrets_set() -> Iterator[None]:
    """The example's secrets exist, so a valid variant exits 0 (hypothesis dislikes monkeypatch)."""
    names = ("INFLUX_TOKEN", "STATIONMON_TOKEN")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update(dict.fromkeys(names, "fuzz"))
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def check_config(content: bytes) -> tuple[int, str]:
    """Run `stationmon check-config` in-process on `content`: (exit code, stderr)."""
    err, out = io.StringIO(), io.StringIO()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.toml"
        path.write_bytes(content)
        with _secrets_set(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(["check-config", "-c", str(path)])
            except BaseException as exc:  # exactly what this test must never see
                pytest.fail(
                    f"check-config raised {type(exc).__name__}: {exc!r:.300}\n--- config ---\n{content!r:.3000}"
                )
    return code, err.getvalue()


def _assert_clean(content: bytes) -> None:
    code, err = check_config(content)
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err, err
    if code == 2:
        lines = err.splitlines()
        assert lines, "exit 2 without saying why"
        assert all(line.startswith("fuzz.toml: ") for line in lines), err[:2000]
        assert all(len(line) < 2000 for line in lines), "a problem line quotes a huge value"


_FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_example_is_valid() -> None:
    """The base of every mutation is valid: otherwise the fuzzing proves nothing about the exit-0 path."""
    assert check_config(EXAMPLE.encode()) == (0, "")


@_FUZZ
@given(st.data())
def test_token_mutations_never_raise(data: st.DataObject) -> None:
    _assert_clean(_token_mutation(data).encode("utf-8"))


@_FUZZ
@given(st.data())
def test_byte_mutations_never_raise(data: st.DataObject) -> None:
    _assert_clean(_byte_mutation(data))
