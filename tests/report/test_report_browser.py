"""The HTML report in headless Chromium: it lays out at desktop and phone width, prints on A4."""

from __future__ import annotations

from pathlib import Path

from sponsorcast.report import make_campaign_report, make_sponsor_report
from sponsorcast.store import Store
from tests.support.browser import REPORT_MEASURE, chromium, measure, pdf_pages, print_pdf
from tests.support.reports import seed_history

A4 = (595.28, 841.89)  # points


def test_campaign_report_lays_out_in_chromium(tmp_path: Path, store: Store) -> None:
    chromium()  # skip here (fail in CI) when there is no browser
    seed_history(store)
    target = tmp_path / "spring.html"
    make_campaign_report(store, "spring", html=target)
    page = target.read_text(encoding="utf-8")
    for width in (900, 375):
        laid = measure(page, width, REPORT_MEASURE)
        assert laid["heading"] == "Spring"
        assert laid["scroll"] <= laid["client"], (width, laid)  # no sideways scrolling
        assert len(laid["svgs"]) == 2 and all(w > 200 and h > 100 for w, h in laid["svgs"]), laid
        assert len(laid["tables"]) == 4 and all(laid["tables"]), laid
    pages = pdf_pages(print_pdf(page, tmp_path / "spring.pdf"))
    assert pages and all(abs(w - A4[0]) < 1.5 and abs(h - A4[1]) < 1.5 for w, h in pages), pages


def test_sponsor_report_lays_out_in_chromium(tmp_path: Path, store: Store) -> None:
    chromium()
    seed_history(store)
    target = tmp_path / "sponsor.html"
    make_sponsor_report(store, "default", html=target)
    laid = measure(target.read_text(encoding="utf-8"), 900, REPORT_MEASURE)
    assert laid["heading"] == "Campaigns of ACME Robotics"
    assert laid["scroll"] <= laid["client"] and len(laid["svgs"]) == 2, laid
