"""A campaign's numbers (``stats --json``), from one aggregate query over its deliveries.

Counters are cumulative along the way an email travels: ``sent`` is every delivery the provider
accepted (``sent_at`` set), whatever happened after; ``delivered`` every one with
``delivered_at`` (set too when an open, click or complaint arrives first); ``opened`` and
``clicked`` count recipients, not events. ``pending`` is pending plus sending. ``cancelled``
(deliveries a cancelled campaign will never send) is one key beyond the documented list, so that
the numbers add up to ``total_recipients``. Rates are
percentages of ``sent`` with one decimal (0.0 when nothing was sent).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from sponsorcast.store import Store
from sponsorcast.store.lifecycle import unknown_campaign
from sponsorcast.store.models import DeliveryStatus
from sponsorcast.store.tables import batch_t as b
from sponsorcast.store.tables import campaign_t, delivery_t

STATS_KEYS = (
    "campaign",
    "status",
    "total_recipients",
    "pending",
    "sent",
    "delivered",
    "failed",
    "bounced",
    "complained",
    "suppressed",
    "cancelled",
    "opened",
    "clicked",
    "unsubscribed",
    "open_rate",
    "click_rate",
    "started_at",
    "finished_at",
    "emails_per_second",
)


def _count_if(condition: sa.ColumnElement[bool], name: str) -> sa.Label[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0).label(name)


def _counters_query(campaign_id: str) -> sa.Select[Any]:
    d = delivery_t
    return sa.select(
        sa.func.count().label("total_recipients"),
        _count_if(d.c.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING]), "pending"),
        _count_if(d.c.sent_at.is_not(None), "sent"),
        _count_if(d.c.delivered_at.is_not(None), "delivered"),
        _count_if(d.c.status == DeliveryStatus.FAILED, "failed"),
        _count_if(d.c.status == DeliveryStatus.BOUNCED, "bounced"),
        _count_if(d.c.status == DeliveryStatus.COMPLAINED, "complained"),
        _count_if(d.c.status == DeliveryStatus.SUPPRESSED, "suppressed"),
        _count_if(d.c.status == DeliveryStatus.CANCELLED, "cancelled"),
        _count_if(d.c.opened_at.is_not(None), "opened"),
        _count_if(d.c.first_click_at.is_not(None), "clicked"),
        _count_if(d.c.unsubscribed_at.is_not(None), "unsubscribed"),
    ).where(d.c.campaign_id == campaign_id)


def _aware(value: datetime | str | None) -> datetime | None:
    """A min()/max() of a stored time: SQLite gives it back as text or naive UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _rate(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def campaign_stats(store: Store, campaign_id: str) -> dict[str, Any]:
    """The ``stats --json`` numbers for one campaign; NotFound for an unknown id."""
    with store.read() as conn:
        campaign = conn.execute(
            sa.select(
                campaign_t.c.id,
                campaign_t.c.status,
                campaign_t.c.started_at,
                campaign_t.c.finished_at,
            ).where(campaign_t.c.id == campaign_id)
        ).first()
        if campaign is None:
            raise unknown_campaign(conn, campaign_id)
        counts = conn.execute(_counters_query(campaign_id)).mappings().one()
        first_claim, last_answer = conn.execute(
            sa.select(sa.func.min(b.c.first_attempt_at), sa.func.max(b.c.finished_at)).where(
                b.c.campaign_id == campaign_id
            )
        ).one()
    numbers = {k: int(v) for k, v in counts.items()}
    started: datetime | None = campaign.started_at
    # the sending time, first batch claimed to last batch answered: what `send` measures too
    per_second = None
    begin, end = _aware(first_claim), _aware(last_answer)
    if begin is not None and end is not None and numbers["sent"]:
        elapsed = (end - begin).total_seconds()
        if elapsed > 0:
            per_second = round(numbers["sent"] / elapsed, 1)
    result: dict[str, Any] = {
        "campaign": campaign.id,
        "status": campaign.status,
        **numbers,
        "open_rate": _rate(numbers["opened"], numbers["sent"]),
        "click_rate": _rate(numbers["clicked"], numbers["sent"]),
        "started_at": started,
        "finished_at": campaign.finished_at,
        "emails_per_second": per_second,
    }
    return {key: result[key] for key in STATS_KEYS}
