"""The compliance report's formats (csv, json, html, xlsx) from hand-built tables.

The tables hold several companies, districts and stations, None where nothing is known, and names
that need escaping; csv and json are checked exactly, html for every heading and every formatted value
in both languages, xlsx by opening it back with openpyxl.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import html
import io
import json
import re
from typing import Any

import openpyxl
import pytest

from stationmon.domain.report_html import COLUMN_GROUPS, WORST_N
from stationmon.domain.report_i18n import (
    COLUMN_KEYS,
    KINDS,
    LANGS,
    MEANINGS,
    SUMMABLE,
    TEXT,
    format_value,
    heading,
    site_total,
    text,
)
from stationmon.domain.report_render import FORMATS, render
from stationmon.domain.report_tables import LEVELS, MEASURES, ReportTables, Row, columns
from stationmon.domain.report_xlsx import NUMBER_FORMATS, sheet_order

CST = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2026, 11, 1, tzinfo=CST).timestamp()
STOP = dt.datetime(2026, 12, 1, tzinfo=CST).timestamp()
EVIL = '<script>alert("x")</script> & Co'  # a company name from a config: must be escaped everywhere
COMPANIES = ("哈尔滨热电有限公司", "龙江供热集团", EVIL, "Sunrise Heat")
DISTRICTS = ("南岗区", "道里区", "香坊区")


def unit_measures(i: int, judged: bool = True) -> Row:
    """Plausible, distinct figures for unit number `i` (None where not judged or not known)."""
    loops = 1 + i % 3
    hours = 720.0 * loops
    unknown = 6.5 * i + 0.25
    rate = round(0.5 + 0.49 * ((i * 37) % 101) / 101, 4)  # distinct, unordered, within 50–99 %
    ok = 0.0 if not judged else round((hours - unknown) * rate, 2)
    bad = 0.0 if not judged else round(hours - unknown - ok, 2)
    return {
        "loops": loops,
        "area_m2": 12_000.0 * loops + 500 * i,
        "households": 200 * loops + i,
        "monitored_share": round((ok + bad) / hours, 4),
        "compliant_hours": ok,
        "noncompliant_hours": bad,
        "unknown_hours": unknown,
        "beyond_design_hours": 3.5 * (i % 4),
        "compliance_rate": rate if judged else None,
        "household_days_below_target": 10.25 * i,
        "household_days_below_refund": 1.5 * (i % 5),
        "refund_estimate_cny": 1234.5 * i if i % 6 else None,
        "heat_source_hours": 2.0 * (i % 3),
        "alerts": i % 7,
        "ack_p50_h": 0.75 + i / 10 if i % 7 else None,
        "ack_max_h": 3.25 + i if i % 7 else None,
        "resolve_p50_h": 5.5 + i if i % 7 else None,
        "resolve_max_h": 30.0 + i if i % 7 else None,
        "past_24h": (i % 7) // 2,
        "past_48h": (i % 7) // 4,
        "outdoor_mean": -12.5 - i / 4,
        "degree_hours": 21_600.0 + 100 * i,
    }


def sample_tables(by: str = "station", n_stations: int = 26) -> ReportTables:
    """Stations over 4 companies and 3 districts (two not judged at all), their loops, companies, districts."""
    stations: list[Row] = []
    loops: list[Row] = []
    for i in range(n_stations):
        sid = f"站{i:02d}" if i % 5 else f"st-{i:02d} <b>&\"'"
        unit: Row = {"station": sid, "company": COMPANIES[i % 4], "district": DISTRICTS[i % 3]}
        stations.append(unit | unit_measures(i, judged=i not in (3, 17)))
        for j in range(1 + i % 3):
            loops.append(unit | {"loop": f"sec{j + 1}"} | unit_measures(i + j, judged=i not in (3, 17)))
    companies = [{"company": c} | unit_measures(40 + k) for k, c in enumerate(COMPANIES)]
    companies[3] |= {"compliance_rate": None, "monitored_share": 0.0}
    districts = [{"district": d} | unit_measures(50 + k) for k, d in enumerate(DISTRICTS)]
    districts[0] |= {"refund_estimate_cny": None}
    return ReportTables(
        by=by,
        levels={"loop": loops, "station": stations, "company": companies, "district": districts},
        site="哈尔滨 <市> 供热",
        timezone="Asia/Shanghai",
        start=START,
        stop=STOP,
        indoor_target=20.0,
        indoor_refund_below=16.0,
        fee_per_m2=29.8,
        meta={"exempt_below_design": "false", "inspection_exclude": "10:00-14:00", "points": 1234, "note": None},
    )


# ---- headings


def test_every_key_and_word_has_a_chinese_and_an_english_text() -> None:
    for level in LEVELS:
        for key in columns(level):
            assert key in TEXT and key in MEANINGS and key in KINDS, key
    for key, words in [*TEXT.items(), *MEANINGS.items()]:
        assert len(words) == len(LANGS) and all(w.strip() for w in words), key
        assert words[0] != words[1] or key in ("area_m2",), key  # translated, not copied
    assert set(COLUMN_KEYS) == set(MEANINGS) == set(KINDS)
    assert {k for k, v in KINDS.items() if v != "text"} == set(MEASURES)


def test_headings_name_the_tiers_and_differ_by_language() -> None:
    assert heading("household_days_below_target", "zh", 20.0, 16.0) == "低于20 °C户·天"
    assert heading("household_days_below_refund", "en", 20.0, 16.0) == "Household-days below 16 °C"
    assert heading("household_days_below_refund", "en", 18.0, None) == "Household-days below –"
    assert heading("unknown_hours", "zh") == "未知回路小时" and heading("unknown_hours", "en") == "Unknown loop-hours"
    assert heading("monitored_share", "zh") == "监测覆盖率"
    assert heading("compliance_rate", "zh") == "室温合格率"


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("compliance_rate", 0.9234, "92.3%"),
        ("monitored_share", 1.0, "100.0%"),
        ("monitored_share", 0, "0.0%"),
        ("unknown_hours", 1234.56, "1,234.6"),
        ("refund_estimate_cny", 1234567.4, "1,234,567"),
        ("area_m2", 160000.0, "160,000"),
        ("households", 3000, "3,000"),
        ("outdoor_mean", -12.25, "-12.2"),
        ("alerts", 0, "0"),
        ("ack_p50_h", None, "–"),
        ("resolve_max_h", float("nan"), "–"),
        ("station", "站01", "站01"),
    ],
)
def test_values_are_formatted_for_readers(key: str, value: Any, shown: str) -> None:
    assert format_value(key, value) == shown


# ---- bad arguments


@pytest.mark.parametrize("fmt", ["pdf", "CSV", ""])
def test_an_unknown_format_names_the_valid_ones(fmt: str) -> None:
    with pytest.raises(ValueError, match=r"unknown format .*expected one of csv, html, json, xlsx"):
        render(sample_tables(), fmt, "zh")


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_unknown_language_names_the_valid_ones(fmt: str) -> None:
    with pytest.raises(ValueError, match=r"unknown language 'fr' \(expected one of zh, en\)"):
        render(sample_tables(), fmt, "fr")


# ---- csv and json


def test_csv_is_the_asked_level_with_section_8_keys_whatever_the_language() -> None:
    tables = sample_tables(by="company")
    out = render(tables, "csv", "en")
    assert out == render(tables, "csv", "zh")
    lines = out.decode().splitlines()
    assert lines[0] == ",".join(columns("company"))
    assert lines[1] == (
        "哈尔滨热电有限公司,2,44000.0,440,0.8193,967.63,212.12,260.25,0.0,0.8202,410.0,0.0,"
        "49380.0,2.0,5,4.75,43.25,45.5,70.0,2,1,-22.5,25600.0"
    )
    rows = list(csv.DictReader(io.StringIO(out.decode())))
    assert [r["company"] for r in rows] == list(COMPANIES)
    assert rows[3]["compliance_rate"] == ""  # None is an empty cell
    assert rows[2]["ack_p50_h"] == "" and rows[2]["alerts"] == "0"


def test_csv_quotes_what_needs_quoting() -> None:
    rows = list(csv.reader(io.StringIO(render(sample_tables(), "csv").decode())))
    assert rows[0] == list(columns("station"))
    assert rows[1][0] == "st-00 <b>&\"'" and rows[3][1] == EVIL
    assert len(rows) == 27 and all(len(r) == len(columns("station")) for r in rows)


def test_json_carries_the_period_site_settings_rows_and_meta() -> None:
    tables = sample_tables(by="district")
    doc = json.loads(render(tables, "json", "en"))
    assert render(tables, "json", "zh") == render(tables, "json", "en")
    assert doc["site"] == "哈尔滨 <市> 供热"
    assert (doc["from"], doc["to"]) == ("2026-11-01T00:00:00+08:00", "2026-12-01T00:00:00+08:00")
    assert (doc["timezone"], doc["by"]) == ("Asia/Shanghai", "district")
    assert (doc["indoor_target"], doc["indoor_refund_below"], doc["fee_per_m2"]) == (20.0, 16.0, 29.8)
    assert doc["meta"] == {
        "exempt_below_design": "false",
        "inspection_exclude": "10:00-14:00",
        "points": 1234,
        "note": None,
    }
    assert doc["total"] is None  # not computed by these tables
    assert [list(r) for r in doc["rows"]] == [list(columns("district"))] * 3
    assert doc["rows"][0] == {"district": "南岗区"} | unit_measures(50) | {"refund_estimate_cny": None}
    assert doc["rows"][1] == {"district": "道里区"} | unit_measures(51)


def test_json_keeps_the_site_total_and_turns_nan_into_null() -> None:
    base = sample_tables()
    total = unit_measures(7) | {"outdoor_mean": float("nan")}
    tables = dataclasses.replace(base, total=total)
    doc = json.loads(render(tables, "json"))
    assert doc["total"] == unit_measures(7) | {"outdoor_mean": None}
    assert list(doc["total"]) == list(MEASURES)


def test_site_total_sums_the_districts_when_the_report_did_not_compute_it() -> None:
    tables = sample_tables()
    total = site_total(tables)
    districts = tables.levels["district"]
    assert total["alerts"] == sum(int(d["alerts"] or 0) for d in districts)
    assert total["unknown_hours"] == pytest.approx(sum(float(d["unknown_hours"] or 0) for d in districts))
    assert total["refund_estimate_cny"] == 1234.5 * (51 + 52)  # the None of district 50 is left out
    assert all(total[k] is None for k in MEASURES if k not in SUMMABLE)
    given = dataclasses.replace(tables, total=unit_measures(9))
    assert site_total(given) == unit_measures(9)


# ---- html


def _visible(page: str) -> str:
    """The page's text as a reader sees it (tags dropped, entities decoded)."""
    page = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "\n", page))


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("by", LEVELS)
def test_html_shows_every_heading_and_every_value_of_the_asked_level(lang: str, by: str) -> None:
    tables = sample_tables(by=by)
    page = render(tables, "html", lang).decode()
    visible = _visible(page)
    full = page.split('id="full"', 1)[1].split('id="notes"', 1)[0]
    for key in columns(by):
        assert f'<th data-key="{key}">{html.escape(heading(key, lang, 20.0, 16.0))}</th>' in full, key
    for row in tables.levels[by]:
        for key in columns(by):
            cell = f'data-key="{key}">{html.escape(format_value(key, row.get(key)))}</td>'
            assert cell in full, (key, row.get(key))
    for word in ("title", "summary", "ranking", "chart.company", "chart.district", "notes", "chart.legend"):
        assert text(word, lang) in visible, word
    assert text("worst", lang, n=WORST_N) in visible
    other = LANGS[1 - LANGS.index(lang)]
    assert text("ranking", other) not in visible


