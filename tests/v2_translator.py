"""TEST-ONLY: a tiny InfluxDB 2.x write endpoint in front of a real InfluxDB 1.x server.

There is no 2.x `influxd` on this machine, so the v2 write path (influxdb-client's async API) is tested
through this translator: `POST /api/v2/write?org=&bucket=&precision=` with `Authorization: Token <t>`
(gzip or not) becomes `POST /write?db=<bucket>&precision=` on the 1.x server, and 1.x error bodies
(`{"error": ...}`) become 2.x ones (`{"code": ..., "message": ...}`). It also records what it saw and can
answer with injected failures (status + Retry-After), so tests can check retries, and can play a
bucket's retention period (`reject_older_than`): points older than a cutoff are dropped and the rest
written, answered with 2.x's 422 for a partial write. `/query` plays 2.x's InfluxQL compatibility endpoint
(token required, db = the bucket through its DBRP mapping, `SELECT ... INTO` refused). Never use it in
production code.
"""

from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

__all__ = ["V2Translator"]

_NS_PER_UNIT = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


@dataclass
class _Seen:
    gzip: bool
    org: str
    bucket: str
    precision: str
    at: float
    lines: int


@dataclass
class V2Translator:
    """Start with `await start(port)`, stop with `await stop()`; `.url` is the 2.x base URL."""

    upstream_url: str
    token: str
    org: str
    seen: list[_Seen] = field(default_factory=list)
    failures: list[tuple[int, str | None]] = field(default_factory=list)  # answered before forwarding
    retention_cutoff_ns: int | None = None  # points older than this are "beyond retention"
    rejected: list[str] = field(default_factory=list)  # every line answered with 422
    queries: list[str] = field(default_factory=list)  # InfluxQL seen on /query
    url: str = ""
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = None) -> None:
        """Answer the next `count` writes with `status` (and a Retry-After header) instead of writing."""
        self.failures.extend([(status, retry_after)] * count)

    def reject_older_than(self, cutoff_ns: int | None) -> None:
        """Act as a bucket whose retention ends at `cutoff_ns` (epoch ns; None: keep everything).

        Like InfluxDB 2.x: the points at or after the cutoff are written, the older ones dropped, and the
        answer is 422 `partial write: points beyond retention policy dropped=N`, naming no line.
        """
        self.retention_cutoff_ns = cutoff_ns

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_post("/api/v2/write", self._write)
        app.router.add_route("*", "/query", self._query)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _query(self, request: web.Request) -> web.Response:
        """2.x's InfluxQL compatibility endpoint: a token, and db = a bucket (its DBRP mapping of the same name)."""
        if request.headers.get("Authorization") != f"Token {self.token}":
            return _v2_error(401, "unauthorized", "unauthorized access")
        params = dict(request.query)
        if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        self.queries.append(params.get("q", ""))
        if "INTO" in params.get("q", "").upper().split():
            return web.json_response({"results": [{"statement_id": 0, "error": "SELECT INTO not supported"}]})
        assert self._session is not None
        async with self._session.post(f"{self.upstream_url}/query", data=params) as resp:
            return web.Response(status=resp.status, body=await resp.read(), content_type="application/json")

    async def _write(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Token {self.token}":
            return _v2_error(401, "unauthorized", "unauthorized access")
        org = request.query.get("org", "")
        bucket = request.query.get("bucket", "")
        precision = request.query.get("precision", "ns")
        if org != self.org:
            return _v2_error(404, "not found", f'organization name "{org}" not found')
        body = await request.read()
        gzipped = request.headers.get("Content-Encoding") == "gzip"
        if gzipped and body[:2] == b"\x1f\x8b":  # aiohttp may already have decompressed it
            body = gzip.decompress(body)
        self.seen.append(_Seen(gzipped, org, bucket, precision, time.monotonic(), body.count(b"\n") + 1))
        if self.failures:
            status, retry_after = self.failures.pop(0)
            headers = {"Retry-After": retry_after} if retry_after else {}
            return _v2_error(status, "unavailable", "injected failure", headers)
        expired: list[str] = []
        if self.retention_cutoff_ns is not None:
            kept: list[str] = []
            for line in body.decode("utf-8").split("\n"):
                ts = _timestamp_ns(line, precision)
                (expired if ts is not None and ts < self.retention_cutoff_ns else kept).append(line)
            body = "\n".join(kept).encode("utf-8")
        if body.strip():
            assert self._session is not None
            async with self._session.post(
                f"{self.upstream_url}/write", params={"db": bucket, "precision": precision}, data=body
            ) as resp:
                status = resp.status
                text = await resp.text()
        else:
            status, text = 204, ""
        if status == 204:
            if not expired:
                return web.Response(status=204)
            self.rejected.extend(expired)
            return _v2_error(
                422,
                "unprocessable entity",
                "failure writing points to database: partial write: points beyond retention policy "
                f"dropped={len(expired)}",
            )
        try:
            message = json.loads(text).get("error", text)
        except ValueError:
            message = text
        code = "invalid" if status == 400 else "internal error"
        return _v2_error(status, code, message)


def _timestamp_ns(line: str, precision: str) -> int | None:
    """A line's timestamp in epoch ns (its last space-separated token), None if it has none."""
    if not line.strip() or line.startswith("#"):
        return None
    last = line.rsplit(" ", 1)[-1]
    try:
        return int(last) * _NS_PER_UNIT[precision]
    except (ValueError, KeyError):
        return None


def _v2_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)
