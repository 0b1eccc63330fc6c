"""The status page at city scale (issue 13): summary, filtered pages, ETags, the Grafana link, the page itself.

A real service (evaluator, alert book, HTTP server on a free port) judges stations fed through
`Service.ingest` at set times, so each test knows which station is healthy, short of heat or gone quiet,
and drives evaluations itself. The summary is checked against the whole station document (CONTRACT 7,
unchanged) and the alerts list, aggregated here. The page is rendered by headless Chromium; its
screenshots are kept under artifacts/.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from stationmon.config import Config, parse_config_text
from stationmon.domain.model import Reading
from stationmon.domain.vocabulary import SEVERITIES, STATUS_NAMES
from stationmon.evaluator.status_view import STATION_DASHBOARD_UID
from stationmon.service import Service
from tests.integration.test_status_page import ARTIFACTS, _browser

COMPANIES = ("冰城热力有限公司", "哈投供热", "松北热力")
DISTRICTS = ("道里区", "南岗区", "香坊区", "道外区")
# station i's fate: healthy, short of heat (noncompliant, alerts), quiet for an hour (offline), never heard
KINDS = ("ok", "ok", "cold", "ok", "quiet", "ok", "cold", "never")
N = 40
GRAFANA = "http://grafana.example:3000/grafana"


def _kind(i: int) -> str:
    return KINDS[i % len(KINDS)]


def _config_text(n: int = N, grafana: str = GRAFANA) -> str:
    parts = [
        f"""
[site]
name = "哈尔滨市"
[influxdb]
api = "v1"
database = "unused"
spool_dir = "/nonexistent/stationmon-city-spool"
[http]
listen = "127.0.0.1:0"
{f'grafana_url = "{grafana}"' if grafana else ""}
[mqtt]
url = "mqtt://127.0.0.1:1"
[[mqtt.subscriptions]]
topic = "heat/{{station}}/{{loop}}/{{quantity}}"
[rules]
for = "0s"
clear_for = "0s"
water_smoothing = "0s"
outdoor_smoothing = "0s"
season_start = "01-01"
season_end = "12-31"
"""
    ]
    for i in range(n):
        parts.append(
            f"""
[[stations]]
id = "st-{i:03d}"
name = "测试{i}号换热站"
company = "{COMPANIES[i % 3]}"
district = "{DISTRICTS[i % 4]}"
  [[stations.loops]]
  id = "high"
  emitter = "radiator"
  [[stations.loops]]
  id = "low"
  emitter = "radiator"
"""
        )
    return "".join(parts)


def _readings(i: int, now: float, kind: str | None = None) -> list[Reading]:
    """Station i's readings: radiators 75/50 at -10 °C need 58.8/42.2 (DOMAIN.md); "cold" gets far less."""
    kind = kind or _kind(i)
    if kind == "never":
        return []
    sid, ts = f"st-{i:03d}", now - 3600.0 if kind == "quiet" else now
    supply, ret = (45.0, 36.0) if kind == "cold" else (59.5, 42.8)
    out = [Reading(sid, "outdoor_temp", -10.0, ts, source="mqtt")]
    for loop in ("high", "low"):
        out += [
            Reading(sid, "supply_temp", supply, ts, loop=loop, source="mqtt"),
            Reading(sid, "return_temp", ret, ts, loop=loop, source="mqtt"),
        ]
    return out


class City:
    """A service judging N stations at set times, its HTTP server listening."""

    def __init__(self, config: Config, now: float) -> None:
        self.now = now
        self.service = Service(config, clock=lambda: self.now)
        self.base = ""

    def evaluate(self, step_s: float = 10.0, change: Callable[[int], str | None] = lambda i: None) -> None:
        """Readings of every station at the next instant, then one evaluation."""
        self.now += step_s
        for i in range(len(self.service.config.stations)):
            self.service.ingest(_readings(i, self.now, change(i)))
        self.service.evaluator.tick(self.now)


@contextlib.asynccontextmanager
async def city(tmp_path: Path, grafana: str = GRAFANA, now: float | None = None) -> AsyncIterator[City]:
    """The service with its HTTP server, after two evaluations."""
    config = parse_config_text(
        _config_text(grafana=grafana).replace("/nonexistent", str(tmp_path)), "city.toml", require_influxdb=False
    )
    c = City(config, time.time() - 20.0 if now is None else now)
    c.evaluate()
    c.evaluate()
    async with c.service.http as server:
        c.base = f"http://127.0.0.1:{server.port}"
        yield c