def test_html_every_measure_sits_in_one_group_of_the_full_table() -> None:
    grouped = [k for _, keys in COLUMN_GROUPS for k in keys]
    assert grouped == list(MEASURES)  # unknown_hours and monitored_share included, each once


def test_html_title_period_settings_and_summary() -> None:
    tables = dataclasses.replace(sample_tables(), total=unit_measures(9))
    visible = _visible(render(tables, "html", "zh").decode())
    assert "供热室温合格率报告 — 哈尔滨 <市> 供热" in visible
    assert "2026-11-01 00:00 – 2026-12-01 00:00 (Asia/Shanghai)" in visible
    assert "室温标准 20 °C · 全额退费线 16 °C · 采暖费 (元/m²) 29.8 · 统计单位 换热站" in visible
    summary = visible.split("概要", 1)[1].split("供热单位排名", 1)[0]
    for key in MEASURES:
        assert heading(key, "zh", 20.0, 16.0) in summary, key
        assert format_value(key, unit_measures(9)[key]) in summary, key
    assert "64.5%" in summary and "91.8%" in summary  # compliance rate, monitored share


def test_html_ranks_companies_by_compliance_rate_with_their_response_times() -> None:
    page = render(sample_tables(), "html", "en").decode()
    ranking = page.split('id="ranking"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", ranking.split("<tbody>", 1)[1])
    names = [html.unescape(re.findall(r'data-key="company">([^<]*)<', r)[0]) for r in rows]
    rates = {c: unit_measures(40 + k)["compliance_rate"] for k, c in enumerate(COMPANIES[:3])}
    assert names == [*sorted(rates, key=lambda c: -float(rates[c] or 0)), "Sunrise Heat"]
    best = 40 + COMPANIES.index(names[0])
    assert rows[0].startswith('<td class="num">1</td>')
    for key in ("compliance_rate", "monitored_share", "ack_p50_h", "resolve_p50_h", "past_24h", "past_48h"):
        assert f'data-key="{key}">{html.escape(format_value(key, unit_measures(best)[key]))}<' in rows[0], key
    assert 'data-key="compliance_rate">–<' in rows[3]  # no judged data: last, shown as –


def test_html_lists_the_worst_stations_and_those_without_judged_data() -> None:
    tables = sample_tables()
    page = render(tables, "html", "en").decode()
    worst = page.split('id="worst"', 1)[1].split("</section>", 1)[0]
    body = worst.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rates = [float(x) for x in re.findall(r'data-key="compliance_rate">([\d.]+)%<', body)]
    assert len(rates) == WORST_N and rates == sorted(rates)
    judged = sorted(
        float(r["compliance_rate"] or 0) for r in tables.levels["station"] if r["compliance_rate"] is not None
    )
    assert rates[0] == round(100 * judged[0], 1) and rates[-1] == round(100 * judged[WORST_N - 1], 1)
    assert "Stations without judged data (2)" in _visible(worst)
    assert "站03" in _visible(worst) and "站17" in _visible(worst)


def test_html_charts_draw_one_bar_per_company_and_district_with_labels() -> None:
    page = render(sample_tables(), "html", "zh").decode()
    charts = page.split('id="charts"', 1)[1].split("</section>", 1)[0]
    company, district = charts.split('<svg class="chart"')[1:]
    assert company.count('class="rate"') == 3 and company.count('class="share"') == 4  # one company not judged
    assert "无判定数据" in company
    assert company.count('class="share-value"') == 4 and "监测覆盖率 0.0%" in company
    assert district.count('class="rate"') == 3 and district.count('class="share"') == 3
    for d in sample_tables().levels["district"]:
        assert f'data-label="{d["district"]}"' in district
        assert format_value("compliance_rate", d["compliance_rate"]) in district
    width = float(re.findall(r'class="rate" x="200" y="\d+" width="([\d.]+)"', district)[0])
    best = max(float(d["compliance_rate"] or 0) for d in sample_tables().levels["district"])
    assert width == pytest.approx(400 * best, abs=0.1)  # best district first


def test_html_escapes_every_name_and_needs_nothing_from_outside() -> None:
    page = render(sample_tables(), "html", "en").decode()
    assert "<script" not in page and "<b>" not in page and "<市>" not in page
    assert html.escape(EVIL) in page and "&lt;市&gt;" in page
    assert not re.search(r"""(src|href)\s*=|url\(|@import""", page)  # self-contained
    assert "@page" in page and "table-header-group" in page and "break-before: page" in page


def test_html_notes_explain_every_column_and_show_the_meta() -> None:
    visible = _visible(render(sample_tables(by="loop"), "html", "en").decode())
    notes = visible.split("Notes", 1)[1]
    for key in columns("loop"):
        assert key in notes and MEANINGS[key][1] in notes, key
    assert "inspection_exclude\n\n10:00-14:00" in notes and "points\n\n1234" in notes


def test_html_of_tables_without_rows_still_renders() -> None:
    empty = ReportTables(by="station", levels={level: [] for level in LEVELS}, start=START, stop=STOP)
    visible = _visible(render(empty, "html", "zh").decode())
    assert "无数据" in visible and "供热室温合格率报告" in visible


# ---- xlsx


def _workbook(tables: ReportTables, lang: str) -> Any:
    data = render(tables, "xlsx", lang)
    assert data[:2] == b"PK"
    return openpyxl.load_workbook(io.BytesIO(data))


@pytest.mark.parametrize("lang", LANGS)
def test_xlsx_has_one_sheet_per_level_the_asked_one_first(lang: str) -> None:
    wb = _workbook(sample_tables(by="company"), lang)
    assert sheet_order("company") == ("company", "loop", "station", "district")
    assert wb.sheetnames == [text("level." + lv, lang) for lv in sheet_order("company")] + [text("about", lang)]
    for level in LEVELS:
        ws = wb[text("level." + level, lang)]
        assert [c.value for c in ws[1]] == [heading(k, lang, 20.0, 16.0) for k in columns(level)]
        assert ws.max_row == 1 + len(sample_tables().levels[level])
        assert ws.freeze_panes == "A2" and ws.auto_filter.ref == ws.dimensions


def test_xlsx_cells_are_numbers_with_formats_and_none_is_empty() -> None:
    tables = sample_tables()
    wb = _workbook(tables, "zh")
    ws = wb["换热站"]
    keys = columns("station")
    for r, row in enumerate(tables.levels["station"], 2):
        for c, key in enumerate(keys, 1):
            cell = ws.cell(r, c)
            assert cell.value == row[key], (r, key)
            if row[key] is not None and KINDS[key] != "text":
                assert isinstance(cell.value, int | float) and cell.number_format == NUMBER_FORMATS[KINDS[key]]
    rate = ws.cell(2, keys.index("compliance_rate") + 1)
    assert rate.value == 0.5 and rate.number_format == "0.0%"
    assert ws.cell(5, keys.index("compliance_rate") + 1).value is None  # station 3: not judged
    assert ws.cell(2, 1).value == "st-00 <b>&\"'"  # stored as text, not markup
    assert ws.column_dimensions["A"].width >= 10


def test_xlsx_about_sheet_holds_period_settings_figures_and_meanings() -> None:
    tables = dataclasses.replace(sample_tables(), total=unit_measures(9))
    ws = _workbook(tables, "en")["About"]
    rows = [tuple(c.value for c in r) for r in ws.iter_rows()]
    first: dict[Any, Any] = {}
    for r in rows:
        if r and r[0] is not None:
            first.setdefault(r[0], r[1])
    assert first["Heating compliance report"] == "哈尔滨 <市> 供热"
    assert first["Period"] == "2026-11-01 00:00 – 2026-12-01 00:00"
    assert (first["Time zone"], first["Report by"]) == ("Asia/Shanghai", "Stations")
    assert (first["Indoor target"], first["Full refund below"], first["Heating fee (CNY/m²)"]) == (
        "20 °C",
        "16 °C",
        29.8,
    )
    assert first["Compliance rate"] == unit_measures(9)["compliance_rate"]
    assert first["Unknown loop-hours"] == unit_measures(9)["unknown_hours"]
    assert first["Monitored share"] == unit_measures(9)["monitored_share"]
    meanings = {r[1]: r[2] for r in rows if len(r) > 2 and r[1] in COLUMN_KEYS}
    assert meanings == {k: MEANINGS[k][1] for k in COLUMN_KEYS}
    assert first["inspection_exclude"] == "10:00-14:00" and first["points"] == 1234


def test_xlsx_of_tables_without_rows_has_headings_only() -> None:
    empty = ReportTables(by="district", levels={level: [] for level in LEVELS}, start=START, stop=STOP)
    wb = _workbook(empty, "zh")
    assert wb.sheetnames == ["区", "回路", "换热站", "供热单位", "说明"]
    assert wb["区"].max_row == 1 and wb["区"]["A1"].value == "区"
