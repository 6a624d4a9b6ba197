"""The sample emails opened in a real browser (headless Chromium) at phone and desktop widths."""

from __future__ import annotations

from pathlib import Path

import pytest

from sponsorcast.campaign import load_campaign
from sponsorcast.render import compile_campaign, render_message
from sponsorcast.store.models import Sponsor
from tests.support.browser import measure
from tests.support.project import REPO

SPONSOR = Sponsor(
    id="acme",
    name="Acme",
    from_address="Acme <events@acme.example>",
    postal_address="1 Acme Way, Springfield",
    logo_url="https://cdn.acme.example/logo.png",
)
# a company name that is one unbroken 120-character word: it must wrap, not widen the page
LEAD = {
    "id": 1,
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "first_name": "Ada",
    "company": "AnalyticalEngines" * 7,
    "title": "CTO",
    "tags": [],
    "fields": {},
}
SAMPLES = [REPO / "campaigns" / n for n in ("welcome.md", "spring-launch.md", "follow-up.yaml")]


def _html(path: Path) -> str:
    compiled = compile_campaign(load_campaign(path), SPONSOR)
    return render_message(compiled, LEAD, compiled.default_links).html


@pytest.mark.slow
@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_nothing_scrolls_sideways_on_a_phone_and_the_card_is_600px_wide(path: Path) -> None:
    html = _html(path)
    phone = measure(html, 375)
    assert phone["scroll"] == phone["client"] == 375
    assert phone["container"] <= 375 - 16  # the page keeps a margin on each side
    assert phone["preheader"] == 0  # hidden: takes no room
    desktop = measure(html, 800)
    assert desktop["scroll"] == desktop["client"] == 800
    assert desktop["container"] == 600
    assert "Segoe UI" in desktop["font"]  # the system font stack, not the browser's serif


@pytest.mark.slow
def test_the_measurement_sees_a_page_that_is_too_wide() -> None:
    too_wide = '<html><body><table width="700"><tr><td>x</td></tr></table></body></html>'
    measured = measure(too_wide, 375)
    assert measured["scroll"] > 375 and measured["container"] is None
