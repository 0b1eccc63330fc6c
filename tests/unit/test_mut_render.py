"""The compliance report's renderings checked whole, from a small report whose every figure is known.

test_report_render.py checks the formats against a large generated report; this file pins what a reader
gets from a small one exactly: the csv and json documents byte for byte (keys, order, number formatting,
None and NaN), the html page and the xlsx workbook against approved copies in tests/unit/expected/ (their
string literals, CSS, SVG geometry, sheet layout and cell formats are what a regulator sees), and targeted
checks of what the approval alone would let slip unnoticed in a review: bar widths proportional to the
figures, ranking and worst-station order with ties, label shortening, escaping, print CSS, column widths.

Approved copies: after an intended change to the page or the workbook, run
    REGENERATE_EXPECTED=1 PYTHONPATH=$PWD .venv/bin/python -m pytest tests/unit/test_mut_render.py
which rewrites tests/unit/expected/report_small_* and fails the approval tests once (so that a run with the
switch left on is never green); review `git diff tests/unit/expected/` and commit it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from stationmon.domain.report_i18n import (
    COLUMN_KEYS,
    KINDS,
    LANGS,
    MEANINGS,
    MISSING,
    TEXT,
    check_lang,
    degrees,
    display_width,
    format_value,
    heading,
    meaning,
    site_total,
    text,
)
from stationmon.domain.report_render import render
from stationmon.domain.report_tables import LEVELS, MEASURES, ReportTables, Row, columns

EXPECTED = Path(__file__).parent / "expected"
REGENERATE = os.environ.get("REGENERATE_EXPECTED") == "1"
CST = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2026, 11, 15, 6, 0, tzinfo=CST).timestamp()
STOP = dt.datetime(2026, 12, 1, 18, 30, tzinfo=CST).timestamp()
HOSTILE = "<script>alert('x')</script>"  # a station name from a config
LONG = "哈尔滨市第一热力供热集团有限责任公司"  # 18 wide characters: 36 cells, wider than a chart label's 27


def figures(rate: float | None, share: float | None, **other: float | int | None) -> Row:
    """A row's measures: the two shares given, every other measure None unless given."""
    return {k: None for k in MEASURES} | {"compliance_rate": rate, "monitored_share": share} | other


def small_tables(**changes: Any) -> ReportTables:
    """Four stations (one hostile name, one not judged, one at 0 %), five companies (two tied at 50 %, one
    with a long name, one not judged), three districts (one without data), two loops, meta with a None."""
    stations = [
        {"station": "S-01", "company": "龙江供热", "district": "南岗区"}
        | figures(0.8125, 0.95, loops=2, area_m2=24500.0, households=412, compliant_hours=1234.5, alerts=3),
        {"station": HOSTILE, "company": "A&B <Heat>", "district": "道里区"}
        | figures(0.5, 1.0, loops=1, refund_estimate_cny=12345.678, ack_p50_h=0.25, past_24h=1),
        {"station": "S-03", "company": "Zeta", "district": "道里区"} | figures(None, 0.0, unknown_hours=720.0),
        {"station": "S-04", "company": "Beta", "district": "南岗区"}
        | figures(0.0, 0.5, noncompliant_hours=36.75, outdoor_mean=-18.25, degree_hours=14400.0),
    ]
    loops = [
        {"station": "S-01", "loop": "sec1", "company": "龙江供热", "district": "南岗区"} | figures(0.75, 0.9),
        {"station": "S-01", "loop": "sec2", "company": "龙江供热", "district": "南岗区"} | figures(0.875, 1.0),
    ]
    companies = [
        {"company": "Beta"} | figures(0.5, 0.75, alerts=2, ack_p50_h=1.5, resolve_p50_h=30.0, past_24h=1),
        {"company": "龙江供热"} | figures(0.8125, 0.95, alerts=3, refund_estimate_cny=2500.0),
        {"company": "Zeta"} | figures(None, 0.0),
        {"company": "A&B <Heat>"} | figures(0.5, 1.0, alerts=0, past_48h=0),
        {"company": LONG} | figures(0.9, 0.625),
        {"company": "Omega"} | figures(None, None),
    ]
    districts = [
        {"district": "香坊区"} | figures(None, None),
        {"district": "道里区"}
        | figures(0.25, 0.4, loops=3, area_m2=30000.0, alerts=4, refund_estimate_cny=1000.5, outdoor_mean=-20.0),
        {"district": "南岗区"}
        | figures(0.7, 0.9, loops=5, area_m2=50000.5, alerts=1, compliant_hours=100.25, unknown_hours=None),
        {"district": "平房区"} | figures(None, 0.0),
    ]
    tables = ReportTables(
        by="station",
        levels={"loop": loops, "station": stations, "company": companies, "district": districts},
        site="热网 <A&B>",
        timezone="Asia/Shanghai",
        start=START,
        stop=STOP,
        indoor_target=18.5,
        indoor_refund_below=16.0,
        fee_per_m2=25.5,
        meta={"points": 1234, "note": None, "source": "rollup <1h>"},
    )
    return dataclasses.replace(tables, **changes)


