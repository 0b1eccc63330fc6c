"""The Grafana provisioning as Grafana loads it: data sources, the dashboards folder, and each dashboard's structure.

No Grafana binary runs here, so this checks what makes provisioning or a panel fail when it does run: a
duplicate panel id (nested rows included), a data source uid that no provisioned data source has, a `$var` that
no templating variable defines, a link to a dashboard uid (or a `var-` of it) that does not exist, a dashboards
provider whose path is not where docker-compose mounts the dashboards. The checker is proven on broken copies.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[2]
GRAFANA = ROOT / "configs" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
PROVISIONING = GRAFANA / "provisioning"

# Grafana's global variables (and `timeFilter`, the InfluxQL macro); `__all` is the value of "All"
BUILTIN_VARIABLES = frozenset(
    {
        "timeFilter",
        "__timeFilter",
        "__interval",
        "__interval_ms",
        "__rate_interval",
        "__range",
        "__range_s",
        "__range_ms",
        "__from",
        "__to",
        "__all",
        "__data",
        "__url_time_range",
        "__value",
        "__field",
        "__series",
        "__dashboard",
        "__org",
        "__user",
        "__timezone",
    }
)
# InfluxQL alias patterns, valid in a target's `alias` only
ALIAS_PATTERN = re.compile(r"^(tag_\w+|col|m|measurement)$")
VARIABLE_REFERENCE = re.compile(r"\$\{(\w+)[^}]*\}|\$(\w+)|\[\[(\w+)[^\]]*\]\]")
DASHBOARD_LINK = re.compile(r"/d/([\w-]+)(?:/[^?\s\"]*)?(\?[^\s\"]*)?")
PANEL_TYPES = frozenset({"row", "stat", "table", "timeseries", "text", "bargauge", "gauge", "piechart", "barchart"})
GRAFANA_DATASOURCE_UIDS = frozenset({"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --"})


def load_dashboards(folder: Path = DASHBOARDS) -> dict[str, dict[str, Any]]:
    """Every dashboard file Grafana's file provider would load from `folder`, by file name."""
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))}


