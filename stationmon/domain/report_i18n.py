"""The compliance report's words and numbers: headings and meanings in Chinese and English, and how a value
of each section 8 key is shown. Pure.

Shares (`monitored_share`, `compliance_rate`) are fractions 0–1; they print as percentages. A heading may
name the settings it depends on: `{target}` is `indoor_target`, `{refund}` is `indoor_refund_below`.
"""

from __future__ import annotations

import math
import unicodedata

from stationmon.domain.report_tables import LEVELS, MEASURES, UNIT_KEYS, ReportTables, Row

__all__ = [
    "COLUMN_KEYS",
    "KINDS",
    "LANGS",
    "MEANINGS",
    "MISSING",
    "SUMMABLE",
    "TEXT",
    "check_lang",
    "degrees",
    "display_width",
    "format_value",
    "heading",
    "meaning",
    "site_total",
    "text",
]

LANGS = ("zh", "en")
MISSING = "–"  # what a None prints as

# Every key a row can carry, in section 8's order.
COLUMN_KEYS: tuple[str, ...] = tuple(dict.fromkeys(k for level in LEVELS for k in UNIT_KEYS[level])) + MEASURES

# How each key's value is shown: text, int (thousands), rate (%), hours (1 decimal), cny, area, temp, number.
KINDS: dict[str, str] = {
    "station": "text",
    "loop": "text",
    "company": "text",
    "district": "text",
    "loops": "int",
    "area_m2": "area",
    "households": "int",
    "monitored_share": "rate",
    "compliant_hours": "hours",
    "noncompliant_hours": "hours",
    "unknown_hours": "hours",
    "beyond_design_hours": "hours",
    "compliance_rate": "rate",
    "household_days_below_target": "number",
    "household_days_below_refund": "number",
    "refund_estimate_cny": "cny",
    "heat_source_hours": "hours",
    "alerts": "int",
    "ack_p50_h": "hours",
    "ack_max_h": "hours",
    "resolve_p50_h": "hours",
    "resolve_max_h": "hours",
    "past_24h": "int",
    "past_48h": "int",
    "outdoor_mean": "temp",
    "degree_hours": "area",
}

