"""Photograph the sample campaign's email at phone and desktop width for docs/emails.md.

    .venv/bin/python scripts/email_screenshots.py        # writes docs/img/welcome-375.png, -800.png

Renders campaigns/welcome.md for the sample lead Ada with a branded sponsor (accent colour),
then opens it in headless Chromium (tests/support/browser.py) at 375 px and 800 px.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sponsorcast.campaign import load_campaign  # noqa: E402 - after the path above
from sponsorcast.render import compile_campaign, render_message  # noqa: E402
from sponsorcast.store.models import Sponsor  # noqa: E402
from tests.support.browser import screenshot  # noqa: E402

SPONSOR = Sponsor(
    id="default",
    name="Example Events",
    from_address="Example Events <hello@example.com>",
    postal_address="1 Example Street, Springfield",
    accent_color="#0f766e",
)
ADA = {
    "id": 1,
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "first_name": "Ada",
    "company": "Analytical Engines",
    "title": "CTO",
    "tags": ["enterprise"],
    "fields": {},
}


def main() -> None:
    """Write the two screenshots."""
    compiled = compile_campaign(load_campaign(REPO / "campaigns" / "welcome.md"), SPONSOR)
    html = render_message(compiled, ADA, compiled.default_links).html
    for width, height in ((375, 760), (800, 640)):
        target = REPO / "docs" / "img" / f"welcome-{width}.png"
        screenshot(html, width, height, target)
        print(f"wrote {target.relative_to(REPO)}")


if __name__ == "__main__":
    main()
