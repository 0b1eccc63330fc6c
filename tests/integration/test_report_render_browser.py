"""The compliance report's HTML in a real headless Chromium: laid out, screenshotted and printed to PDF.

The report itself carries no script. To see what the browser laid out, the test renders a copy with a
small measuring script appended (its findings written into the DOM, read back with --dump-dom): nothing
may stick out of the body's content box at a screen width, nor at the width of an A4 page (portrait for the summary,
ranking, charts and worst stations; landscape for the full table). The screenshots (zh and en) and PDFs
are kept under artifacts/ to be looked at.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stationmon.domain.report_i18n import LANGS, text
from stationmon.domain.report_render import render
from tests.unit.test_report_render import EVIL, sample_tables, unit_measures

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
SECTIONS = ("summary", "ranking", "charts", "worst", "full", "notes")
# A4 minus the page's margins at 96 px/inch: portrait 210-2*12 mm, landscape 297-2*10 mm; on screen the
# body has 2 x 20 px of padding that print drops, so the window is that much wider
A4_PORTRAIT_PX, A4_LANDSCAPE_PX, SCREEN_PADDING_PX = 703, 1047, 40

MEASURE = """<script>
const box = document.body.getBoundingClientRect(), style = getComputedStyle(document.body);
const width = Math.min(document.documentElement.clientWidth, box.right - parseFloat(style.paddingRight)), over = [];
for (const el of document.querySelectorAll("header, section, table, svg, h1, h2, p")) {
  const r = el.getBoundingClientRect();
  if (r.width > 0 && r.right > width + 0.5) over.push((el.closest("section") || {id: "header"}).id + ":" + el.tagName);
}
document.body.dataset.overflow = over.join(",");
document.body.dataset.height = String(document.documentElement.scrollHeight);
document.body.dataset.measured = "true";
</script>"""


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium", pytrace=False)
    return path


def _browser(url: str, tmp_path: Path, width: int, height: int, *args: str) -> str:
    """Run headless Chromium on `url` in a `width` x `height` window with extra arguments; its stdout."""
    proc = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            f"--window-size={width},{height}",
            *args,
            url,
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc.stdout.decode()


def _measure(page: bytes, tmp_path: Path, width: int) -> tuple[str, int, str]:
    """(what sticks out, the page's height, the DOM) of `page` laid out `width` px wide."""
    probe = tmp_path / f"probe-{width}.html"
    probe.write_bytes(page.replace(b"</body>", MEASURE.encode() + b"</body>"))
    dom = _browser(probe.as_uri(), tmp_path, width, 1000, "--dump-dom")
    attrs = re.search(r"<body ([^>]*)>", dom)
    assert attrs and 'data-measured="true"' in attrs.group(1), dom[:2000]
    overflow = re.search(r'data-overflow="([^"]*)"', attrs.group(1))
    height = re.search(r'data-height="(\d+)"', attrs.group(1))
    assert overflow and height
    return overflow.group(1), int(height.group(1)), dom


def _only(page: bytes, section: str) -> bytes:
    """`page` showing only the header and `section` (to lay a printed page's width out on its own)."""
    style = f"section:not(#{section}) {{ display: none; }}</style>".encode()
    return page.replace(b"</style>", style, 1)


@pytest.mark.parametrize("lang", LANGS)
def test_report_html_lays_out_screenshots_and_prints(tmp_path: Path, lang: str) -> None:
    tables = dataclasses.replace(sample_tables(by="station"), total=unit_measures(9))  # the city's figures
    page = render(tables, "html", lang)

    overflow, height, dom = _measure(page, tmp_path, 1240)
    assert overflow == "", overflow
    for section in SECTIONS:
        assert f'id="{section}"' in dom, section
    assert dom.count('class="rate"') == 3 + 3  # bars: 3 judged companies, 3 districts
    assert text("ranking", lang) in dom and text("chart.district", lang) in dom
    assert "<script>alert" not in dom.split("<script>\nconst width", 1)[0]  # the evil name stayed text
    assert EVIL.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in dom

    # each printed page's width: portrait for the first sections, landscape for the full table
    for section in SECTIONS:
        width = A4_LANDSCAPE_PX if section == "full" else A4_PORTRAIT_PX
        overflow, _, _ = _measure(_only(page, section), tmp_path, width + SCREEN_PADDING_PX)
        assert overflow == "", (section, width, overflow)

    ARTIFACTS.mkdir(exist_ok=True)
    source = tmp_path / f"report_{lang}.html"
    source.write_bytes(page)
    shot = ARTIFACTS / f"report_{lang}.png"
    shot.unlink(missing_ok=True)
    _browser(source.as_uri(), tmp_path, 1240, height + 40, f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000

    pdf = ARTIFACTS / f"report_{lang}.pdf"
    pdf.unlink(missing_ok=True)
    _browser(source.as_uri(), tmp_path, 1240, 1000, "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 20_000
    boxes = re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", data)
    portrait = [b for b in boxes if float(b[0]) < float(b[1])]
    landscape = [b for b in boxes if float(b[0]) > float(b[1])]
    assert len(portrait) >= len(SECTIONS) - 1 and landscape, boxes  # a page per section, the full table wide
    assert all(abs(float(w) - 595) < 1 and abs(float(h) - 842) < 1 for w, h in portrait), portrait  # A4