def approve(name: str, actual: str) -> None:
    """`actual` must equal tests/unit/expected/`name` (REGENERATE_EXPECTED=1 rewrites it, then fails).

    An html page is compared with a line break between adjacent tags (`><`), so that a difference names its
    line and the approved file reads well in a diff (and still opens in a browser)."""
    path = EXPECTED / name
    if name.endswith(".html"):
        actual = actual.replace("><", ">\n<")
    if REGENERATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        pytest.fail(f"{path} regenerated: review `git diff {path}` and rerun without REGENERATE_EXPECTED")
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        for i, (a, e) in enumerate(zip(actual.splitlines(), expected.splitlines(), strict=False)):
            if a != e:
                pytest.fail(f"{name} line {i + 1} differs:\n  got      {a[:300]!r}\n  expected {e[:300]!r}")
        pytest.fail(f"{name}: {len(actual)} characters, expected {len(expected)}")


# ---- csv and json: exact documents


def test_csv_is_exactly_the_asked_level_with_empty_cells_for_none() -> None:
    """The company csv byte for byte: section 8's header, rows in the report's order, numbers as Python
    prints them (a program reads them back exactly), None as an empty cell, names quoted where needed, and
    lines ending in a bare newline (a `\\r\\n` terminator or None written as "None" would show here)."""
    out = render(small_tables(by="company"), "csv", "en")
    assert out.decode() == (
        "company,loops,area_m2,households,monitored_share,compliant_hours,noncompliant_hours,unknown_hours,"
        "beyond_design_hours,compliance_rate,household_days_below_target,household_days_below_refund,"
        "refund_estimate_cny,heat_source_hours,alerts,ack_p50_h,ack_max_h,resolve_p50_h,resolve_max_h,past_24h,"
        "past_48h,outdoor_mean,degree_hours\n"
        "Beta,,,,0.75,,,,,0.5,,,,,2,1.5,,30.0,,1,,,\n"
        "龙江供热,,,,0.95,,,,,0.8125,,,2500.0,,3,,,,,,,,\n"
        "Zeta,,,,0.0,,,,,,,,,,,,,,,,,,\n"
        "A&B <Heat>,,,,1.0,,,,,0.5,,,,,0,,,,,,0,,\n"
        f"{LONG},,,,0.625,,,,,0.9,,,,,,,,,,,,,\n"
        "Omega,,,,,,,,,,,,,,,,,,,,,,\n"
    )
    station = render(small_tables(), "csv", "zh").decode().splitlines()
    assert station[2].startswith(f"{HOSTILE},A&B <Heat>,道里区,1,,,1.0,")  # csv needs no escaping here
    assert render(small_tables(site='a,"b"', by="district"), "csv").decode().splitlines()[1] == "香坊区" + "," * 22


def test_json_is_exactly_the_report_with_null_for_none_and_nan() -> None:
    """The district json byte for byte (expected/report_small_district.json): the period in local time with
    its offset, the settings, the rows in section 8's key order, null for None and for a NaN mean, the
    site total, the meta, Chinese names as written (not \\u escapes) and two-space indentation."""
    total = figures(0.6, 0.8, loops=8, outdoor_mean=float("nan"), degree_hours=float("inf"))
    out = render(small_tables(by="district", total=total, start=START + 0.75), "json", "zh")  # to the second
    approve("report_small_district.json", out.decode())
    doc = json.loads(out)
    assert list(doc) == [
        *("site", "from", "to", "timezone", "by", "indoor_target", "indoor_refund_below", "fee_per_m2"),
        *("rows", "total", "meta"),
    ]
    assert (doc["from"], doc["to"]) == ("2026-11-15T06:00:00+08:00", "2026-12-01T18:30:00+08:00")
    assert [r["district"] for r in doc["rows"]] == ["香坊区", "道里区", "南岗区", "平房区"]
    assert [list(r) for r in doc["rows"]] == [list(columns("district"))] * 4
    assert doc["rows"][2]["area_m2"] == 50000.5 and doc["rows"][2]["unknown_hours"] is None
    assert doc["total"] == total | {"outdoor_mean": None, "degree_hours": None}
    assert doc["meta"] == {"points": 1234, "note": None, "source": "rollup <1h>"}
    assert '"site": "热网 <A&B>",\n  "from"' in out.decode()  # raw UTF-8, indent 2
    plain = json.loads(render(small_tables(by="loop"), "json", "en"))
    assert plain["total"] is None and [r["loop"] for r in plain["rows"]] == ["sec1", "sec2"]


