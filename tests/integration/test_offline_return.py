"""A station back from an outage: its household sensors answer before its PLC is polled again.

In the demo the offline station's MQTT household thermometers came back a poll or two before its Modbus
poller reconnected (the poller waits out its backoff): the station counted as answering while every PLC
point was as old as the outage, and three stale `sensor_fault` alerts fired, then resolved. Here a real
pymodbus PLC is stopped and restarted under a running Service, household readings resume first, and the
loops must read "unknown" (nothing fresh to judge) until the PLC's poll, never a sensor fault. A PLC that
stays silent while the household sensors answer is still a stale-sensor fault once the grace is over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from stationmon.config import parse_config_text
from stationmon.domain.model import AlertEvent, Reading
from stationmon.domain.registers import encode_value
from stationmon.service import Service
from tests.helpers import free_port, running_service, wait_until
from tests.stations_toml import loop_entry, outdoor, station_toml, water

STATION = "s-return"


def _config_text(tmp_path: Path, modbus_port: int) -> str:
    station = station_toml(
        STATION,
        port=modbus_port,
        interval="300ms",
        timeout="250ms",
        loops=[loop_entry("floor", "floor", design=(50.0, 40.0))],
        points=[outdoor(type="int16", scale=0.1), *water("floor", supply=110, ret=112, type="float32")],
    )
    # fresh_s = offline_after = 4 s: longer than the poller's backoff cap (10 x 300 ms) plus a poll
    return f"""
state_dir = "{tmp_path}/state"
[influxdb]
api = "v1"
database = "x"
spool_dir = "{tmp_path}/spool"
[http]
listen = "127.0.0.1:{free_port()}"
[rules]
evaluate_every = "200ms"
for = "1s"
clear_for = "1s"
offline_after = "4s"
season_start = "01-01"
season_end = "12-31"
outdoor_smoothing = "0s"
water_smoothing = "0s"
[rules.indoor_low]
min_sensors = 3  # one household thermometer: the water model judges the loop (and its sensor faults show)
{station}"""


@contextlib.asynccontextmanager
async def _households(service: Service) -> AsyncIterator[None]:
    """The station's household thermometer reports every 200 ms (as over MQTT) while the block runs."""

    async def report() -> None:
        while True:
            now = service.clock()
            service.ingest([Reading(STATION, "indoor_temp", 21.0, now, loop="floor", sensor="h-1", source="mqtt")])
            await asyncio.sleep(0.2)

    task = asyncio.create_task(report(), name="households")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _status(service: Service) -> Callable[[], str | None]:
    def status() -> str | None:
        loops = service.evaluator.loop_status if service.evaluator.results is not None else {}
        found = loops.get((STATION, "floor"))
        return None if found is None else found.status

    return status


async def test_household_sensors_back_before_the_plc_raise_no_stale_fault_and_a_silent_plc_still_does(
    tmp_path: Path, modbus_server_factory: Any
) -> None:
    server = await modbus_server_factory()
    server.set_holding(0, encode_value(-100, "int16", "ABCD"))
    server.set_holding(110, encode_value(45.0, "float32", "ABCD"))
    server.set_holding(112, encode_value(36.0, "float32", "ABCD"))
    config = parse_config_text(_config_text(tmp_path, server.port), str(tmp_path / "c.toml"), require_influxdb=False)
    service = Service(config)
    events: list[AlertEvent] = []
    service.on_event(events.append)
    status = _status(service)
    async with running_service(service):
        await wait_until(lambda: status() == "ok", timeout=20, message="the loop judged ok")
        await server.stop()
        await wait_until(lambda: status() == "offline", timeout=20, message="the station offline")
        async with _households(service):
            # the household sensors answer first: the station is online, its PLC points not polled yet
            await wait_until(lambda: status() not in (None, "offline"), timeout=10, message="the station back")
            assert status() == "unknown", status()
            await server.start()
            await wait_until(lambda: status() == "ok", timeout=20, message="the PLC polled again")
        assert not [e for e in events if e.rule == "sensor_fault"], events
        # a PLC that stays silent while the households answer: stale once a poll has had its chance
        await server.stop()
        await wait_until(lambda: status() == "offline", timeout=20, message="the station offline again")
        async with _households(service):
            await wait_until(lambda: status() == "sensor_fault", timeout=20, message="the PLC's points stale")
            await wait_until(
                lambda: any(e.rule == "sensor_fault" and e.state == "firing" for e in events),
                timeout=20,
                message="a stale sensor_fault alert",
            )