async def _get(client: aiohttp.ClientSession, url: str, etag: str | None = None) -> tuple[int, Any, str]:
    headers = {"If-None-Match": etag} if etag else {}
    async with client.get(url, headers=headers) as r:
        body = await r.read()
        if r.status == 304:
            assert body == b""
            return 304, None, r.headers["ETag"]
        return r.status, json.loads(body), r.headers.get("ETag", "")


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _expected_group(stations: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """A summary group computed from the whole station document and the alerts list."""
    loops = [lp["status"] for st in stations for lp in st["loops"]]
    ids = {st["id"] for st in stations}
    severities = Counter(a["severity"] for a in alerts if a["station"] in ids)
    judged = loops.count("ok") + loops.count("noncompliant")
    return {
        "stations": len(stations),
        "loops": len(loops),
        "stations_by_status": {s: sum(st["status"] == s for st in stations) for s in STATUS_NAMES},
        "loops_by_status": {s: loops.count(s) for s in STATUS_NAMES},
        "loops_judged": judged,
        "loops_compliant": loops.count("ok"),
        "share_compliant": round(loops.count("ok") / judged, 4) if judged else None,
        "stations_with_alerts": sum(st["active_alerts"] > 0 for st in stations),
        "alerts": {s: severities[s] for s in SEVERITIES},
        "alerts_total": sum(severities.values()),
    }


async def test_summary_per_company_and_district_matches_the_stations(tmp_path: Path) -> None:
    async with city(tmp_path) as c, aiohttp.ClientSession() as client:
        _, whole, _ = await _get(client, c.base + "/api/v1/stations")
        _, alerts, _ = await _get(client, c.base + "/api/v1/alerts")
        status, summary, etag = await _get(client, c.base + "/api/v1/summary")
    assert status == 200 and etag
    stations, active = whole["stations"], alerts["alerts"]
    # the fixture is what it says: every kind of station shows as such
    by_kind = {k: {st["status"] for st in stations if _kind(int(st["id"][3:])) == k} for k in set(KINDS)}
    assert by_kind == {"ok": {"ok"}, "cold": {"noncompliant"}, "quiet": {"offline"}, "never": {"unknown"}}
    alerting = {a["station"] for a in active}
    assert alerting == {st["id"] for st in stations if st["status"] in ("noncompliant", "offline")}

    def check(group: dict[str, Any], members: list[dict[str, Any]]) -> None:
        want = _expected_group(members, active)
        assert {k: group[k] for k in want} == want, group["name"]
        # the worst: stations with a problem only, worst status first, then the most alerts
        worst = [w["id"] for w in group["worst"]]
        problems = [st for st in members if st["status"] in ("offline", "noncompliant") or st["active_alerts"]]
        assert len(worst) == min(len(problems), len(group["worst"])) and len(set(worst)) == len(worst)
        rank = {"offline": 5, "noncompliant": 4, "sensor_fault": 3, "unknown": 2, "ok": 1}
        by_id = {st["id"]: st for st in members}
        keys = [(-rank[by_id[w]["status"]], -by_id[w]["active_alerts"]) for w in worst]
        assert keys == sorted(keys)
        shown = {w for w in worst}
        assert all((-rank[st["status"]], -st["active_alerts"]) >= keys[-1] for st in problems if st["id"] not in shown)

    check(summary["totals"], stations)
    assert [g["name"] for g in summary["companies"]] == sorted(COMPANIES)
    assert [g["name"] for g in summary["districts"]] == sorted(DISTRICTS)
    for group in summary["companies"]:
        check(group, [st for st in stations if st["company"] == group["name"]])
    for group in summary["districts"]:
        check(group, [st for st in stations if st["district"] == group["name"]])
    assert summary["totals"]["share_compliant"] == pytest.approx(2 / 3, abs=1e-4)  # 20 ok stations, 10 cold
    assert summary["site"]["name"] == "哈尔滨市" and summary["grafana_url"] == GRAFANA


async def test_filters_and_pages_cover_exactly_the_matching_stations(tmp_path: Path) -> None:
    async with city(tmp_path) as c, aiohttp.ClientSession() as client:
        _, whole, _ = await _get(client, c.base + "/api/v1/stations")
        stations = whole["stations"]

        async def pages(query: str, page_size: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
            got: list[dict[str, Any]] = []
            first: dict[str, Any] = {}
            page = 1
            while True:
                status, doc, _ = await _get(
                    client, f"{c.base}/api/v1/stations?{query}&page={page}&page_size={page_size}"
                )
                assert status == 200, doc
                first = first or doc
                assert (doc["page"], doc["page_size"], doc["total"]) == (page, page_size, N)
                assert doc["matching"] == first["matching"] and doc["pages"] == first["pages"]
                got += doc["stations"]
                if page >= doc["pages"]:
                    return got, first
                page += 1

        cases: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
            ("sort=id", lambda st: True),
            (f"company={COMPANIES[1]}", lambda st: st["company"] == COMPANIES[1]),
            (
                f"district={DISTRICTS[2]}&company={COMPANIES[0]}",
                lambda st: (st["district"], st["company"]) == (DISTRICTS[2], COMPANIES[0]),
            ),
            ("status=noncompliant", lambda st: any(lp["status"] == "noncompliant" for lp in st["loops"])),
            ("status=offline,unknown", lambda st: st["status"] in ("offline", "unknown")),
            (
                "status=problem",
                lambda st: st["status"] in ("offline", "noncompliant", "sensor_fault") or st["active_alerts"] > 0,
            ),
            ("q=ST-01", lambda st: "st-01" in st["id"]),
            ("q=测试3", lambda st: "测试3" in st["name"]),
            ("status=ok&q=nothing-like-this", lambda st: False),
        ]
        for query, want in cases:
            got, first = await pages(query, 7)
            ids = [st["id"] for st in got]
            expected = {st["id"] for st in stations if want(st)}
            assert len(ids) == len(set(ids)) and set(ids) == expected, query
            assert first["matching"] == len(expected) and first["pages"] == -(-len(expected) // 7), query
            assert all(st["grafana_url"] and "alerts" in st for st in got)
        # worst first by default: offline, noncompliant, unknown, ok; ids in order within each
        got, _ = await pages("status=problem,ok,unknown", 50)
        order = [st["status"] for st in got]
        assert order == sorted(
            order, key=lambda s: ["offline", "noncompliant", "sensor_fault", "unknown", "ok"].index(s)
        )
        assert [st["id"] for st in got if st["status"] == "ok"] == sorted(
            st["id"] for st in got if st["status"] == "ok"
        )
        # a page past the last is empty, with the totals
        _, doc, _ = await _get(client, f"{c.base}/api/v1/stations?company={COMPANIES[0]}&page=99")
        assert doc["stations"] == [] and doc["matching"] == 14 and doc["pages"] == 1
        # a page's station is the whole document's (its numbers to 3 decimals), plus its alerts and its link
        _, doc, _ = await _get(client, f"{c.base}/api/v1/stations?q=st-002")
        [st] = doc["stations"]
        whole_st = _rounded(next(s for s in stations if s["id"] == "st-002"))
        assert {k: st[k] for k in ("status", "loops", "company", "active_alerts")} == {
            k: whole_st[k] for k in ("status", "loops", "company", "active_alerts")
        }
        assert [a["rule"] for a in st["alerts"]] and all(a["message"] for a in st["alerts"])


async def test_etag_304_and_a_new_evaluation(tmp_path: Path) -> None:
    async with city(tmp_path) as c, aiohttp.ClientSession() as client:
        page_url = f"{c.base}/api/v1/stations?status=problem&page_size=10"
        urls = [c.base + "/api/v1/summary", page_url, c.base + "/api/v1/stations", c.base + "/api/v1/alerts"]
        etags = {}
        for url in urls:
            status, _, etag = await _get(client, url)
            assert status == 200 and re.fullmatch(r'"[0-9a-f]{24}"', etag), url
            etags[url] = etag
            status, body, again = await _get(client, url, etag)
            assert (status, body, again) == (304, None, etag), url
            assert (await _get(client, url, f'"other", W/{etag}'))[0] == 304  # a list, weak or not
            assert (await _get(client, url, '"other"'))[0] == 200
        builds = c.service.http.pages.builds
        for _ in range(5):  # every viewer's refresh within one evaluation: no rebuild
            await _get(client, c.base + "/api/v1/summary", etags[urls[0]])
            await _get(client, page_url, etags[page_url])
        assert c.service.http.pages.builds == builds

        c.evaluate()  # the same picture, judged again: the summary holds no time, the page holds new readings
        assert (await _get(client, urls[0], etags[urls[0]]))[0] == 304
        status, _, etag = await _get(client, page_url, etags[page_url])
        assert status == 200 and etag != etags[page_url]
        assert c.service.http.pages.builds == builds + 1

        cold = N // len(KINDS) * 2
        c.evaluate(change=lambda i: "cold" if i == 0 else None)  # st-000 drops 14 K in 10 s: a sensor fault
        status, summary, etag = await _get(client, urls[0], etags[urls[0]])
        assert status == 200 and etag != etags[urls[0]]
        totals = summary["totals"]["stations_by_status"]
        assert (totals["sensor_fault"], totals["noncompliant"]) == (1, cold)
        assert summary["totals"]["worst"][0]["status"] == "offline"
        _, doc, _ = await _get(client, c.base + "/api/v1/stations?status=sensor_fault")
        assert [st["id"] for st in doc["stations"]] == ["st-000"]
        c.evaluate(change=lambda i: "cold" if i == 0 else None)  # and stays there: short of heat
        status, summary, _ = await _get(client, urls[0], etag)
        assert status == 200 and summary["totals"]["stations_by_status"]["noncompliant"] == cold + 1


async def test_an_acknowledgement_shows_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATIONMON_CITY_TOKEN", "s3cret")
    text = _config_text().replace("[http]\n", '[http]\ntoken_env = "STATIONMON_CITY_TOKEN"\n')
    config = parse_config_text(text.replace("/nonexistent", str(tmp_path)), "city.toml", require_influxdb=False)
    c = City(config, time.time())
    c.evaluate()
    async with c.service.http as server, aiohttp.ClientSession() as client:
        url = f"http://127.0.0.1:{server.port}/api/v1/stations?q=st-002"
        _, doc, etag = await _get(client, url)
        alert = doc["stations"][0]["alerts"][0]
        assert alert["acknowledged_by"] is None
        ack = f"http://127.0.0.1:{server.port}/api/v1/alerts/{alert['id']}/ack"
        async with client.post(ack, json={"by": "值班员"}, headers={"Authorization": "Bearer s3cret"}) as r:
            assert r.status == 200
        status, doc, _ = await _get(client, url, etag)
        assert status == 200 and doc["stations"][0]["alerts"][0]["acknowledged_by"] == "值班员"


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("page=0", "page"),
        ("page=two", "page"),
        ("page_size=201", "page_size"),
        ("page_size=-5", "page_size"),
        ("status=broken", "status"),
        ("status=ok,nope", "status"),
        ("status=坏%0Abad", "status"),
        ("sort=best", "sort"),
        ("compnay=x", "compnay"),
        ("page=1&page=2", "once"),
        ("q=" + "x" * 101, "q"),
    ],
)
async def test_bad_parameters_are_400_with_a_message(tmp_path: Path, query: str, names: str) -> None:
    async with city(tmp_path) as c, aiohttp.ClientSession() as client:
        status, doc, _ = await _get(client, f"{c.base}/api/v1/stations?{query}")
        assert status == 400 and names in doc["error"], doc
        status, doc, _ = await _get(client, f"{c.base}/api/v1/summary?page=1")
        assert status == 400 and "no parameters" in doc["error"]