# ---- html: the approved page, then what a reader relies on


@pytest.mark.parametrize("lang", LANGS)
def test_html_page_is_the_approved_one(lang: str) -> None:
    """The whole page (CSS, headings, SVG, tables, notes) as approved in expected/report_small_{lang}.html;
    open that file in a browser to review it."""
    approve(f"report_small_{lang}.html", render(small_tables(), "html", lang).decode())


def test_html_page_by_company_with_a_site_total_is_the_approved_one() -> None:
    """The other branches: no site name, a refund line of None, no fee, no meta, a computed site total, the
    company level in the full table."""
    tables = small_tables(
        by="company",
        site="",
        indoor_refund_below=None,
        fee_per_m2=None,
        meta={},
        total=figures(0.6, 0.8, loops=8, alerts=7, refund_estimate_cny=3500.0),
    )
    approve("report_small_company_en.html", render(tables, "html", "en").decode())


def _section(page: str, name: str) -> str:
    return page.split(f'id="{name}"', 1)[1].split("</section>", 1)[0]


def _bars(svg: str) -> list[tuple[str, float | None, float | None]]:
    """Each chart row's full name with the widths of its rate bar and share bar (None: not drawn)."""
    out = []
    for part in re.split(r"(?=<text x=\"192\")", svg)[1:]:
        name = html.unescape(re.findall(r'data-label="([^"]*)"', part)[0])
        rate = re.findall(r'class="rate" x="200" y="\d+" width="([\d.]+)" height="14"', part)
        share = re.findall(r'class="share" x="200" y="\d+" width="([\d.]+)" height="4"', part)
        out.append((name, float(rate[0]) if rate else None, float(share[0]) if share else None))
    return out


def test_html_bars_are_proportional_and_ordered_best_first_ties_by_name() -> None:
    """400 px is 100 %: each bar is 400 × its figure; companies and districts run best first, the two
    companies at 50 % by name (A&B before Beta, though Beta comes first in the tables), those without a rate
    last; a rate of 0 % is a judged 0 (an empty bar, shown as 0.0 %), not "not judged"."""
    page = render(small_tables(), "html", "en").decode()
    company, district = _section(page, "charts").split('<svg class="chart"')[1:]
    assert _bars(company) == [
        (LONG, 360.0, 250.0),
        ("龙江供热", 325.0, 380.0),
        ("A&B <Heat>", 200.0, 400.0),
        ("Beta", 200.0, 300.0),
        ("Omega", None, None),  # the unrated by name
        ("Zeta", None, 0.0),
    ]
    assert _bars(district) == [
        ("南岗区", 280.0, 360.0),
        ("道里区", 100.0, 160.0),
        ("平房区", None, 0.0),
        ("香坊区", None, None),
    ]
    assert 'viewBox="0 0 760 196"' in company and 'viewBox="0 0 760 140"' in district  # 22 + rows × 28 + 6
    values = re.findall(r'class="value">([^<]*)<', district)
    assert values == ["70.0%", "25.0%", "not judged", "not judged"]
    shares = re.findall(r'class="share-value">([^<]*)<', district)
    assert shares == ["Monitored share 90.0%", "Monitored share 40.0%", "Monitored share 0.0%", "Monitored share –"]


def test_html_bars_stay_inside_the_chart_when_a_figure_leaves_0_to_1() -> None:
    """A share a hair over 1 (sums of rounded hours) or under 0 must not draw past the 100 % or 0 % line."""
    districts = [{"district": "甲"} | figures(1.25, 1.0004), {"district": "乙"} | figures(-0.5, -0.01)]
    tables = small_tables(levels=small_tables().levels | {"district": districts})
    district = _section(render(tables, "html", "zh").decode(), "charts").split('<svg class="chart"')[2]
    assert _bars(district) == [("甲", 400.0, 400.0), ("乙", 0.0, 0.0)]