# key -> (zh, en): column headings, level names, section headings and the page's other words.
TEXT: dict[str, tuple[str, str]] = {
    # columns
    "station": ("换热站", "Station"),
    "loop": ("回路", "Loop"),
    "company": ("供热单位", "Heating company"),
    "district": ("区", "District"),
    "loops": ("回路数", "Loops"),
    "area_m2": ("供热面积 (m²)", "Area (m²)"),
    "households": ("户数", "Households"),
    "monitored_share": ("监测覆盖率", "Monitored share"),
    "compliant_hours": ("达标回路小时", "Compliant loop-hours"),
    "noncompliant_hours": ("不达标回路小时", "Noncompliant loop-hours"),
    "unknown_hours": ("未知回路小时", "Unknown loop-hours"),
    "beyond_design_hours": ("低于设计温度小时", "Beyond-design loop-hours"),
    "compliance_rate": ("室温合格率", "Compliance rate"),
    "household_days_below_target": ("低于{target}户·天", "Household-days below {target}"),
    "household_days_below_refund": ("低于{refund}户·天", "Household-days below {refund}"),
    "refund_estimate_cny": ("估算退费 (元)", "Refund estimate (CNY)"),
    "heat_source_hours": ("热源原因小时", "Heat-source loop-hours"),
    "alerts": ("告警数", "Alerts"),
    "ack_p50_h": ("确认用时中位数 (h)", "Ack p50 (h)"),
    "ack_max_h": ("确认用时最长 (h)", "Ack max (h)"),
    "resolve_p50_h": ("处理用时中位数 (h)", "Resolve p50 (h)"),
    "resolve_max_h": ("处理用时最长 (h)", "Resolve max (h)"),
    "past_24h": ("超24小时", "Over 24 h"),
    "past_48h": ("超48小时", "Over 48 h"),
    "outdoor_mean": ("平均室外温度 (°C)", "Mean outdoor (°C)"),
    "degree_hours": ("供暖度时 (K·h)", "Degree-hours (K·h)"),
    # levels (plural, for sheet names and table titles)
    "level.loop": ("回路", "Loops"),
    "level.station": ("换热站", "Stations"),
    "level.company": ("供热单位", "Companies"),
    "level.district": ("区", "Districts"),
    # sections and words
    "title": ("供热室温合格率报告", "Heating compliance report"),
    "period": ("统计期间", "Period"),
    "settings": ("标准", "Settings"),
    "indoor_target": ("室温标准", "Indoor target"),
    "indoor_refund_below": ("全额退费线", "Full refund below"),
    "fee_per_m2": ("采暖费 (元/m²)", "Heating fee (CNY/m²)"),
    "by": ("统计单位", "Report by"),
    "timezone": ("时区", "Time zone"),
    "summary": ("概要", "Summary"),
    "ranking": ("供热单位排名（按室温合格率）", "Heating companies ranked by compliance rate"),
    "rank": ("名次", "Rank"),
    "chart.company": ("各供热单位室温合格率", "Compliance rate per heating company"),
    "chart.district": ("各区室温合格率", "Compliance rate per district"),
    "chart.legend": (
        "粗条：室温合格率；细灰条：监测覆盖率",
        "Thick bar: compliance rate; thin grey bar: monitored share",
    ),
    "worst": ("室温合格率最低的 {n} 个换热站", "The {n} stations with the lowest compliance rate"),
    "not_judged": ("无判定数据的换热站", "Stations without judged data"),
    "full": ("全部{level}", "Every row: {level}"),
    "group.compliance": ("覆盖与合格", "Coverage and compliance"),
    "group.alerts": ("告警响应与天气", "Alert response and weather"),
    "notes": ("说明", "Notes"),
    "key": ("字段", "Key"),
    "heading": ("标题", "Heading"),
    "meaning": ("含义", "Meaning"),
    "meta": ("其他", "Other"),
    "no_rows": ("无数据", "No data"),
    "none_judged": ("无判定数据", "not judged"),
    "generated": (
        "报告依据 stationmon 存储的回路状态与告警事件",
        "Computed by stationmon from stored loop status and alert events",
    ),
    "about": ("说明", "About"),
}

# key -> (zh, en): what a column means (CONTRACT section 8), for the notes and the xlsx "about" sheet.
MEANINGS: dict[str, tuple[str, str]] = {
    "station": ("换热站编号", "the station's id"),
    "loop": ("二次网回路编号", "the secondary loop's id"),
    "company": ("供热单位", "the heating company"),
    "district": ("行政区", "the district"),
    "loops": ("回路数量", "number of loops"),
    "area_m2": ("供热面积", "heated area"),
    "households": ("户数", "households served"),
    "monitored_share": (
        "有判定数据的时间占统计期间的比例；其余时间既不算合格也不算不合格",
        "share of the period with judged data (coverage); the rest is neither good nor bad",
    ),
    "compliant_hours": ("判定为达标的回路小时", "loop-hours judged compliant"),
    "noncompliant_hours": ("判定为不达标的回路小时", "loop-hours judged noncompliant"),
    "unknown_hours": (
        "无法判定的回路小时（离线、传感器故障、无数据；数据空缺计为未知）",
        "loop-hours with no verdict (offline, sensor fault, no data; a gap counts as unknown)",
    ),
    "beyond_design_hours": (
        "室外温度低于设计温度的回路小时，单独列出",
        "loop-hours with the outdoor temperature below design, kept apart",
    ),
    "compliance_rate": (
        "室温合格率：按面积加权，检测时段内已判定时间中室温不低于标准的比例（有户内传感器时按传感器，否则按估算）",
        "area-weighted share of judged inspection-hour time at or above the indoor target "
        "(by household sensors where they report, else the estimate)",
    ),
    "household_days_below_target": (
        "检测时段内室温低于标准的户·天（传感器比例 × 户数）",
        "household-days below the indoor target in inspection hours (sensor share × households)",
    ),
    "household_days_below_refund": (
        "检测时段内室温低于全额退费线的户·天",
        "household-days below the full-refund temperature in inspection hours",
    ),
    "refund_estimate_cny": (
        "按退费规则（低于标准退50%，低于退费线退100%日采暖费）和单位面积采暖费估算；未设收费标准时为空",
        "what those days cost under the 50 % / 100 % rule with the fee per m² (empty without a fee)",
    ),
    "heat_source_hours": (
        "一次网供热不足（热源原因）期间的不达标回路小时",
        "noncompliant loop-hours while the primary side was short (heat source)",
    ),
    "alerts": ("告警数量", "alerts raised"),
    "ack_p50_h": ("告警到确认用时的中位数", "median time from alert to acknowledgement"),
    "ack_max_h": ("告警到确认的最长用时", "longest time from alert to acknowledgement"),
    "resolve_p50_h": ("告警到解决用时的中位数", "median time from alert to resolution"),
    "resolve_max_h": ("告警到解决的最长用时", "longest time from alert to resolution"),
    "past_24h": ("超过24小时才解决（或仍未解决）的告警数", "alerts resolved after more than 24 h (or still open)"),
    "past_48h": ("超过48小时才解决（或仍未解决）的告警数", "alerts resolved after more than 48 h (or still open)"),
    "outdoor_mean": ("统计期间的平均室外温度", "mean outdoor temperature over the period"),
    "degree_hours": ("室外温度低于室温标准的度时之和", "heating degree-hours below the indoor target"),
}


