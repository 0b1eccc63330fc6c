"""The HTTP server (CONTRACT section 7): status page, health, metrics, JSON API. aiohttp.

    GET  /                       the status page (stationmon/web/static/index.html, no CDN)
    GET  /static/{file}          its script and style
    GET  /healthz                200 and JSON per component while running
    GET  /metrics                Prometheus text (the service's registry)
    GET  /api/v1/stations        stations, loops, latest values with their times, status
    GET  /api/v1/alerts          active alerts
    GET  /api/v1/history         ?station=ID[&loop=ID][&quantity=Q][&since=UNIX]: the in-memory window
    POST /api/v1/alerts/{id}/ack acknowledge (added by the alert delivery: see `_routes`)

`HttpServer(service)` is an async context manager: it listens on `config.http.host:port` on enter and
stops on exit. Every handler's exception becomes a JSON 500 with the error logged; aiohttp's own
exceptions never leave this module (a failure to listen is raised as StationmonError).
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from stationmon.errors import StationmonError

__all__ = ["HttpServer", "alert_to_json", "check_bearer"]

log = logging.getLogger("stationmon.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATIC_DIR = Path(str(resources.files("stationmon") / "web" / "static"))
_STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_STATUS_RANK = {"offline": 5, "noncompliant": 4, "sensor_fault": 3, "unknown": 2, "ok": 1}
_LOOP_STATUS_FIELDS = (
    "required_supply_temp",
    "required_return_temp",
    "estimated_indoor_temp",
    "delta_t",
    "expected_delta_t",
    "outdoor_temp",
    "compliant",
    "status",
    "reasons",
)


def _num(value: Any) -> Any:
    """JSON cannot carry NaN or infinities: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _num(value.item())
    return _num(value)


def alert_to_json(alert: Any) -> dict[str, Any]:
    """An active alert (an AlertEvent or any dataclass) as a JSON object."""
    doc = _jsonable(alert)
    if not isinstance(doc, dict):
        doc = {"alert": doc}
    if "alert_id" in doc and "id" not in doc:
        doc["id"] = doc["alert_id"]
    return doc


def check_bearer(request: web.Request, token: str | None) -> bool:
    """True if the request carries `Authorization: Bearer <token>` (compared in constant time).

    The write endpoints (POST /api/v1/alerts/{id}/ack) answer 401 when this is False; with no token
    configured every write is refused.
    """
    if not token:
        return False
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _default(value: Any) -> Any:
    converted = _jsonable(value)
    if converted is value:
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")
    return converted


def json_text(doc: Any) -> str:
    """`doc` as compact JSON (UTF-8, NaN and infinities as null, dataclasses as objects)."""
    try:
        # the documents are built from plain values already: the fast path skips the deep walk
        return json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_default)
    except ValueError:  # a NaN or infinity somewhere: walk it and write them as null
        return _dumps(_jsonable(doc))


def json_response(doc: Any, status: int = 200) -> web.Response:
    """A JSON response (UTF-8, NaN as null)."""
    return web.Response(text=json_text(doc), status=status, content_type="application/json")


