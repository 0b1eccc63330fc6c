"""The compliance report as one self-contained, printable HTML page. Pure.

Inline CSS and inline SVG, no script and no external resource: a regulator can mail it, open it offline
and print it on A4 (each section on its own page, the full table in landscape, table headers repeated
on every page). Every text from the configs (site, station, company and district names) is escaped.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from stationmon.domain.report_i18n import (
    KINDS,
    MISSING,
    check_lang,
    degrees,
    display_width,
    format_value,
    heading,
    meaning,
    site_total,
    text,
)
from stationmon.domain.report_tables import MEASURES, UNIT_KEYS, ReportTables, Row, columns

__all__ = ["COLUMN_GROUPS", "WORST_N", "render_html"]

WORST_N = 20  # stations listed as the worst

# The full table is printed as two tables (each with the unit's keys first) so that it fits A4 landscape.
COLUMN_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("group.compliance", MEASURES[: MEASURES.index("alerts")]),
    ("group.alerts", MEASURES[MEASURES.index("alerts") :]),
)
RANKING_KEYS = (
    "compliance_rate",
    "monitored_share",
    "noncompliant_hours",
    "unknown_hours",
    "alerts",
    "ack_p50_h",
    "resolve_p50_h",
    "past_24h",
    "past_48h",
    "refund_estimate_cny",
)
WORST_KEYS = (  # what fits a portrait A4 page; the full table has the rest
    "compliance_rate",
    "monitored_share",
    "noncompliant_hours",
    "unknown_hours",
    "heat_source_hours",
    "household_days_below_target",
    "alerts",
    "past_48h",
)
HEADLINE_KEYS = ("compliance_rate", "monitored_share", "alerts", "refund_estimate_cny")

CSS = """
@page { size: A4; margin: 12mm; }
@page wide { size: A4 landscape; margin: 10mm; }
* { box-sizing: border-box; }
body { font-family: "WenQuanYi Micro Hei", "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif;
  font-size: 10.5pt; color: #1a202c; margin: 0 auto; max-width: 1120px; padding: 16px 20px; line-height: 1.35; }
h1 { font-size: 18pt; margin: 0 0 4px; }
h2 { font-size: 13pt; margin: 0 0 8px; border-bottom: 2px solid #2b6cb0; padding-bottom: 2px; }
h3 { font-size: 11pt; margin: 12px 0 6px; }
p.meta { margin: 2px 0; color: #4a5568; }
section { margin-top: 28px; break-before: page; }
section.summary { break-before: auto; margin-top: 14px; }
section.full { page: wide; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 8px; margin-bottom: 10px; }
.card { border: 1px solid #cbd5e0; border-radius: 4px; padding: 6px 8px; break-inside: avoid; }
.card .label { color: #4a5568; font-size: 9pt; }
.card .value { font-size: 16pt; font-weight: 600; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; font-size: 8.5pt; margin-bottom: 10px; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
th, td { border: 1px solid #cbd5e0; padding: 2px 4px; }
td { overflow-wrap: anywhere; }  /* a long name without spaces must not push the table off the page */
td code { white-space: nowrap; }
th { background: #edf2f7; font-weight: 600; vertical-align: bottom; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.missing { color: #718096; text-align: center; }
table.figures { width: auto; min-width: 60%; }
section.full table { font-size: 8pt; }
svg.chart { width: 100%; max-width: 760px; height: auto; display: block; break-inside: avoid; }
svg.chart text { font-size: 12px; fill: #1a202c; }
svg.chart .grid { stroke: #e2e8f0; stroke-width: 1; }
svg.chart .axis { fill: #718096; font-size: 10px; }
svg.chart .rate { fill: #2b6cb0; }
svg.chart .share { fill: #a0aec0; }
svg.chart .value { font-weight: 600; }
svg.chart .share-value { font-size: 10px; fill: #718096; }
td[data-key="station"], td[data-key="loop"], td[data-key="district"] { white-space: nowrap; }
p.legend { color: #4a5568; font-size: 9pt; margin: 2px 0 14px; }
@media print {
  body { max-width: none; padding: 0; }
  th, .card, svg.chart { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  section { margin-top: 0; }
}
"""


def _e(value: object) -> str:
    return html.escape(str(value))  # quotes too: names sit in attributes


def _local(ts: float, timezone: str) -> str:
    return dt.datetime.fromtimestamp(ts, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def _cell(key: str, value: float | int | str | None) -> str:
    shown = _e(format_value(key, value))
    if value is None:
        return f'<td class="missing" data-key="{key}">{shown}</td>'
    cls = "" if KINDS[key] == "text" else ' class="num"'
    return f'<td{cls} data-key="{key}">{shown}</td>'


def _table(t: ReportTables, lang: str, keys: Sequence[str], rows: Sequence[Row], ranked: bool = False) -> str:
    """A table of `rows` with the headings of `keys` (a rank column first when `ranked`)."""
    target, refund = t.indoor_target, t.indoor_refund_below
    head = [f"<th>{_e(text('rank', lang))}</th>"] if ranked else []
    head += [f'<th data-key="{k}">{_e(heading(k, lang, target, refund))}</th>' for k in keys]
    body = []
    for i, row in enumerate(rows, 1):
        cells = [f'<td class="num">{i}</td>'] if ranked else []
        cells += [_cell(k, row.get(k)) for k in keys]
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not rows:
        body.append(f'<tr><td colspan="{len(head)}">{_e(text("no_rows", lang))}</td></tr>')
    return f"<table><thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _by_rate(rows: Sequence[Row], unit: str, best_first: bool) -> list[Row]:
    """Rows with a compliance rate, best (or worst) first, ties by the `unit`'s name; rows without one are
    left out."""

    def order(row: Row) -> tuple[float, str]:
        rate = float(row["compliance_rate"] or 0.0)
        return (-rate if best_first else rate, str(row.get(unit)))

    return sorted((r for r in rows if isinstance(r.get("compliance_rate"), int | float)), key=order)


def _header(t: ReportTables, lang: str) -> str:
    target, refund = t.indoor_target, t.indoor_refund_below
    parts = [
        f"{_e(text('indoor_target', lang))} {_e(degrees(target))}",
        f"{_e(text('indoor_refund_below', lang))} {_e(degrees(refund))}",
        f"{_e(text('fee_per_m2', lang))} {_e(MISSING if t.fee_per_m2 is None else f'{t.fee_per_m2:g}')}",
        f"{_e(text('by', lang))} {_e(text('level.' + t.by, lang))}",
    ]
    period = f"{_local(t.start, t.timezone)} – {_local(t.stop, t.timezone)} ({_e(t.timezone)})"
    return (
        f"<header><h1>{_e(text('title', lang))}{' — ' + _e(t.site) if t.site else ''}</h1>"
        f'<p class="meta period">{_e(text("period", lang))}: {period}</p>'
        f'<p class="meta settings">{" · ".join(parts)}</p></header>'
    )


def _summary(t: ReportTables, lang: str) -> str:
    """The site's headline figures as cards, then every other measure of the site total."""
    total = site_total(t)
    target, refund = t.indoor_target, t.indoor_refund_below
    cards = "".join(
        f'<div class="card" data-key="{k}"><div class="label">{_e(heading(k, lang, target, refund))}</div>'
        f'<div class="value">{_e(format_value(k, total.get(k)))}</div></div>'
        for k in HEADLINE_KEYS
    )
    rest = [k for k in MEASURES if k not in HEADLINE_KEYS]
    lines = "".join(
        f'<tr><th data-key="{k}">{_e(heading(k, lang, target, refund))}</th>{_cell(k, total.get(k))}</tr>' for k in rest
    )
    return (
        f'<section class="summary" id="summary"><h2>{_e(text("summary", lang))}</h2>'
        f'<div class="cards">{cards}</div><table class="figures"><tbody>{lines}</tbody></table></section>'
    )


def _ranking(t: ReportTables, lang: str) -> str:
    rows = t.levels["company"]
    ordered = _by_rate(rows, "company", best_first=True)
    ordered += sorted((r for r in rows if r not in ordered), key=lambda r: str(r.get("company")))
    return (
        f'<section class="ranking" id="ranking"><h2>{_e(text("ranking", lang))}</h2>'
        f"{_table(t, lang, ('company', *RANKING_KEYS), ordered, ranked=True)}</section>"
    )


def _shorten(label: str, cells: int) -> str:
    """`label` cut to fit `cells` half-width cells, an ellipsis in the last one when cut."""
    if display_width(label) <= cells:
        return label
    out = ""
    for c in label:
        if display_width(out + c) > cells - 1:
            break
        out += c
    return out + "…"


def _bar_chart(rows: Sequence[Row], unit: str, lang: str) -> str:
    """Horizontal bars of compliance rate (thin grey: monitored share) per unit, values in a right column."""
    # a label gets 27 half-width cells (about 7 px each) left of the bars
    label_cells, bar_x, bar_w, row_h, top = 27, 200, 400, 28, 22
    height = top + max(len(rows), 1) * row_h + 6
    parts = [
        f'<svg class="chart" data-unit="{unit}" viewBox="0 0 760 {height}" '
        'xmlns="http://www.w3.org/2000/svg" role="img">'
    ]
    for pct in (0, 25, 50, 75, 100):
        x = bar_x + bar_w * pct / 100
        parts.append(f'<line class="grid" x1="{x:g}" y1="{top - 4}" x2="{x:g}" y2="{height - 4}"/>')
        parts.append(f'<text class="axis" x="{x:g}" y="{top - 8}" text-anchor="middle">{pct}%</text>')
    for i, row in enumerate(rows):
        y = top + i * row_h
        name = str(row.get(unit) or "")
        parts.append(
            f'<text x="{bar_x - 8}" y="{y + 15}" text-anchor="end" data-label="{_e(name)}">'
            f"<title>{_e(name)}</title>{_e(_shorten(name, label_cells))}</text>"
        )
        rate, share = row.get("compliance_rate"), row.get("monitored_share")
        if isinstance(share, int | float):
            w = bar_w * min(max(share, 0), 1)
            parts.append(f'<rect class="share" x="{bar_x}" y="{y + 20}" width="{w:.1f}" height="4"/>')
        if isinstance(rate, int | float):
            w = bar_w * min(max(rate, 0), 1)
            parts.append(f'<rect class="rate" x="{bar_x}" y="{y + 4}" width="{w:.1f}" height="14"/>')
        shown = format_value("compliance_rate", rate) if rate is not None else text("none_judged", lang)
        parts.append(f'<text x="{bar_x + bar_w + 12}" y="{y + 15}" class="value">{_e(shown)}</text>')
        parts.append(
            f'<text x="{bar_x + bar_w + 12}" y="{y + 26}" class="share-value">'
            f"{_e(text('monitored_share', lang))} {_e(format_value('monitored_share', share))}</text>"
        )
    return "".join(parts) + "</svg>"


def _charts(t: ReportTables, lang: str) -> str:
    parts = ['<section class="charts" id="charts">']
    for unit in ("company", "district"):
        rows = t.levels[unit]
        ordered = _by_rate(rows, unit, best_first=True)
        ordered += sorted((r for r in rows if r not in ordered), key=lambda r: str(r.get(unit)))
        parts.append(f"<h2>{_e(text('chart.' + unit, lang))}</h2>{_bar_chart(ordered, unit, lang)}")
        parts.append(f'<p class="legend">{_e(text("chart.legend", lang))}</p>')
    return "".join(parts) + "</section>"


def _worst(t: ReportTables, lang: str) -> str:
    rows = t.levels["station"]
    worst = _by_rate(rows, "station", best_first=False)[:WORST_N]
    keys = (*UNIT_KEYS["station"], *WORST_KEYS)
    out = f'<section class="worst" id="worst"><h2>{_e(text("worst", lang, n=len(worst)))}</h2>'
    out += _table(t, lang, keys, worst, ranked=True)
    unjudged = sorted(str(r.get("station")) for r in rows if not isinstance(r.get("compliance_rate"), int | float))
    if unjudged:
        out += f'<h3>{_e(text("not_judged", lang))} ({len(unjudged)})</h3><p class="unjudged">'
        out += "、".join(_e(s) for s in unjudged) if lang == "zh" else ", ".join(_e(s) for s in unjudged)
        out += "</p>"
    return out + "</section>"


def _full(t: ReportTables, lang: str) -> str:
    """Every row of the asked level with every section 8 column, in two tables of column groups."""
    rows = t.levels[t.by]
    out = f'<section class="full" id="full"><h2>{_e(text("full", lang, level=text("level." + t.by, lang)))}</h2>'
    for group, measures in COLUMN_GROUPS:
        out += f"<h3>{_e(text(group, lang))}</h3>" + _table(t, lang, (*UNIT_KEYS[t.by], *measures), rows)
    return out + "</section>"


def _notes(t: ReportTables, lang: str) -> str:
    """What every column means, then the report's other facts (meta)."""
    target, refund = t.indoor_target, t.indoor_refund_below
    lines = "".join(
        f"<tr><td><code>{k}</code></td><td>{_e(heading(k, lang, target, refund))}</td>"
        f"<td>{_e(meaning(k, lang))}</td></tr>"
        for k in columns(t.by)
    )
    head = "".join(f"<th>{_e(text(w, lang))}</th>" for w in ("key", "heading", "meaning"))
    out = f'<section class="notes" id="notes"><h2>{_e(text("notes", lang))}</h2>'
    out += f"<table><thead><tr>{head}</tr></thead><tbody>{lines}</tbody></table>"
    if t.meta:
        items = "".join(
            f"<tr><th>{_e(k)}</th><td>{_e(MISSING if v is None else v)}</td></tr>" for k, v in t.meta.items()
        )
        out += f'<h3>{_e(text("meta", lang))}</h3><table class="figures meta"><tbody>{items}</tbody></table>'
    return out + f'<p class="meta">{_e(text("generated", lang))}</p></section>'


def render_html(tables: ReportTables, lang: str) -> bytes:
    """The report as a printable HTML page in `lang`."""
    check_lang(lang)
    title = text("title", lang) + (f" — {tables.site}" if tables.site else "")
    body = "".join(f(tables, lang) for f in (_header, _summary, _ranking, _charts, _worst, _full, _notes))
    page = (
        f'<!DOCTYPE html>\n<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
        f"<style>{CSS}</style></head><body>{body}</body></html>\n"
    )
    return page.encode()
