"""The InfluxDB writer: batches, gzip, bounded concurrent writes, retries, dead letters, durable spool.

    submit(lines)  -> memory buffer (sync, never blocks); str lines, or a `LineBlock` (many lines as one
                      bytes buffer: kept as it is, sliced into batches, its bytes the write's body)
    flusher task   -> every flush_interval, or at batch_size lines: cut batches (by line count, across
                      str lines and blocks)
                      - healthy and nothing spooled: write directly (at most max_concurrent_writes at once)
                      - InfluxDB failing, something already spooled, too many lines in memory, or no
                        url configured: append the batch to the spool (order kept)
    replay task    -> oldest spooled batch first: write it, acknowledge it durably, next; on 429, 5xx or
                      a network error wait (`Backoff`: exponential with jitter, at least Retry-After)
                      and try again; a spool that cannot be read or record its progress is logged (once, until it
                      recovers) and retried with the same backoff: the task never ends on an error

Both tasks are supervised: one that dies anyway (a bug) is logged with its traceback and restarted with
backoff; after a run of quick deaths `watch()` raises StorageError, which stops the service loudly.

A batch the spool refuses (a full disk, a read-only or vanished directory, no descriptors left) stays
in memory, in order, and the spool is tried again with backoff; meanwhile batches go straight to
InfluxDB if it answers. Past `max_buffered_lines` the oldest held lines are dropped (reason
`spool_error`). While readings can be neither written nor spooled, `status()` says "failing" (/healthz
answers 503). Every line is accounted for: queued (submitted, plus found in the spool at start) =
written + dropped{reason} + dead-lettered + buffered (memory, writes in flight, the spool).

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
after the flush cycle's fsync); `callback(False)` if a line submitted since the previous `when_stored`
was lost (dropped past `max_buffered_lines`, at a stop, or appended but not synced). Callbacks run in
the order they were registered, so a collector can acknowledge its source in the order it received
(MQTT's PUBACKs must be). Each line carries its sequence number through the buffer, batches, writes and
the spool (`_Piece`, `_Ticket`), also when a refused batch goes back into memory or only part of a batch
is spooled again; a batch whose write stored only part of it settles once the rest is safely spooled.

Batches are `LineBlock`s from the cut on: bisection and the 413 split slice them; only a 400 that names
lines, and the dead-letter file, make str lines of a batch.
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
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiohttp

from stationmon.adapters.spool import Spool
from stationmon.backoff import Backoff
from stationmon.config import InfluxConfig
from stationmon.domain.lineproto import LineBlock
from stationmon.errors import StorageError
from stationmon.files import append_whole
from stationmon.logutil import FailureLog
from stationmon.metrics import Metrics

if TYPE_CHECKING:
    from influxdb_client.client.write_api_async import WriteApiAsync
    from influxdb_client.domain.write_precision import WritePrecision

__all__ = ["InfluxWriter", "StoredCallback", "auth_headers", "find_rejected_lines"]

log = logging.getLogger("stationmon.influx")

_FIRST_BACKOFF_S = 0.5  # then 1, 2, 4 ... up to max_retry_delay_s, each with jitter
_TASK_RESTARTS = 5  # a storage task that dies this many times in a row, each soon after its start, stops the service
_TASK_HEALTHY_S = 60.0  # a task that ran this long before dying starts its count again
_TASK_RESTART_FIRST_S = 0.5
_TASK_RESTART_MAX_S = 30.0
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


class _Ticket:
    """Sequence runs that settle together: once every piece of lines holding the ticket has settled,
    all its runs are stored, or lost if any piece was."""

    __slots__ = ("pieces", "runs", "stored")

    def __init__(self, runs: list[tuple[int, int]]) -> None:
        self.runs = runs  # (first sequence number, count)
        self.pieces = 1  # pieces of lines (in memory, in a batch, awaiting a sync) that hold this ticket
        self.stored = True


class _Piece:
    """`count` consecutive lines and the tickets they answer for. `exact`: one ticket with one run whose
    numbers are exactly these lines (fresh from `submit`), so it can be split line by line."""

    __slots__ = ("count", "exact", "tickets")

    def __init__(self, count: int, tickets: list[_Ticket], exact: bool) -> None:
        self.count = count
        self.tickets = tickets
        self.exact = exact

    def split(self, head: int) -> tuple[_Piece, _Piece]:
        """The first `head` lines and the rest; a shared ticket then waits for both halves."""
        if self.exact:
            start, _ = self.tickets[0].runs[0]
            first = _Piece(head, [_Ticket([(start, head)])], True)
            return first, _Piece(self.count - head, [_Ticket([(start + head, self.count - head)])], True)
        for ticket in self.tickets:
            ticket.pieces += 1
        return _Piece(head, self.tickets, False), _Piece(self.count - head, list(self.tickets), False)


def _narrowed(pieces: list[_Piece], count: int) -> list[_Piece]:
    """The pieces of a batch of which only `count` lines are left (a write stored or dead-lettered the
    rest): one piece holding every ticket, settled when those lines are."""
    if count == sum(p.count for p in pieces):
        return pieces
    return [_Piece(count, [t for p in pieces for t in p.tickets], False)]


class _Claims:
    """The sequence numbers of the buffer's lines, in the buffer's order, as pieces; batches cut from the
    buffer take their pieces along, and settle them through `_Settlement`."""

    def __init__(self) -> None:
        self.settlement = _Settlement()
        self._pieces: deque[_Piece] = deque()

    def add(self, count: int) -> None:
        """Number `count` lines appended to the buffer."""
        start = self.settlement.submitted
        self.settlement.add(count)
        last = self._pieces[-1] if self._pieces else None
        if last is not None and last.exact and sum(last.tickets[0].runs[0]) == start:
            last.count += count
            last.tickets[0].runs[0] = (last.tickets[0].runs[0][0], last.count)
        else:
            self._pieces.append(_Piece(count, [_Ticket([(start, count)])], True))

    def cut(self, count: int) -> list[_Piece]:
        """The pieces of the buffer's first `count` lines, removed."""
        cut: list[_Piece] = []
        while count > 0 and self._pieces:
            piece = self._pieces.popleft()
            if piece.count > count:
                piece, rest = piece.split(count)
                self._pieces.appendleft(rest)
            cut.append(piece)
            count -= piece.count
        return cut

    def put_back(self, pieces: list[_Piece]) -> None:
        """Pieces whose lines went back in front of the buffer."""
        self._pieces.extendleft(reversed(pieces))

    def settle(self, pieces: Iterable[_Piece], stored: bool) -> None:
        """These pieces' lines are stored (or lost): settle each ticket once its last piece is."""
        for piece in pieces:
            for ticket in piece.tickets:
                ticket.stored = ticket.stored and stored
                ticket.pieces -= 1
                if ticket.pieces == 0:
                    for start, count in ticket.runs:
                        self.settlement.settle(start, count, ticket.stored)