async def test_the_grafana_link_opens_the_station_dashboard(tmp_path: Path) -> None:
    dashboards = Path(__file__).resolve().parents[2] / "configs" / "grafana" / "dashboards"
    found = {}
    for path in dashboards.glob("*.json"):
        doc = json.loads(path.read_text())
        found[doc["uid"]] = {v["name"] for v in doc.get("templating", {}).get("list", [])}
    assert "station" in found[STATION_DASHBOARD_UID]  # the link's dashboard exists and takes var-station
    async with city(tmp_path) as c, aiohttp.ClientSession() as client:
        _, doc, _ = await _get(client, c.base + "/api/v1/stations?q=st-001")
        assert doc["stations"][0]["grafana_url"] == f"{GRAFANA}/d/{STATION_DASHBOARD_UID}?var-station=st-001"
    async with city(tmp_path, grafana="") as c, aiohttp.ClientSession() as client:
        _, doc, _ = await _get(client, c.base + "/api/v1/stations?q=st-001")
        assert doc["stations"][0]["grafana_url"] is None
        _, summary, _ = await _get(client, c.base + "/api/v1/summary")
        assert summary["grafana_url"] is None


def _rendered_stations(dom: str) -> list[str]:
    return [html.unescape(s) for s in re.findall(r'<article\b[^>]*data-station="([^"]+)"', dom)]


