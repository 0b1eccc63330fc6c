"""Faults, for real: a scripted Modbus TCP server that records function codes, answers with exceptions,
stays silent, answers slowly, or sends garbage; and 50 stations of which 5 are dead or slow."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from stationmon.adapters.modbus import ModbusPoller, station_phase
from stationmon.backoff import Backoff
from stationmon.config import parse_config_text
from stationmon.domain.model import Reading, StationState
from stationmon.domain.plant import Station
from stationmon.domain.registers import encode_value
from stationmon.metrics import Metrics
from tests.helpers import wait_until
from tests.integration.test_modbus import Collected, running


@dataclass
class ScriptedServer:
    """A minimal Modbus TCP device written from the spec, scripted per register range.

    `exceptions`: {address: code} answers any request covering that address with the exception;
    `silent`: addresses whose requests get no answer; `busy_times`: answer "busy" (6) this many times;
    `delay_s`: wait before every answer; `garbage`: answer the next request with bytes that are not MBAP;
    `answer_unit`: answer with this unit id instead of the one asked (a misrouting gateway).
    """

    registers: dict[tuple[int, int], int] = field(default_factory=dict)  # (fc, address) -> value
    exceptions: dict[int, int] = field(default_factory=dict)
    silent: set[int] = field(default_factory=set)
    busy_times: int = 0
    delay_s: float = 0.0
    garbage: bool = False
    answer_unit: int | None = None
    requests: list[tuple[int, int, int, int]] = field(default_factory=list)  # fc, start, count, unit
    connections: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    errors: list[BaseException] = field(default_factory=list)  # what broke the server itself: fails stop()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        if self.errors:  # a broken script must fail its test, not vanish in a connection's task
            raise AssertionError(f"the scripted Modbus server failed: {self.errors!r}")

    def set_value(self, fc: int, address: int, registers: Sequence[int]) -> None:
        for i, r in enumerate(registers):
            self.registers[(fc, address + i)] = r

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            while True:
                header = await reader.readexactly(7)
                tid, _, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                fc = pdu[0]
                start, count = struct.unpack(">HH", pdu[1:5]) if len(pdu) >= 5 else (0, 0)
                self.requests.append((fc, start, count, unit))
                covered = range(start, start + count)
                if any(a in self.silent for a in covered):
                    continue
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if self.garbage:
                    self.garbage = False
                    writer.write(b"\xde\xad\xbe\xef" * 4)
                    continue
                code = next((c for a, c in self.exceptions.items() if a in covered), None)
                if fc not in (3, 4):
                    code = 1
                elif self.busy_times > 0:
                    self.busy_times -= 1
                    code = 6
                unit = unit if self.answer_unit is None else self.answer_unit
                if code is not None:
                    body = bytes([unit, fc | 0x80, code])
                else:
                    values = [self.registers.get((fc, a), 0) for a in covered]
                    body = bytes([unit, fc, 2 * count]) + struct.pack(f">{count}H", *values)
                writer.write(struct.pack(">HHH", tid, 0, len(body)) + body)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the test stops the server
        except Exception as exc:
            self.errors.append(exc)
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()


POINTS = """
[[stations.points]]
quantity = "supply_temp"
address = 0
[[stations.points]]
quantity = "return_temp"
address = 2
[[stations.points]]
quantity = "outdoor_temp"
register = "input"
address = 0
type = "int16"
scale = 0.1
[[stations.points]]
quantity = "flow"
register = "input"
address = 50
"""


def station(port: int, sid: str = "st-1", extra: str = "", interval: str = "200ms", timeout: str = "100ms") -> Station:
    text = f"""
