"""The InfluxDB writer: batches, gzip, bounded concurrent writes, retries, dead letters, durable spool.

    submit(lines)  -> memory buffer (sync, never blocks)
    flusher task   -> every flush_interval, or at batch_size lines: cut batches
                      - healthy and nothing spooled: write directly (at most max_concurrent_writes at once)
                      - InfluxDB failing, something already spooled, too many lines in memory, or no
                        url configured: append the batch to the spool (order kept)
    replay task    -> oldest spooled batch first: write it, acknowledge it durably, next; on 429, 5xx or
                      a network error wait (`Backoff`: exponential with jitter, at least Retry-After)
                      and try again; a spool that cannot be read or record its progress is logged (once, until it
                      recovers) and retried with the same backoff: the task never ends on an error

A write that fails for a retryable reason goes to the spool at once, so a retried batch is always on
disk. A 400 (1.x, and 2.x for unparsable lines) or 422 (2.x: points beyond the bucket's retention, a
field type conflict) means the server rejected lines: it would reject them again, so they are never
retried. When the answer names them (`unable to parse '<line>': ...`) those go to the dead-letter file
with the server's reason and the rest is sent again. When it does not (a field type conflict, points
beyond retention), the batch is split in halves until the culprits stand alone; a part the server
rejected whole (`dropped=N` with N its line count) is dead-lettered at once, so a run of expired
points costs a few requests, not two per line. Resending lines a partial write already stored is
harmless: the same series, time and fields overwrite the same point. A 413 splits the batch too.

Durability: `when_stored(callback)` calls `callback(True)` once every line submitted so far is
written to InfluxDB, dead-lettered, or appended to the spool and synced as `spool_fsync` says ("batch":
after the flush cycle's fsync); `callback(False)` if a line submitted since the previous
`when_stored` could be neither (spool unwritable). Callbacks run in the order they were registered, so
a collector can acknowledge its source in the order it received (MQTT's PUBACKs must be).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiohttp

from stationmon.adapters.spool import Spool
from stationmon.backoff import Backoff
from stationmon.config import InfluxConfig
from stationmon.errors import StorageError
from stationmon.logutil import FailureLog
from stationmon.metrics import Metrics

if TYPE_CHECKING:
    from influxdb_client.client.write_api_async import WriteApiAsync
    from influxdb_client.domain.write_precision import WritePrecision

__all__ = ["InfluxWriter", "StoredCallback", "auth_headers", "find_rejected_lines"]

log = logging.getLogger("stationmon.influx")

_FIRST_BACKOFF_S = 0.5  # then 1, 2, 4 ... up to max_retry_delay_s, each with jitter
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


StoredCallback = Callable[[bool], None]
"""Told whether lines are stored (written, dead-lettered or durably spooled): True, or False when some
were lost (the spool could not take them)."""


class _Settlement:
    """Which submitted lines are settled (stored or lost), by sequence number, and the callbacks waiting
    on them. Batches settle in any order; callbacks run in registration order once all their lines settled."""

    def __init__(self) -> None:
        self.submitted = 0  # lines submitted so far: the sequence number of the next line
        self._settled_upto = 0  # every line before this one is settled
        self._ranges: dict[int, tuple[int, bool]] = {}  # start -> (end, stored), settled beyond the mark
        self._waiters: deque[tuple[int, int, StoredCallback]] = deque()  # (start, end, callback)
        self._lost: deque[tuple[int, int]] = deque()  # lost ranges below the mark a waiter may still span
        self._watched_upto = 0  # the end of the newest waiter's range

    def add(self, count: int) -> None:
        """Number `count` newly submitted lines."""
        self.submitted += count

    def watch(self, callback: StoredCallback) -> None:
        """`callback` waits for every line submitted so far; it reports the lines since the previous watch."""
        self._waiters.append((self._watched_upto, self.submitted, callback))
        self._watched_upto = self.submitted
        self._notify()  # nothing pending: at once

    def settle(self, start: int, count: int, stored: bool) -> None:
        """Lines start .. start+count-1 are stored (or lost, `stored` False)."""
        if count <= 0:
            return
        self._ranges[start] = (start + count, stored)
        while (done := self._ranges.pop(self._settled_upto, None)) is not None:
            end, ok = done
            if not ok:
                self._lost.append((self._settled_upto, end))
            self._settled_upto = end
        self._notify()

    def _notify(self) -> None:
        while self._waiters and self._waiters[0][1] <= self._settled_upto:
            start, end, callback = self._waiters.popleft()
            stored = not any(s < end and start < e for s, e in self._lost)
            try:
                callback(stored)
            except Exception:  # the collector's; a bug there must not stop storage
                log.exception("a storage callback failed")
        first_waiting = self._waiters[0][0] if self._waiters else self._settled_upto
        while self._lost and self._lost[0][1] <= first_waiting:
            self._lost.popleft()


class _Retryable(StorageError):
    """The write may succeed later: 429, 5xx, 401/403/404 (fixable by an operator), network errors."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class _BadRequest(StorageError):
    """400 or 422: some lines (or all) were rejected; the message is the server's."""


