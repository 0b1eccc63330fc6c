"""The harness itself: each real server starts, answers, restarts, and keeps its data."""

from __future__ import annotations

import asyncio

import aiomqtt
from pymodbus.client import AsyncModbusTcpClient

from tests.helpers import wait_until


def test_influxdb_write_query_and_restart(influxdb, influx_db):  # type: ignore[no-untyped-def]
    influxdb.write(influx_db, "telemetry,station=a supply_temp=41.5 1764000000000")
    influxdb.stop()
    influxdb.start()
    rows = influxdb.query(influx_db, "SELECT supply_temp FROM telemetry")
    assert rows == [{"time": 1764000000000, "supply_temp": 41.5, "_measurement": "telemetry"}]


async def test_mosquitto_keeps_queued_qos1_across_restart(mosquitto):  # type: ignore[no-untyped-def]
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="harness-sub", clean_session=False) as c:
        await c.subscribe("t/#", qos=1)
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as pub:
        await pub.publish("t/x", b"42", qos=1)
    mosquitto.stop()
    mosquitto.start()
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="harness-sub", clean_session=False) as c:
        await c.subscribe("t/#", qos=1)
        async with asyncio.timeout(10):
            async for msg in c.messages:
                assert msg.payload == b"42"
                break


def test_alertmanager_accepts_an_alert(alertmanager_factory):  # type: ignore[no-untyped-def]
    import json
    import urllib.request

    am = alertmanager_factory("route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n")
    body = json.dumps([{"labels": {"alertname": "supply_low", "station": "s1"}}]).encode()
    req = urllib.request.Request(
        f"{am.url}/api/v2/alerts", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200
    alerts = am.alerts()
    assert [a["labels"]["alertname"] for a in alerts] == ["supply_low"]


async def test_modbus_server_serves_zero_based_addresses(modbus_server_factory):  # type: ignore[no-untyped-def]
    server = await modbus_server_factory(holding={100: 0x47F1, 101: 0x2000}, input={5: 7})
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=2)
    await client.connect()
    try:
        rr = await client.read_holding_registers(100, count=2, device_id=1)
        assert rr.registers == [0x47F1, 0x2000]
        ri = await client.read_input_registers(5, count=1, device_id=1)
        assert ri.registers == [7]
        await server.stop()
        await wait_until(lambda: not client.connected, timeout=10, message="client to notice the stop")
    finally:
        client.close()
    await server.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=2)
    await client.connect()
    try:
        rr = await client.read_holding_registers(100, count=2, device_id=1)
        assert rr.registers == [0x47F1, 0x2000]
    finally:
        client.close()