[[stations]]
id = "{sid}"
[stations.modbus]
port = {port}
interval = "{interval}"
timeout = "{timeout}"
max_gap = 10
{extra}
{POINTS}
"""
    return parse_config_text(text, require_influxdb=False).stations[0]


@contextlib.asynccontextmanager
async def scripted(**kw: object) -> contextlib.AbstractAsyncContextManager[ScriptedServer]:  # type: ignore[misc]
    server = ScriptedServer(**kw)  # type: ignore[arg-type]
    server.set_value(3, 0, encode_value(41.0, "float32", "ABCD"))
    server.set_value(3, 2, encode_value(34.0, "float32", "ABCD"))
    server.set_value(4, 0, encode_value(-105, "int16", "ABCD"))
    server.set_value(4, 50, encode_value(12.5, "float32", "ABCD"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def quantities(batch: list[Reading]) -> set[str]:
    return {r.quantity for r in batch}


def counted(metrics: Metrics, family: str, label: str) -> float:
    """stationmon_modbus_<family>_total{<label>}."""
    metric = metrics.get(f"stationmon_modbus_{family}_total")
    assert metric is not None
    return metric.value(label)  # type: ignore[attr-defined, no-any-return]


def counts(metrics: Metrics) -> list[str]:
    """The poll and failure counters, for a timeout's message."""
    return [
        line
        for line in metrics.render().splitlines()
        if line.startswith(("stationmon_modbus_polls_total", "stationmon_modbus_request_failures_total"))
    ]


async def test_only_read_function_codes_are_sent() -> None:
    async with scripted() as server:
        sink = Collected()
        st = station(server.port, extra="device_id = 17")
        async with running(ModbusPoller(st, sink, StationState(st.id), Metrics())):
            await wait_until(lambda: len(sink.batches) >= 5, message="five polls")
            assert len(server._writers) == 1, "one connection, kept open between polls"
        # cancelling the poller closed its connection
        await wait_until(lambda: not server._writers, message="the connection closed")
    assert server.connections == 1
    assert server.requests, "the server saw no requests"
    assert {fc for fc, _, _, _ in server.requests} == {3, 4}
    assert {unit for _, _, _, unit in server.requests} == {17}
    # the plan: holding 0..3 (FC 3), input 0 and input 50..51 (FC 4), nothing else
    assert {(fc, s, c) for fc, s, c, _ in server.requests} == {(3, 0, 4), (4, 0, 1), (4, 50, 2)}


async def test_illegal_address_fails_only_its_request() -> None:
    async with scripted(exceptions={50: 2}) as server:
        sink = Collected()
        state = StationState("st-1")
        metrics = Metrics()
        async with running(ModbusPoller(station(server.port), sink, state, metrics)):
            # exact, between polls: each poll one illegal_address request, counted partial, one batch
            await wait_until(
                lambda: (
                    len(sink.batches) >= 3
                    and counted(metrics, "request_failures", "illegal_address")
                    == counted(metrics, "polls", "partial")
                    == len(sink.batches)
                ),
                message="three partial polls, one illegal_address failure each",
                seen=lambda: (len(sink.batches), counts(metrics)),
            )
    for batch in sink.batches:
        assert quantities(batch) == {"supply_temp", "return_temp", "outdoor_temp"}
    assert state.online is False  # stopped
    assert state.consecutive_failures == 0 and "illegal_address" in (state.last_error or "")
    assert counted(metrics, "polls", "ok") == counted(metrics, "polls", "failed") == 0


async def test_exception_from_another_unit_is_mismatched_not_adapted() -> None:
    # a gateway answers for device 9 when 17 was asked: that illegal address is not device 17's, so it
    # is counted as a mismatched answer and the plan is not split for it
    async with scripted(exceptions={0: 2, 50: 2}, answer_unit=9) as server:
        sink = Collected()
        state = StationState("st-1")
        metrics = Metrics()
        poller = ModbusPoller(station(server.port, extra="device_id = 17"), sink, state, metrics)
        planned = poller.plan
        async with running(poller):
            # exact, between polls: every planned request of every poll answered by the wrong device
            await wait_until(
                lambda: (
                    state.polls >= 3
                    and counted(metrics, "request_failures", "mismatched") == state.polls * len(planned)
                    and counted(metrics, "polls", "failed") == state.polls
                ),
                message="three failed polls, every request mismatched",
                seen=lambda: (state.polls, len(planned), counts(metrics)),
            )
    assert poller.plan == planned and state.adapted_read_plan == ()
    assert "exception 2 from device 9, asked 17" in (state.last_error or "")
    assert counted(metrics, "request_failures", "illegal_address") == 0
    assert not sink.batches


