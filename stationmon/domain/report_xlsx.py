"""The compliance report as an Excel workbook (openpyxl, written into memory). Pure: tables in, bytes out.

One sheet per level, the asked `--by` level first: headings in the report's language on row 1 (frozen,
with a filter), one row per unit, numbers stored as numbers with a display format (shares as %, hours
with one decimal, money and areas with thousands separators), unknown values as empty cells. A last
sheet ("about") holds the period, the site, the settings, the site's figures, what every column means
(with its section 8 key, as in the csv and json) and the report's other facts.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from stationmon.domain.report_i18n import (
    COLUMN_KEYS,
    KINDS,
    check_lang,
    degrees,
    display_width,
    format_value,
    heading,
    meaning,
    site_total,
    text,
)
from stationmon.domain.report_tables import LEVELS, MEASURES, ReportTables, columns

__all__ = ["NUMBER_FORMATS", "render_xlsx", "sheet_order"]

# Excel display format of each kind of value (report_i18n.KINDS); text keeps the default.
NUMBER_FORMATS = {
    "rate": "0.0%",
    "hours": "#,##0.0",
    "number": "#,##0.0",
    "temp": "0.0",
    "int": "#,##0",
    "area": "#,##0",
    "cny": "#,##0",
}
_HEAD_FONT = Font(bold=True)
_HEAD_FILL = PatternFill("solid", fgColor="EDF2F7")
_MAX_WIDTH = 42


def sheet_order(by: str) -> tuple[str, ...]:
    """The levels in sheet order: the asked one first, then the others as LEVELS lists them."""
    return (by, *(level for level in LEVELS if level != by))


def _fit(ws: Any, widths: Sequence[int]) -> None:
    for i, width in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(i)].width = min(max(width + 2, 8), _MAX_WIDTH)


def _level_sheet(wb: Any, t: ReportTables, level: str, lang: str) -> None:
    """One sheet of `level`'s rows under headings in `lang`."""
    ws = wb.create_sheet(text("level." + level, lang))
    keys = columns(level)
    ws.append([heading(k, lang, t.indoor_target, t.indoor_refund_below) for k in keys])
    widths = [min(display_width(c.value), 18) for c in ws[1]]
    for cell in ws[1]:
        cell.font, cell.fill = _HEAD_FONT, _HEAD_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="bottom")
    for row in t.levels[level]:
        ws.append([row.get(k) for k in keys])
    for i, key in enumerate(keys):
        fmt = NUMBER_FORMATS.get(KINDS[key])
        for (cell,) in ws.iter_rows(min_row=2, min_col=i + 1, max_col=i + 1):
            if fmt is not None:
                cell.number_format = fmt
            widths[i] = max(widths[i], display_width(format_value(key, cell.value)))
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = ws.dimensions
    _fit(ws, widths)


def _local(ts: float, timezone: str) -> str:
    return dt.datetime.fromtimestamp(ts, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def _about_sheet(wb: Any, t: ReportTables, lang: str) -> None:
    """Period, site and settings; the site's figures; every column's heading, key and meaning; meta."""
    ws = wb.create_sheet(text("about", lang))
    ws.append([text("title", lang), t.site])
    ws.append([text("period", lang), f"{_local(t.start, t.timezone)} – {_local(t.stop, t.timezone)}"])
    ws.append([text("timezone", lang), t.timezone])
    ws.append([text("by", lang), text("level." + t.by, lang)])
    ws.append([text("indoor_target", lang), degrees(t.indoor_target)])
    ws.append([text("indoor_refund_below", lang), degrees(t.indoor_refund_below)])
    ws.append([text("fee_per_m2", lang), t.fee_per_m2])
    ws.append([])
    ws.append([text("summary", lang)])
    ws.cell(ws.max_row, 1).font = _HEAD_FONT
    total = site_total(t)
    for key in MEASURES:
        ws.append([heading(key, lang, t.indoor_target, t.indoor_refund_below), total.get(key)])
        fmt = NUMBER_FORMATS.get(KINDS[key])
        if fmt is not None:
            ws.cell(ws.max_row, 2).number_format = fmt
    ws.append([])
    ws.append([text("heading", lang), text("key", lang), text("meaning", lang)])
    for cell in ws[ws.max_row]:
        cell.font, cell.fill = _HEAD_FONT, _HEAD_FILL
    for key in COLUMN_KEYS:
        ws.append([heading(key, lang, t.indoor_target, t.indoor_refund_below), key, meaning(key, lang)])
    if t.meta:
        ws.append([])
        ws.append([text("meta", lang)])
        ws.cell(ws.max_row, 1).font = _HEAD_FONT
        for name, value in t.meta.items():
            ws.append([name, value])
    _fit(ws, [30, _MAX_WIDTH, _MAX_WIDTH])  # headings; values and keys, meanings: as wide as a column gets


def render_xlsx(tables: ReportTables, lang: str) -> bytes:
    """The report as an xlsx workbook in `lang`."""
    check_lang(lang)
    wb = Workbook()
    wb.remove(wb.active)
    for level in sheet_order(tables.by):
        _level_sheet(wb, tables, level, lang)
    _about_sheet(wb, tables, lang)
    wb.properties.creator = "stationmon"
    wb.properties.title = text("title", lang) + (f" — {tables.site}" if tables.site else "")
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
