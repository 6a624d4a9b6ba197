"""Everything the store holds about one person, for ``leads show`` and ``leads export``.

A person is an address: their lead row of every sponsor (with the consent and the source the
import kept), every delivery to them, every event of those deliveries, and every suppression
entry of the address. The answer to a data-subject access request, as data.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from sponsorcast.audience import PERSON_COLUMNS
from sponsorcast.errors import NotFound
from sponsorcast.store import Store
from sponsorcast.store.lifecycle import DELIVERY_FIELDS
from sponsorcast.store.tables import campaign_t, delivery_t, event_t, lead_t, suppression_t
from sponsorcast.suppression.entries import validate_emails
from sponsorcast.suppression.erased import erased_token, erased_tokens, erasure_key

LEAD_COLUMNS = (
    "sponsor_id",
    *PERSON_COLUMNS,
    "tags",
    "event",
    "fields",
    "consent",
    "source",
    "source_row",
    "created_at",
    "updated_at",
)
# a delivery as ``deliveries --json`` shows it, without the ledger's own ids
DELIVERY_COLUMNS = ("campaign_id", *(f for f in DELIVERY_FIELDS if f not in ("id", "batch")))


def person_record(store: Store, email: str) -> dict[str, Any]:
    """What the store holds about ``email``; NotFound when it holds nothing at all."""
    address = validate_emails([email])[0]
    with store.read() as conn:
        leads = [
            {**row, "tags": [t for t in (row["tags"] or "").split(",") if t]}
            for row in conn.execute(
                sa.select(*[lead_t.c[c] for c in LEAD_COLUMNS])
                .where(sa.func.lower(lead_t.c.email) == address)
                .order_by(lead_t.c.sponsor_id)
            ).mappings()
        ]
        deliveries = [
            dict(row)
            for row in conn.execute(
                sa.select(
                    delivery_t.c.id,
                    campaign_t.c.sponsor_id,
                    *[delivery_t.c[c] for c in DELIVERY_COLUMNS],
                )
                .join(campaign_t, campaign_t.c.id == delivery_t.c.campaign_id)
                .where(_of_person(address))
                .order_by(delivery_t.c.id)
            ).mappings()
        ]
        ids = [d.pop("id") for d in deliveries]
        events = (
            [
                dict(row)
                for row in conn.execute(
                    sa.select(
                        event_t.c.campaign_id,
                        event_t.c.type,
                        event_t.c.occurred_at,
                        event_t.c.payload,
                    )
                    .where(event_t.c.delivery_id.in_(ids))
                    .order_by(event_t.c.occurred_at, event_t.c.id)
                ).mappings()
            ]
            if ids
            else []
        )
        suppressions = [
            {"sponsor": row.sponsor_id, "reason": row.reason, "created_at": row.created_at}
            for row in conn.execute(
                sa.select(suppression_t).where(suppression_t.c.email == address)
            )
        ]
        erased = _erased(conn, address)
    if not (leads or deliveries or suppressions or erased):
        raise NotFound(f"The store holds nothing about {address}.")
    return {
        "email": address,
        "erased": erased,
        "leads": leads,
        "deliveries": deliveries,
        "events": events,
        "suppressions": suppressions,
    }


def _of_person(address: str) -> sa.ColumnElement[bool]:
    """Deliveries to the address: by their recipient, or by a lead row of it."""
    leads = sa.select(lead_t.c.id).where(sa.func.lower(lead_t.c.email) == address)
    return sa.or_(sa.func.lower(delivery_t.c.recipient) == address, delivery_t.c.lead_id.in_(leads))


def _erased(conn: sa.Connection, address: str) -> dict[str, Any] | None:
    """When the address was erased on request (only its keyed hash is left), else None."""
    tokens = erased_tokens(conn)
    if not tokens:
        return None
    token = erased_token(erasure_key(conn), address)
    if token not in tokens:
        return None
    row = conn.execute(
        sa.select(suppression_t.c.created_at).where(suppression_t.c.email == token).limit(1)
    ).first()
    return {"at": row.created_at if row else None}