async def test_silent_request_times_out_alone() -> None:
    async with scripted(silent={2}) as server:
        sink = Collected()
        state = StationState("st-1")
        metrics = Metrics()
        async with running(ModbusPoller(station(server.port), sink, state, metrics)):
            # exact, between polls: one timeout per poll (the silent request), each poll partial
            await wait_until(
                lambda: (
                    len(sink.batches) >= 3
                    and counted(metrics, "request_failures", "timeout")
                    == counted(metrics, "polls", "partial")
                    == len(sink.batches)
                ),
                message="three partial polls, one timeout each",
                seen=lambda: (len(sink.batches), counts(metrics)),
            )
            assert state.online
    for batch in sink.batches:
        assert quantities(batch) == {"outdoor_temp", "flow"}


async def test_busy_device_is_retried() -> None:
    async with scripted(busy_times=1) as server:
        sink = Collected()
        state = StationState("st-1")
        st = station(server.port, extra="retries = 2")
        async with running(ModbusPoller(st, sink, state, Metrics())):
            await wait_until(lambda: sink.batches, message="a poll")
    assert quantities(sink.batches[0]) == {"supply_temp", "return_temp", "outdoor_temp", "flow"}
    assert state.failures == 0


async def test_garbage_answer_reconnects_and_recovers() -> None:
    async with scripted(garbage=True) as server:
        sink = Collected()
        state = StationState("st-1")
        async with running(ModbusPoller(station(server.port), sink, state, Metrics())):
            await wait_until(lambda: any(len(b) == 4 for b in sink.batches), message="a full poll after the garbage")
        assert server.connections == 2  # one garbage answer: one new connection, kept from then on
        assert state.last_error is not None


async def test_dead_station_backs_off() -> None:
    async with scripted() as server:
        port = server.port
    # nothing listens on `port` any more: connection refused, every time
    state = StationState("st-1")
    metrics = Metrics()
    poller = ModbusPoller(station(port, interval="50ms", timeout="40ms"), Collected(), state, metrics)
    async with running(poller):
        await wait_until(lambda: state.consecutive_failures >= 4, message="four failures")
        await wait_until(
            lambda: metrics.get("stationmon_modbus_polls_skipped_total").value("backoff") >= 1,  # type: ignore[union-attr]
            message="a poll skipped by the backoff",
        )
    assert not state.online and "cannot connect" in (state.last_error or "")


def poller_backoff(rand: Callable[[], float]) -> Backoff:
    """The reconnect timing of a poller at a 10 s interval (its cap: 60 s)."""
    poller = ModbusPoller(
        station(502, interval="10s", timeout="1s"), Collected(), StationState("st-1"), Metrics(), rand=rand
    )
    return poller._backoff


def test_backoff_grows_capped_with_jitter() -> None:
    delays = [poller_backoff(lambda: 1.0).delay_for(n) for n in range(1, 8)]
    assert delays[0] == 0.0
    assert delays[1:] == pytest.approx([10 * 1.0, 20, 40, 60, 60, 60][: len(delays) - 1])
    assert poller_backoff(lambda: 0.0).delay_for(3) == pytest.approx(10.0)  # half of 20
    assert 0 <= station_phase("daoli-1", 1.0) < 1.0
    assert station_phase("daoli-1", 1.0) == station_phase("daoli-1", 1.0)
    assert station_phase("daoli-1", 1.0) != station_phase("daoli-2", 1.0)


class Timed(Collected):
    """A sink that also notes when each batch arrived (wall clock, as the readings' slot times)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: list[float] = []

    def __call__(self, readings: Sequence[Reading]) -> None:
        self.arrived.append(time.time())
        super().__call__(readings)

    def delays(self) -> list[float]:
        """Each poll's readings: arrival minus the slot they are stamped with (how late plus how long)."""
        return [at - batch[0].ts for at, batch in zip(self.arrived, self.batches, strict=True)]