class _Buffer:
    """Submitted lines waiting for a batch, in order: lists of str (consecutive submits share one) and
    blocks. A batch is cut as one `LineBlock`: str lines are encoded then, a block is sliced."""

    def __init__(self) -> None:
        self._parts: deque[list[str] | LineBlock] = deque()
        self.count = 0  # lines held

    def __len__(self) -> int:
        return self.count

    def add(self, lines: Sequence[str] | LineBlock) -> None:
        """Append these lines."""
        if isinstance(lines, LineBlock):
            self._parts.append(lines)
        elif self._parts and isinstance(self._parts[-1], list):
            self._parts[-1].extend(lines)
        else:
            self._parts.append(list(lines))
        self.count += len(lines)

    def _pop(self, count: int) -> list[list[str] | LineBlock]:
        """The parts holding the first `count` lines (or all there are), removed."""
        taken: list[list[str] | LineBlock] = []
        while count > 0 and self._parts:
            part = self._parts.popleft()
            if len(part) > count:
                self._parts.appendleft(part[count:])
                part = part[:count]
            taken.append(part)
            count -= len(part)
            self.count -= len(part)
        return taken

    def take(self, count: int) -> LineBlock:
        """The first `count` lines as one block, removed."""
        parts = self._pop(count)
        return LineBlock.join([p if isinstance(p, LineBlock) else LineBlock.from_lines(p) for p in parts])

    def drop(self, count: int) -> None:
        """Remove the first `count` lines."""
        self._pop(count)

    def put_back(self, block: LineBlock) -> None:
        """Lines that go back in front of the others."""
        self._parts.appendleft(block)
        self.count += len(block)