async def test_the_page_in_chromium_summary_first_then_a_filtered_page(tmp_path: Path) -> None:
    async with city(tmp_path) as c, aiohttp.ClientSession() as client:
        _, whole, _ = await _get(client, c.base + "/api/v1/stations")
        by_id = {st["id"]: st for st in whole["stations"]}

        dom = await _browser(c.base + "/", tmp_path, "--dump-dom")
        assert 'data-loaded="true"' in dom, dom[-2000:]
        # the summary: a row per company and per district, with its counts and a compliance bar
        for name in (*COMPANIES, *DISTRICTS):
            assert re.search(rf'<tr data-group="[a-z]+" data-name="{re.escape(name)}"', dom), name
        assert dom.count('class="bar"') >= len(COMPANIES) + len(DISTRICTS)
        # the first page, worst first, each station with its Grafana link
        shown = _rendered_stations(dom)
        assert shown and shown[0] in {sid for sid, st in by_id.items() if st["status"] == "offline"}
        for sid in shown:
            assert f'href="{GRAFANA}/d/{STATION_DASHBOARD_UID}?var-station={sid}"' in dom.replace("&amp;", "&")
        assert "测试" in dom
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "status_city_summary.png"
        shot.unlink(missing_ok=True)
        await _browser(c.base + "/", tmp_path, f"--screenshot={shot}", "--window-size=1400,1400")
        assert shot.stat().st_size > 10_000

        # a filtered page from the URL: one company's noncompliant stations, their alerts and totals
        url = f"{c.base}/?company={COMPANIES[0]}&status=noncompliant&page_size=4"
        dom = await _browser(url, tmp_path, "--dump-dom")
        want = sorted(
            sid for sid, st in by_id.items() if st["company"] == COMPANIES[0] and st["status"] == "noncompliant"
        )
        assert _rendered_stations(dom) == want[:4]
        assert re.search(rf'id="matching"[^>]*>{len(want)}<', dom), dom[-3000:]
        assert re.search(r'<li[^>]*data-alert="[^"]+"', dom)
        shot = ARTIFACTS / "status_city_filtered.png"
        shot.unlink(missing_ok=True)
        await _browser(url, tmp_path, f"--screenshot={shot}", "--window-size=1400,1400")
        assert shot.stat().st_size > 10_000


