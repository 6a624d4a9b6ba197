"""Render a sample campaign report to PNG with headless Chromium for docs/reports.md.

    .venv/bin/python scripts/report_screenshot.py        # writes docs/img/report.png

The sample is the benchmark's campaign at 2,000 recipients (bench/bench_report.py: opens over
the first days, a third of openers clicking one of four links, 2 % bounces), for a branded
sponsor, rendered by ``report --html`` and photographed at 1000 px wide.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_report import fill  # noqa: E402 - after the paths above

from sponsorcast.report import make_campaign_report  # noqa: E402
from sponsorcast.store import open_store  # noqa: E402
from sponsorcast.store.tables import campaign_t, sponsor_t  # noqa: E402
from tests.support.browser import screenshot_page  # noqa: E402

RECIPIENTS = 2000


def main() -> None:
    """Write docs/img/report.png."""
    with tempfile.TemporaryDirectory(prefix="sc-report-") as folder:
        url = f"sqlite:///{Path(folder) / 'sample.db'}"
        fill(url, RECIPIENTS)
        store = open_store(url)
        with store.write() as conn:
            conn.execute(sponsor_t.update().values(name="ACME Robotics", accent_color="#0f766e"))
            conn.execute(campaign_t.update().values(name="Thanks for visiting our booth"))
        page = Path(folder) / "report.html"
        make_campaign_report(store, "big", html=page)
        target = REPO / "docs" / "img" / "report.png"
        screenshot_page(page.read_text(encoding="utf-8"), 1000, 2400, target)
        print(f"wrote {target.relative_to(REPO)}")


if __name__ == "__main__":
    main()
