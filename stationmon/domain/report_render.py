"""The compliance report's formats: csv and json of the asked level. Pure.

(Owned by the report-render work: html with charts and xlsx come here.)
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from zoneinfo import ZoneInfo

from stationmon.domain.report_tables import ReportTables, columns

__all__ = ["FORMATS", "render"]

FORMATS = ("csv", "json")


def _iso(ts: float, timezone: str) -> str:
    return dt.datetime.fromtimestamp(ts, ZoneInfo(timezone)).isoformat(timespec="seconds")


def render(tables: ReportTables, fmt: str, lang: str = "zh") -> bytes:
    """The report as `fmt` ("csv" or "json"); keys are section 8's whatever `lang` is."""
    names = columns(tables.by)
    rows = tables.levels[tables.by]
    if fmt == "json":
        doc = {
            "site": tables.site,
            "from": _iso(tables.start, tables.timezone),
            "to": _iso(tables.stop, tables.timezone),
            "by": tables.by,
            "rows": [{k: row.get(k) for k in names} for row in rows],
        }
        return json.dumps(doc, ensure_ascii=False, indent=2).encode()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow(["" if row.get(k) is None else row.get(k) for k in names])
        return out.getvalue().encode()
    raise ValueError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
