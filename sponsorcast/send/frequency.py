"""The frequency cap: how many emails of one sponsor a lead may get within a window.

A sponsor's ``frequency_cap = "1 per 3d"`` means a lead who got an email of any other campaign
of that sponsor in the last three days is not emailed again yet. Emails count from the moment
their batch is claimed (``sending``) and by their ``sent_at`` after, so two campaigns sent at
once see each other; the claim locks the sponsor's row while it counts, as the daily cap does.

- A normal campaign records a capped recipient as ``skipped`` (reason ``capped: …``) when
  their batch is claimed, before its first request, and never emails them.
- A follow-up holds them back: ``add_due`` leaves a capped recipient out until the window has
  passed, and a claim that finds one capped takes their row out again, so they wait. A
  recipient still capped ``expires`` (default 14 days) after they came due is skipped.

The parent's own email counts as well: a follow-up ``after: 1d`` under ``1 per 3d`` goes out
three days after the parent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from sponsorcast.audience import Audience, audience_filter
from sponsorcast.durations import FrequencyCap, parse_frequency_cap
from sponsorcast.send.rolling import recount
from sponsorcast.store.models import BatchStatus, CampaignStatus, DeliveryStatus, Sponsor, utcnow
from sponsorcast.store.tables import batch_t, delivery_t, lead_t, sponsor_t
from sponsorcast.suppression import suppressed_condition

DEFAULT_EXPIRES = timedelta(days=14)


def frequency_cap(sponsor: Sponsor) -> FrequencyCap | None:
    """The sponsor's cap, or None when it has none."""
    return parse_frequency_cap(sponsor.frequency_cap) if sponsor.frequency_cap else None


def capped_reason(cap: FrequencyCap) -> str:
    """The ``last_error`` of a delivery the cap skipped."""
    return f"capped: had an email of this sponsor within its frequency cap of {cap.text}"


def expired_reason(cap: FrequencyCap) -> str:
    """The ``last_error`` of a follow-up's recipient held back by the cap until it expired."""
    return f"capped: the frequency cap of {cap.text} held them back until the follow-up expired"


def capped(cap: FrequencyCap, campaign_id: str, now: datetime) -> sa.ColumnElement[bool]:
    """Deliveries (of ``delivery_t``) whose lead has as many emails of other campaigns in the
    window as the cap allows. A lead belongs to one sponsor, so its deliveries are that
    sponsor's; the recipient's index finds them (the lead id narrows to this sponsor's)."""
    d = delivery_t.alias("fc")
    recent = (
        sa.select(sa.func.count())
        .where(
            d.c.recipient == delivery_t.c.recipient,
            d.c.lead_id == delivery_t.c.lead_id,
            d.c.campaign_id != campaign_id,
            sa.or_(d.c.sent_at > now - cap.window, d.c.status == DeliveryStatus.SENDING),
        )
        .scalar_subquery()
    )
    return recent >= cap.emails


def capped_leads(
    cap: FrequencyCap, campaign_id: str, lead_id: sa.ColumnElement[int], now: datetime
) -> sa.ColumnElement[bool]:
    """``capped`` for many leads at once (a follow-up's due selection, a dry run): the leads
    with emails in the window are collected once, from the emails of the window (index on
    ``sent_at``) and the claimed batches, instead of probing each lead's history."""
    recent = sa.select(delivery_t.c.lead_id).where(
        delivery_t.c.sent_at > now - cap.window, delivery_t.c.campaign_id != campaign_id
    )
    claimed = (
        sa.select(delivery_t.c.lead_id)
        .join(
            batch_t,
            sa.and_(
                batch_t.c.campaign_id == delivery_t.c.campaign_id,
                batch_t.c.number == delivery_t.c.batch,
            ),
        )
        .where(
            batch_t.c.status == BatchStatus.CLAIMED,
            delivery_t.c.status == DeliveryStatus.SENDING,
            delivery_t.c.campaign_id != campaign_id,
        )
    )
    emails = sa.union_all(recent, claimed).subquery()
    over = (
        sa.select(emails.c.lead_id).group_by(emails.c.lead_id).having(sa.func.count() >= cap.emails)
    )
    return lead_id.in_(over)


@dataclass(frozen=True)
class FrequencyHold:
    """What a claim does with the capped members of a batch of one campaign."""

    cap: FrequencyCap
    sponsor_id: str
    follow_up: bool

    @classmethod
    def of(cls, sponsor: Sponsor, *, follow_up: bool) -> FrequencyHold | None:
        """The hold for a campaign of ``sponsor``; None when the sponsor has no cap."""
        cap = frequency_cap(sponsor)
        return None if cap is None else cls(cap, sponsor.id, follow_up)

    def apply(self, conn: sa.Connection, campaign_id: str, batch: int, now: datetime) -> int:
        """Skip (or, in a follow-up, take out to wait) the pending members of a batch not yet
        attempted who are capped now; how many."""
        # serialises the count-then-claim of every process sending for this sponsor
        conn.execute(
            sa.select(sponsor_t.c.id).where(sponsor_t.c.id == self.sponsor_id).with_for_update()
        )
        members = (
            delivery_t.c.campaign_id == campaign_id,
            delivery_t.c.batch == batch,
            delivery_t.c.status == DeliveryStatus.PENDING,
            capped(self.cap, campaign_id, now),
        )
        if self.follow_up:
            held = conn.execute(delivery_t.delete().where(*members)).rowcount
            if held:  # a claim runs on a sending campaign: only its total changes
                recount(conn, campaign_id, CampaignStatus.SENDING, "held back by the cap")
            return int(held)
        return int(
            conn.execute(
                delivery_t.update()
                .where(*members)
                .values(
                    status=DeliveryStatus.SKIPPED, batch=None, last_error=capped_reason(self.cap)
                )
            ).rowcount
        )


def capped_in_audience(
    conn: sa.Connection,
    sponsor: Sponsor,
    audience: Audience,
    campaign_id: str,
    now: datetime | None = None,
) -> int:
    """How many of the audience's unsuppressed leads the cap would skip now (a dry run)."""
    cap = frequency_cap(sponsor)
    if cap is None:
        return 0
    now = now or utcnow()
    query = (
        sa.select(sa.func.count())
        .select_from(lead_t)
        .where(
            audience_filter(sponsor.id, audience, now),
            ~suppressed_condition(lead_t.c.sponsor_id, lead_t.c.email),
            capped_leads(cap, campaign_id, lead_t.c.id, now),
        )
    )
    return int(conn.execute(query).scalar_one())
