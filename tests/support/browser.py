"""Headless Chromium for what a person looks at: measure an email at a width, or photograph it.

The email goes into an ``<iframe srcdoc>`` of that width (headless Chromium will not make its
own window narrower than 500 px); a script in the page measures it once it has loaded and
leaves the figures in the title, which ``--dump-dom`` prints. No driver and no network:
Chromium reads one local file and is started with everything that phones home turned off.
``scripts/test.sh`` installs Chromium with apt when it is missing; without it the browser
tests skip, and fail when ``CI`` is set.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.pg import ci_is_set

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)

MEASURE = (
    "var d=this.contentDocument,e=d.documentElement,c=d.querySelector('.sc-container'),"
    "p=d.querySelector('div[style*=\"display:none\"]');"
    "document.title=JSON.stringify({scroll:e.scrollWidth,client:e.clientWidth,"
    "container:c?c.getBoundingClientRect().width:null,"
    "preheader:p?p.getBoundingClientRect().height:null,"
    "font:getComputedStyle(d.querySelector('.sc-card')||d.body).fontFamily})"
)


def chromium() -> str:
    """The Chromium binary, or skip (fail in CI) when there is none."""
    found = os.environ.get("SPONSORCAST_CHROMIUM") or shutil.which("chromium")
    found = found or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found:
        message = (
            "Chromium is not installed: the browser tests need it (scripts/test.sh installs it)."
        )
        if ci_is_set():
            pytest.fail(message)
        pytest.skip(message)
    return found


def _page(email_html: str, width: int, height: int, script: str) -> str:
    return (
        '<html><body style="margin:0">'
        f'<iframe style="border:0;display:block" width="{width}" height="{height}" '
        f'srcdoc="{html.escape(email_html, quote=True)}" onload="{html.escape(script)}"></iframe>'
        "</body></html>"
    )


def _run(binary: str, page: str, *args: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "page.html"
        path.write_text(page, encoding="utf-8")
        result = subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={folder}/profile", *args, path.as_uri()],
            capture_output=True,
            text=True,
            timeout=90,
            stdin=subprocess.DEVNULL,
        )
    return result.stdout


REPORT_MEASURE = (
    "var d=this.contentDocument,e=d.documentElement;"
    "document.title=JSON.stringify({scroll:e.scrollWidth,client:e.clientWidth,"
    "svgs:Array.from(d.querySelectorAll('svg')).map(function(s){var r=s.getBoundingClientRect();"
    "return [Math.round(r.width),Math.round(r.height)]}),"
    "tables:Array.from(d.querySelectorAll('table')).map(function(t){"
    "return t.getBoundingClientRect().height>0}),"
    "heading:(d.querySelector('h1')||{}).textContent})"
)


def measure(email_html: str, width: int, script: str = MEASURE) -> dict[str, Any]:
    """How a page lays out at ``width`` px, as ``script`` measures it (default: an email's
    scroll and client width, container width, …)."""
    out = _run(
        chromium(), _page(email_html, width, 1200, script), "--window-size=1300,1300", "--dump-dom"
    )
    found = re.search(r"<title>(.*?)</title>", out, flags=re.DOTALL)
    assert found is not None, out[:500]
    data: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return data


def print_pdf(page_html: str, target: Path) -> bytes:
    """The page printed to PDF as Chromium prints it (no header or footer): the PDF's bytes."""
    _run(chromium(), page_html, "--no-pdf-header-footer", f"--print-to-pdf={target}")
    return target.read_bytes()


def pdf_pages(pdf: bytes) -> list[tuple[float, float]]:
    """Each page's size in points, from the MediaBox of every page object."""
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    return [(float(w), float(h)) for w, h in boxes]


def screenshot_page(page_html: str, width: int, height: int, target: Path) -> None:
    """A PNG of a whole page (not an email) ``width`` by ``height`` px."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _run(chromium(), page_html, f"--window-size={width},{height}", f"--screenshot={target}")


def screenshot(email_html: str, width: int, height: int, target: Path) -> None:
    """A PNG of the email as it shows at ``width`` px."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _run(
        chromium(),
        _page(email_html, width, height, ""),
        f"--window-size={width},{height}",
        f"--screenshot={target}",
    )
