"""Reading aggregates back from InfluxDB with InfluxQL, for compliance reports.

api "v1": `GET /query?db=<database>&rp=<rp>` with the configured username and password (basic auth,
the writer's `auth_headers`).
api "v2": the same InfluxQL through InfluxDB 2.x's 1.x-compatible `/query` endpoint, with
`Authorization: Token ...` and db = the bucket (2.4+ maps every bucket to a virtual database of its
name). One query language for both servers keeps the report's arithmetic in one place.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp

from stationmon.adapters.influx import auth_headers
from stationmon.config import InfluxConfig
from stationmon.domain.report import STATUSES, LoopAggregates
from stationmon.errors import StorageError

__all__ = ["InfluxQuery"]


def _rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class InfluxQuery:
    """InfluxQL queries against the configured InfluxDB; aiohttp errors become StorageError."""

    def __init__(self, config: InfluxConfig) -> None:
        if config.url is None:
            raise StorageError("no InfluxDB configured ([influxdb] url)")
        self.config = config
        self.url = config.url.rstrip("/") + "/query"
        self.db = config.database if config.api == "v1" else config.bucket

    async def query(self, session: aiohttp.ClientSession, q: str) -> list[dict[str, Any]]:
        """Rows of every series (tags merged into each row)."""
        params = {"db": self.db, "q": q, "epoch": "ms"}
        if self.config.retention_policy:
            params["rp"] = self.config.retention_policy
        try:
            async with session.get(self.url, params=params, headers=auth_headers(self.config)) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise StorageError(f"{self.url}: HTTP {resp.status}: {text[:300]}")
                doc = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StorageError(f"{self.url}: {exc or type(exc).__name__}") from exc
        rows: list[dict[str, Any]] = []
        for result in doc.get("results", []):
            if "error" in result:
                raise StorageError(f"{self.url}: InfluxQL error: {result['error']}")
            for series in result.get("series", []):
                tags = series.get("tags", {})
                for values in series.get("values", []):
                    row = dict(zip(series["columns"], values, strict=True))
                    row.update(tags)
                    rows.append(row)
        return rows

    async def loop_aggregates(self, start: float, stop: float) -> dict[tuple[str, str], LoopAggregates]:
        """Everything a compliance report needs, per (station, loop), over [start, stop)."""
        where = f"time >= '{_rfc3339(start)}' AND time < '{_rfc3339(stop)}'"
        out: dict[tuple[str, str], LoopAggregates] = {}

        def agg(row: dict[str, Any]) -> LoopAggregates:
            return out.setdefault((str(row.get("station", "")), str(row.get("loop", ""))), LoopAggregates())

        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s * 6)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for status in STATUSES:
                for row in await self.query(
                    session,
                    f'SELECT count("status") AS n FROM "loop_status" WHERE "status" = \'{status}\' AND {where} '
                    'GROUP BY "station", "loop"',
                ):
                    agg(row).samples[status] = int(row["n"])
            for row in await self.query(
                session,
                'SELECT mean("estimated_indoor_temp") AS est_mean, min("estimated_indoor_temp") AS est_min, '
                'mean("required_supply_temp") AS req, mean("delta_t") AS dt FROM "loop_status" '
                f'WHERE {where} GROUP BY "station", "loop"',
            ):
                a = agg(row)
                a.estimated_indoor_mean, a.estimated_indoor_min = row["est_mean"], row["est_min"]
                a.required_supply_mean, a.delta_t_mean = row["req"], row["dt"]
            for row in await self.query(
                session,
                'SELECT mean("supply_temp") AS s, mean("return_temp") AS r, mean("indoor_temp") AS i, '
                f'min("indoor_temp") AS imin FROM "telemetry" WHERE {where} GROUP BY "station", "loop"',
            ):
                if not row.get("loop"):
                    continue
                a = agg(row)
                a.supply_mean, a.return_mean = row["s"], row["r"]
                a.indoor_sensor_mean, a.indoor_sensor_min = row["i"], row["imin"]
            for row in await self.query(
                session,
                'SELECT count("message") AS n FROM "alert_events" WHERE "state" = \'firing\' AND '
                f'{where} GROUP BY "station", "loop", "rule"',
            ):
                agg(row).alerts[str(row["rule"])] = int(row["n"])
        return out
