"""A campaign with a known history for the report tests: who opened, clicked, bounced, when.

Six recipients, sent at T0 … T0+5 s (``tracking.seed``), campaign BODY's links. What happens:

- p0 opens at T0+10m and again at T0+20m, clicks "Book a demo" twice at T0+15m (own redirect)
- p1 opens at T0+1h30m, clicks the personalised "Your page" at T0+1h35m (own redirect)
- p2 opens at T0+50h (a day bucket), clicks the agenda at T0+50h10m (Resend's webhook)
- p3 opens at T0+4d1h, unsubscribes
- p4 bounces: "550 5.1.1 <p4@example.org>: Recipient address rejected"
- p5 complains
"""

from __future__ import annotations

from datetime import timedelta

from sponsorcast import tracking
from sponsorcast.store import Store
from sponsorcast.store.tables import lead_t, sponsor_t
from tests.support.tracking import T0, event, seed

RECIPIENTS = [f"p{i}@example.org" for i in range(6)]
LOGO = "https://cdn.example.net/acme-logo.png"
BOUNCE = "550 5.1.1 <p4@example.org>: Recipient address rejected"
PERSONAL_URL = "https://example.com/p?c=ACME%20%26%20Co"


def brand_default_sponsor(store: Store) -> None:
    """Give the ``default`` sponsor a name, logo and accent colour."""
    with store.write() as conn:
        conn.execute(
            sponsor_t.update()
            .where(sponsor_t.c.id == "default")
            .values(name="ACME Robotics", logo_url=LOGO, accent_color="#0f766e")
        )


def seed_history(store: Store, campaign: str = "spring") -> list[int]:
    """The campaign above; its delivery ids in recipient order."""
    ids = seed(store, RECIPIENTS, campaign=campaign)
    brand_default_sponsor(store)
    with store.write() as conn:  # a name a spreadsheet would run as a formula
        conn.execute(
            lead_t.update()
            .where(lead_t.c.email == "p0@example.org")
            .values(name="=cmd|'/c calc'!A1")
        )
    m = timedelta(minutes=1)
    tracking.record_open(store, ids[0], now=T0 + 10 * m)
    tracking.record_open(store, ids[0], now=T0 + 20 * m)
    tracking.record_click(store, ids[0], "https://example.com/demo?src=mail&x=1", now=T0 + 15 * m)
    tracking.record_click(store, ids[0], "https://example.com/demo?src=mail&x=1", now=T0 + 16 * m)
    tracking.record_open(store, ids[1], now=T0 + 90 * m)
    tracking.record_click(store, ids[1], PERSONAL_URL, now=T0 + 95 * m)
    tracking.record_open(store, ids[2], now=T0 + timedelta(hours=50))
    clicked = event(
        "email.clicked",
        f"{campaign}-msg-2",
        T0 + timedelta(hours=50, minutes=10),
        click={"link": "https://example.com/agenda"},
    )
    tracking.apply_event(store, clicked, f"{campaign}-click-2")
    tracking.record_open(store, ids[3], now=T0 + timedelta(days=4, hours=1))
    tracking.unsubscribe(store, ids[3], now=T0 + timedelta(days=4, hours=2))
    bounce = event(
        "email.bounced",
        f"{campaign}-msg-4",
        T0 + 2 * m,
        bounce={"message": BOUNCE, "type": "Permanent"},
    )
    tracking.apply_event(store, bounce, f"{campaign}-bounce-4")
    tracking.apply_event(
        store, event("email.complained", f"{campaign}-msg-5", T0 + 30 * m), f"{campaign}-c-5"
    )
    return ids


__all__ = [
    "BOUNCE",
    "LOGO",
    "PERSONAL_URL",
    "RECIPIENTS",
    "brand_default_sponsor",
    "seed_history",
]