async def test_the_charts_of_a_page_in_one_history_request(tmp_path: Path) -> None:
    async with city(tmp_path, now=time.time() - 400.0) as c, aiohttp.ClientSession() as client:
        for _ in range(4):
            c.evaluate(step_s=40.0)  # one history point per 30 s at most
        url = f"{c.base}/api/v1/history?stations=st-000,st-002&quantity=supply_temp,return_temp"
        _, doc, _ = await _get(client, url)
        assert set(doc["stations"]) == {"st-000", "st-002"}
        for series in doc["stations"].values():
            assert {(s["loop"], s["quantity"]) for s in series} == {
                (lp, q) for lp in ("high", "low") for q in ("supply_temp", "return_temp")
            }
            assert len({len(s["points"]) for s in series}) == 1 and len(series[0]["points"]) >= 4
        # the newest point always, every k-th before it; since= leaves out what the page has
        _, few, _ = await _get(client, url + "&max_points=2")
        full = doc["stations"]["st-002"][1]["points"]  # sorted by loop, sensor, quantity: high supply_temp
        assert doc["stations"]["st-002"][1]["quantity"] == "supply_temp"
        kept = few["stations"]["st-002"][1]["points"]
        assert len(kept) == 2 and kept[-1] == full[-1] and kept[0] in full[:-1]
        _, newer, _ = await _get(client, f"{url}&since={full[-2][0] + 0.01}")
        assert newer["stations"]["st-002"][1]["points"] == [full[-1]]
        # one station alone answers as before
        _, one, _ = await _get(client, f"{c.base}/api/v1/history?station=st-002&quantity=supply_temp&loop=high")
        assert one["station"] == "st-002" and [s["points"] for s in one["series"]] == [full]
        assert (await _get(client, f"{c.base}/api/v1/history?stations=st-000,nope"))[0] == 404
        many = ",".join(f"st-{i:03d}" for i in range(40)) * 6
        assert (await _get(client, f"{c.base}/api/v1/history?stations={many}"))[0] == 400
