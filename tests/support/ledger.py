"""What a test reads back after sending: each lead's delivery, a campaign's status, the outbox."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from sponsorcast.store import Store
from sponsorcast.store.tables import campaign_t, delivery_t


def delivery_rows(store: Store, campaign: str) -> dict[str, tuple[str, str | None]]:
    """Lead (the address before ``@``) -> (status, last_error) of a campaign's deliveries."""
    with store.read() as conn:
        rows = conn.execute(
            sa.select(delivery_t.c.recipient, delivery_t.c.status, delivery_t.c.last_error).where(
                delivery_t.c.campaign_id == campaign
            )
        ).all()
    return {r.recipient.split("@")[0]: (r.status, r.last_error) for r in rows}


def campaign_status(store: Store, campaign: str) -> str:
    """The campaign's status."""
    with store.read() as conn:
        return str(
            conn.execute(
                sa.select(campaign_t.c.status).where(campaign_t.c.id == campaign)
            ).scalar_one()
        )


def outbox_leads(project_path: Path, campaign: str) -> Counter[str]:
    """How many .eml files of the campaign the outbox holds per lead."""
    files = (project_path / "outbox" / campaign).glob("*.eml")
    return Counter(f.name.split("-", 1)[1].split("@")[0] for f in files)
