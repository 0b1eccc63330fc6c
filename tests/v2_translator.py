"""TEST-ONLY: a tiny InfluxDB 2.x write endpoint in front of a real InfluxDB 1.x server.

There is no 2.x `influxd` on this machine, so the v2 write path (influxdb-client's async API) is tested
through this translator: `POST /api/v2/write?org=&bucket=&precision=` with `Authorization: Token <t>`
(gzip or not) becomes `POST /write?db=<bucket>&precision=` on the 1.x server, and 1.x error bodies
(`{"error": ...}`) become 2.x ones (`{"code": ..., "message": ...}`). It also records what it saw and can
answer with injected failures (status + Retry-After), so tests can check retries. Never use it in
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
    url: str = ""
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = None) -> None:
        """Answer the next `count` writes with `status` (and a Retry-After header) instead of writing."""
        self.failures.extend([(status, retry_after)] * count)

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_post("/api/v2/write", self._write)
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
        assert self._session is not None
        async with self._session.post(
            f"{self.upstream_url}/write", params={"db": bucket, "precision": precision}, data=body
        ) as resp:
            if resp.status == 204:
                return web.Response(status=204)
            text = await resp.text()
        try:
            message = json.loads(text).get("error", text)
        except ValueError:
            message = text
        code = "invalid" if resp.status == 400 else "internal error"
        return _v2_error(resp.status, code, message)


def _v2_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)
