"""Hostile HTTP input against a real `stationmon run` process: odd static names, forged log lines, malformed
request lines, deeply nested and oversized bodies. Each gets a 4xx, the log stays one line per event with
no traceback and no forged line, every response carries the security headers, and the service keeps serving.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stationmon.adapters.http import SECURITY_HEADERS
from tests.helpers import free_port, wait_until_sync, write_config

TOKEN = "hardening-token"
CONFIG = """
[influxdb]
url = "http://127.0.0.1:9"
api = "v1"
database = "d"
spool_dir = "{spool}"
[http]
listen = "127.0.0.1:{port}"
token_env = "STATIONMON_TOKEN"
[[stations]]
id = "s1"
"""
# a log line as stationmon writes it: time, level, logger, message
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+: ")
FORGED = "2026-01-01 00:00:00,000 ERROR   stationmon.modbus: station s1: FORGED LINE failed"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A `stationmon run` process; yields its base URL and the file its stderr (the log) goes to."""
    port = free_port()
    cfg = write_config(tmp_path, CONFIG.format(spool=tmp_path / "spool", port=port))
    log_path = tmp_path / "stderr.log"
    env = {**os.environ, "STATIONMON_TOKEN": TOKEN, "PYTHONPATH": os.pathsep.join(sys.path)}
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stationmon", "run", "-c", str(cfg)], stderr=log_file, stdout=log_file, env=env
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_sync(lambda: _get_ok(base + "/healthz"), timeout=30, message="stationmon run answering")
        yield base, log_path
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


class _Answer:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status_code, self.headers, self.body = status, headers, body

    def json(self) -> dict[str, str]:
        doc: dict[str, str] = json.loads(self.body)
        return doc


def _request(method: str, url: str, data: str | bytes | None = None, headers: dict[str, str] | None = None) -> _Answer:
    """One request with the standard library (the path is sent as given, percent escapes and all)."""
    host, _, path = url.removeprefix("http://").partition("/")
    conn = http.client.HTTPConnection(host, timeout=10)
    try:
        conn.request(method, "/" + path, body=data, headers=headers or {})
        response = conn.getresponse()
        return _Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


def _get_ok(url: str) -> bool:
    try:
        return _request("GET", url).status_code == 200
    except OSError:
        return False


def _raw(base: str, request: bytes) -> bytes:
    """Send raw bytes (no client library cleans them up) and return the whole answer."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _assert_clean_log(log_path: Path) -> list[str]:
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    assert not [line for line in lines if "Traceback" in line], "\n".join(lines[-40:])
    stray = [line for line in lines if not LOG_LINE.match(line)]
    assert not stray, f"lines that are not log lines (a forged line or a traceback): {stray[:5]}"
    assert not [line for line in lines if "FORGED LINE failed" in line and line.startswith("2026-01-01")]
    return lines


STATIC_NAMES = [
    "%00abc",
    "a%00.js",
    "x" * 300,
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2fpyproject.toml",
    "..%5c..%5cREADME.md",
    "%0a" + FORGED.replace(" ", "%20"),
    "%0d%0aSet-Cookie:%20x=1",
    "%ff%fe",
    "app.js%00.html",
    "__init__.py",
    "",
]


def test_hostile_static_names_get_404_and_no_traceback(service: tuple[str, Path]) -> None:
    base, log_path = service
    for name in STATIC_NAMES:
        answer = _raw(base, f"GET /static/{name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line == b"HTTP/1.1 404 Not Found", (name, answer[:300])
        assert b"Set-Cookie" not in answer.split(b"\r\n\r\n", 1)[0]
    for _ in range(200):  # the probe's volume: it must not write a log line per request
        assert _request("GET", base + "/static/%0a" + FORGED.replace(" ", "%20")).status_code == 404
    assert _request("GET", base + "/static/app.js").status_code == 200
    lines = _assert_clean_log(log_path)
    assert sum(len(line) for line in lines) < 5000, "hostile requests wrote to the log"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"G\x00ET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /%0a" + FORGED.replace(" ", "%20").encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rERROR stationmon.modbus: FORGED LINE failed\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32) + b"\r\n\r\n",  # TLS to the plain port
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_requests_are_one_warning_line(service: tuple[str, Path], request_bytes: bytes) -> None:
    base, log_path = service
    answer = _raw(base, request_bytes)
    assert answer == b"" or answer.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400", b"HTTP/1.1 404", b"HTTP/1.1 505"))
    assert _get_ok(base + "/healthz"), "the service stopped serving"
    lines = _assert_clean_log(log_path)
    server_lines = [line for line in lines if "aiohttp.server" in line]
    assert len(server_lines) <= 1, server_lines
    for line in server_lines:
        assert " WARNING " in line


def test_request_bodies_are_bounded(service: tuple[str, Path]) -> None:
    base, log_path = service
    url = base + "/api/v1/alerts/no-such-alert/ack"
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    deep = _request("POST", url, "[" * 100_000 + "]" * 100_000, auth)
    assert deep.status_code == 413  # past the 16 KiB an acknowledgement needs
    nested = _request("POST", url, "[" * 5000 + "]" * 5000, auth)
    assert nested.status_code == 400
    assert "nested deeper" in nested.json()["error"]
    in_strings = _request("POST", url, json.dumps({"by": "[" * 3000, "comment": "{" * 1900}), auth)
    assert in_strings.status_code == 400  # brackets inside strings are not nesting: "by" is just too long
    assert '"by"' in in_strings.json()["error"]
    assert _request("POST", url, b"\xff\xfe{", auth).status_code == 400
    assert _request("POST", url, "[" * 5000).status_code == 401  # no token: body never read
    ok = _request("POST", url, json.dumps({"by": "wang", "comment": "[[[{{{"}), auth)
    assert ok.status_code == 404  # well-formed: on to the lookup
    _assert_clean_log(log_path)


def test_every_response_carries_the_security_headers(service: tuple[str, Path]) -> None:
    base, _ = service
    for method, path in [
        ("GET", "/"),
        ("GET", "/static/app.js"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/stations"),
        ("GET", "/nope"),
        ("GET", "/static/%00"),
        ("POST", "/api/v1/alerts/x/ack"),
        ("DELETE", "/healthz"),
    ]:
        response = _request(method, base + path)
        for name in ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"):
            assert response.headers.get(name) == SECURITY_HEADERS[name], (method, path, name)
        assert response.headers["Server"] == "stationmon", (method, path)
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