def test_html_chart_labels_longer_than_27_cells_are_shortened_with_the_full_name_kept() -> None:
    """A label gets 27 half-width cells (about 7 px each): a longer one is cut to at most 26 cells and
    an ellipsis; the full name stays in data-label and the tooltip. A Chinese character takes two cells."""
    names = ["x" * 27, "y" * 28, "长" * 13 + "a", "长" * 14]
    districts = [{"district": n} | figures(0.5 - i / 10, 0.5) for i, n in enumerate(names)]
    tables = small_tables(levels=small_tables().levels | {"district": districts})
    svg = _section(render(tables, "html", "en").decode(), "charts").split('<svg class="chart"')[2]
    labels = re.findall(r'data-label="([^"]*)"><title>([^<]*)</title>([^<]*)</text>', svg)
    assert labels == [
        (names[0], names[0], names[0]),  # exactly 27 cells: kept
        (names[1], names[1], "y" * 26 + "…"),
        (names[2], names[2], names[2]),  # 13 × 2 + 1 = 27 cells
        (names[3], names[3], "长" * 13 + "…"),  # 28 cells: 13 wide characters fill 26
    ]
    long = _bars(_section(render(small_tables(), "html", "zh").decode(), "charts"))[0][0]
    assert long == LONG and "哈尔滨市第一热力供热集团有…<" in render(small_tables(), "html", "zh").decode()


def test_html_ranking_lists_every_company_best_first_with_a_rank() -> None:
    """Ranks 1..6: best rate first, ties by name, the companies without a rate last by name; its cells are numbers
    (right-aligned) or missing (centred dash)."""
    ranking = _section(render(small_tables(), "html", "en").decode(), "ranking")
    rows = re.findall(r"<tr>(.*?)</tr>", ranking.split("<tbody>", 1)[1])
    ranks = [re.findall(r'^<td class="num">(\d+)</td>', r)[0] for r in rows]
    names = [html.unescape(re.findall(r'data-key="company">([^<]*)<', r)[0]) for r in rows]
    assert ranks == ["1", "2", "3", "4", "5", "6"]
    assert names == [LONG, "龙江供热", "A&B <Heat>", "Beta", "Omega", "Zeta"]
    assert '<td class="num" data-key="compliance_rate">50.0%</td>' in rows[3]
    assert '<td class="missing" data-key="compliance_rate">–</td>' in rows[4]
    assert '<td data-key="company">Beta</td>' in rows[3]  # text: no number class
    assert ranking.split("<thead>", 1)[1].startswith('<tr><th>Rank</th><th data-key="company">Heating company</th>')


def test_html_worst_stations_run_worst_first_and_list_the_unjudged() -> None:
    """The worst list: S-04 at 0 % first (a 0 rate is the worst, not missing), then 50 %, 81.2 %; the
    heading counts the listed stations; S-03 (no rate) is listed apart, joined as the language writes it."""
    tables = small_tables()
    tables.levels["station"].append({"station": "S-00", "company": "Beta", "district": "南岗区"} | figures(None, None))
    for lang, title, sep in (
        ("en", "The 3 stations with the lowest compliance rate", ", "),
        ("zh", "室温合格率最低的 3 个换热站", "、"),
    ):
        page = render(tables, "html", lang).decode()
        worst = _section(page, "worst")
        assert f"<h2>{title}</h2>" in worst
        body = worst.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
        names = [html.unescape(n) for n in re.findall(r'data-key="station">([^<]*)<', body)]
        assert names == ["S-04", HOSTILE, "S-01"]
        assert f'<p class="unjudged">S-00{sep}S-03</p>' in worst
        assert "(2)</h3>" in worst


