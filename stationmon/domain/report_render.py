"""The compliance report's formats: csv, json, html and xlsx. Pure: tables in, bytes out.

csv and json carry the asked level only, with section 8's keys whatever the language (None is an empty
cell / null); json also carries the period, the site, the settings, the site's total (when computed)
and the report's meta. html (`report_html`) and xlsx (`report_xlsx`) print every level, headed in `lang`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from zoneinfo import ZoneInfo

from stationmon.domain.report_html import render_html
from stationmon.domain.report_i18n import LANGS, check_lang
from stationmon.domain.report_tables import MEASURES, ReportTables, Row, columns

__all__ = ["FORMATS", "LANGS", "render"]

FORMATS = ("csv", "html", "json", "xlsx")


def _iso(ts: float, timezone: str) -> str:
    return dt.datetime.fromtimestamp(ts, ZoneInfo(timezone)).isoformat(timespec="seconds")


def _finite(row: Row, names: tuple[str, ...]) -> Row:
    """`row`'s `names`, a NaN or infinity as None (json has no NaN)."""
    return {k: None if isinstance(v := row.get(k), float) and not math.isfinite(v) else v for k in names}


def _json(tables: ReportTables) -> bytes:
    names = columns(tables.by)
    doc = {
        "site": tables.site,
        "from": _iso(tables.start, tables.timezone),
        "to": _iso(tables.stop, tables.timezone),
        "timezone": tables.timezone,
        "by": tables.by,
        "indoor_target": tables.indoor_target,
        "indoor_refund_below": tables.indoor_refund_below,
        "fee_per_m2": tables.fee_per_m2,
        "rows": [_finite(row, names) for row in tables.levels[tables.by]],
        "total": _finite(tables.total, MEASURES) if tables.total else None,
        "meta": tables.meta,
    }
    return json.dumps(doc, ensure_ascii=False, indent=2, allow_nan=False).encode()


def _csv(tables: ReportTables) -> bytes:
    names = columns(tables.by)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in tables.levels[tables.by]:
        writer.writerow([row.get(k) for k in names])  # csv writes None as an empty cell
    return out.getvalue().encode()


def _xlsx(tables: ReportTables, lang: str) -> bytes:
    # openpyxl is imported only when a workbook is asked for: the other commands start faster
    from stationmon.domain.report_xlsx import render_xlsx

    return render_xlsx(tables, lang)


def render(tables: ReportTables, fmt: str, lang: str = "zh") -> bytes:
    """The report as `fmt` (one of FORMATS) in `lang` (one of LANGS; csv and json keys do not change)."""
    check_lang(lang)
    if fmt == "json":
        return _json(tables)
    if fmt == "csv":
        return _csv(tables)
    if fmt == "html":
        return render_html(tables, lang)
    if fmt == "xlsx":
        return _xlsx(tables, lang)
    raise ValueError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
