"""The HTTP server (CONTRACT section 7 lists the endpoints): status page, health, metrics, JSON API. aiohttp.

It reads the service through `StatusSource` only and judges nothing itself: loop status comes from the
evaluator, a station's online state from the service. Every handler's exception becomes a JSON 500 with
the error logged; aiohttp's own exceptions never leave this module (a failure to listen is raised as
StationmonError). The documents are built in `evaluator.status_view` (whole) and `evaluator.status_pages`
(summary, filtered pages: once per evaluation); every JSON GET carries an ETag and answers a matching
If-None-Match with 304.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from stationmon.domain.alerts import AlertSnapshot
from stationmon.domain.latest import LatestValues
from stationmon.domain.model import AlertEvent
from stationmon.errors import StationmonError
from stationmon.evaluator.status_pages import Body, StationQuery, StatusPages
from stationmon.evaluator.status_view import SeriesIndex, StatusReader, json_text, jsonable, num, stations_document
from stationmon.logutil import printable, quieten_server_log
from stationmon.metrics import Metrics

__all__ = [
    "HttpServer",
    "StatusSource",
    "alert_to_json",
    "check_bearer",
    "json_response",
    "json_text",
    "read_json_body",
    "stations_document",
]

log = logging.getLogger("stationmon.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATIC_DIR = Path(str(resources.files("stationmon") / "web" / "static"))
_STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# The files the page may load, by name: a lookup never touches the file system with a name from the URL
# (a NUL, a 300-character name or a traversal is simply not in the table: 404).
_STATIC_FILES = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in _STATIC_TYPES}
_ACK_MAX_BYTES = 16384
MAX_HISTORY_STATIONS = 200
_JSON_MAX_DEPTH = 16


class StatusSource(StatusReader, Protocol):
    """What the HTTP server reads from the running service (stationmon.service.Service implements it)."""

    metrics: Metrics
    started_at: float

    # Service documents each of these.
    def components(self) -> Mapping[str, Callable[[], Mapping[str, object]]]: ...
    def acknowledge(self, alert_id: str, by: str, comment: str | None) -> AlertEvent | None: ...


def alert_to_json(alert: AlertSnapshot | AlertEvent) -> dict[str, Any]:
    """An active alert or an alert event as a JSON object (with "id" for either)."""
    doc: dict[str, Any] = jsonable(alert)
    if "alert_id" in doc and "id" not in doc:
        doc["id"] = doc["alert_id"]
    return doc


def check_bearer(request: web.Request, token: str | None) -> bool:
    """True if the request carries `Authorization: Bearer <token>` (constant time); no token refuses all."""
    if not token:
        return False
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def json_response(doc: Any, status: int = 200) -> web.Response:
    """A JSON response (UTF-8, NaN as null)."""
    return web.Response(text=json_text(doc), status=status, content_type="application/json")


def _json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


async def read_json_body(request: web.Request, *, max_bytes: int, max_depth: int = _JSON_MAX_DEPTH) -> Any:
    """The request's JSON body, or None without one; 413 past `max_bytes`, 400 if malformed or nested deeper
    than `max_depth` (json.loads recurses once per level: a deep body would be a RecursionError)."""
    if not request.body_exists:
        return None
    if request.content_length is not None and request.content_length > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=request.content_length)
    raw = await request.content.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=len(raw))
    if not raw.strip():
        return None
    if _json_depth(raw) > max_depth:
        raise web.HTTPBadRequest(reason=f"the JSON body is nested deeper than {max_depth} levels")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise web.HTTPBadRequest(reason="the body must be JSON") from None


async def _ack_body(request: web.Request) -> tuple[str, str | None]:
    """The acknowledgement's "by" and "comment" from its optional JSON body; 400 if malformed."""
    doc = await read_json_body(request, max_bytes=_ACK_MAX_BYTES)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise web.HTTPBadRequest(reason='the body must be a JSON object such as {"by": "...", "comment": "..."}')
    by, comment = doc.get("by", "api"), doc.get("comment")
    if not isinstance(by, str) or not by.strip() or len(by) > 200:
        raise web.HTTPBadRequest(reason='"by" must be a non-empty string of at most 200 characters')
    if comment is not None and (not isinstance(comment, str) or len(comment) > 2000):
        raise web.HTTPBadRequest(reason='"comment" must be a string of at most 2000 characters')
    return by.strip(), comment