async def test_fifty_stations_five_dead_or_slow_keep_schedule() -> None:
    interval = 0.5
    live: list[ScriptedServer] = []
    pollers: list[ModbusPoller] = []
    sinks: dict[str, Timed] = {}
    states: dict[str, StationState] = {}
    servers: list[ScriptedServer] = []
    metrics = Metrics()
    try:
        for i in range(50):
            kind = "live"
            kw: dict[str, object] = {}
            if i in (3, 17):
                kind = "slow"  # answers after most of the timeout, for every request
                kw = {"delay_s": 0.18}
            elif i in (25, 33):
                kind = "silent"  # accepts and never answers
                kw = {"silent": set(range(0, 100))}
            server = ScriptedServer(**kw)  # type: ignore[arg-type]
            server.set_value(3, 0, encode_value(41.0, "float32", "ABCD"))
            await server.start()
            servers.append(server)
            port = server.port
            if i == 41:
                kind = "dead"  # connection refused
                await server.stop()
            sid = f"{kind}-{i}"
            cfg = station(port, sid=sid, interval="500ms", timeout="200ms", extra='jitter = "100ms"')
            sinks[sid] = Timed()
            states[sid] = StationState(sid)
            pollers.append(ModbusPoller(cfg, sinks[sid], states[sid], metrics))
            if kind == "live":
                live.append(server)
        async with contextlib.AsyncExitStack() as stack:
            for p in pollers:
                await stack.enter_async_context(running(p))
            await wait_until(
                lambda: all(len(sinks[s].batches) >= 8 for s in sinks if s.startswith("live")),
                timeout=30,
                message="eight polls from every live station",
            )
        # Readings carry their slot's time; a live poll's batch arrives when its slot came, plus the event
        # loop's delay on this machine. A slow station's arrives 180 ms later per request (its device's
        # answer time), under the same load. Isolation is an ordering, not a number of milliseconds: were
        # live polls waiting behind a slow or silent station's request, they would arrive as late as the
        # slow stations' do. Slots are exact: each poll stamped on its own slot, in order, never twice.
        live_delays: list[float] = []
        skipped = 0
        for p in pollers:
            sid = p.station.id
            slots = [(b[0].ts - p.phase_s) / interval for b in sinks[sid].batches]
            assert all(abs(x - round(x)) < 1e-6 for x in slots), f"{sid}: readings off their slots: {slots}"
            assert all(b > a for a, b in itertools.pairwise(slots)), f"{sid}: a slot polled twice: {slots}"
            if sid.startswith("live"):
                live_delays += sinks[sid].delays()
                skipped += round(slots[-1] - slots[0]) + 1 - len(slots)
        slow_delays = sorted(d for sid in sinks if sid.startswith("slow") for d in sinks[sid].delays())
        live_delays.sort()
        p95 = live_delays[int(0.95 * (len(live_delays) - 1))]
        slow_median = slow_delays[len(slow_delays) // 2]
        print(
            f"live stations: {len(live_delays)} polls, p95 delay {p95 * 1000:.1f} ms, {skipped} slots skipped; "
            f"slow stations: median {slow_median * 1000:.1f} ms (figures from a busy machine: noisy)"
        )
        assert p95 < slow_median, f"live polls wait behind slow ones: p95 {p95:.3f}s, slow median {slow_median:.3f}s"
        for sid, state in states.items():
            if sid.startswith(("silent", "dead")):
                assert not state.online and state.consecutive_failures >= 2, sid
                assert not sinks[sid].batches, sid
            elif sid.startswith("slow"):
                assert sinks[sid].batches, f"{sid} is slow, not dead: its readings must arrive"
    finally:
        for server in servers:
            await server.stop()


@pytest.mark.parametrize("client", ["auto", "pymodbus"])
async def test_pollers_stop_when_cancelled_while_answers_arrive(client: str) -> None:
    # Python 3.11's wait_for (inside pymodbus) swallows a cancellation that meets an answer: the poller
    # went on polling and a service with RTU stations never stopped (bench_modbus.py hung on it)
    async with scripted() as server:
        for trial in range(5):
            sinks = [Collected() for _ in range(20)]
            pollers = [
                ModbusPoller(
                    station(server.port, sid=f"st-{i}", interval="10ms", timeout="10ms", extra='jitter = "0s"'),
                    sinks[i],
                    StationState(f"st-{i}"),
                    Metrics(),
                    client=client,
                )
                for i in range(20)
            ]
            tasks = [asyncio.create_task(p.run(), name=f"poller-{trial}-{i}") for i, p in enumerate(pollers)]
            target = 3 + trial  # cancel at a different moment of the polls' rhythm each time
            await wait_until(lambda: sum(len(s.batches) for s in sinks) >= 20 * target, message="polls")  # noqa: B023
            for task in tasks:
                task.cancel()
            _, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()
            assert not pending, f"trial {trial}: {len(pending)} of 20 pollers ignored their cancellation"
            assert all(t.cancelled() for t in tasks)
