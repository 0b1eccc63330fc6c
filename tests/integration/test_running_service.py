"""`running_service` never hides how the service ended: its exception, an early end or a hang fail the test."""

from __future__ import annotations

import asyncio
import errno
import socket
from pathlib import Path

import pytest

from stationmon.config import Config, parse_config_text
from stationmon.errors import StationmonError
from stationmon.service import Service
from tests.helpers import free_port, port_open, running_service, wait_until


def _config(tmp_path: Path, port: int) -> Config:
    return parse_config_text(
        f"""
[influxdb]
api = "v1"
database = "unused"
spool_dir = "{tmp_path / "spool"}"
flush_interval = "100ms"
[http]
listen = "127.0.0.1:{port}"
[[stations]]
id = "s1"
""",
        str(tmp_path / "stationmon.toml"),
        require_influxdb=False,
    )


class FailsOnStop(Service):
    async def run(self, stop: asyncio.Event) -> None:
        await super().run(stop)
        raise RuntimeError("the last flush was lost")


class IgnoresStop(Service):
    async def run(self, stop: asyncio.Event) -> None:
        await super().run(asyncio.Event())


class ReturnsAtOnce(Service):
    async def run(self, stop: asyncio.Event) -> None:
        return None


async def test_a_service_that_cannot_start_interrupts_the_block_with_its_own_error(tmp_path: Path) -> None:
    with socket.socket() as taken:  # the HTTP port is taken: the real Service.run raises at startup
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = _config(tmp_path, taken.getsockname()[1])
        with pytest.raises(StationmonError, match=r"http\.listen: cannot listen") as raised:
            async with running_service(Service(config)):
                await asyncio.Event().wait()  # only the service's end can interrupt this
    assert isinstance(raised.value.__cause__, OSError) and raised.value.__cause__.errno == errno.EADDRINUSE


async def test_an_error_on_stop_fails_the_test_and_never_hides_the_blocks_own(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="the last flush was lost"):
        async with running_service(FailsOnStop(_config(tmp_path, free_port()))) as service:
            assert isinstance(service, FailsOnStop)
    with pytest.raises(ValueError, match="the block's own") as raised:
        async with running_service(FailsOnStop(_config(tmp_path, free_port()))):
            raise ValueError("the block's own")
    assert raised.value.__notes__ == ["and stopping the service failed too: RuntimeError: the last flush was lost"]


async def test_a_service_that_does_not_stop_fails_with_the_timeout(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"the service did not stop within 0\.5s of stop being set"):
        async with running_service(IgnoresStop(_config(tmp_path, free_port())), stop_timeout_s=0.5):
            pass


async def test_a_service_that_returns_before_it_is_stopped_fails(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"Service\.run returned before it was asked to stop"):
        async with running_service(ReturnsAtOnce(_config(tmp_path, free_port()))):
            await asyncio.Event().wait()
    port = free_port()
    async with running_service(Service(_config(tmp_path, port))):  # a healthy one runs, then stops cleanly
        await wait_until(lambda: port_open(port), timeout=15, message="the HTTP server")