class _TooLarge(StorageError):
    """413: the body is over the server's limit."""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare for InfluxDB; our own backoff applies


def _error_text(body: str) -> str:
    """The message inside InfluxDB's JSON error body (1.x `error`, 2.x `message`), else the body."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body.strip()
    if isinstance(doc, dict):
        return str(doc.get("error") or doc.get("message") or body).strip()
    return body.strip()


_DROPPED = re.compile(r"\bdropped=(\d+)")


def _dropped_count(reason: str) -> int | None:
    """N of a partial write's `... dropped=N`, if it says so once: an overcount would dead-letter good lines."""
    found = _DROPPED.findall(reason)
    return int(found[0]) if len(found) == 1 else None


def find_rejected_lines(lines: Sequence[str], reason: str) -> dict[int, str]:
    """Indexes of the lines a 400 answer names (`unable to parse '<line>': <why>`), each with its part of the reason."""
    found: dict[int, str] = {}
    if "unable to parse '" not in reason:
        return found
    for i, line in enumerate(lines):
        marker = f"unable to parse '{line}'"
        at = reason.find(marker)
        if at >= 0:
            end = reason.find("unable to parse '", at + len(marker))
            found[i] = reason[at : end if end >= 0 else len(reason)].strip()
    return found


def auth_headers(config: InfluxConfig) -> dict[str, str]:
    """The Authorization header for InfluxDB's HTTP API: 2.x a token, 1.x basic auth (if a username is set)."""
    if config.api == "v2":
        return {"Authorization": f"Token {config.token.get()}"} if config.token is not None else {}
    if not config.username:
        return {}
    # Built here: aiohttp.BasicAuth is deprecated in the 3.x line we support.
    secret = f"{config.username}:{config.password.get() if config.password else ''}"
    return {"Authorization": "Basic " + base64.b64encode(secret.encode("utf-8")).decode("ascii")}


class _V1Transport:
    """`POST /write` of InfluxDB 1.x through aiohttp."""

    def __init__(self, config: InfluxConfig) -> None:
        assert config.url is not None
        self.url = config.url.rstrip("/") + "/write"
        self.params = {"db": config.database, "precision": config.precision}
        if config.retention_policy:
            self.params["rp"] = config.retention_policy
        self.headers = {"Content-Type": "text/plain; charset=utf-8", **auth_headers(config)}
        self.gzip = config.gzip
        self.timeout = aiohttp.ClientTimeout(total=config.timeout_s)
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(timeout=self.timeout)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def write(self, body: bytes) -> None:
        assert self.session is not None
        headers = dict(self.headers)
        if self.gzip:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        try:
            async with self.session.post(self.url, params=self.params, data=body, headers=headers) as resp:
                if 200 <= resp.status < 300:
                    return
                text = await resp.text(errors="replace")
                status = resp.status
                retry_after = _retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        _raise_for(status, _error_text(text), retry_after)


