"""Picking an A/B test's winner and releasing the held recipients to it.

``pick`` runs in one write transaction under a lock on the campaign's row: it reads each
variant's numbers from the ledger, decides (``send.abtest.decide``), records the decision as
the campaign event ``test.picked`` with the numbers, and turns every held recipient into a
pending delivery of the winner in new batches, under keys of a new nonce. A campaign is
picked once: a second pick, by hand or by an overlapping ``run-due``, finds the winner set
and changes nothing, so no held recipient is ever given a second variant.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from sponsorcast.errors import BadInput
from sponsorcast.send.abtest import Decision, decide, pick_due_at, stored_ab, variant_results
from sponsorcast.send.rolling import add_batches, next_batch_number
from sponsorcast.store import Store
from sponsorcast.store.lifecycle import get_campaign_row, record_event
from sponsorcast.store.models import CampaignStatus, DeliveryStatus, utcnow
from sponsorcast.store.tables import campaign_t, delivery_t

# sent: a test of the whole audience (share 100 %) holds nobody; its pick only decides
PICKABLE = (CampaignStatus.SENDING, CampaignStatus.PAUSED, CampaignStatus.SENT)


def pick(
    store: Store,
    campaign_id: str,
    batch_size: int,
    *,
    variant: str | None = None,
    now: datetime | None = None,
    due_only: bool = False,
) -> Decision | None:
    """Pick the winner (``variant`` by hand, else from the ledger) and give it to the held
    recipients; None when ``due_only`` and the pick is not due yet, or another process
    picked first while this one waited for the lock."""
    now = now or utcnow()
    with store.write() as conn:
        conn.execute(
            sa.select(campaign_t.c.id).where(campaign_t.c.id == campaign_id).with_for_update()
        ).first()
        row = get_campaign_row(conn, campaign_id)
        variants, test = stored_ab(row["ab_test"])
        if test is None:
            raise BadInput(
                f"Campaign '{campaign_id}' is not an A/B test; there is nothing to pick."
            )
        names = [v.name for v in variants]
        if row["winner"] is not None:
            if due_only:
                return None
            raise BadInput(
                f"Campaign '{campaign_id}' already picked variant {row['winner']} at "
                f"{row['picked_at']:%Y-%m-%d %H:%M} UTC; its held recipients were given it."
            )
        if variant is not None and variant not in names:
            raise BadInput(
                f"Campaign '{campaign_id}' has no variant '{variant}' (its variants: "
                f"{', '.join(names)}); nothing was picked."
            )
        if row["status"] not in PICKABLE:
            raise BadInput(
                f"Campaign '{campaign_id}' is {row['status']}; only a sending, paused or sent "
                "test can be picked."
            )
        if due_only:
            due = pick_due_at(conn, campaign_id, test)
            if due is None or now < due:
                return None
        decision = decide(test, variant_results(conn, campaign_id, names, test.by), variant)
        _release(conn, campaign_id, decision.winner, batch_size)
        conn.execute(
            campaign_t.update()
            .where(campaign_t.c.id == campaign_id)
            .values(winner=decision.winner, picked_at=now)
        )
        record_event(conn, campaign_id, "test.picked", decision.as_dict())
    return decision


def _release(conn: sa.Connection, campaign_id: str, winner: str, batch_size: int) -> None:
    """The held recipients become pending deliveries of ``winner``, in new batches numbered
    in delivery order, in one statement (however many are held)."""
    held = (
        delivery_t.c.campaign_id == campaign_id,
        delivery_t.c.status == DeliveryStatus.HELD,
    )
    if conn.execute(sa.select(delivery_t.c.id).where(*held).limit(1)).first() is None:
        return
    first = next_batch_number(conn, campaign_id)
    ranked = (
        sa.select(
            delivery_t.c.id.label("d_id"),
            sa.func.row_number().over(order_by=delivery_t.c.id).label("rank"),
        )
        .where(*held)
        .subquery()
    )
    conn.execute(
        delivery_t.update()
        .where(delivery_t.c.id == ranked.c.d_id)
        .values(
            status=DeliveryStatus.PENDING,
            variant=winner,
            batch=first + (ranked.c.rank - 1) // batch_size,
        )
    )
    add_batches(conn, campaign_id, first)


def pick_if_due(store: Store, campaign_id: str, batch_size: int, now: datetime) -> str | None:
    """``run-due`` and ``send``: pick the winner once ``pick_after`` has passed; a sentence
    saying what was picked, or None when nothing was."""
    decision = pick(store, campaign_id, batch_size, now=now, due_only=True)
    if decision is None:
        return None
    return f"Campaign '{campaign_id}': picked {decision.sentence()}; the held recipients get it."
