"""The Modbus collector: one asyncio poller per station, read-only, isolated from every other station.

Modbus TCP goes through a small native client: an asyncio Protocol that only moves bytes, the framing
being the pure `stationmon.domain.mbap` (FC 3 and FC 4 only), because pymodbus's TCP client costs more
than twice its CPU per poll (README, Benchmarks). RTU (serial or over TCP) goes through pymodbus;
`client="pymodbus"` forces it for plain TCP too. Its exceptions become ModbusError subclasses here.

Schedule: polls are aligned to the wall clock (every `interval` seconds, at a multiple of the interval)
plus a per-station phase derived from the station id, so thousands of stations spread over the jitter
window instead of firing at once, and a station's polls keep their phase across restarts. A slow poll
that overruns its slot skips the missed slots rather than queueing them.

Failures: a Modbus exception or a timeout fails only the points of its request; the rest of the
station's readings are stored. Strict devices: a request the device refuses with exception 2 (illegal
address) or 3 (illegal value) is split (`registers.split_request`: its gap-free runs, then single
points) and read again at once; the working plan is kept for the rest of the run, logged once at
WARNING and shown in the station's state (`adapted_read_plan`). A point refused alone is reported by
address. A dropped connection is reopened on the next poll; repeated connection
failures back off exponentially (`stationmon.backoff.Backoff`: with jitter, capped). Exception codes
6 (device busy) and 5 (acknowledge) are retried `retries` times; timeouts are not, because each retry
would cost a full timeout and push the next poll.

Cancellation: every client object (pymodbus's included) is made inside the running loop, at connect.
Python 3.11's `asyncio.wait_for` (used inside pymodbus) returns the result instead of raising when a
cancellation and the answer arrive together; the poller therefore checks `Task.cancelling()` after each
request and stops anyway, so a service stops within its deadline.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stationmon.backoff import Backoff
from stationmon.domain.mbap import (
    EXCEPTION_NAMES,
    BadHeader,
    ExceptionResponse,
    Frame,
    FrameDecoder,
    MismatchedResponse,
    Registers,
    encode_read_request,
    parse_read_response,
)
from stationmon.domain.model import Reading, ReadingSink, StationState
from stationmon.domain.plant import ModbusLink, Station
from stationmon.domain.registers import ReadRequest, RequestDecoder, plan_reads, split_request
from stationmon.errors import ModbusError
from stationmon.logutil import FailureLog
from stationmon.metrics import Metrics

__all__ = ["ModbusPoller", "automatic_jitter", "station_phase"]

log = logging.getLogger("stationmon.modbus")

_RETRY_CODES = frozenset({5, 6})
_SPLIT_CODES = frozenset({2, 3})  # illegal address, illegal value: the device refuses what the request spans
_REASONS = ("timeout", "connection", "protocol", "mismatched", "deadline", "exception", *EXCEPTION_NAMES.values())
_LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ModbusTimeout(ModbusError):
    """No answer within the request's timeout."""

    reason = "timeout"


class ModbusDeadline(ModbusTimeout):
    """Not sent: the poll ran past its interval (slow answers), so the next poll comes first."""

    reason = "deadline"


class ModbusConnectionError(ModbusError):
    """Could not connect, or the connection dropped."""

    reason = "connection"


class ModbusProtocolError(ModbusError):
    """The answer made no sense (wrong function code, byte count, device id)."""

    reason = "protocol"


class ModbusMismatch(ModbusProtocolError):
    """An answer, or an exception, from another device than the one asked: it says nothing about ours."""

    reason = "mismatched"