class HttpServer:
    """The service's HTTP endpoints; `async with HttpServer(service):` serves them."""

    STATIONS_CACHE_S = 1.0

    def __init__(self, service: Any, *, host: str | None = None, port: int | None = None) -> None:
        self.service = service
        cfg = service.config.http
        self.host = cfg.host if host is None else host
        self.port = cfg.port if port is None else port
        self.app = web.Application(middlewares=[self._errors])
        self._runner: web.AppRunner | None = None
        self._stations_cache: tuple[float, str] | None = None
        metrics = service.metrics
        self._requests = metrics.counter(
            "stationmon_http_requests_total", "HTTP requests by route and status code", ("route", "code")
        )
        self._request_seconds = metrics.histogram(
            "stationmon_http_request_duration_seconds", "HTTP request handling time", ("route",)
        )
        self._register_scrape_metrics()
        self._routes()

    # ------------------------------------------------------------------------------------------------
    # Routes: other components add theirs with `self.app.router.add_*` before the server starts.

    def _routes(self) -> None:
        r = self.app.router
        r.add_get("/", self.index)
        r.add_get("/static/{name}", self.static)
        r.add_get("/healthz", self.healthz)
        r.add_get("/metrics", self.metrics)
        r.add_get("/api/v1/stations", self.stations)
        r.add_get("/api/v1/alerts", self.alerts)
        r.add_get("/api/v1/history", self.history)
        r.add_post("/api/v1/alerts/{id}/ack", self.acknowledge)

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Add an endpoint (before the server starts); its exceptions get the same JSON 500 handling."""
        self.app.router.add_route(method, path, handler)

    async def acknowledge(self, request: web.Request) -> web.StreamResponse:
        """Acknowledge a firing alert: needs the Bearer token; the JSON body may carry "by" and "comment".

        401 without or with a wrong token, 404 for no such firing alert. The "acknowledged" event goes to
        every listener (notifiers, alert_events): repeats stop, escalation still goes out. Acknowledging
        an acknowledged alert answers 200 with the acknowledgement as it was, and changes nothing.
        """
        token = self.service.config.http.token
        if not check_bearer(request, token.get() if token is not None else None):
            response = json_response({"error": "missing or wrong bearer token"}, status=401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="stationmon"'
            return response
        doc: Any = {}
        if request.body_exists:
            try:
                doc = json.loads(await request.read() or b"{}")
            except (ValueError, UnicodeDecodeError):
                raise web.HTTPBadRequest(reason="the body must be JSON") from None
        if not isinstance(doc, dict):
            raise web.HTTPBadRequest(reason='the body must be a JSON object such as {"by": "...", "comment": "..."}')
        by, comment = doc.get("by", "api"), doc.get("comment")
        if not isinstance(by, str) or not by.strip() or len(by) > 200:
            raise web.HTTPBadRequest(reason='"by" must be a non-empty string of at most 200 characters')
        if comment is not None and (not isinstance(comment, str) or len(comment) > 2000):
            raise web.HTTPBadRequest(reason='"comment" must be a string of at most 2000 characters')
        alert_id = request.match_info["id"]
        evaluator = getattr(self.service, "evaluator", None)
        # The evaluator's acknowledge records alert_events, saves its state and emits the event.
        event = evaluator.acknowledge(alert_id, by.strip(), comment) if evaluator is not None else None
        if event is None:
            raise web.HTTPNotFound(reason=f"no firing alert {alert_id!r}")
        return json_response({"acknowledged": alert_to_json(event)})

    # ------------------------------------------------------------------------------------------------

    async def __aenter__(self) -> HttpServer:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise StationmonError(f"http.listen: cannot listen on {self.host}:{self.port}: {exc}") from exc
        self._runner = runner
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])  # the real port when 0 was asked for
        log.info("HTTP on http://%s:%d/", self.host, self.port)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    # ------------------------------------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "other"
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = json_response({"error": exc.reason}, status=exc.status)
        except Exception:  # a bug in a handler: answer, log, keep serving
            log.exception("HTTP %s %s failed", request.method, request.path)
            response = json_response({"error": "internal error"}, status=500)
        self._requests.labels(route, str(response.status)).inc()
        self._request_seconds.labels(route).observe(time.perf_counter() - started)
        return response

    async def index(self, request: web.Request) -> web.StreamResponse:
        """The status page."""
        return self._file("index.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        """The page's script and style, shipped in the package."""
        return self._file(request.match_info["name"])

    def _file(self, name: str) -> web.StreamResponse:
        path = (STATIC_DIR / name).resolve()
        if path.parent != STATIC_DIR.resolve() or not path.is_file():
            raise web.HTTPNotFound(reason=f"no such file: {name}")
        ctype = _STATIC_TYPES.get(path.suffix, "application/octet-stream")
        return web.Response(
            body=path.read_bytes(),
            content_type=ctype,
            charset="utf-8" if ctype.startswith("text") else None,
            headers={"Cache-Control": "no-cache"},
        )

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        """200 and the state of every component while running."""
        svc = self.service
        now = svc.clock()
        components: dict[str, Any] = {"http": "ok"}  # answering this request is its health
        # components that can describe themselves (the writer, collectors, the evaluator) do
        named: list[tuple[str, Any]] = [("storage", getattr(svc, "writer", None))]
        named += [(f"collector:{getattr(c, 'name', i)}", c) for i, c in enumerate(getattr(svc, "collectors", []))]
        named.append(("evaluator", getattr(svc, "evaluator", None)))
        for name, component in named:
            status = getattr(component, "status", None)
            if callable(status):
                try:
                    components[name] = status()
                except Exception as exc:  # a status() bug must not take /healthz down
                    components[name] = {"state": "unknown", "error": str(exc)}
        doc = {
            "status": "ok",
            "uptime_s": round(now - svc.started_at, 3),
            "components": components,
            "stations": {
                "total": len(svc.config.stations),
                "online": sum(1 for st in svc.config.stations if station_online(svc, st, now)),
            },
        }
        return json_response(doc)

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        """Prometheus text exposition format."""
        return web.Response(
            text=self.service.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    async def stations(self, request: web.Request) -> web.StreamResponse:
        """Every station and loop: latest values with times, loop status, connection state.

        Built at most once per `STATIONS_CACHE_S`: every open status page asks every few seconds, and a
        district of thousands of stations costs tenths of a second to describe (bench/bench_http.py).
        """
        now = time.monotonic()
        cached = self._stations_cache
        if cached is None or now - cached[0] >= self.STATIONS_CACHE_S:
            cached = self._stations_cache = (now, json_text(stations_document(self.service)))
        return web.Response(text=cached[1], content_type="application/json")

    async def alerts(self, request: web.Request) -> web.StreamResponse:
        """The active alerts, newest first."""
        alerts = [alert_to_json(a) for a in _active_alerts(self.service)]
        alerts.sort(key=lambda a: -(a.get("since") or 0.0))
        return json_response({"generated_at": self.service.clock(), "alerts": alerts})

    async def history(self, request: web.Request) -> web.StreamResponse:
        """The in-memory history of one station's series (the status page's charts)."""
        q = request.query
        station = q.get("station")
        if not station:
            raise web.HTTPBadRequest(reason="station= is required")
        try:
            self.service.config.station(station)
        except KeyError:
            raise web.HTTPNotFound(reason=f"unknown station {station!r}") from None
        loop = q.get("loop")
        quantity = q.get("quantity")
        try:
            since = float(q.get("since", "0"))
        except ValueError:
            raise web.HTTPBadRequest(reason="since= must be a Unix time") from None
        series = []
        for (sid, lid, sensor, qty), points in list(self.service.latest.history.items()):
            if sid != station or (loop is not None and lid != loop) or (quantity and qty != quantity):
                continue
            series.append(
                {
                    "loop": lid,
                    "sensor": sensor,
                    "quantity": qty,
                    "points": [[round(ts, 3), _num(v)] for ts, v in points if ts >= since],
                }
            )
        series.sort(key=lambda s: (s["loop"] or "", s["sensor"] or "", s["quantity"]))
        return json_response({"station": station, "window_s": self.service.latest.history_window_s, "series": series})

    # ------------------------------------------------------------------------------------------------

    def _register_scrape_metrics(self) -> None:
        svc = self.service
        metrics = svc.metrics
        if metrics.get("stationmon_station_online") is None:
            metrics.gauge(
                "stationmon_station_online",
                "1 while the station is online: a recent reading and, with Modbus, its poller answering",
                ("station",),
            ).set_function(lambda: _online_by_station(svc))
        if metrics.get("stationmon_reading_age_seconds") is None:
            metrics.gauge(
                "stationmon_reading_age_seconds", "Seconds since the station's newest reading", ("station",)
            ).set_function(lambda: {(sid,): max(0.0, svc.clock() - ts) for sid, ts in svc.latest.last_seen.items()})
        if metrics.get("stationmon_alerts_active") is None:
            metrics.gauge(
                "stationmon_alerts_active", "Active alerts by rule and severity", ("rule", "severity")
            ).set_function(lambda: _count_alerts(_active_alerts(svc)))


def station_online(service: Any, station: Any, now: float) -> bool:
    """Whether a station (a Station) is online at `now`: what /healthz, the metric and the API show.

    Online: its newest reading, from any collector, is at most `rules.offline_after` old, and, for a
    station polled over Modbus, the poller reports it answering (a failing poller makes it offline even
    while MQTT still brings its values). An MQTT-only station is online on its readings alone.
    """
    last_seen = service.latest.last_seen.get(station.id)
    if last_seen is None or now - last_seen > service.config.rules.offline_after_s:
        return False
    if station.modbus is None or not station.modbus_points:  # no poller (as Service builds them)
        return True
    state = service.station_states.get(station.id)
    return state is not None and bool(state.online)


def _online_by_station(service: Any) -> dict[tuple[str, ...], float]:
    now = service.clock()
    return {(st.id,): 1.0 if station_online(service, st, now) else 0.0 for st in service.config.stations}


def _count_alerts(alerts: Iterable[Any]) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for a in alerts:
        key = (str(getattr(a, "rule", "")), str(getattr(a, "severity", "")))
        out[key] = out.get(key, 0.0) + 1.0
    return out


def _active_alerts(service: Any) -> list[Any]:
    evaluator = getattr(service, "evaluator", None)
    alerts = getattr(evaluator, "alerts", None)
    if alerts is None or not hasattr(alerts, "active_alerts"):
        return []
    return list(alerts.active_alerts())


def _loop_status(service: Any, station: str, loop: str) -> dict[str, Any]:
    """The evaluator's judgement of one loop, as a dict of the fields it has."""
    evaluator = getattr(service, "evaluator", None)
    table = getattr(evaluator, "loop_status", None)
    if table is None:
        return {}
    entry = table.get((station, loop)) if hasattr(table, "get") else None
    if entry is None and hasattr(table, "get"):
        entry = (table.get(station) or {}).get(loop) if isinstance(table.get(station), dict) else None
    if entry is None:
        return {}
    if isinstance(entry, dict):
        return {k: _jsonable(v) for k, v in entry.items()}
    return {k: _jsonable(getattr(entry, k)) for k in _LOOP_STATUS_FIELDS if hasattr(entry, k)}


def _sample(sample: Any, now: float) -> dict[str, Any]:
    return {
        "value": _num(sample.value),
        "ts": sample.ts,
        "age_s": round(max(0.0, now - sample.ts), 3),
        "fault": sample.fault,
    }


def _fallback_status(service: Any, station: Any, loop: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Required temperatures and the indoor estimate from the heating model, when no evaluator judged."""
    from stationmon.domain import heating

    site = service.config.site
    outdoor = service.latest.get(station.id, "outdoor_temp")
    if outdoor is None or outdoor.fault is not None:
        return {"status": "unknown"}
    req_s, req_r = heating.required_temps(
        outdoor.value,
        loop.design_supply,
        loop.design_return,
        loop.exponent,
        indoor_target=site.indoor_target,
        outdoor_design=site.outdoor_design,
        design_indoor=site.design_indoor,
    )
    doc: dict[str, Any] = {
        "status": "unknown",
        "required_supply_temp": _num(float(req_s)),
        "required_return_temp": _num(float(req_r)),
    }
    s, r = values.get("supply_temp"), values.get("return_temp")
    if s and r and s["value"] is not None and r["value"] is not None:
        doc["delta_t"] = s["value"] - r["value"]
        est = heating.estimate_indoor_temp(
            s["value"],
            r["value"],
            outdoor.value,
            loop.design_supply,
            loop.design_return,
            loop.exponent,
            outdoor_design=site.outdoor_design,
            design_indoor=site.design_indoor,
        )
        doc["estimated_indoor_temp"] = _num(float(est))
    return doc


def stations_document(service: Any) -> dict[str, Any]:
    """The /api/v1/stations body: every station, its loops, latest values, status and alerts."""
    now = service.clock()
    cfg = service.config
    alerts_by_place: dict[tuple[str, str | None], int] = {}
    for a in _active_alerts(service):
        key = (str(getattr(a, "station", "")), getattr(a, "loop", None))
        alerts_by_place[key] = alerts_by_place.get(key, 0) + 1
    # one pass over every series, grouped by station (series_of per station would be O(stations²))
    by_station: dict[str, list[tuple[Any, Any]]] = {}
    for key, sample in list(service.latest.latest.items()):
        by_station.setdefault(key[0], []).append((key, sample))
    stations = []
    for st in cfg.stations:
        series = by_station.get(st.id, ())
        station_values: dict[str, Any] = {}
        loop_values: dict[str, dict[str, Any]] = {lp.id: {} for lp in st.loops}
        indoor: dict[str, dict[str, Any]] = {lp.id: {} for lp in st.loops}
        for (_, lid, sensor, qty), sample in series:
            doc = _sample(sample, now)
            if lid is None:
                station_values[qty] = doc
            elif sensor is not None:
                indoor.setdefault(lid, {})[sensor] = doc
            else:
                loop_values.setdefault(lid, {})[qty] = doc
        state = service.station_states.get(st.id)
        last_seen = service.latest.last_seen.get(st.id)
        online = station_online(service, st, now)
        # shown as offline once it was heard from or its connection has failed; before that, a station
        # not heard from yet keeps the evaluator's judgement (unknown, then offline after offline_after)
        heard_of = last_seen is not None or (state is not None and state.consecutive_failures > 0)
        station_offline = not online and heard_of
        loops = []
        for lp in st.loops:
            status = _loop_status(service, st.id, lp.id) or _fallback_status(service, st, lp, loop_values[lp.id])
            if station_offline:
                status["status"] = "offline"
            loops.append(
                {
                    "id": lp.id,
                    "name": lp.name,
                    "emitter": lp.emitter,
                    "design_supply": lp.design_supply,
                    "design_return": lp.design_return,
                    "min_supply": lp.min_supply,
                    "min_return": lp.min_return,
                    **{k: None for k in _LOOP_STATUS_FIELDS if k not in ("status", "reasons")},
                    **status,
                    "values": loop_values.get(lp.id, {}),
                    "indoor_sensors": indoor.get(lp.id, {}),
                    "active_alerts": alerts_by_place.get((st.id, lp.id), 0),
                }
            )
        worst = max(
            (lp.get("status") or "unknown" for lp in loops), key=lambda s: _STATUS_RANK.get(s, 0), default="unknown"
        )
        if station_offline:
            worst = "offline"
        stations.append(
            {
                "id": st.id,
                "name": st.name,
                "district": st.district,
                "status": worst,
                "online": online,
                "last_seen": last_seen,
                "age_s": None if last_seen is None else round(max(0.0, now - last_seen), 3),
                "values": station_values,
                "connection": _jsonable(state) if state is not None else None,
                "active_alerts": sum(n for (sid, _), n in alerts_by_place.items() if sid == st.id),
                "loops": loops,
            }
        )
    return {
        "generated_at": now,
        "site": {
            "name": cfg.site.name,
            "indoor_target": cfg.site.indoor_target,
            "outdoor_design": cfg.site.outdoor_design,
            "timezone": cfg.site.timezone,
        },
        "margin": cfg.rules.margin,
        "stations": stations,
    }


__all__ += ["json_response", "json_text", "station_online", "stations_document"]
