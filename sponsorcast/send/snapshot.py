"""The snapshot: the audience becomes delivery rows and batches in one write transaction.

Each batch gets an idempotency key fixed from then on (campaign id + a nonce of this
snapshot + batch number)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from sponsorcast.audience import select_recipients
from sponsorcast.durations import parse_duration
from sponsorcast.send.abtest import assign_test_group
from sponsorcast.send.plan import NOT_STARTED, Plan
from sponsorcast.store import Store
from sponsorcast.store.lifecycle import (
    record_event,
    transition,
)
from sponsorcast.store.models import (
    BatchStatus,
    CampaignStatus,
    DeliveryStatus,
    Sponsor,
    utcnow,
)
from sponsorcast.store.tables import batch_t, campaign_t, delivery_t, lead_t
from sponsorcast.suppression import suppressed_condition

if TYPE_CHECKING:
    from sponsorcast.campaign import CampaignFile


class _Abandoned(Exception):
    """``commit_when`` said no: the snapshot's transaction is rolled back."""


def take_snapshot(
    store: Store,
    plan: Plan,
    batch_size: int,
    *,
    cause: str = "send",
    commit_when: Callable[[], bool] | None = None,
) -> bool:
    """Turn the audience into delivery rows and batches in one transaction.

    Returns False when another process snapshotted this campaign first, or ``commit_when``
    (called before the commit, and may wait) said no: nothing written either way.
    """
    campaign = plan.campaign
    now = utcnow()
    nonce = secrets.token_hex(4)
    try:
        with store.write() as conn:
            # FOR UPDATE: on PostgreSQL two run-due processes starting one campaign queue here
            # (SQLite's write transaction already serialises them; SQLAlchemy omits it there)
            existing = conn.execute(
                sa.select(campaign_t.c.status, campaign_t.c.started_at)
                .where(campaign_t.c.id == campaign.id)
                .with_for_update()
            ).first()
            if existing is not None and (
                existing.status not in NOT_STARTED or existing.started_at is not None
            ):
                return False
            if existing is not None and _has_deliveries(conn, campaign.id):
                return False
            values = campaign_values(campaign, plan.sponsor)
            if existing is None:
                conn.execute(
                    campaign_t.insert().values(
                        id=campaign.id,
                        status=CampaignStatus.DRAFT,
                        created_at=now,
                        total_recipients=0,
                        **values,
                    )
                )
                record_event(
                    conn,
                    campaign.id,
                    "campaign.draft",
                    {"from": None, "to": CampaignStatus.DRAFT, "cause": cause},
                )
            else:
                if values["send_at"] is None:  # keep the time it was scheduled for
                    del values["send_at"]
                conn.execute(
                    campaign_t.update().where(campaign_t.c.id == campaign.id).values(**values)
                )
            # a follow-up's recipients come due one by one (send.followups): none at the start
            total = 0 if campaign.follows else _insert_deliveries(conn, campaign, batch_size)
            if campaign.test is not None:  # the test group gets the batches; the rest waits
                names = [v.name for v in campaign.variants]
                split = assign_test_group(conn, campaign.id, names, campaign.test.share, batch_size)
                record_event(conn, campaign.id, "test.started", split)
            _insert_batches(conn, campaign.id, f"sc-{campaign.id}-{nonce}-b")
            conn.execute(
                campaign_t.update()
                .where(campaign_t.c.id == campaign.id)
                .values(total_recipients=total)
            )
            transition(conn, campaign.id, CampaignStatus.SENDING, cause, extra={"started_at": now})
            if commit_when is not None and not commit_when():
                raise _Abandoned
    except _Abandoned:
        return False
    except sa.exc.IntegrityError:
        # PostgreSQL: a concurrent process inserted the campaign row first
        return False
    return True


def _has_deliveries(conn: sa.Connection, campaign_id: str) -> bool:
    return (
        conn.execute(
            sa.select(delivery_t.c.id).where(delivery_t.c.campaign_id == campaign_id).limit(1)
        ).first()
        is not None
    )