class _V2Transport:
    """InfluxDB 2.x through influxdb-client's async write API; gzip, token and timeout are the client's."""

    def __init__(self, config: InfluxConfig) -> None:
        self.config = config
        self.write_api: WriteApiAsync | None = None
        self._client = contextlib.AsyncExitStack()

    async def open(self) -> None:
        # Imported here: influxdb-client costs about a second to import, which 1.x users never need.
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

        cfg = self.config
        client = InfluxDBClientAsync(
            url=cfg.url,
            token=cfg.token.get() if cfg.token else "",
            org=cfg.org,
            timeout=int(cfg.timeout_s * 1000),
            enable_gzip=cfg.gzip,
        )
        self.write_api = (await self._client.enter_async_context(client)).write_api()

    async def close(self) -> None:
        self.write_api = None
        await self._client.aclose()

    async def write(self, body: bytes) -> None:
        from influxdb_client.rest import ApiException

        assert self.write_api is not None
        cfg = self.config
        try:
            # The library annotates the precision with its class of string constants; the values are strings.
            precision = cast("WritePrecision", cfg.precision)
            await self.write_api.write(bucket=cfg.bucket, org=cfg.org, record=body, write_precision=precision)
        except ApiException as exc:
            # The body holds InfluxDB's JSON error; without one, `message` is its error header or the reason.
            text = exc.body.decode("utf-8", "replace") if exc.body else str(exc.message or "")
            _raise_for(int(exc.status or 0), _error_text(text), _retry_after(exc.retry_after), exc)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc


def _raise_for(status: int, message: str, retry_after: float | None, cause: BaseException | None = None) -> None:
    if status in (400, 422):
        # 422 is InfluxDB 2.x rejecting points (beyond the bucket's retention, a field type conflict):
        # sending them again would be rejected again, so they are dead letters like a 400's.
        raise _BadRequest(message if status == 400 else f"HTTP {status}: {message}") from cause
    if status == 413:
        raise _TooLarge(message) from cause
    # 401/403/404 (bad token, missing database) need an operator: keep the data and keep trying.
    raise _Retryable(f"HTTP {status}: {message[:300]}", retry_after) from cause