def test_html_worst_list_holds_twenty_stations_with_ties_by_name() -> None:
    """Of 23 judged stations the 20 lowest are listed, equal rates by station name."""
    stations = [{"station": f"T{(i * 7) % 23:02d}"} | figures(round(i // 2 / 20, 2), 1.0) for i in range(23)]
    tables = small_tables(levels=small_tables().levels | {"station": stations})
    worst = _section(render(tables, "html", "en").decode(), "worst")
    names = re.findall(r'<td data-key="station">([^<]*)<', worst)
    expected = sorted(stations, key=lambda r: (float(r["compliance_rate"] or 0), str(r["station"])))[:20]
    assert names == [r["station"] for r in expected] and len(names) == 20
    assert "The 20 stations" in worst and "unjudged" not in worst


def test_html_header_shows_the_site_period_and_settings() -> None:
    """Local time of the report's time zone; settings in the report's language; the site escaped."""
    header = render(small_tables(), "html", "en").decode().split("<header>", 1)[1].split("</header>", 1)[0]
    assert header == (
        "<h1>Heating compliance report — 热网 &lt;A&amp;B&gt;</h1>"
        '<p class="meta period">Period: 2026-11-15 06:00 – 2026-12-01 18:30 (Asia/Shanghai)</p>'
        '<p class="meta settings">Indoor target 18.5 °C · Full refund below 16 °C · '
        "Heating fee (CNY/m²) 25.5 · Report by Stations</p>"
    )
    bare = render(small_tables(site="", fee_per_m2=None, indoor_refund_below=None), "html", "zh").decode()
    assert "<h1>供热室温合格率报告</h1>" in bare and "<title>供热室温合格率报告</title>" in bare
    assert "全额退费线 – · 采暖费 (元/m²) – · 统计单位 换热站" in bare
    assert bare.startswith('<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">')
    assert '<html lang="en">' in render(small_tables(), "html", "en").decode()


def test_html_escapes_every_hostile_name_wherever_it_appears() -> None:
    """A station named `<script>...`, a company `A&B <Heat>` and a site `热网 <A&B>` never become markup: in
    tables, chart labels, tooltips, data attributes, the unjudged list, the title and the meta."""
    tables = small_tables(meta={"<b>key</b>": "<i>value</i>"})
    stations = [*tables.levels["station"], {"station": "<img src=x>", "company": "Zeta"} | figures(None, None)]
    tables = dataclasses.replace(tables, levels=tables.levels | {"station": stations})
    page = render(tables, "html", "en").decode()
    assert not re.search(r"<(script|img|b|i|Heat|A&B)\b", page)
    assert (
        page.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;") == 3
    )  # the worst list and both tables of the full one
    assert "<title>Heating compliance report — 热网 &lt;A&amp;B&gt;</title>" in page
    assert 'data-label="A&amp;B &lt;Heat&gt;"><title>A&amp;B &lt;Heat&gt;</title>A&amp;B &lt;Heat&gt;</text>' in page
    assert "&lt;img src=x&gt;" in _section(page, "worst")
    assert "<tr><th>&lt;b&gt;key&lt;/b&gt;</th><td>&lt;i&gt;value&lt;/i&gt;</td></tr>" in page


def test_html_prints_on_a4_with_repeated_headers_and_the_full_table_landscape() -> None:
    """The print rules a regulator's printout depends on, and the sections they apply to."""
    page = render(small_tables(), "html", "zh").decode()
    css = page.split("<style>", 1)[1].split("</style>", 1)[0]
    for rule in (
        "@page { size: A4; margin: 12mm; }",
        "@page wide { size: A4 landscape; margin: 10mm; }",
        "section { margin-top: 28px; break-before: page; }",
        "section.summary { break-before: auto; margin-top: 14px; }",
        "section.full { page: wide; }",
        "thead { display: table-header-group; }",
        "tr { break-inside: avoid; }",
        "@media print {",
        "print-color-adjust: exact;",
    ):
        assert rule in css, rule
    order = re.findall(r'<section class="([a-z]+)" id="([a-z]+)"', page)
    assert order == [(s, s) for s in ("summary", "ranking", "charts", "worst", "full", "notes")]


def test_html_full_table_is_two_column_groups_each_led_by_the_unit_keys() -> None:
    """The loop level: station, loop, company, district, then the compliance group up to heat_source_hours;
    again the unit keys, then alerts to degree_hours; one row per loop in each."""
    full = _section(render(small_tables(by="loop"), "html", "en").decode(), "full")
    assert "<h2>Every row: Loops</h2><h3>Coverage and compliance</h3>" in full
    tables = full.split("<table>")[1:]
    assert len(tables) == 2 and "<h3>Alert response and weather</h3>" in full
    keys = [re.findall(r'<th data-key="([a-z0-9_]+)">', t) for t in tables]
    unit = ["station", "loop", "company", "district"]
    split = MEASURES.index("alerts")
    assert keys == [unit + list(MEASURES[:split]), unit + list(MEASURES[split:])]
    assert all(t.count("<tr>") == 3 for t in tables)  # heading row and two loops


def test_html_summary_cards_then_the_other_measures_of_the_district_sums() -> None:
    """Without a computed total the summary adds the districts' summable figures (loops 3 + 5, area
    30,000 + 50,000.5, alerts 4 + 1, refund 1,000.5); rates, means and times stay unknown."""
    summary = _section(render(small_tables(), "html", "en").decode(), "summary")
    cards = re.findall(
        r'<div class="card" data-key="(\w+)"><div class="label">([^<]*)</div>'
        r'<div class="value">([^<]*)</div></div>',
        summary,
    )
    assert cards == [
        ("compliance_rate", "Compliance rate", "–"),
        ("monitored_share", "Monitored share", "–"),
        ("alerts", "Alerts", "5"),
        ("refund_estimate_cny", "Refund estimate (CNY)", "1,000"),  # 1,000.5 shown without decimals (even)
    ]
    assert '<tr><th data-key="loops">Loops</th><td class="num" data-key="loops">8</td></tr>' in summary
    assert '<td class="num" data-key="area_m2">80,000</td>' in summary
    assert '<td class="num" data-key="compliant_hours">100.2</td>' in summary
    assert '<td class="missing" data-key="outdoor_mean">–</td>' in summary
    assert '<td class="missing" data-key="unknown_hours">–</td>' in summary
    rows = re.findall(r'<tr><th data-key="(\w+)">', summary)
    assert rows == [
        k for k in MEASURES if k not in ("compliance_rate", "monitored_share", "alerts", "refund_estimate_cny")
    ]


def test_html_of_an_empty_report_says_no_data_in_every_table() -> None:
    """No rows anywhere: each table says so across all its columns; the charts keep their axes."""
    empty = ReportTables(by="district", levels={level: [] for level in LEVELS}, start=START, stop=STOP)
    page = render(empty, "html", "en").decode()
    assert '<tr><td colspan="12">No data</td></tr>' in _section(page, "ranking")  # rank, company and 10
    assert '<tr><td colspan="12">No data</td></tr>' in _section(page, "worst")  # rank, 3 unit keys and 8
    full = _section(page, "full")
    assert full.count('<tr><td colspan="14">No data</td></tr>') == 1  # district and 13 measures
    assert full.count('<tr><td colspan="10">No data</td></tr>') == 1  # district and 9 measures
    assert 'viewBox="0 0 760 56"' in _section(page, "charts")  # room for one row
    assert "unjudged" not in page and "<h1>Heating compliance report</h1>" in page


# ---- xlsx


def _dump(data: bytes) -> str:
    """A workbook as text: per sheet its name, frozen pane, filter, column widths, then every non-empty
    cell with its value, number format and heading style."""
    wb = openpyxl.load_workbook(io.BytesIO(data))
    lines = [f"creator={wb.properties.creator!r} title={wb.properties.title!r}"]
    for ws in wb.worksheets:
        lines.append(f"== {ws.title!r} freeze={ws.freeze_panes} filter={ws.auto_filter.ref} dims={ws.dimensions}")
        lines.append("widths " + " ".join(f"{k}={d.width:g}" for k, d in sorted(ws.column_dimensions.items())))
        for row in ws.iter_rows():
            for c in row:
                if c.value is None and not c.font.b:
                    continue
                style = [c.number_format] if c.number_format != "General" else []
                style += ["bold"] if c.font.b else []
                style += [f"fill={c.fill.fgColor.rgb}"] if c.fill.fill_type else []
                style += ["wrap", f"v={c.alignment.vertical}"] if c.alignment.wrap_text else []
                lines.append(f"{c.coordinate} {c.value!r} {' '.join(style)}".rstrip())
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("lang", LANGS)
def test_xlsx_workbook_is_the_approved_one(lang: str) -> None:
    """Every sheet, cell, number format, heading style and column width as in expected/report_small_*.txt."""
    approve(f"report_small_{lang}.xlsx.txt", _dump(render(small_tables(), "xlsx", lang)))


def test_xlsx_headings_are_bold_on_grey_wrapped_and_frozen_with_a_filter() -> None:
    """Row 1 of each level sheet: bold, filled EDF2F7, wrapped and bottom-aligned; data rows plain."""
    wb = openpyxl.load_workbook(io.BytesIO(render(small_tables(by="company"), "xlsx", "en")))
    assert wb.sheetnames == ["Companies", "Loops", "Stations", "Districts", "About"]
    assert (wb.properties.creator, wb.properties.title) == ("stationmon", "Heating compliance report — 热网 <A&B>")
    ws = wb["Companies"]
    for cell in ws[1]:
        assert cell.font.b and cell.fill.fill_type == "solid" and cell.fill.fgColor.rgb == "00EDF2F7"
        assert cell.alignment.wrap_text and cell.alignment.vertical == "bottom"
    assert not ws["A2"].font.b and ws["A2"].fill.fill_type is None
    assert (ws.freeze_panes, ws.auto_filter.ref) == ("A2", "A1:W7")
    bare = openpyxl.load_workbook(io.BytesIO(render(small_tables(site=""), "xlsx", "zh")))
    assert bare.properties.title == "供热室温合格率报告"


def test_xlsx_column_widths_fit_headings_and_values_within_bounds() -> None:
    """Width = widest of heading (counted up to 18 cells) and shown values, + 2, at least 8, at most 42."""
    unit: Row = {"station": "x" * 60, "company": "龙江供热", "district": "区"}
    stations = [unit | figures(0.5, 1.0, area_m2=1234567.0, households=1234567)]
    tables = small_tables(levels=small_tables().levels | {"station": stations})
    ws = openpyxl.load_workbook(io.BytesIO(render(tables, "xlsx", "zh")))["换热站"]
    width = {c.value: ws.column_dimensions[c.column_letter].width for c in ws[1]}
    assert width["换热站"] == 42  # 60 cells of name: capped
    assert width["供热单位"] == 10  # heading 8 cells, 龙江供热 8 cells
    assert width["区"] == 8  # 2 cells: at least 8
    assert width["供热面积 (m²)"] == 15  # heading 13 cells; "1,234,567" 9
    assert width["户数"] == 11  # shown as "1,234,567" (9 cells), not as the stored 1234567 (7)
    assert width["低于18.5 °C户·天"] == 18  # heading 16 cells (° and · are one cell each)
    assert width["处理用时中位数 (h)"] == 20  # heading 18 cells
    en = openpyxl.load_workbook(io.BytesIO(render(tables, "xlsx", "en")))["Stations"]
    assert en.cell(1, 13).value == "Household-days below 18.5 °C"  # 28 cells: counted as 18, wrapped
    assert en.column_dimensions["M"].width == 20


def test_xlsx_about_sheet_in_order() -> None:
    """The about sheet's first rows, the site's figures with their formats, the column table and meta."""
    ws = openpyxl.load_workbook(io.BytesIO(render(small_tables(), "xlsx", "en")))["About"]
    rows = [[c.value for c in r] for r in ws.iter_rows(max_col=3)]
    assert rows[:10] == [
        ["Heating compliance report", "热网 <A&B>", None],
        ["Period", "2026-11-15 06:00 – 2026-12-01 18:30", None],
        ["Time zone", "Asia/Shanghai", None],
        ["Report by", "Stations", None],
        ["Indoor target", "18.5 °C", None],
        ["Full refund below", "16 °C", None],
        ["Heating fee (CNY/m²)", 25.5, None],
        [None, None, None],
        ["Summary", None, None],
        ["Loops", 8, None],
    ]
    assert ws["A9"].font.b and ws.cell(10, 2).number_format == "#,##0"
    assert ws.cell(9 + 1 + MEASURES.index("compliance_rate"), 2).number_format == "0.0%"
    head = 9 + len(MEASURES) + 2
    assert rows[head - 1] == ["Heading", "Key", "Meaning"] and all(c.font.b for c in ws[head])
    assert rows[head] == ["Station", "station", "the station's id"]
    assert rows[head + len(COLUMN_KEYS) + 1 :] == [
        ["Other", None, None],
        ["points", 1234, None],
        ["note", None, None],
        ["source", "rollup <1h>", None],
    ]
    assert ws.cell(head + len(COLUMN_KEYS) + 2, 1).font.b
    assert [ws.column_dimensions[c].width for c in "ABC"] == [32, 42, 42]
    no_meta = openpyxl.load_workbook(io.BytesIO(render(small_tables(meta={}), "xlsx", "en")))["About"]
    assert no_meta.max_row == head + len(COLUMN_KEYS)


# ---- i18n


def test_every_word_exists_in_both_languages_and_placeholders_match() -> None:
    """Each text and meaning in zh and en, the same {placeholders} in both; every column has a kind."""
    assert LANGS == ("zh", "en")
    for key, pair in [*TEXT.items(), *MEANINGS.items()]:
        assert len(pair) == 2 and all(w.strip() == w and w for w in pair), key
        assert set(re.findall(r"{(\w+)}", pair[0])) == set(re.findall(r"{(\w+)}", pair[1])), key
    assert list(COLUMN_KEYS) == ["station", "loop", "company", "district", *MEASURES]
    assert set(KINDS.values()) == {"text", "int", "area", "rate", "hours", "number", "cny", "temp"}
    assert [check_lang(lang) for lang in LANGS] == [0, 1]


@pytest.mark.parametrize("lang", ["fr", "ZH", ""])
def test_an_unknown_language_is_refused_by_every_lookup(lang: str) -> None:
    for call in (lambda: text("title", lang), lambda: meaning("loops", lang), lambda: heading("loops", lang)):
        with pytest.raises(ValueError, match=rf"unknown language {lang!r} \(expected one of zh, en\)"):
            call()


def test_words_and_headings_fill_their_placeholders() -> None:
    assert text("title", "zh") == "供热室温合格率报告" and text("title", "en") == "Heating compliance report"
    assert text("worst", "en", n=3) == "The 3 stations with the lowest compliance rate"
    assert text("full", "zh", level="区") == "全部区"
    assert text("worst", "zh") == "室温合格率最低的 {n} 个换热站"  # no values: the template as written
    assert heading("household_days_below_target", "en", 18.5, 16.0) == "Household-days below 18.5 °C"
    assert heading("household_days_below_refund", "zh", 18.5, None) == "低于–户·天"
    assert meaning("loops", "zh") == "回路数量" and meaning("loops", "en") == "number of loops"
    assert (degrees(None), degrees(18.0), degrees(-0.5)) == (MISSING, "18 °C", "-0.5 °C") and MISSING == "–"


@pytest.mark.parametrize(
    ("label", "cells"),
    [("", 0), ("abc", 3), ("区", 2), ("供热 (m²)", 9), ("°C·h", 4), ("ＡＢ", 4), ("ｱ", 1), ("–…", 2)],
)
def test_display_width_counts_wide_characters_twice(label: str, cells: int) -> None:
    """Wide (W) and full-width (F) characters take two cells; narrow, half-width and ambiguous ones one."""
    assert display_width(label) == cells


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("loops", 1234, "1,234"),
        ("area_m2", 1234.5, "1,234"),  # rounds half to even
        ("refund_estimate_cny", 2345.5, "2,346"),
        ("degree_hours", 14400.0, "14,400"),
        ("compliance_rate", 0.0, "0.0%"),
        ("compliance_rate", 0.99951, "100.0%"),
        ("compliance_rate", 1, "100.0%"),
        ("household_days_below_target", 1234.25, "1,234.2"),
        ("compliant_hours", 0.05, "0.1"),
        ("outdoor_mean", -18.25, "-18.2"),
        ("past_24h", 0, "0"),
        ("station", "<b>", "<b>"),  # escaping is html's business
        ("company", 12, "12"),  # a number as a name prints as it is
        ("alerts", "n/a", "n/a"),  # a text where a number belongs: as it is
        ("points", 1234, "1234"),  # a key without a kind: text
        ("points", 0.5, "0.5"),
        ("alerts", float("nan"), "–"),
        ("alerts", None, "–"),
    ],
)
def test_values_show_as_their_kind(key: str, value: Any, shown: str) -> None:
    assert format_value(key, value) == shown


def test_site_total_takes_the_computed_total_else_sums_the_districts() -> None:
    """A computed total is used as is (only its measures, in order); otherwise the summable measures add
    up over districts, skipping unknowns and text; with nothing known a sum is None, not 0."""
    given = small_tables(total={"alerts": 7, "extra": "x"})
    assert site_total(given) == dict.fromkeys(MEASURES) | {"alerts": 7}
    assert list(site_total(given)) == list(MEASURES)
    total = site_total(small_tables())
    assert (total["loops"], total["area_m2"], total["alerts"]) == (8, 80000.5, 5)
    assert total["refund_estimate_cny"] == 1000.5 and total["compliant_hours"] == 100.25
    assert total["unknown_hours"] is None and total["households"] is None
    assert total["compliance_rate"] is None and total["outdoor_mean"] is None  # not summable
    odd = small_tables(levels={"district": [{"district": "a", "alerts": "3"}, {"district": "b", "alerts": 2}]})
    assert site_total(odd)["alerts"] == 2


def test_json_never_writes_the_non_json_token_nan() -> None:
    """Rows and the total turn NaN into null; a NaN anywhere else (meta) is refused, not written as `NaN`,
    which strict JSON readers reject (json.dumps's default would write it)."""
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        render(small_tables(meta={"ratio": float("nan")}), "json")


def test_html_a_company_without_a_name_is_a_blank_label_not_none() -> None:
    """Stations without a company form a company row named "" (the config's default): its chart label,
    tooltip and ranking cell are blank, and it ranks like any other company."""
    companies = [{"company": ""} | figures(0.95, 1.0), *small_tables().levels["company"]]
    page = render(small_tables(levels=small_tables().levels | {"company": companies}), "html", "en").decode()
    assert _bars(_section(page, "charts").split('<svg class="chart"')[1])[0] == ("", 380.0, 400.0)
    assert 'data-label=""><title></title></text>' in page
    ranking = _section(page, "ranking").split("<tbody>", 1)[1]
    assert ranking.startswith('<tr><td class="num">1</td><td data-key="company"></td>')