def load_datasources(folder: Path = PROVISIONING / "datasources") -> list[dict[str, Any]]:
    """The data sources of every provisioning file in `folder`."""
    out: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.y*ml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        out += doc.get("datasources", [])
    return out


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Panels in order, the panels of (collapsed) rows included."""
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def _walk(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(key, value) of every value in a JSON tree; list items carry their list's key."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, key)
    else:
        yield key, node


def _datasource_refs(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "datasource":
                yield v
            yield from _datasource_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _datasource_refs(v)


def _check_panels(name: str, dash: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    seen: set[int] = set()
    for p in all_panels(dash.get("panels", [])):
        pid = p.get("id")
        if not isinstance(pid, int):
            problems.append(f"{name}: panel {p.get('title')!r} has no integer id")
        elif pid in seen:
            problems.append(f"{name}: panel id {pid} is used twice ({p.get('title')!r})")
        seen.add(pid if isinstance(pid, int) else -1)
        if p.get("type") not in PANEL_TYPES:
            problems.append(f"{name}: panel {p.get('title')!r} has unknown type {p.get('type')!r}")
        pos = p.get("gridPos", {})
        if not all(isinstance(pos.get(k), int) for k in "xywh") or pos["x"] + pos["w"] > 24:
            problems.append(f"{name}: panel {p.get('title')!r} has a bad gridPos {pos}")
        refs = [t.get("refId") for t in p.get("targets", [])]
        if len(set(refs)) != len(refs) or None in refs:
            problems.append(f"{name}: panel {p.get('title')!r} has missing or repeated refIds {refs}")
    return problems


def _check_datasources(name: str, dash: dict[str, Any], uids: set[str], names: set[str]) -> list[str]:
    problems = []
    for ref in _datasource_refs(dash):
        if isinstance(ref, dict):
            uid = ref.get("uid")
            if uid not in uids and uid not in GRAFANA_DATASOURCE_UIDS:
                problems.append(f"{name}: data source uid {uid!r} is not provisioned")
        elif ref is not None and ref not in names:
            problems.append(f"{name}: data source {ref!r} is not provisioned")
    return problems


def _check_variables(name: str, dash: dict[str, Any]) -> list[str]:
    problems = []
    variables = [v.get("name") for v in dash.get("templating", {}).get("list", [])]
    if len(set(variables)) != len(variables):
        problems.append(f"{name}: templating variables repeat: {variables}")
    defined = set(variables) | BUILTIN_VARIABLES
    for v in dash.get("templating", {}).get("list", []):
        if re.search(rf"\$\{{?{re.escape(v['name'])}\b", str(v.get("query", ""))):
            problems.append(f"{name}: variable {v['name']!r} refers to itself")
    for key, value in _walk(dash):
        if not isinstance(value, str):
            continue
        for match in VARIABLE_REFERENCE.finditer(value):
            ref = next(g for g in match.groups() if g)
            if ref in defined or (key == "alias" and ALIAS_PATTERN.match(ref)):
                continue
            problems.append(f"{name}: ${ref} in {key!r} is not a templating variable")
    return problems


def _check_links(name: str, dash: dict[str, Any], targets: dict[str, set[str]]) -> list[str]:
    """Every /d/<uid> link (dashboard links, data links) goes to a provisioned dashboard and its var-s exist."""
    problems = []
    for key, value in _walk(dash):
        if not isinstance(value, str) or key != "url":
            continue
        for match in DASHBOARD_LINK.finditer(value):
            uid, query = match.group(1), match.group(2) or ""
            if uid not in targets:
                problems.append(f"{name}: link to dashboard uid {uid!r}, which is not provisioned")
                continue
            for var in re.findall(r"var-(\w+)=", query):
                if var not in targets[uid]:
                    problems.append(f"{name}: link sets var-{var}, which dashboard {uid!r} does not define")
    return problems


def check_dashboards(dashboards: dict[str, dict[str, Any]], datasources: list[dict[str, Any]]) -> list[str]:
    """What would go wrong loading these dashboards with these data sources; [] when nothing."""
    problems: list[str] = []
    uids = {d.get("uid") for d in datasources}
    names = {d.get("name") for d in datasources}
    by_uid: dict[str, set[str]] = {}
    titles: set[str] = set()
    for name, dash in dashboards.items():
        uid = dash.get("uid")
        if not isinstance(uid, str) or not re.fullmatch(r"[\w-]{1,40}", uid) or uid in by_uid:
            problems.append(f"{name}: uid {uid!r} is missing, malformed or not unique")
        if dash.get("title") in titles:
            problems.append(f"{name}: title {dash.get('title')!r} is taken by another dashboard in the folder")
        titles.add(dash.get("title"))
        by_uid[str(uid)] = {v["name"] for v in dash.get("templating", {}).get("list", [])}
    for name, dash in dashboards.items():
        problems += _check_panels(name, dash)
        problems += _check_datasources(name, dash, uids, names)
        problems += _check_variables(name, dash)
        problems += _check_links(name, dash, by_uid)
    return problems


def test_provisioning_points_grafana_at_the_dashboards_and_the_influxdb() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./configs/grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "stationmon.yml").read_text())["providers"]
    assert [p["options"]["path"] for p in providers] == [mounts["./configs/grafana/dashboards"]]
    assert all(p["type"] == "file" for p in providers)
    sources = load_datasources()
    assert len({s["uid"] for s in sources}) == len(sources) == 1
    (source,) = sources
    assert source["type"] == "influxdb" and source["jsonData"]["dbName"] == "stationmon"
    # InfluxDB 2.x's InfluxQL endpoint authenticates by the token header
    assert source["jsonData"]["httpHeaderName1"] == "Authorization"
    assert source["secureJsonData"]["httpHeaderValue1"] == "Token ${INFLUX_TOKEN}"
    assert compose["services"]["grafana"]["environment"]["INFLUX_TOKEN"] == "${INFLUX_TOKEN}"


def test_the_dashboards_are_city_company_and_station_with_the_station_uid_kept() -> None:
    uids = {d["uid"] for d in load_dashboards().values()}
    # the status page links to the station drill-down by this uid
    assert uids == {"stationmon-district", "stationmon-city", "stationmon-company"}


def test_every_shipped_dashboard_passes_the_structure_check() -> None:
    assert check_dashboards(load_dashboards(), load_datasources()) == []


def test_dashboards_link_to_each_other() -> None:
    dashboards = {d["uid"]: d for d in load_dashboards().values()}
    for uid, dash in dashboards.items():
        linked = {m.group(1) for link in dash["links"] for m in DASHBOARD_LINK.finditer(link["url"])}
        assert linked == set(dashboards) - {uid}, uid
        assert all(link["keepTime"] and link["includeVars"] for link in dash["links"])


def _broken(mutate: Any) -> list[str]:
    dashboards = copy.deepcopy(load_dashboards())
    mutate({d["uid"]: d for d in dashboards.values()})
    return check_dashboards(dashboards, load_datasources())


def test_the_checker_finds_a_repeated_panel_id_inside_a_row() -> None:
    def mutate(d: dict[str, Any]) -> None:
        city = d["stationmon-city"]
        city["panels"].append({"type": "row", "title": "more", "id": 900, "collapsed": True,
                               "gridPos": {"x": 0, "y": 99, "w": 24, "h": 1},
                               "panels": [copy.deepcopy(city["panels"][0])]})  # fmt: skip

    problems = _broken(mutate)
    assert len(problems) == 1 and "panel id 1 is used twice" in problems[0]


def test_the_checker_finds_an_unprovisioned_datasource_uid() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["stationmon-company"]["panels"][2]["targets"][0]["datasource"]["uid"] = "influx-typo"

    assert _broken(mutate) == ["company.json: data source uid 'influx-typo' is not provisioned"]


def test_the_checker_finds_an_undefined_variable() -> None:
    def mutate(d: dict[str, Any]) -> None:
        target = d["stationmon-city"]["panels"][1]["targets"][0]
        target["query"] = target["query"].replace("$district", "$distict")

    assert _broken(mutate) == ["city.json: $distict in 'query' is not a templating variable"]


def test_the_checker_finds_an_alias_pattern_outside_an_alias_and_a_variable_referring_to_itself() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["stationmon-city"]["panels"][0]["title"] = "rate of $tag_company"
        d["stationmon-city"]["templating"]["list"][1]["query"] += ' AND "company" =~ /^$company$/'

    assert sorted(_broken(mutate)) == [
        "city.json: $tag_company in 'title' is not a templating variable",
        "city.json: variable 'company' refers to itself",
    ]


def test_the_checker_finds_links_to_a_missing_dashboard_or_variable() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["stationmon-district"]["links"][0]["url"] = "/d/stationmon-town/stationmon-town"
        table = next(p for p in d["stationmon-city"]["panels"] if p["title"] == "Loops noncompliant or offline now")
        link = table["fieldConfig"]["overrides"][1]["properties"][0]["value"][0]
        link["url"] = link["url"].replace("var-station=", "var-stations=")

    assert sorted(_broken(mutate)) == [
        "city.json: link sets var-stations, which dashboard 'stationmon-district' does not define",
        "stationmon.json: link to dashboard uid 'stationmon-town', which is not provisioned",
    ]


def test_the_checker_finds_a_repeated_uid_and_title() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["stationmon-company"]["uid"] = "stationmon-city"
        d["stationmon-company"]["title"] = d["stationmon-city"]["title"]

    problems = _broken(mutate)
    assert "company.json: uid 'stationmon-city' is missing, malformed or not unique" in problems
    title = "company.json: title 'stationmon: city (regulator view)' is taken by another dashboard in the folder"
    assert title in problems


def test_the_commented_influxdb1_datasource_is_a_drop_in_with_the_same_uid() -> None:
    text = (PROVISIONING / "datasources" / "stationmon.yml").read_text()
    variant = [line[1:] for line in text.splitlines() if line.startswith("#  ")]
    (source,) = yaml.safe_load("\n".join(variant))
    (provisioned,) = load_datasources()
    assert source["uid"] == provisioned["uid"] and source["type"] == "influxdb"
    assert source["jsonData"]["dbName"] == "stationmon" and "httpHeaderName1" not in source["jsonData"]
    assert check_dashboards(load_dashboards(), [source]) == []