def check_lang(lang: str) -> int:
    """The index of `lang` in LANGS; ValueError naming the valid ones."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r} (expected one of {', '.join(LANGS)})")
    return LANGS.index(lang)


def text(key: str, lang: str, **values: object) -> str:
    """The word or heading `key` in `lang`, with `{name}` placeholders filled from `values`."""
    words = TEXT[key][check_lang(lang)]
    return words.format(**values) if values else words


def degrees(value: float | None) -> str:
    """A temperature setting as shown: "20 °C"."""
    return MISSING if value is None else f"{value:g} °C"


def display_width(label: str) -> int:
    """Width of `label` in half-width cells (a Chinese character takes two)."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in label)


def heading(key: str, lang: str, target: float | None = None, refund: float | None = None) -> str:
    """The column heading of section 8 key `key` in `lang` (the tiers' temperatures filled in)."""
    return text(key, lang, target=degrees(target), refund=degrees(refund))


def meaning(key: str, lang: str) -> str:
    """What section 8 key `key` means, in `lang`."""
    return MEANINGS[key][check_lang(lang)]


def format_value(key: str, value: float | int | str | None) -> str:
    """A value as a reader sees it: rates as %, hours with 1 decimal, money and areas with thousands separators."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    kind = KINDS.get(key, "text")
    if isinstance(value, str) or kind == "text":
        return str(value)
    if kind == "rate":
        return f"{100 * value:.1f}%"
    if kind in ("int", "area", "cny"):
        return f"{value:,.0f}"
    return f"{value:,.1f}"  # hours, household-days, temperatures


# Measures that add up over units (each loop sits in one district); shares, means and times do not.
SUMMABLE = frozenset(
    {
        "loops",
        "area_m2",
        "households",
        "compliant_hours",
        "noncompliant_hours",
        "unknown_hours",
        "beyond_design_hours",
        "household_days_below_target",
        "household_days_below_refund",
        "refund_estimate_cny",
        "heat_source_hours",
        "alerts",
        "past_24h",
        "past_48h",
    }
)


def site_total(tables: ReportTables) -> Row:
    """The whole site's row: `tables.total` when the report computed it, else the district rows' sums."""
    if tables.total:
        return {k: tables.total.get(k) for k in MEASURES}
    rows = tables.levels["district"]
    total: Row = {}
    for key in MEASURES:
        values = [v for row in rows if isinstance(v := row.get(key), int | float)]
        total[key] = sum(values) if key in SUMMABLE and values else None
    return total
