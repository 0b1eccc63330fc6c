"""Reading the compliance report's sums from InfluxDB with InfluxQL, and keeping its rollups.

api "v1": `GET /query?db=<database>&rp=<rp>` with the configured username and password (basic auth).
api "v2": the same InfluxQL through InfluxDB 2.x's 1.x-compatible `/query` endpoint, with
`Authorization: Token ...` and db = the bucket (a DBRP mapping: 2.4+ maps every bucket to a virtual database
of its name; older servers need `influx v1 dbrp create`). Rollups are written back with `/write` (v1) or
`/api/v2/write` (v2): 2.x's /query refuses `SELECT ... INTO`, so the sums travel through here, a few
thousand rows an hour of data, never raw points.

Every sum is made in InfluxDB (`GROUP BY time(1h), station, loop`, subqueries for the sensor shares); what
comes back are per-loop (or per-loop-hour) sums. See `domain.report.sums` for what they mean.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

import aiohttp

from stationmon.adapters.influx import auth_headers
from stationmon.config import InfluxConfig
from stationmon.domain.lineproto import encode_line
from stationmon.domain.report import LOOP_MEASURES, LoopSums, Measure, OutdoorSums
from stationmon.errors import StorageError

__all__ = ["InfluxQuery", "loop_statements", "outdoor_statements", "rfc3339"]

Rows = list[dict[str, Any]]

_JUDGED = "(\"status\" = 'ok' OR \"status\" = 'noncompliant')"
_INSPECTION = '"inspection_hour" = true'
_SENSORS = '"indoor_sensors" > 0'
# measure -> (condition, None for a status/flag or the sensor share summed over the points)
_LOOP_MEASURE_SQL: dict[str, tuple[str, str | None]] = {
    "ok": ("\"status\" = 'ok'", None),
    "noncompliant": ("\"status\" = 'noncompliant'", None),
    "beyond_design": ('"beyond_design" = true', None),
    "judged": (f"{_INSPECTION} AND {_JUDGED} AND (\"verdict\" = 'sensors' OR \"verdict\" = 'estimate')", None),
    "good_estimate": (
        f"{_INSPECTION} AND {_JUDGED} AND \"verdict\" = 'estimate' AND \"estimated_indoor_temp\" >= {{target}}",
        None,
    ),
    "good_sensors": (
        f"{_INSPECTION} AND {_JUDGED} AND \"verdict\" = 'sensors' AND {_SENSORS}",
        '("indoor_sensors" - "indoor_below_target") / "indoor_sensors"',
    ),
    "below_target": (f"{_INSPECTION} AND {_SENSORS}", '"indoor_below_target" / "indoor_sensors"'),
    "below_refund": (f"{_INSPECTION} AND {_SENSORS}", '"indoor_below_refund" / "indoor_sensors"'),
}  # fmt: skip
assert tuple(_LOOP_MEASURE_SQL) == LOOP_MEASURES


def rfc3339(ts: float) -> str:
    """`ts` as an InfluxQL time literal (UTC, RFC 3339)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _when(start: float, stop: float) -> str:
    return f"time >= '{rfc3339(start)}' AND time < '{rfc3339(stop)}'"


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def loop_statements(start: float, stop: float, target: float, hourly: bool) -> list[tuple[str, str]]:
    """(measure, InfluxQL) over raw `loop_status` in [start, stop), per loop (or per loop-hour if `hourly`)."""
    w = _when(start, stop)
    group = ('time(1h), "station", "loop" fill(none)') if hourly else '"station", "loop"'
    out = []
    for name, (cond, share) in _LOOP_MEASURE_SQL.items():
        cond = cond.replace("{target}", repr(float(target)))
        if share is None:
            q = (
                'SELECT sum("interval_s") AS s, count("status") AS n, count("interval_s") AS ni FROM "loop_status" '
                f"WHERE {cond} AND {w} GROUP BY {group}"
            )
        else:
            q = (
                "SELECT sum(x) AS c, sum(ix) AS s, count(x) AS n, count(ix) AS ni FROM "
                f'(SELECT {share} AS x, "interval_s" * {share} AS ix FROM "loop_status" WHERE {cond} AND {w} '
                f'GROUP BY "station", "loop") WHERE {w} GROUP BY {group}'
            )
        out.append((name, q))
    return out