def _inline_handler_hashes(html: str) -> str:
    """CSP sources for the page's inline event handlers (`onsubmit="..."`): 'unsafe-hashes' and their hashes."""
    found = sorted(set(re.findall(r"\son[a-z]+=\"([^\"]*)\"", html)))
    hashes = [f"'sha256-{base64.b64encode(hashlib.sha256(h.encode()).digest()).decode()}'" for h in found]
    return " ".join(["'unsafe-hashes'", *hashes]) if hashes else ""


def _security_headers() -> dict[str, str]:
    """Headers on every response: the page loads only its own files, is never framed, sniffed or referred."""
    index = _STATIC_FILES.get("index.html")
    handlers = _inline_handler_hashes(index.read_text(encoding="utf-8")) if index is not None else ""
    csp = (
        f"default-src 'self'; script-src 'self' {handlers}".rstrip()
        + "; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Server": "stationmon",  # no versions: they only help an attacker pick an exploit
    }


SECURITY_HEADERS = _security_headers()


async def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, errors and aiohttp's own 404/405 included."""
    response.headers.update(SECURITY_HEADERS)


class HttpServer:
    """The service's HTTP endpoints; `async with HttpServer(source):` serves them."""

    STATIONS_CACHE_S = 1.0

    def __init__(self, source: StatusSource) -> None:
        self.source = source
        self.host = source.config.http.host
        self.port = source.config.http.port
        self.app = web.Application(middlewares=[self._errors])
        self.app.on_response_prepare.append(_add_security_headers)
        quieten_server_log()  # aiohttp logs a traceback per malformed request line
        self._runner: web.AppRunner | None = None
        self._stations_cache: tuple[float, Body] | None = None
        self.pages = StatusPages(source)  # the summary and the filtered pages, built once per evaluation
        self._history_keys = SeriesIndex()
        self._requests = source.metrics.counter(
            "stationmon_http_requests_total", "HTTP requests by route and status code", ("route", "code")
        )
        self._request_seconds = source.metrics.histogram(
            "stationmon_http_request_duration_seconds", "HTTP request handling time", ("route",)
        )
        _register_scrape_metrics(source)
        r = self.app.router
        r.add_get("/", self.index)
        r.add_get("/static/{name}", self.static)
        r.add_get("/healthz", self.healthz)
        r.add_get("/metrics", self.metrics)
        r.add_get("/api/v1/stations", self.stations)
        r.add_get("/api/v1/summary", self.summary)
        r.add_get("/api/v1/alerts", self.alerts)
        r.add_get("/api/v1/history", self.history)
        r.add_post("/api/v1/alerts/{id}/ack", self.acknowledge)

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Add an endpoint (before the server starts); its exceptions get the same JSON 500 handling."""
        self.app.router.add_route(method, path, handler)

    async def __aenter__(self) -> HttpServer:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, reuse_address=True).start()
        except OSError as exc:
            await runner.cleanup()
            raise StationmonError(f"http.listen: cannot listen on {self.host}:{self.port}: {exc}") from exc
        self._runner = runner
        self.port = int(runner.addresses[0][1])  # the real port when 0 was asked for
        log.info("HTTP on http://%s:%d/", self.host, self.port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "other"
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = json_response({"error": exc.reason}, status=exc.status)
        except Exception:  # a bug in a handler: answer, log, keep serving
            # the path as sent (percent-encoded) and escaped: a decoded "%0a" would forge a log line
            log.exception("HTTP %s %s failed", printable(request.method, 20), printable(request.raw_path))
            response = json_response({"error": "internal error"}, status=500)
        took = time.perf_counter() - started
        self._requests.labels(route, str(response.status)).inc()
        self._request_seconds.labels(route).observe(took)
        response.headers["Server-Timing"] = f"app;dur={took * 1000:.3f}"  # the bench reads it
        return response

    async def index(self, request: web.Request) -> web.StreamResponse:
        """The status page."""
        return _file("index.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        """The page's script and style, shipped in the package."""
        return _file(request.match_info["name"])

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        """200 and the state of every component while running; 503 while storage is failing."""
        src = self.source
        now = src.clock()
        components: dict[str, object] = {"http": "ok"}  # answering this request is its health
        for name, status in src.components().items():
            try:
                components[name] = status()
            except Exception as exc:  # a status() bug must not take /healthz down
                components[name] = {"state": "unknown", "error": str(exc)}
        stations = src.config.stations
        storage = components.get("storage")
        # readings can be neither written nor spooled (or storage stopped): the one state worth paging for
        failing = isinstance(storage, Mapping) and storage.get("state") == "failing"
        doc = {
            "status": "failing" if failing else "ok",
            "uptime_s": round(now - src.started_at, 3),
            "components": components,
            "stations": {"total": len(stations), "online": sum(src.station_online(st, now) for st in stations)},
        }
        return _json_reply(request, doc, status=503 if failing else 200)

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        """Prometheus text exposition format."""
        return web.Response(
            text=self.source.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    async def stations(self, request: web.Request) -> web.StreamResponse:
        """Without parameters every station, loop, latest values, status (CONTRACT section 7); with any of
        company, district, status, q, sort, page, page_size the matching stations' page and the totals.

        The whole document is built at most once per `STATIONS_CACHE_S` (a district of thousands of stations
        costs tenths of a second to describe, bench/bench_http.py); a page once per evaluation.
        """
        if not request.query:
            now = time.monotonic()
            cached = self._stations_cache
            if cached is None or now - cached[0] >= self.STATIONS_CACHE_S:
                cached = self._stations_cache = (now, Body.of(stations_document(self.source)))
            return _conditional(request, cached[1])
        if len(request.query) != len(set(request.query)):
            raise web.HTTPBadRequest(reason="each parameter at most once")
        try:
            query = StationQuery.parse(request.query)
        except ValueError as exc:
            raise web.HTTPBadRequest(reason=str(exc)) from None
        return _conditional(request, self.pages.page(query))

    async def summary(self, request: web.Request) -> web.StreamResponse:
        """Per company and per district: stations, loops by status, share compliant, alerts, the worst."""
        if request.query:
            raise web.HTTPBadRequest(reason="/api/v1/summary takes no parameters")
        return _conditional(request, self.pages.summary())

    async def alerts(self, request: web.Request) -> web.StreamResponse:
        """The active alerts, newest first, each with its station's heating company."""
        companies = {st.id: st.company for st in self.source.config.stations}
        alerts = [{**alert_to_json(a), "company": companies.get(a.station, "")} for a in self.source.active_alerts()]
        alerts.sort(key=lambda a: -(a.get("since") or 0.0))
        return _json_reply(request, {"generated_at": self.source.clock(), "alerts": alerts})

    async def history(self, request: web.Request) -> web.StreamResponse:
        """The in-memory history of one station's series (`station=`), or of several at once (`stations=a,b`,
        at most MAX_HISTORY_STATIONS: one pass for a page of charts); `since`, `loop`, `quantity` and
        `max_points` (every k-th point, the newest always) narrow it."""
        q = request.query
        one = q.get("station")
        wanted = [one] if one else [s for s in q.get("stations", "").split(",") if s]
        if not wanted:
            raise web.HTTPBadRequest(reason="station= (or stations=a,b,...) is required")
        if len(wanted) > MAX_HISTORY_STATIONS:
            raise web.HTTPBadRequest(reason=f"stations=: at most {MAX_HISTORY_STATIONS}")
        for station in wanted:
            try:
                self.source.config.station(station)
            except KeyError:
                raise web.HTTPNotFound(reason=f"unknown station {station!r}") from None
        try:
            since = float(q.get("since", "0"))
            max_points = int(q.get("max_points", "0"))
        except ValueError:
            raise web.HTTPBadRequest(reason="since= must be a Unix time, max_points= a whole number") from None
        found = _history(
            self.source.latest, self._history_keys, wanted, q.get("loop"), q.get("quantity"), since, max_points
        )
        window = self.source.latest.history_window_s
        if one:
            return _json_reply(request, {"station": one, "window_s": window, "series": found.get(one, [])})
        return _json_reply(request, {"window_s": window, "stations": {sid: found.get(sid, []) for sid in wanted}})

    async def acknowledge(self, request: web.Request) -> web.StreamResponse:
        """Acknowledge a firing alert (Bearer token; optional JSON "by" and "comment"): 401, 404 or 200.

        Acknowledging an acknowledged alert answers 200 with the acknowledgement as it was.
        """
        token = self.source.config.http.token
        if not check_bearer(request, token.get() if token is not None else None):
            response = json_response({"error": "missing or wrong bearer token"}, status=401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="stationmon"'
            return response
        by, comment = await _ack_body(request)
        alert_id = request.match_info["id"]
        event = self.source.acknowledge(alert_id, by, comment)
        if event is None:
            raise web.HTTPNotFound(reason=f"no firing alert {alert_id!r}")
        self.pages.invalidate()  # the station cards show who acknowledged
        return json_response({"acknowledged": alert_to_json(event)})


def _history(
    latest: LatestValues,
    keys: SeriesIndex,
    stations: list[str],
    loop: str | None,
    quantity: str | None,
    since: float,
    max_points: int,
) -> dict[str, list[dict[str, Any]]]:
    """The stations' series since `since`, sorted by loop, sensor, quantity (`keys` finds their series).

    `quantity` may name several, comma-separated (the page's charts: supply_temp,return_temp)."""
    quantities = set(quantity.split(",")) if quantity else set()
    out: dict[str, list[dict[str, Any]]] = {}
    for sid, lid, sensor, qty in (
        k for station in dict.fromkeys(stations) for k in keys.keys_of(latest.history, station)
    ):
        points = latest.history.get((sid, lid, sensor, qty))
        if points is None or (loop is not None and lid != loop) or (quantities and qty not in quantities):
            continue
        kept = [p for p in points if p[0] >= since]
        if max_points > 0 and len(kept) > max_points:
            step = math.ceil(len(kept) / max_points)
            kept = kept[(len(kept) - 1) % step :: step]  # every step-th, ending on the newest
        series = {"loop": lid, "sensor": sensor, "quantity": qty, "points": [[round(t, 3), num(v)] for t, v in kept]}
        out.setdefault(sid, []).append(series)
    for series_list in out.values():
        series_list.sort(key=lambda s: (s["loop"] or "", s["sensor"] or "", s["quantity"]))
    return out


def _etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match against our ETag: "*", or one of a list, weak (W/) or strong alike (RFC 9110 13.1.2)."""
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


def _conditional(request: web.Request, body: Body, status: int = 200) -> web.Response:
    """`body` with its ETag, or 304 and no body when the client's copy is current (GET, 200 only)."""
    headers = {"ETag": body.etag, "Cache-Control": "no-cache"}  # no-cache: keep it, but ask each time
    if status == 200 and _etag_matches(request.headers.get("If-None-Match"), body.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=body.data, status=status, content_type="application/json", charset="utf-8", headers=headers
    )


def _json_reply(request: web.Request, doc: Any, status: int = 200) -> web.Response:
    """A JSON answer to a GET, with its ETag and If-None-Match honoured."""
    return _conditional(request, Body.of(doc), status)


def _file(name: str) -> web.StreamResponse:
    path = _STATIC_FILES.get(name)
    if path is None:
        # the name stays out of the reason: a reason is a header line, and "\n" in it is an error of its own
        raise web.HTTPNotFound(reason="no such file")
    ctype = _STATIC_TYPES[path.suffix]
    return web.Response(
        body=path.read_bytes(),
        content_type=ctype,
        charset="utf-8" if ctype.startswith("text") else None,
        headers={"Cache-Control": "no-cache"},
    )


def _register_scrape_metrics(src: StatusSource) -> None:
    metrics = src.metrics
    if metrics.get("stationmon_station_online") is None:
        metrics.gauge(
            "stationmon_station_online",
            "1 while the station is online: a recent reading and, with Modbus, its poller answering",
            ("station",),
        ).set_function(lambda: _online_by_station(src))
    if metrics.get("stationmon_reading_age_seconds") is None:
        metrics.gauge(
            "stationmon_reading_age_seconds", "Seconds since the station's newest reading", ("station",)
        ).set_function(lambda: {(sid,): max(0.0, src.clock() - ts) for sid, ts in src.latest.last_seen.items()})
    if metrics.get("stationmon_alerts_active") is None:
        metrics.gauge(
            "stationmon_alerts_active", "Active alerts by rule and severity", ("rule", "severity")
        ).set_function(lambda: _count_alerts(src.active_alerts()))


def _online_by_station(src: StatusSource) -> dict[tuple[str, ...], float]:
    now = src.clock()
    return {(st.id,): float(src.station_online(st, now)) for st in src.config.stations}


def _count_alerts(alerts: Iterable[AlertSnapshot]) -> dict[tuple[str, ...], float]:
    return {key: float(n) for key, n in Counter((a.rule, a.severity) for a in alerts).items()}