def campaign_values(
    campaign: CampaignFile, sponsor: Sponsor, *, send_at: datetime | None = None
) -> dict[str, Any]:
    """The campaign row's snapshot columns for a campaign file (``send_at`` overrides the file's)."""
    if send_at is None and campaign.send_at is not None and campaign.send_at.tzinfo is not None:
        send_at = campaign.send_at
    return {
        "sponsor_id": sponsor.id,
        "name": campaign.name,
        "subject": campaign.subject,
        "body": campaign.body,
        "audience": campaign.audience.as_dict(),
        "from_address": campaign.from_address,
        "reply_to": campaign.reply_to,
        "tags": dict(campaign.tags),
        "look": {
            "preheader": campaign.preheader,
            "language": campaign.language,
            "line_breaks": campaign.line_breaks,
            "layout_html": campaign.layout_html,
        },
        "source_path": str(campaign.path),
        "send_at": send_at,
        "content_hash": campaign.content_hash,
        "rolling": campaign.rolling,
        "follows": campaign.follows,
        "after_seconds": (
            parse_duration(campaign.after).total_seconds() if campaign.after else None
        ),
        "ab_test": (
            {
                "variants": [v.as_dict() for v in campaign.variants],
                "test": campaign.test.as_dict(),
            }
            if campaign.test is not None
            else None
        ),
        "expires_seconds": (
            parse_duration(campaign.expires).total_seconds() if campaign.expires else None
        ),
    }


DELIVERY_COLUMNS = [
    "campaign_id",
    "lead_id",
    "recipient",
    "status",
    "attempts",
    "batch",
    "open_count",
    "click_count",
]


def deliveries_from(
    campaign_id: str, where: Any, *, first_batch: int, batch_size: int
) -> sa.Select[Any]:
    """The leads ``where`` selects as delivery rows (``DELIVERY_COLUMNS``): suppressed ones
    without a batch, the others numbered into batches from ``first_batch``, in lead order."""
    c = lead_t.c
    supp = suppressed_condition(c.sponsor_id, c.email)
    is_supp = sa.case((supp, 1), else_=0)
    rank = sa.func.row_number().over(partition_by=is_supp, order_by=c.id)
    return (
        sa.select(
            sa.literal(campaign_id).label("campaign_id"),
            c.id.label("lead_id"),
            c.email.label("recipient"),
            sa.case(
                (supp, sa.literal(DeliveryStatus.SUPPRESSED.value)),
                else_=sa.literal(DeliveryStatus.PENDING.value),
            ).label("status"),
            sa.literal(0).label("attempts"),
            sa.case((supp, sa.null()), else_=first_batch + (rank - 1) // batch_size).label("batch"),
            sa.literal(0).label("open_count"),
            sa.literal(0).label("click_count"),
        )
        .where(where)
        .order_by(c.id)
    )


def _insert_deliveries(conn: sa.Connection, campaign: CampaignFile, batch_size: int) -> int:
    where = select_recipients(campaign.sponsor, campaign.audience).whereclause
    source = deliveries_from(campaign.id, where, first_batch=0, batch_size=batch_size)
    conn.execute(delivery_t.insert().from_select(DELIVERY_COLUMNS, source))
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(delivery_t.c.campaign_id == campaign.id)
        ).scalar_one()
    )


def _insert_batches(conn: sa.Connection, campaign_id: str, key_prefix: str) -> None:
    numbers = (
        sa.select(delivery_t.c.batch)
        .where(delivery_t.c.campaign_id == campaign_id, delivery_t.c.batch.is_not(None))
        .distinct()
        .subquery()
    )
    source = sa.select(
        sa.literal(campaign_id).label("campaign_id"),
        numbers.c.batch.label("number"),
        sa.literal(BatchStatus.PENDING.value).label("status"),
        (sa.literal(key_prefix) + sa.cast(numbers.c.batch, sa.String)).label("idempotency_key"),
        sa.literal(0).label("attempts"),
    )
    conn.execute(
        batch_t.insert().from_select(
            ["campaign_id", "number", "status", "idempotency_key", "attempts"], source
        )
    )