def outdoor_statements(start: float, stop: float, target: float, hourly: bool) -> list[str]:
    """InfluxQL for the hourly outdoor means per station in [start, stop): their sum and count, and the
    degree-hours below `target`, per station (or per station-hour if `hourly`)."""
    w = _when(start, stop)
    group = 'time(1h), "station" fill(none)' if hourly else '"station"'
    means = f'SELECT mean("outdoor_temp") AS m FROM "telemetry" WHERE {w} GROUP BY time(1h), "station"'
    t = repr(float(target))
    return [
        f"SELECT sum(m) AS t, count(m) AS h FROM ({means}) WHERE {w} GROUP BY {group}",
        f"SELECT sum(d) AS dh FROM (SELECT {t} - m AS d FROM ({means}) WHERE m < {t} AND {w}) "
        f"WHERE {w} GROUP BY {group}",
    ]


def _rows(result: dict[str, Any]) -> Rows:
    rows: Rows = []
    for series in result.get("series", []):
        tags = series.get("tags", {})
        for values in series.get("values", []):
            row = dict(zip(series["columns"], values, strict=True))
            row.update(tags)
            rows.append(row)
    return rows


class InfluxQuery:
    """InfluxQL against the configured InfluxDB, and line protocol back to it; aiohttp errors become
    StorageError. `influx_s` adds up the time at least one request was waiting for the server."""

    def __init__(self, config: InfluxConfig, session: aiohttp.ClientSession, rollup_rp: str = "") -> None:
        if config.url is None:
            raise StorageError("no InfluxDB configured ([influxdb] url)")
        self.config = config
        self.session = session
        base = config.url.rstrip("/")
        self.url = base + "/query"
        self.db = config.database if config.api == "v1" else config.bucket
        self.headers = auth_headers(config)
        if config.api == "v1":
            self.write_url = base + "/write"
            self.write_params = {"db": config.database, "precision": "ms"}
            if config.retention_policy:
                self.write_params["rp"] = config.retention_policy
        else:
            self.write_url = base + "/api/v2/write"
            self.write_params = {"org": config.org, "bucket": config.bucket, "precision": "ms"}
        self.influx_s = 0.0
        self._pending = 0
        self._waiting_since = 0.0
        # rollups in their own retention policy (v1) or bucket (v2): one with long shards keeps a season in one
        self.rollup_rp = rollup_rp
        self.rollup_db = rollup_rp if rollup_rp and config.api == "v2" else self.db

    def rollup(self, measurement: str) -> str:
        """`measurement` (a rollup) as an InfluxQL FROM target."""
        if self.rollup_rp and self.config.api == "v1":
            return f'"{self.rollup_rp}"."{measurement}"'
        return f'"{measurement}"'

    async def _send(
        self, method: str, url: str, params: dict[str, str], data: str | dict[str, str] | None = None
    ) -> str:
        if self._pending == 0:
            self._waiting_since = time.perf_counter()
        self._pending += 1
        try:
            async with self.session.request(method, url, params=params, data=data, headers=self.headers) as resp:
                text = await resp.text()
                if resp.status not in (200, 204):
                    raise StorageError(f"{url}: HTTP {resp.status}: {text[:300]}")
                return text
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StorageError(f"{url}: {exc or type(exc).__name__}") from exc
        finally:
            self._pending -= 1
            if self._pending == 0:
                self.influx_s += time.perf_counter() - self._waiting_since

    async def statements(self, statements: Sequence[str], db: str | None = None) -> list[Rows]:
        """Run InfluxQL statements in one request: the rows of each (tags merged into every row)."""
        if not statements:
            return []
        params = {"db": db or self.db, "epoch": "ms"}
        if self.config.retention_policy:
            params["rp"] = self.config.retention_policy
        # the statements go in a form body: a hundred of them would pass a URL's length limit
        text = await self._send("POST", self.url, params, {"q": ";\n".join(statements)})
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise StorageError(f"{self.url}: not JSON: {text[:200]}") from exc
        results = {r.get("statement_id", i): r for i, r in enumerate(doc.get("results", []))}
        out = []
        for i in range(len(statements)):
            result = results.get(i, {})
            if "error" in result:
                raise StorageError(f"{self.url}: InfluxQL error: {result['error']}")
            out.append(_rows(result))
        return out

    async def write(self, lines: Iterable[str], batch: int = 20_000) -> None:
        """Write rollup lines (ms precision) in batches, into the rollup retention policy if there is one."""
        params = dict(self.write_params)
        if self.rollup_rp and self.config.api == "v1":
            params["rp"] = self.rollup_rp
        elif self.rollup_rp:
            params["bucket"] = self.rollup_rp
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= batch:
                await self._send("POST", self.write_url, params, "\n".join(chunk))
                chunk = []
        if chunk:
            await self._send("POST", self.write_url, params, "\n".join(chunk))

    async def loop_sums(
        self, start: float, stop: float, target: float, hourly: bool = False
    ) -> dict[tuple[str, str, float], LoopSums]:
        """Sums per (station, loop, hour start or 0) over raw `loop_status` in [start, stop)."""
        named = loop_statements(start, stop, target, hourly)
        out: dict[tuple[str, str, float], LoopSums] = {}
        for (name, _), rows in zip(named, await self.statements([q for _, q in named]), strict=True):
            for row in rows:
                key = (
                    str(row.get("station", "")),
                    str(row.get("loop", "")),
                    float(row["time"]) / 1000 if hourly else 0.0,
                )
                sums = out.setdefault(key, LoopSums())
                n = float(row.get("n") or 0)
                c = row.get("c")
                sums.measures[name].add(
                    Measure(float(row.get("s") or 0), n if c is None else float(c), n, float(row.get("ni") or 0))
                )
        return out

    async def outdoor_sums(
        self, start: float, stop: float, target: float, hourly: bool = False
    ) -> dict[tuple[str, float], OutdoorSums]:
        """Outdoor sums per (station, hour start or 0) from raw `telemetry` in [start, stop)."""
        means, degrees = await self.statements(outdoor_statements(start, stop, target, hourly))
        out: dict[tuple[str, float], OutdoorSums] = {}
        for rows, fields in ((means, ("t", "h")), (degrees, ("dh",))):
            for row in rows:
                key = (str(row.get("station", "")), float(row["time"]) / 1000 if hourly else 0.0)
                sums = out.setdefault(key, OutdoorSums())
                for f in fields:
                    setattr(sums, f, getattr(sums, f) + float(row.get(f) or 0))
        return out

    async def rollup_loop_sums(self, measurement: str, start: float, stop: float, target: float) -> Rows:
        """Rows of summed rollup fields per station and loop over [start, stop)."""
        fields = ", ".join(f'sum("{m}") AS "{m}"' for m in LOOP_MEASURES)
        q = (
            f"SELECT {fields} FROM {self.rollup(measurement)} "
            f'WHERE "target" = {_quote(f"{target:g}")} AND {_when(start, stop)} GROUP BY "station", "loop"'
        )
        return (await self.statements([q], self.rollup_db))[0]

    async def rollup_outdoor_sums(self, measurement: str, start: float, stop: float, target: float) -> Rows:
        """Rows of summed outdoor rollup fields per station over [start, stop)."""
        q = (
            f'SELECT sum("t") AS t, sum("h") AS h, sum("dh") AS dh FROM {self.rollup(measurement)} '
            f'WHERE "target" = {_quote(f"{target:g}")} AND {_when(start, stop)} GROUP BY "station"'
        )
        return (await self.statements([q], self.rollup_db))[0]

    async def marks(self, level: str, start: float, stop: float, target: float) -> set[float]:
        """Bucket starts of `level` ("1h" or "1d") whose rollup is stored, in [start, stop)."""
        q = (
            f'SELECT "rows" FROM {self.rollup("report_rollup_marks")} WHERE "level" = {_quote(level)} AND '
            f'"target" = {_quote(f"{target:g}")} AND {_when(start, stop)}'
        )
        return {float(r["time"]) / 1000 for r in (await self.statements([q], self.rollup_db))[0]}

    async def alert_events(self, start: float, stop: float) -> Rows:
        """Every `alert_events` point in [start, stop) (alerts are few: thousands a season, not millions)."""
        q = f'SELECT * FROM "alert_events" WHERE {_when(start, stop)}'
        return (await self.statements([q]))[0]

    async def open_before(self, start: float, rule: str) -> Rows:
        """The last state of `rule` per station and loop before `start`."""
        q = (
            f'SELECT last("state") AS state FROM "alert_events" WHERE "rule" = {_quote(rule)} '
            f'AND time < \'{rfc3339(start)}\' GROUP BY "station", "loop"'
        )
        return (await self.statements([q]))[0]

    async def noncompliant_within(self, spans: Sequence[tuple[str, float, float]]) -> list[Rows]:
        """Per (station, start, stop): noncompliant sums per loop of that station in that span."""
        statements = [
            'SELECT sum("interval_s") AS s, count("status") AS n, count("interval_s") AS ni FROM "loop_status" '
            f'WHERE "station" = {_quote(st)} AND "status" = \'noncompliant\' AND {_when(a, b)} GROUP BY "loop"'
            for st, a, b in spans
        ]
        out: list[Rows] = []
        for i in range(0, len(statements), 100):
            out.extend(await self.statements(statements[i : i + 100]))
        return out


def rollup_lines(measurement: str, tags: dict[str, str], fields: dict[str, float], ts: float) -> str:
    """One rollup point."""
    return encode_line(measurement, tags, fields, round(ts * 1000))