class ModbusExceptionResponse(ModbusError):
    """The device answered with a Modbus exception (illegal address, busy, ...)."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.reason = EXCEPTION_NAMES.get(code, "exception")
        super().__init__(f"Modbus exception {code} ({self.reason})")


def _stop_if_cancelled() -> None:
    """Raise CancelledError if this task was cancelled and a library swallowed it (3.11's wait_for)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def automatic_jitter(interval_s: float, fleet_size: int) -> float:
    """The spread of poll phases when `jitter` is not configured.

    Small sites: a tenth of the interval, at most 1 s, so readings stay close to the clock. Large ones:
    wide enough that about 1,000 stations start a poll per second, at most the whole interval, so
    10,000 stations at 10 s do not all fire within the same second.
    """
    small = min(1.0, interval_s / 10)
    return min(interval_s, max(small, fleet_size / 1000.0))


def station_phase(station_id: str, jitter_s: float) -> float:
    """A stable offset in [0, jitter_s) for this station: crc32 of its id, so it survives restarts."""
    return (zlib.crc32(station_id.encode()) / 2**32) * jitter_s


class _MbapProtocol(asyncio.Protocol):
    """Modbus TCP I/O: frames are matched to requests by transaction id, late answers dropped."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder()
        self.pending: dict[int, asyncio.Future[Frame]] = {}
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for event in self.decoder.feed(data):
            if isinstance(event, BadHeader):
                # garbage: no way to find the next frame boundary, start over on a new connection
                self._fail_all(ModbusProtocolError(event.message))
                if self.transport is not None:
                    self.transport.abort()
                return
            fut = self.pending.pop(event.transaction_id, None)
            if fut is not None and not fut.done():
                fut.set_result(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail_all(ModbusConnectionError(f"connection lost: {exc}" if exc else "connection closed by peer"))

    def _fail_all(self, error: ModbusError) -> None:
        pending, self.pending = self.pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(error)


def _expire(fut: asyncio.Future[Frame], timeout_s: float) -> None:
    if not fut.done():
        fut.set_exception(ModbusTimeout(f"no answer within {timeout_s:g}s"))


class _TcpLink:
    """Native Modbus TCP client for one device: FC 3 and FC 4 only."""

    def __init__(self, host: str, port: int, device_id: int, timeout_s: float) -> None:
        self.host = host
        self.port = port
        self.device_id = device_id
        self.timeout_s = timeout_s
        self._protocol: _MbapProtocol | None = None
        self._tid = 0

    @property
    def connected(self) -> bool:
        p = self._protocol
        return p is not None and not p.lost and p.transport is not None

    async def connect(self) -> None:
        self.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                _, protocol = await loop.create_connection(_MbapProtocol, self.host, self.port)
        except TimeoutError as exc:
            raise ModbusConnectionError(f"connect timed out after {self.timeout_s:g}s") from exc
        except OSError as exc:
            raise ModbusConnectionError(f"cannot connect: {exc.strerror or exc}") from exc
        self._protocol = protocol

    async def read(self, function_code: int, start: int, count: int) -> bytes:
        protocol = self._protocol
        if protocol is None or protocol.lost or protocol.transport is None:
            raise ModbusConnectionError("not connected")
        self._tid = tid = (self._tid + 1) & 0xFFFF
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Frame] = loop.create_future()
        protocol.pending[tid] = fut
        protocol.transport.write(encode_read_request(tid, self.device_id, function_code, start, count))
        timer = loop.call_later(self.timeout_s, _expire, fut, self.timeout_s)
        try:
            frame = await fut
        finally:
            timer.cancel()
            protocol.pending.pop(tid, None)
        answer = parse_read_response(frame, self.device_id, function_code, count)
        if isinstance(answer, Registers):
            return answer.data
        if isinstance(answer, ExceptionResponse):
            raise ModbusExceptionResponse(answer.code)
        if isinstance(answer, MismatchedResponse):
            raise ModbusMismatch(answer.message)
        raise ModbusProtocolError(answer.message)

    def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()


class _PymodbusLink:
    """pymodbus client: RTU on a serial line, RTU framing over TCP, or (forced) plain Modbus TCP.

    The client is made at connect, inside the running loop (pymodbus binds it to the loop it is made in).
    """

    def __init__(self, m: ModbusLink) -> None:
        self.link = m
        self.device_id = m.device_id
        self.timeout_s = m.timeout_s
        self.client: Any = None

    def _make_client(self) -> Any:
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
        from pymodbus.framer import FramerType

        m = self.link
        # pymodbus's own retries and reconnect task are off: the poller owns both (and leaks no tasks).
        common: dict[str, Any] = {"timeout": m.timeout_s, "retries": 0, "reconnect_delay": 0}
        if m.transport == "rtu":
            return AsyncModbusSerialClient(
                m.serial_port,
                framer=FramerType.RTU,
                baudrate=m.baudrate,
                bytesize=m.bytesize,
                parity=m.parity,
                stopbits=m.stopbits,
                **common,
            )
        framer = FramerType.RTU if m.transport == "rtu-over-tcp" else FramerType.SOCKET
        return AsyncModbusTcpClient(m.host, port=m.port, framer=framer, **common)

    @property
    def connected(self) -> bool:
        return self.client is not None and bool(self.client.connected)

    async def connect(self) -> None:
        from pymodbus.exceptions import ModbusException

        self.close()
        try:
            self.client = self._make_client()
            async with asyncio.timeout(self.timeout_s + 1.0):
                ok = await self.client.connect()
        except (TimeoutError, ModbusException, OSError, ValueError) as exc:
            self.close()
            raise ModbusConnectionError(f"cannot connect: {exc}") from exc
        _stop_if_cancelled()
        if not ok:
            self.close()
            raise ModbusConnectionError("cannot connect")

    async def read(self, function_code: int, start: int, count: int) -> bytes:
        from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

        if self.client is None:
            raise ModbusConnectionError("not connected")
        fn = self.client.read_holding_registers if function_code == 3 else self.client.read_input_registers
        try:
            # pymodbus applies the timeout itself; the outer one only guards against it hanging
            async with asyncio.timeout(self.timeout_s + 1.0):
                response = await fn(start, count=count, device_id=self.device_id)
        except TimeoutError as exc:
            raise ModbusTimeout(f"no answer within {self.timeout_s:g}s") from exc
        except ConnectionException as exc:
            raise ModbusConnectionError(str(exc)) from exc
        except ModbusIOException as exc:
            if not self.client.connected:
                raise ModbusConnectionError(str(exc)) from exc
            if "device id" in str(exc):
                raise ModbusMismatch(str(exc)) from exc
            raise ModbusTimeout(f"no answer within {self.timeout_s:g}s") from exc
        except ModbusException as exc:
            raise ModbusProtocolError(str(exc)) from exc
        finally:
            _stop_if_cancelled()
        if response.isError():
            raise ModbusExceptionResponse(int(getattr(response, "exception_code", 0)))
        registers = list(response.registers)
        if len(registers) != count:
            raise ModbusProtocolError(f"asked {count} registers, got {len(registers)}")
        return struct.pack(f">{count}H", *registers)

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()


def _make_link(m: ModbusLink, client: str) -> _TcpLink | _PymodbusLink:
    if m.transport == "tcp" and client != "pymodbus":
        return _TcpLink(m.host, m.port, m.device_id, m.timeout_s)
    return _PymodbusLink(m)


class _Metrics:
    """The collector's metrics; every poller shares the same registry entries."""

    def __init__(self, metrics: Metrics, station_id: str) -> None:
        polls = metrics.counter("stationmon_modbus_polls_total", "Modbus polls by result", ("result",))
        self.poll_ok = polls.labels("ok")
        self.poll_partial = polls.labels("partial")
        self.poll_failed = polls.labels("failed")
        failures = metrics.counter(
            "stationmon_modbus_request_failures_total", "Modbus requests that failed, by reason", ("reason",)
        )
        self.failures = {reason: failures.labels(reason) for reason in _REASONS}
        self.connect_failures = metrics.counter(
            "stationmon_modbus_connect_failures_total", "Failed Modbus connection attempts"
        ).labels()
        skipped = metrics.counter(
            "stationmon_modbus_polls_skipped_total",
            "Poll slots skipped: the previous poll overran, or the station is backing off",
            ("why",),
        )
        self.skipped_overrun, self.skipped_backoff = skipped.labels("overrun"), skipped.labels("backoff")
        self.lateness = metrics.histogram(
            "stationmon_modbus_poll_lateness_seconds",
            "How late a poll started after its scheduled time",
            buckets=_LATENESS_BUCKETS,
        ).labels()
        self.duration = metrics.histogram(
            "stationmon_modbus_poll_duration_seconds", "Time one poll of one station took", buckets=_DURATION_BUCKETS
        ).labels()
        self.online_total = metrics.gauge("stationmon_modbus_stations_online", "Stations answering Modbus").labels()
        self.station_up = metrics.gauge(
            "stationmon_modbus_station_up", "1 if the station's last Modbus poll got data", ("station",)
        ).labels(station_id)
        faulty = metrics.counter(
            "stationmon_modbus_faulty_readings_total", "Readings flagged as sensor faults, by reason", ("reason",)
        )
        self.faulty = {r: faulty.labels(r) for r in ("nan", "inf", "sentinel", "out_of_range")}


@dataclass(eq=False, slots=True)
class _Slot:
    """One request of the station's current plan, its decoder and its failure log."""

    request: ReadRequest
    decoder: RequestDecoder
    log: FailureLog


class ModbusPoller:
    """Polls one station's Modbus points on its schedule until cancelled; see the module docstring."""

    def __init__(
        self,
        station: Station,
        sink: ReadingSink,
        state: StationState,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        client: str = "auto",
        rand: Callable[[], float] | None = None,
        fleet_size: int = 1,
    ) -> None:
        if station.modbus is None:
            raise ValueError(f"station {station.id} has no [stations.modbus]")
        self.station = station
        self.modbus = m = station.modbus
        self.sink = sink
        self.state = state
        self.clock = clock
        # no I/O object yet: pymodbus's clients bind to the running loop, so links are made at connect
        self._link = _make_link(m, client)
        self.interval_s = m.interval_s
        jitter = m.jitter_s if m.jitter_s >= 0 else automatic_jitter(m.interval_s, fleet_size)
        self.phase_s = station_phase(station.id, min(jitter, m.interval_s))
        # the first failure retries at the next poll (a gateway blip), then interval x 2^(n-2), capped;
        # rand=None takes the module's generator: a Random per station would cost ~5 KB at 10,000 stations
        cap_s = max(m.interval_s, min(60.0, 10 * m.interval_s))
        self._backoff = Backoff(m.interval_s, cap_s, free_failures=1, rand=rand)
        self._reconnect_at = 0.0
        self._last_slot: int | None = None
        self._m = _Metrics(metrics, station.id)
        where = m.serial_port if m.transport == "rtu" else f"{m.host}:{m.port}"
        self.where = f"station {station.id} (modbus {m.transport} {where} device {m.device_id})"
        self._station_log = FailureLog(log, self.where)
        self._slots = [self._slot(r) for r in plan_reads(station)]
        self._online = False

    def _slot(self, request: ReadRequest) -> _Slot:
        return _Slot(request, RequestDecoder.for_request(request), FailureLog(log, f"{self.where} {request.span}"))

    @property
    def plan(self) -> tuple[ReadRequest, ...]:
        """The requests a poll sends now: the planned ones, or what a strict device made of them."""
        return tuple(slot.request for slot in self._slots)

    def next_slot(self, now: float) -> tuple[int, float]:
        """The next scheduled poll after `now`: (slot number, wall-clock time)."""
        slot = math.floor((now - self.phase_s) / self.interval_s) + 1
        return slot, slot * self.interval_s + self.phase_s

    async def run(self) -> None:
        """Poll on schedule until cancelled; cancellation closes the connection."""
        try:
            while True:
                _stop_if_cancelled()
                slot, at = self.next_slot(self.clock())
                if self._last_slot is not None and slot > self._last_slot + 1:
                    self._m.skipped_overrun.inc(slot - self._last_slot - 1)
                self._last_slot = slot
                delay = at - self.clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                started = self.clock()
                if started < self._reconnect_at:
                    self._m.skipped_backoff.inc()
                    continue
                self._m.lateness.observe(max(0.0, started - at))
                await self.poll_once(deadline=at + self.interval_s, slot_ts=at)
                self._m.duration.observe(max(0.0, self.clock() - started))
        finally:
            self._link.close()
            self._set_online(False)

    async def poll_once(self, deadline: float | None = None, slot_ts: float | None = None) -> list[Reading]:
        """One poll: connect if needed, run every request, hand the readings to the sink.

        Readings carry `slot_ts`, the poll's scheduled slot, when given (so two replicas polling the same
        station write the same points, which InfluxDB stores once; how late the read was is the metric
        `stationmon_modbus_poll_lateness_seconds`), else the time each answer came.
        """
        if not self._link.connected:
            try:
                await self._link.connect()
            except ModbusError as exc:
                self._connection_failed(exc)
                return []
            self._backoff.reset()
        readings: list[Reading] = []
        ok = failed = 0
        first_error: tuple[ReadRequest, ModbusError] | None = None
        pending = deque(self._slots)
        while pending:
            slot = pending.popleft()
            try:
                if deadline is not None and self.clock() >= deadline:
                    # a slow device must not push this station's polls ever later: once the next slot
                    # has come, the rest of this poll is dropped (its points fail, the next poll runs)
                    raise ModbusDeadline("not sent: the poll ran into its next slot")
                data = await self._read(slot.request)
            except ModbusError as exc:
                pieces = self._adapt(slot, exc)
                if pieces:  # read what the device accepts, now
                    pending.extendleft(reversed(pieces))
                    continue
                failed += 1
                first_error = first_error or (slot.request, exc)
                self._m.failures[getattr(exc, "reason", "exception")].inc()
                slot.log.failure(str(exc))
                if isinstance(exc, ModbusConnectionError):
                    # the rest of this poll would fail the same way; reconnect on the next one
                    failed += len(pending)
                    self._m.failures["connection"].inc(len(pending))
                    break
                continue
            ts = self.clock() if slot_ts is None else slot_ts
            ok += 1
            slot.log.success()
            readings.extend(self._readings(slot.decoder, data, ts))
        self._finish_poll(ok, failed, first_error)
        if readings:
            self.sink(readings)
        return readings

    def _adapt(self, slot: _Slot, error: ModbusError) -> list[_Slot]:
        """The slots replacing `slot` for good if the device refused it and it can be split; else []."""
        if not isinstance(error, ModbusExceptionResponse) or error.code not in _SPLIT_CODES:
            return []
        pieces = split_request(slot.request)
        if len(pieces) < 2:
            return []
        self._m.failures[error.reason].inc()
        new = [self._slot(r) for r in pieces]
        at = next(i for i, s in enumerate(self._slots) if s is slot)
        self._slots[at : at + 1] = new
        self.state.adapted_read_plan = tuple(s.request.describe() for s in self._slots)
        req = slot.request
        gaps = ", ".join(f"{a}..{b}" if b > a else str(a) for a, b in req.gaps)
        what = f"its unused registers {gaps}" if gaps else f"{len(req.points)} points in one request"
        log.warning(
            "%s: the device refused %s, %s (%s); reading it as %s from now on",
            self.where,
            req.span,
            what,
            error,
            ", ".join(r.span for r in pieces),
        )
        return new

    async def _read(self, request: ReadRequest) -> bytes:
        attempt = 0
        while True:
            try:
                return await self._link.read(request.function_code, request.start, request.count)
            except ModbusExceptionResponse as exc:
                if exc.code not in _RETRY_CODES or attempt >= self.modbus.retries:
                    raise
                attempt += 1
                # a busy device wants a moment, not a hammering
                await asyncio.sleep(min(0.2, self.modbus.timeout_s / 4) * attempt)

    def _readings(self, decoder: RequestDecoder, data: bytes, ts: float) -> list[Reading]:
        sid = self.station.id
        out = []
        for point, value, fault in decoder.decode_bytes(data):
            if fault is not None:
                self._m.faulty[fault].inc()
            out.append(Reading(sid, point.quantity, value, ts, point.loop, point.sensor, "modbus", fault))
        return out

    def _set_online(self, online: bool) -> None:
        if online != self._online:
            self._online = online
            self._m.online_total.inc(1 if online else -1)
            self._m.station_up.set(1 if online else 0)
        self.state.online = online

    def _record_error(self, error: str) -> None:
        self.state.last_error = error
        self.state.last_error_at = self.clock()

    def _finish_poll(self, ok: int, failed: int, error: tuple[ReadRequest, ModbusError] | None) -> None:
        st = self.state
        st.polls += 1
        if error is not None:
            self._record_error(f"{error[0].span}: {error[1]}")
        if ok:
            st.last_success = self.clock()
            st.consecutive_failures = 0
            self._set_online(True)
            self._station_log.success()
            (self._m.poll_partial if failed else self._m.poll_ok).inc()
            return
        st.failures += 1
        st.consecutive_failures += 1
        self._m.poll_failed.inc()
        self._set_online(False)
        if error is not None:
            self._station_log.failure(f"every request failed: {error[1]}")
            if isinstance(error[1], ModbusTimeout):
                # a device that answers nothing may sit behind a half-open connection: start afresh
                self._link.close()

    def _connection_failed(self, error: ModbusError) -> None:
        self._m.connect_failures.inc()
        self._m.failures["connection"].inc(len(self._slots))
        delay = self._backoff.next_delay()
        self._reconnect_at = self.clock() + delay
        self._station_log.failure(
            f"{error}" + (f"; next attempt in {delay:.1f}s" if delay else "; retrying at the next poll")
        )
        self._finish_poll(0, 0, None)
        self._record_error(str(error))