class _Retryable(StorageError):
    """The write may succeed later: 429, 5xx, 401/403/404 (fixable by an operator), network errors."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.unsent: LineBlock | None = None  # set by the writer: the lines of its batch not yet stored


def _unsent(exc: StorageError, lines: LineBlock) -> LineBlock:
    """The lines of `lines` that a failed delivery did not store (a split batch may have stored some)."""
    return exc.unsent if isinstance(exc, _Retryable) and exc.unsent is not None else lines


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


_UNPARSABLE = "unable to parse '"  # how InfluxDB's 400 names a line it rejects: unable to parse '<line>': <why>


def _names_lines(reason: str) -> bool:
    """Whether a 400 answer names the lines it rejects (`find_rejected_lines` can find them)."""
    return _UNPARSABLE in reason


def find_rejected_lines(lines: Sequence[str], reason: str) -> dict[int, str]:
    """Indexes of the lines a 400 answer names (`unable to parse '<line>': <why>`), each with its part of the reason."""
    found: dict[int, str] = {}
    if not _names_lines(reason):
        return found
    for i, line in enumerate(lines):
        marker = f"{_UNPARSABLE}{line}'"
        at = reason.find(marker)
        if at >= 0:
            end = reason.find(_UNPARSABLE, at + len(marker))
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

    `submit()` is the only call on the hot path. `status()` feeds /healthz. `watch()` belongs in the
    service's TaskGroup: it raises StorageError when a storage task keeps dying, which stops the service.
    """

    def __init__(self, config: InfluxConfig, metrics: Metrics, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.target = (
            f"InfluxDB {config.url} ({config.api}, {config.bucket if config.api == 'v2' else config.database})"
            if config.url
            else "InfluxDB (none configured)"
        )
        self._buffer = _Buffer()
        self._buffer_since = 0.0
        self._claims = _Claims()  # the buffer's lines' sequence numbers, for `when_stored`
        self._unsynced: list[_Piece] = []  # spooled, waiting for the batch fsync to count as stored
        self._held = 0  # lines cut from the buffer and not yet in a write, the spool or a counter
        self._inflight: dict[asyncio.Task[None], tuple[LineBlock, float]] = {}
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
        self._memory_failure = FailureLog(log, "storage")
        self._append_backoff = Backoff(_FIRST_BACKOFF_S, config.max_retry_delay_s)
        self._append_retry_at: float | None = None  # while the spool refuses appends: monotonic time of the next try
        self._task_crash: str | None = None  # a storage task died and waits to be restarted
        self._fatal: StorageError | None = None
        self._fatal_event = asyncio.Event()
        self.last_error: str | None = None
        self.last_success: float | None = None
        self._register_metrics(metrics)
        self._spool_seen = {"spool_full": 0, "corrupt": 0}  # the spool's own loss counters, as counted here
        self._dropped = 0
        self._backoff = Backoff(_FIRST_BACKOFF_S, config.max_retry_delay_s)
        self._next_attempt = 0.0  # time.monotonic() before which the replay task does not try

    def _register_metrics(self, m: Metrics) -> None:
        self._m_queued = m.counter(
            "stationmon_influx_lines_queued_total", "Lines submitted for storage (and found in the spool at start)"
        )
        self._m_written = m.counter("stationmon_influx_lines_written_total", "Lines InfluxDB acknowledged")
        self._m_retried = m.counter(
            "stationmon_influx_lines_retried_total", "Lines in write attempts that failed and will be retried"
        )
        self._m_dead = m.counter(
            "stationmon_influx_lines_dead_lettered_total", "Lines InfluxDB rejected (written to dead letters)"
        )
        self._m_dropped = m.counter(
            "stationmon_influx_lines_dropped_total",
            "Lines lost, by reason: spool_full (over spool_max_bytes), corrupt (damaged in the spool), "
            "spool_error (neither written nor spooled), dead_letter_error (rejected, dead-letter file unwritable)",
            ("reason",),
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
        m.gauge("stationmon_influx_spool_lines", "Lines in the spool not yet written to InfluxDB").set_function(
            lambda: float(self.spool_lines)
        )
        m.gauge(
            "stationmon_influx_buffered_lines",
            "Lines held and not yet written: in memory, in a write, or in the spool "
            "(queued = written + dropped + dead_lettered + buffered)",
        ).set_function(lambda: float(self.buffered_lines + self.spool_lines))

    def submit(self, lines: Sequence[str] | LineBlock) -> None:
        """Queue lines for storage: str lines, or a block of them (kept as it is until a batch is cut).
        Sync and never blocks; call it from the event loop."""
        if not len(lines):
            return
        if not self._buffer:
            self._buffer_since = self.clock()
        self._buffer.add(lines)
        self._claims.add(len(lines))
        self._m_queued.inc(len(lines))
        if len(self._buffer) >= self.config.batch_size or self.buffered_lines > self.config.max_buffered_lines:
            self._wake.set()

    def when_stored(self, callback: StoredCallback) -> None:
        """Call `callback(stored)` once every line submitted so far is stored or lost (see the module doc).

        Sync; the call comes later from the writer's tasks (or at once when nothing is pending).
        """
        self._claims.settlement.watch(callback)

    @property
    def buffered_lines(self) -> int:
        """Lines held in memory: waiting for a batch, or in a write not yet acknowledged."""
        return len(self._buffer) + self._held + sum(len(b) for b, _ in self._inflight.values())

    @property
    def spool_lines(self) -> int:
        """Lines in the spool, not yet written, dropped or found damaged."""
        return self._spool.pending_lines if self._spool else 0

    def spool_oldest_age_s(self) -> float:
        """Seconds since the oldest spooled batch was submitted (0 when nothing is spooled)."""
        if self._spool is None:
            return 0.0
        try:
            oldest = self._spool.oldest_ts()
        except StorageError:
            return 0.0
        finally:
            self._count_spool_losses()  # reading may have found damage
        return max(0.0, self.clock() - oldest) if oldest is not None else 0.0

    def _state(self) -> str:
        """failing: readings can neither be written nor spooled (or a storage task died); HTTP 503."""
        unspoolable = self._append_retry_at is not None
        influx_down = self.config.url is None or self._failure.failing
        if self._fatal is not None or self._task_crash is not None or (unspoolable and influx_down):
            return "failing"
        if unspoolable:
            return "degraded"  # written directly, but a failure of InfluxDB now would cost readings
        if self.config.url is None:
            return "spool-only"
        if self._failure.failing:
            return "spooling"
        return "replaying" if self._spool_pending else "ok"

    def status(self) -> dict[str, Any]:
        """For /healthz: state, counts and the last error."""
        return {
            "state": self._state(),
            "target": self.target,
            "buffered_lines": self.buffered_lines,
            "spool_lines": self.spool_lines,
            "spool_bytes": self._spool.pending_bytes if self._spool else 0,
            "spool_oldest_age_s": round(self.spool_oldest_age_s(), 3),
            "lines_written": int(self._m_written.value()),
            "lines_dead_lettered": int(self._m_dead.value()),
            "lines_dropped": self._dropped,
            "last_error": self.last_error,
            "last_success": self.last_success,
            "spool_error": self._spool_failure.failing or None,
            "task_error": self._task_crash or (str(self._fatal) if self._fatal else None),
        }

    async def __aenter__(self) -> InfluxWriter:
        cfg = self.config
        try:
            self._spool = Spool(cfg.spool_dir, cfg.spool_max_bytes, cfg.spool_fsync)
        except OSError as exc:
            raise StorageError(f"spool {cfg.spool_dir}: {exc}") from exc
        self._m_queued.inc(self._spool.found_lines)  # counted here: they are stored (or lost) from now on
        self._count_spool_losses()
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
            self._start("influx-replay", self._replay_loop)
        self._start("influx-flush", self._flush_loop)
        return self

    def _start(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        self._tasks.append(asyncio.create_task(self._supervise(name, loop), name=name))

    async def _supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run `loop`; restart it when it dies (logged with its traceback), give up after a run of quick deaths."""
        backoff = Backoff(_TASK_RESTART_FIRST_S, _TASK_RESTART_MAX_S)
        while True:
            started = time.monotonic()
            try:
                await loop()
                return
            except Exception as exc:
                if time.monotonic() - started > _TASK_HEALTHY_S:
                    backoff.reset()  # it ran a good while: this is a new failure, not the same one again
                self._task_crash = f"{name}: {type(exc).__name__}: {exc}"
                if backoff.failures >= _TASK_RESTARTS:
                    self._fatal = StorageError(
                        f"storage task {name} died {backoff.failures + 1} times in a row, the last with "
                        f"{type(exc).__name__}: {exc}; stopping"
                    )
                    log.critical("%s", self._fatal, exc_info=exc)
                    self._fatal_event.set()
                    return
                delay = backoff.next_delay()
                log.error("storage task %s died (%s): restarting in %.1f s", name, exc, delay, exc_info=exc)
            await asyncio.sleep(delay)
            self._task_crash = None
            log.info("storage task %s restarted", name)

    async def watch(self) -> None:
        """Return never; raise StorageError once a storage task has died for good (for the service's TaskGroup)."""
        await self._fatal_event.wait()
        assert self._fatal is not None
        raise self._fatal

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop: write what is held if InfluxDB answers within `timeout`, spool the rest."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        deadline = time.monotonic() + min(self.config.timeout_s, 10.0)
        self._append_retry_at = None  # one last try at the spool for everything still held
        try:
            if self._inflight:
                await asyncio.wait(list(self._inflight), timeout=max(0.0, deadline - time.monotonic()))
                for task in list(self._inflight):
                    task.cancel()  # the task spools its own batch when cancelled
                await asyncio.gather(*list(self._inflight), return_exceptions=True)
            await self._final_flush(deadline)
        finally:
            if self._transport is not None:
                await self._transport.close()
                self._transport = None
            if self._spool is not None:
                closed = True
                try:
                    self._spool.close()  # syncs what the last flushes appended
                except StorageError as exc:
                    log.error("%s", exc)
                    closed = False
                unsynced, self._unsynced = self._unsynced, []
                self._claims.settle(unsynced, closed)

    async def _final_flush(self, deadline: float) -> None:
        while self._buffer:
            batch, since, pieces = self._cut_batch()
            remaining = deadline - time.monotonic()
            if self._transport is None or self._spool_pending or remaining <= 0:
                if not self._to_spool(batch, since, pieces):
                    break
                continue
            self._held += len(batch)
            try:
                await asyncio.wait_for(self._deliver(batch), remaining)
            except (StorageError, TimeoutError) as exc:
                self._note_failure(str(exc) or type(exc).__name__)
                batch = _unsent(exc, batch) if isinstance(exc, StorageError) else batch
                if not self._to_spool(batch, since, _narrowed(pieces, len(batch)), held=True):
                    break
            else:
                self._claims.settle(pieces, True)
            finally:
                self._held = 0
        if self._buffer:
            log.error(
                "stopping: %d lines could be neither written to %s nor spooled: lost",
                len(self._buffer),
                self.target,
            )
            self._drop(len(self._buffer), "spool_error")
            self._claims.settle(self._claims.cut(len(self._buffer)), False)
            self._buffer.drop(len(self._buffer))

    async def flush(self) -> None:
        """Write (or spool) everything buffered now and wait for the direct writes (for tests)."""
        await self._flush_buffer()
        if self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    def _cut_batch(self) -> tuple[LineBlock, float, list[_Piece]]:
        """The next batch, the submit time of its oldest line, and its lines' sequence numbers."""
        batch = self._buffer.take(self.config.batch_size)
        since = self._buffer_since
        if self._buffer:
            self._buffer_since = self.clock()
        return batch, since, self._claims.cut(len(batch))

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.flush_interval_s)
            self._wake.clear()
            await self._flush_buffer()

    def _write_directly(self) -> bool:
        """Whether the next batch goes straight to InfluxDB rather than to the spool.

        The batch is counted in buffered_lines already (buffer, held or in flight): counting it again
        sent every batch of a full buffer to the spool and halved the writer's throughput."""
        if self._transport is None or self._failure.failing:
            return False
        if self._append_retry_at is not None:
            return True  # the spool refuses appends: InfluxDB is the only way out of memory
        return not self._spool_pending and self.buffered_lines <= self.config.max_buffered_lines

    async def _flush_buffer(self) -> None:
        while self._buffer:
            if len(self._buffer) < self.config.batch_size and self._wake.is_set():
                self._wake.clear()
            direct = self._write_directly()
            retry_at = self._append_retry_at
            if not direct and retry_at is not None and time.monotonic() < retry_at:
                self._trim_memory()  # held in memory until the spool's next try, within max_buffered_lines
                break
            batch, since, pieces = self._cut_batch()
            if not direct:
                if not self._to_spool(batch, since, pieces):
                    break
                continue
            self._held += len(batch)
            try:
                await self._slots.acquire()
            except asyncio.CancelledError:
                self._to_spool(batch, since, pieces, held=True)  # stopping while every write slot is busy
                raise
            if not self._write_directly():  # a write failed while we waited
                self._slots.release()
                self._to_spool(batch, since, pieces, held=True)
                continue
            self._held -= len(batch)
            task = asyncio.create_task(self._direct_write(batch, since, pieces), name="influx-write")
            self._inflight[task] = (batch, since)
        self._sync_spool()

    async def _direct_write(self, batch: LineBlock, since: float, pieces: list[_Piece]) -> None:
        try:
            await self._deliver(batch)
            self._claims.settle(pieces, True)
        except StorageError as exc:
            self._note_failure(str(exc))
            unsent = _unsent(exc, batch)
            self._m_retried.inc(len(unsent))
            self._back_off(exc)
            self._inflight.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
            self._to_spool(unsent, since, _narrowed(pieces, len(unsent)))  # the stored part settles with it
        except asyncio.CancelledError:
            self._inflight.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
            self._to_spool(batch, since, pieces)
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
            finally:
                self._count_spool_losses()

    async def _replay_one(self) -> None:
        """Write the oldest spooled batch and acknowledge it, or wait for one; StorageError: the spool failed."""
        assert self._spool is not None
        record = self._spool.peek()
        if record is None:
            self._spool_pending = False
            self._replay_wake.clear()
            await self._replay_wake.wait()
            return
        lines = LineBlock.from_lines(record.lines)
        try:
            await self._deliver(lines)
        except StorageError as exc:  # InfluxDB's failure, not the spool's
            self._note_failure(str(exc))
            unsent = _unsent(exc, lines)
            self._m_retried.inc(len(unsent))
            self._back_off(exc)
            if len(unsent) < len(record.lines):  # part of it is stored: spool only the rest again
                self._spool.append(unsent, record.oldest_ts)
                self._spool.sync()  # on disk before the ack moves past its record (a power cut loses neither)
                self._spool.ack(record)
            return
        self._backoff.reset()
        self._spool.ack(record)
        self._replay_failure.success()  # read and progress recorded (an ack records all before it too)

    async def _deliver(self, lines: LineBlock) -> None:
        """Write `lines`; dead-letter what InfluxDB rejects. Raises _Retryable (with `unsent`) if it may work later."""
        assert self._transport is not None
        started = time.monotonic()
        try:
            await self._transport.write(lines.body())
        except _BadRequest as exc:
            await self._quarantine(lines, str(exc))
            return
        except _TooLarge:
            if len(lines) == 1:
                self._dead_letter(lines.lines(), "413 request too large")
            else:
                await self._deliver_halves(lines)
            return
        except _Retryable as exc:
            if exc.unsent is None:
                exc.unsent = lines
            raise
        self._m_latency.observe(time.monotonic() - started)
        self._m_written.inc(len(lines))
        self.last_success = self.clock()
        self._failure.success()

    async def _quarantine(self, lines: LineBlock, reason: str) -> None:
        # The server answered, so it is up: rejected lines are our problem, not an outage.
        self._failure.success()
        texts = lines.lines() if _names_lines(reason) else []  # str lines: on this rare path only
        rejected = find_rejected_lines(texts, reason)
        if rejected:
            for i, why in rejected.items():
                self._dead_letter([texts[i]], why)
            rest = [line for i, line in enumerate(texts) if i not in rejected]
            if rest:
                await self._deliver(LineBlock.from_lines(rest))
            return
        dropped = _dropped_count(reason)
        if len(lines) == 1 or (dropped is not None and dropped >= len(lines)):
            self._dead_letter(lines.lines(), reason)  # every line of this part was rejected
        else:
            await self._deliver_halves(lines)

    async def _deliver_halves(self, lines: LineBlock) -> None:
        mid = len(lines) // 2
        try:
            await self._deliver(lines[:mid])
        except _Retryable as exc:  # the second half was not even tried
            exc.unsent = LineBlock.join([exc.unsent if exc.unsent is not None else lines[:mid], lines[mid:]])
            raise
        await self._deliver(lines[mid:])

    def _dead_letter(self, lines: list[str], reason: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))
        text = f"# {stamp} {' '.join(reason.split())}\n" + "".join(line + "\n" for line in lines)
        path = Path(self.config.dead_letter_file)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            append_whole(path, text.encode("utf-8", "surrogatepass"))
        except OSError as exc:
            log.error(
                "%s rejected %d line(s) (%s); the dead-letter file %s cannot be written (%s): lost",
                self.target,
                len(lines),
                reason[:300],
                path,
                exc,
            )
            self._drop(len(lines), "dead_letter_error")
            return
        self._m_dead.inc(len(lines))
        log.warning("%s rejected %d line(s), kept in %s: %s", self.target, len(lines), path, reason[:300])

    def _back_off(self, exc: StorageError) -> None:
        """Push the next replay attempt back: backoff with jitter, at least the server's (capped) Retry-After."""
        hint = exc.retry_after_s if isinstance(exc, _Retryable) and exc.retry_after_s else 0.0
        delay = self._backoff.next_delay(floor_s=min(hint, self.config.max_retry_delay_s))
        self._next_attempt = max(self._next_attempt, time.monotonic() + delay)

    def _note_failure(self, reason: str) -> None:
        self.last_error = reason
        self._failure.failure(reason)

    def _drop(self, lines: int, reason: str) -> None:
        self._m_dropped.labels(reason).inc(lines)
        self._dropped += lines

    def _to_spool(self, batch: LineBlock, since: float, pieces: list[_Piece], *, held: bool = False) -> bool:
        """Append `batch` to the spool; if it cannot, keep it in memory for the next try and return False.

        Spooled, `pieces` count as stored after the next sync (policy "batch") or at once. `held`: the
        batch is counted in `_held` until now."""
        assert self._spool is not None
        if held:
            self._held -= len(batch)
        try:
            self._spool.append(batch, since)
        except Exception as exc:  # StorageError, or a bug: either way the batch must not vanish
            if not isinstance(exc, StorageError):
                log.error("spool %s: unexpected error", self.config.spool_dir, exc_info=exc)
            self._spool_failure.failure(str(exc).removeprefix(f"spool {self._spool.dir}: ") or type(exc).__name__)
            self._append_retry_at = time.monotonic() + self._append_backoff.next_delay()
            self._keep(batch, since, pieces)
            return False
        if self._spool.fsync == "batch":
            self._unsynced.extend(pieces)
        else:  # "always" synced it; "never" leaves it to the OS (it survives a crash of the process)
            self._claims.settle(pieces, True)
        self._spool_failure.success()
        self._append_backoff.reset()
        self._append_retry_at = None
        self._m_spooled.inc(len(batch))
        self._spool_pending = True
        self._replay_wake.set()
        self._count_spool_losses()
        return True

    def _keep(self, batch: LineBlock, since: float, pieces: list[_Piece]) -> None:
        """Put a batch the spool refused back in front of the buffer; beyond max_buffered_lines the oldest go."""
        self._buffer.put_back(batch)
        self._claims.put_back(pieces)
        self._buffer_since = min(since, self._buffer_since) if len(self._buffer) > len(batch) else since
        self._trim_memory()

    def _trim_memory(self) -> None:
        """Beyond max_buffered_lines in memory (the spool refusing them), the oldest lines are dropped."""
        excess = self.buffered_lines - self.config.max_buffered_lines
        if excess > 0:
            lost = min(excess, len(self._buffer))
            self._buffer.drop(lost)
            self._claims.settle(self._claims.cut(lost), False)
            self._drop(lost, "spool_error")
            self._memory_failure.failure(
                f"readings can be neither written to {self.target} nor spooled, and max_buffered_lines "
                f"({self.config.max_buffered_lines}) are held: the oldest are dropped "
                f"({int(self._m_dropped.value('spool_error'))} so far)"
            )
        else:
            self._memory_failure.success()

    def _count_spool_losses(self) -> None:
        """Count what the spool lost on its own (at its bound, to damage) since the last look."""
        if self._spool is None:
            return
        for reason, now in (("spool_full", self._spool.dropped_lines), ("corrupt", self._spool.corrupt_lines)):
            if now > self._spool_seen[reason]:
                self._drop(now - self._spool_seen[reason], reason)
                self._spool_seen[reason] = now

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
        self._claims.settle(unsynced, synced)
