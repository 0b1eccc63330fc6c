"""Real servers on this machine for the demo, shared with the tests (tests/servers.py adds the test-only ones).

Each runs on a free port in a folder of its own; one that does not come up raises StationmonError naming its log.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from stationmon.errors import StationmonError

__all__ = [
    "InfluxServer",
    "MosquittoServer",
    "ServerProcess",
    "embedded_broker",
    "find_binary",
    "free_port",
    "http_ok",
    "port_open",
]

# Debian puts mosquitto and alertmanager's helpers in /usr/sbin, which is not on a normal user's PATH
_SBIN = "/usr/sbin:/usr/local/sbin:/usr/bin"


def find_binary(*names: str, sbin: bool = True) -> str | None:
    """Path of the first of `names` on PATH (and, with `sbin`, in the sbin folders), or None."""
    for name in names:
        found = shutil.which(name) or (shutil.which(name, path=_SBIN) if sbin else None)
        if found:
            return found
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def http_ok(url: str, status: int) -> bool:
    """True if GET `url` answers with `status`."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == status)
    except OSError:
        return False


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_this_thread() -> Callable[[], None] | None:
    """For Popen's preexec_fn on Linux: the child gets SIGTERM when the thread that starts it ends, however
    it ends (SIGKILL included), and at once if this process is already gone; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork: the child only calls it
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call above: nobody would signal
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child


class ServerProcess:
    """A server binary in `workdir` with its log in a file; stop() is SIGTERM, then SIGKILL after 10 s.

    With `die_with_parent` (the demo's servers) the server also ends when the thread that started it does,
    even by SIGKILL, so a killed demo leaves no influxd or mosquitto behind (Linux; start() it from a thread
    that lives as long as the server should, such as the main thread). The tests' servers, which a test
    may restart from a worker thread, leave it off."""

    def __init__(self, name: str, workdir: Path, *, die_with_parent: bool = False) -> None:
        self.name = name
        self.workdir = workdir
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{name}.log"
        workdir.mkdir(parents=True, exist_ok=True)

    def _spawn(self, argv: list[str], ready: Callable[[], bool], timeout_s: float = 30.0) -> None:
        """Start `argv` unless running, and wait until `ready()`; StationmonError if it does not come up."""
        if self.proc is not None and self.proc.poll() is None:
            return
        with open(self.log_path, "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=_die_with_this_thread() if self.die_with_parent else None,
            )
        deadline = time.monotonic() + timeout_s
        while not ready():
            exited = self.proc.poll() is not None
            if exited or time.monotonic() > deadline:
                self.stop()
                why = "exited" if exited else f"did not answer within {timeout_s:g} s"
                raise StationmonError(f"{self.name} {why} (see {self.log_path}): {self._log_tail()}")
            time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-500:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the process and wait for it (SIGKILL if it takes longer than 10 s)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class InfluxServer(ServerProcess):
    """influxd 1.x on a free port, API v1; its data stays in `workdir` across stop()/start()."""

    def __init__(self, binary: str, workdir: Path, *, die_with_parent: bool = False) -> None:
        super().__init__("influxd", workdir, die_with_parent=die_with_parent)
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "influxdb.conf"
        self.config_path.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{free_port()}"
[meta]
  dir = "{workdir}/meta"
[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"
[coordinator]
  write-timeout = "10s"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  max-body-size = 0
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
""",
            encoding="utf-8",
        )

    def start(self) -> None:
        """Start (or restart) the server and wait until /ping answers."""
        self._spawn([self.binary, "-config", str(self.config_path)], lambda: http_ok(f"{self.url}/ping", 204))

    def post_query(self, q: str, db: str | None = None) -> dict[str, Any]:
        """POST an InfluxQL query; the JSON answer, time in epoch ms."""
        params = {"q": q, "epoch": "ms", **({"db": db} if db else {})}
        data = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=30) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def create_database(self, name: str) -> None:
        """CREATE DATABASE `name`."""
        self.post_query(f'CREATE DATABASE "{name}"')


class MosquittoServer(ServerProcess):
    """mosquitto on 127.0.0.1 and a free port, anonymous, with persistence in `workdir`."""

    def __init__(self, binary: str, workdir: Path, extra_conf: str = "", *, die_with_parent: bool = False) -> None:
        super().__init__("mosquitto", workdir, die_with_parent=die_with_parent)
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = free_port()
        self.url = f"mqtt://{self.host}:{self.port}"
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {workdir}/",
            "autosave_interval 1",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "max_queued_messages 0",
        ]
        if os.geteuid() == 0:
            # as root mosquitto drops to user "mosquitto", who cannot write the persistence file here
            lines.append("user root")
        if extra_conf:
            lines.append(extra_conf)
        self.config_path = workdir / "mosquitto.conf"
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self) -> None:
        """Start (or restart, same port and persistence file) and wait until it accepts connections."""
        self._spawn([self.binary, "-c", str(self.config_path)], lambda: port_open(self.port, self.host))


@contextlib.asynccontextmanager
async def embedded_broker(port: int) -> AsyncIterator[None]:
    """amqtt's broker on 127.0.0.1:port, anonymous, in this event loop."""
    from amqtt.broker import Broker

    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    try:
        await broker.start()
    except Exception as exc:  # amqtt's BrokerError and socket errors
        raise StationmonError(f"embedded MQTT broker on 127.0.0.1:{port}: {exc}") from exc
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await broker.shutdown()