class InfluxWriter:
    """Stores line protocol in InfluxDB without losing it; `async with writer:` runs it.

    `submit()` is the only call on the hot path. `status()` feeds /healthz.
    """

    def __init__(self, config: InfluxConfig, metrics: Metrics, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.target = (
            f"InfluxDB {config.url} ({config.api}, {config.bucket if config.api == 'v2' else config.database})"
            if config.url
            else "InfluxDB (none configured)"
        )
        self._buffer: list[str] = []
        self._buffer_since = 0.0
        self._buffer_seq = 0  # the sequence number (`_Settlement`) of the buffer's first line
        self._settlement = _Settlement()
        self._unsynced: list[tuple[int, int]] = []  # (seq, count) spooled, waiting for the batch fsync
        self._inflight: dict[asyncio.Task[None], tuple[list[str], float]] = {}
        self._spool: Spool | None = None
        self._spool_pending = False
        self._transport: _V1Transport | _V2Transport | None = None
        self._wake = asyncio.Event()
        self._replay_wake = asyncio.Event()
        self._slots = asyncio.Semaphore(config.max_concurrent_writes)
        self._tasks: list[asyncio.Task[None]] = []
        self._failure = FailureLog(log, self.target)
        self._spool_failure = FailureLog(log, f"spool {config.spool_dir}")
        self._replay_failure = FailureLog(log, "spool replay")
        self.last_error: str | None = None
        self.last_success: float | None = None

        m = metrics
        self._m_queued = m.counter("stationmon_influx_lines_queued_total", "Lines submitted for storage")
        self._m_written = m.counter("stationmon_influx_lines_written_total", "Lines InfluxDB acknowledged")
        self._m_retried = m.counter(
            "stationmon_influx_lines_retried_total", "Lines in write attempts that failed and will be retried"
        )
        self._m_dead = m.counter(
            "stationmon_influx_lines_dead_lettered_total", "Lines InfluxDB rejected (written to dead letters)"
        )
        self._m_dropped = m.counter(
            "stationmon_influx_lines_dropped_total", "Lines lost: spool over its bound or unwritable", ("reason",)
        )
        self._m_spooled = m.counter("stationmon_influx_lines_spooled_total", "Lines written to the spool")
        self._m_latency = m.histogram(
            "stationmon_influx_write_duration_seconds", "InfluxDB write latency", buckets=_LATENCY_BUCKETS
        )
        m.gauge("stationmon_influx_spool_bytes", "Bytes in the spool not yet written to InfluxDB").set_function(
            lambda: float(self._spool.pending_bytes) if self._spool else 0.0
        )
        m.gauge(
            "stationmon_influx_spool_oldest_age_seconds", "Age of the oldest spooled reading (0: none)"
        ).set_function(self.spool_oldest_age_s)
        m.gauge("stationmon_influx_buffered_lines", "Lines held in memory").set_function(
            lambda: float(self.buffered_lines)
        )
        self._spool_dropped_seen = 0
        self._dropped = 0
        self._backoff = Backoff(_FIRST_BACKOFF_S, config.max_retry_delay_s)
        self._next_attempt = 0.0  # time.monotonic() before which the replay task does not try

    def submit(self, lines: Sequence[str]) -> None:
        """Queue lines for storage. Sync and never blocks; call it from the event loop."""
        if not lines:
            return
        self._settlement.add(len(lines))
        if not self._buffer:
            self._buffer_since = self.clock()
        self._buffer.extend(lines)
        self._m_queued.inc(len(lines))
        if len(self._buffer) >= self.config.batch_size or self.buffered_lines > self.config.max_buffered_lines:
            self._wake.set()

    def when_stored(self, callback: StoredCallback) -> None:
        """Call `callback(stored)` once every line submitted so far is stored or lost (see the module doc).

        Sync; the call comes later from the writer's tasks (or at once when nothing is pending).
        """
        self._settlement.watch(callback)

    @property
    def buffered_lines(self) -> int:
        """Lines held in memory: waiting for a batch, or in a write not yet acknowledged."""
        return len(self._buffer) + sum(len(b) for b, _ in self._inflight.values())

    def spool_oldest_age_s(self) -> float:
        """Seconds since the oldest spooled batch was submitted (0 when nothing is spooled)."""
        if self._spool is None:
            return 0.0
        try:
            oldest = self._spool.oldest_ts()
        except StorageError:
            return 0.0
        return max(0.0, self.clock() - oldest) if oldest is not None else 0.0

    def status(self) -> dict[str, Any]:
        """For /healthz: state, counts and the last error."""
        if self.config.url is None:
            state = "spool-only"
        elif self._failure.failing:
            state = "failing"
        elif self._spool_pending:
            state = "replaying"
        else:
            state = "ok"
        return {
            "state": state,
            "target": self.target,
            "buffered_lines": self.buffered_lines,
            "spool_bytes": self._spool.pending_bytes if self._spool else 0,
            "spool_oldest_age_s": round(self.spool_oldest_age_s(), 3),
            "lines_written": int(self._m_written.value()),
            "lines_dead_lettered": int(self._m_dead.value()),
            "lines_dropped": self._dropped,
            "last_error": self.last_error,
            "last_success": self.last_success,
        }

    async def __aenter__(self) -> InfluxWriter:
        cfg = self.config
        try:
            self._spool = Spool(cfg.spool_dir, cfg.spool_max_bytes, cfg.spool_fsync)
        except OSError as exc:
            raise StorageError(f"spool {cfg.spool_dir}: {exc}") from exc
        try:
            try:
                self._spool_pending = self._spool.peek() is not None
            except StorageError as exc:  # unreadable for now: the replay task retries it
                self._replay_failure.failure(str(exc))
                self._spool_pending = True
            if cfg.url is not None:
                self._transport = _V1Transport(cfg) if cfg.api == "v1" else _V2Transport(cfg)
                await self._transport.open()
        except BaseException:
            with contextlib.suppress(StorageError):
                self._spool.close()  # releases the spool directory's lock
            self._spool = None
            raise
        if cfg.url is None:
            log.warning("no InfluxDB url configured: readings are kept in the spool %s only", cfg.spool_dir)
        else:
            self._tasks.append(asyncio.create_task(self._replay_loop(), name="influx-replay"))
        self._tasks.append(asyncio.create_task(self._flush_loop(), name="influx-flush"))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop: write what is held if InfluxDB answers within `timeout`, spool the rest."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        deadline = time.monotonic() + min(self.config.timeout_s, 10.0)
        try:
            if self._inflight:
                await asyncio.wait(list(self._inflight), timeout=max(0.0, deadline - time.monotonic()))
                for task in list(self._inflight):
                    task.cancel()  # the task spools its own batch when cancelled
                await asyncio.gather(*list(self._inflight), return_exceptions=True)
            while self._buffer:
                batch, since, seq = self._cut_batch()
                remaining = deadline - time.monotonic()
                if self._transport is None or self._spool_pending or remaining <= 0:
                    self._to_spool(batch, since, seq)
                    continue
                try:
                    await asyncio.wait_for(self._deliver(batch), remaining)
                except (StorageError, TimeoutError) as exc:
                    self._note_failure(str(exc) or type(exc).__name__)
                    self._to_spool(batch, since, seq)
                else:
                    self._settlement.settle(seq, len(batch), True)
            self._sync_spool()
        finally:
            if self._transport is not None:
                await self._transport.close()
                self._transport = None
            if self._spool is not None:
                try:
                    self._spool.close()
                except StorageError as exc:
                    log.error("%s", exc)

    async def flush(self) -> None:
        """Write (or spool) everything buffered now and wait for the direct writes (for tests)."""
        await self._flush_buffer()
        if self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    def _cut_batch(self) -> tuple[list[str], float, int]:
        """The next batch, the submit time of its oldest line, and its first line's sequence number."""
        size = self.config.batch_size
        batch = self._buffer[:size]
        del self._buffer[:size]
        since = self._buffer_since
        seq = self._buffer_seq
        self._buffer_seq += len(batch)
        if self._buffer:
            self._buffer_since = self.clock()
        return batch, since, seq

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.flush_interval_s)
            self._wake.clear()
            await self._flush_buffer()

    async def _flush_buffer(self) -> None:
        while self._buffer:
            if len(self._buffer) < self.config.batch_size and self._wake.is_set():
                self._wake.clear()
            batch, since, seq = self._cut_batch()
            if (
                self._transport is None
                or self._spool_pending
                or self._failure.failing
                or self.buffered_lines + len(batch) > self.config.max_buffered_lines
            ):
                self._to_spool(batch, since, seq)
                continue
            try:
                await self._slots.acquire()
            except asyncio.CancelledError:
                self._to_spool(batch, since, seq)  # stopping while every write slot is busy
                raise
            if self._spool_pending or self._failure.failing:  # a write failed while we waited
                self._slots.release()
                self._to_spool(batch, since, seq)
                continue
            task = asyncio.create_task(self._direct_write(batch, since, seq), name="influx-write")
            self._inflight[task] = (batch, since)
        self._sync_spool()

    async def _direct_write(self, batch: list[str], since: float, seq: int) -> None:
        try:
            await self._deliver(batch)
            self._settlement.settle(seq, len(batch), True)
        except StorageError as exc:
            self._note_failure(str(exc))
            self._m_retried.inc(len(batch))
            self._back_off(exc)
            self._to_spool(batch, since, seq)
        except asyncio.CancelledError:
            self._to_spool(batch, since, seq)
            raise
        finally:
            self._slots.release()
            self._inflight.pop(asyncio.current_task(), None)  # type: ignore[arg-type]

    async def _replay_loop(self) -> None:
        """Replay the spool until cancelled; a failure of the spool itself is logged and retried."""
        while True:
            wait = self._next_attempt - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await self._replay_one()
            except StorageError as exc:  # the spool could not be read or its progress recorded
                self._replay_failure.failure(str(exc))
                self._back_off(exc)
            except Exception as exc:  # a bug here must not stop storage for good: log, retry later
                log.debug("spool replay failed", exc_info=True)
                self._replay_failure.failure(f"{type(exc).__name__}: {exc}")
                self._back_off(StorageError(str(exc)))

    async def _replay_one(self) -> None:
        """Write the oldest spooled batch and acknowledge it, or wait for one; StorageError: the spool failed."""
        assert self._spool is not None
        record = self._spool.peek()
        if record is None:
            self._spool_pending = False
            self._replay_wake.clear()
            await self._replay_wake.wait()
            return
        try:
            await self._deliver(record.lines)
        except StorageError as exc:  # InfluxDB's failure, not the spool's
            self._note_failure(str(exc))
            self._m_retried.inc(len(record.lines))
            self._back_off(exc)
            return
        self._backoff.reset()
        self._spool.ack(record)
        self._replay_failure.success()  # read and progress recorded (an ack records all before it too)

    async def _deliver(self, lines: list[str]) -> None:
        """Write `lines`; dead-letter what InfluxDB rejects. Raises _Retryable if it may work later."""
        assert self._transport is not None
        started = time.monotonic()
        try:
            await self._transport.write("\n".join(lines).encode("utf-8"))
        except _BadRequest as exc:
            await self._quarantine(lines, str(exc))
            return
        except _TooLarge:
            if len(lines) == 1:
                self._dead_letter(lines, "413 request too large")
            else:
                await self._deliver_halves(lines)
            return
        self._m_latency.observe(time.monotonic() - started)
        self._m_written.inc(len(lines))
        self.last_success = self.clock()
        self._failure.success()

    async def _quarantine(self, lines: list[str], reason: str) -> None:
        # The server answered, so it is up: rejected lines are our problem, not an outage.
        self._failure.success()
        rejected = find_rejected_lines(lines, reason)
        if rejected:
            for i, why in rejected.items():
                self._dead_letter([lines[i]], why)
            rest = [line for i, line in enumerate(lines) if i not in rejected]
            if rest:
                await self._deliver(rest)
            return
        dropped = _dropped_count(reason)
        if len(lines) == 1 or (dropped is not None and dropped >= len(lines)):
            self._dead_letter(lines, reason)  # every line of this part was rejected
        else:
            await self._deliver_halves(lines)

    async def _deliver_halves(self, lines: list[str]) -> None:
        mid = len(lines) // 2
        await self._deliver(lines[:mid])
        await self._deliver(lines[mid:])

    def _dead_letter(self, lines: list[str], reason: str) -> None:
        self._m_dead.inc(len(lines))
        log.warning(
            "%s rejected %d line(s), kept in %s: %s",
            self.target,
            len(lines),
            self.config.dead_letter_file,
            reason[:300],
        )
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))
        text = f"# {stamp} {' '.join(reason.split())}\n" + "".join(line + "\n" for line in lines)
        try:
            path = Path(self.config.dead_letter_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            log.error("dead-letter file %s: cannot write: %s", self.config.dead_letter_file, exc)

    def _back_off(self, exc: StorageError) -> None:
        """Push the next replay attempt back: backoff with jitter, at least the server's (capped) Retry-After."""
        hint = exc.retry_after_s if isinstance(exc, _Retryable) and exc.retry_after_s else 0.0
        delay = self._backoff.next_delay(floor_s=min(hint, self.config.max_retry_delay_s))
        self._next_attempt = max(self._next_attempt, time.monotonic() + delay)

    def _note_failure(self, reason: str) -> None:
        self.last_error = reason
        self._failure.failure(reason)

    def _to_spool(self, batch: list[str], since: float, seq: int) -> None:
        """Append a batch to the spool; it counts as stored after the next sync (policy "batch") or at once."""
        assert self._spool is not None
        try:
            self._spool.append(batch, since)
        except StorageError as exc:
            self._spool_failure.failure(str(exc))
            self._m_dropped.labels("spool_error").inc(len(batch))
            self._dropped += len(batch)
            self._settlement.settle(seq, len(batch), False)
            return
        if self._spool.fsync == "batch":
            self._unsynced.append((seq, len(batch)))
        else:  # "always" synced it; "never" leaves it to the OS (it survives a crash of the process)
            self._settlement.settle(seq, len(batch), True)
        self._spool_failure.success()
        self._m_spooled.inc(len(batch))
        self._spool_pending = True
        self._replay_wake.set()
        dropped = self._spool.dropped_lines
        if dropped > self._spool_dropped_seen:
            self._m_dropped.labels("spool_full").inc(dropped - self._spool_dropped_seen)
            self._dropped += dropped - self._spool_dropped_seen
            self._spool_dropped_seen = dropped

    def _sync_spool(self) -> None:
        if self._spool is None:
            return
        synced = True
        try:
            self._spool.sync()
        except StorageError as exc:
            self._spool_failure.failure(str(exc))
            synced = False  # appended but maybe not on disk: not "stored" (its source may send it again)
        unsynced, self._unsynced = self._unsynced, []
        for seq, count in unsynced:
            self._settlement.settle(seq, count, synced)
