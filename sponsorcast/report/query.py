"""The SQL a report is built from: every number is an aggregate the store computes.

Each function takes an open connection and a list of campaign ids and returns at most one
row per group (per hour, per link, per reason), never one per delivery or event, except
``top_recipients``, which returns the few rows it is asked for (``export`` streams them all).
Times come back timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from sponsorcast.store.models import DeliveryStatus
from sponsorcast.store.tables import delivery_t, event_t, lead_t

FUNNEL_KEYS = (
    "total_recipients",
    "pending",
    "sent",
    "delivered",
    "failed",
    "bounced",
    "complained",
    "suppressed",
    "cancelled",
    "skipped",
    "opened",
    "clicked",
    "unsubscribed",
)

# the events that carry a click on one link: this server's redirect, and Resend's webhook
CLICK_EVENTS = ("click", "email.clicked")

RECIPIENT_FIELDS = (
    "recipient",
    "name",
    "company",
    "status",
    "sent_at",
    "delivered_at",
    "opened_at",
    "open_count",
    "first_click_at",
    "click_count",
    "unsubscribed_at",
    "last_error",
)


def _count_if(condition: sa.ColumnElement[bool], name: str) -> sa.Label[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0).label(name)


def counters_query(campaign_ids: Sequence[str]) -> sa.Select[Any]:
    """One row of the funnel's counters over the deliveries of these campaigns."""
    d = delivery_t
    return sa.select(
        sa.func.count().label("total_recipients"),
        # an A/B test's held recipients are not sent yet either
        _count_if(
            d.c.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.HELD]),
            "pending",
        ),
        _count_if(d.c.sent_at.is_not(None), "sent"),
        _count_if(d.c.delivered_at.is_not(None), "delivered"),
        _count_if(d.c.status == DeliveryStatus.FAILED, "failed"),
        _count_if(d.c.status == DeliveryStatus.BOUNCED, "bounced"),
        _count_if(d.c.status == DeliveryStatus.COMPLAINED, "complained"),
        _count_if(d.c.status == DeliveryStatus.SUPPRESSED, "suppressed"),
        _count_if(d.c.status == DeliveryStatus.CANCELLED, "cancelled"),
        _count_if(d.c.status == DeliveryStatus.SKIPPED, "skipped"),
        _count_if(d.c.opened_at.is_not(None), "opened"),
        _count_if(d.c.first_click_at.is_not(None), "clicked"),
        _count_if(d.c.unsubscribed_at.is_not(None), "unsubscribed"),
    ).where(d.c.campaign_id.in_(campaign_ids))


def counters(conn: sa.Connection, campaign_ids: Sequence[str]) -> dict[str, int]:
    """The funnel's counters (``FUNNEL_KEYS``) over these campaigns."""
    row = conn.execute(counters_query(campaign_ids)).mappings().one()
    return {key: int(row[key]) for key in FUNNEL_KEYS}


def per_campaign_counters(
    conn: sa.Connection, campaign_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    """The funnel's counters of each campaign, in one grouped query."""
    query = counters_query(campaign_ids).add_columns(delivery_t.c.campaign_id)
    rows = conn.execute(query.group_by(delivery_t.c.campaign_id)).mappings()
    found = {row["campaign_id"]: {key: int(row[key]) for key in FUNNEL_KEYS} for row in rows}
    empty = dict.fromkeys(FUNNEL_KEYS, 0)
    return {cid: found.get(cid, dict(empty)) for cid in campaign_ids}


def per_variant_counters(conn: sa.Connection, campaign_id: str) -> dict[str, dict[str, int]]:
    """The funnel's counters of each A/B variant of a campaign (held recipients have none yet)."""
    query = counters_query([campaign_id]).add_columns(delivery_t.c.variant)
    rows = conn.execute(
        query.where(delivery_t.c.variant.is_not(None)).group_by(delivery_t.c.variant)
    ).mappings()
    return {row["variant"]: {key: int(row[key]) for key in FUNNEL_KEYS} for row in rows}


def aware(value: datetime | str | None) -> datetime | None:
    """A stored time as aware UTC: SQLite gives aggregates back as text or naive UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _hour_of(conn: sa.Connection, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    if conn.dialect.name == "postgresql":
        return sa.func.date_trunc("hour", column)
    # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff': its first 13 characters are the hour
    return sa.func.substr(column, 1, 13).op("||")(":00:00")


def first_actions_per_hour(
    conn: sa.Connection, campaign_ids: Sequence[str]
) -> list[tuple[datetime, int, int]]:
    """(hour, recipients who first opened in it, who first clicked in it), by hour."""
    hours: dict[datetime, list[int]] = {}
    for slot, column in enumerate((delivery_t.c.opened_at, delivery_t.c.first_click_at)):
        hour = _hour_of(conn, column).label("hour")
        query = (
            sa.select(hour, sa.func.count().label("n"))
            .where(delivery_t.c.campaign_id.in_(campaign_ids), column.is_not(None))
            .group_by(hour)
        )
        for at, n in conn.execute(query):
            start = aware(at)
            assert start is not None
            hours.setdefault(start, [0, 0])[slot] += int(n)
    return [(at, opened, clicked) for at, (opened, clicked) in sorted(hours.items())]


def clicks_per_key(
    conn: sa.Connection, campaign_ids: Sequence[str]
) -> list[tuple[str, str, int, int]]:
    """(campaign, link key, total clicks, recipients who clicked) per link key.

    The key is the campaign link a click of this server's redirect was matched to (the link as
    written, Jinja and all), else the URL it went to, else the link of Resend's click event.
    """
    p = event_t.c.payload
    key = sa.func.coalesce(
        p["link"].as_string(), p["url"].as_string(), p[("data", "click", "link")].as_string()
    ).label("key")
    query = (
        sa.select(
            event_t.c.campaign_id,
            key,
            sa.func.count().label("total"),
            sa.func.count(sa.distinct(event_t.c.delivery_id)).label("unique"),
        )
        .where(event_t.c.campaign_id.in_(campaign_ids), event_t.c.type.in_(CLICK_EVENTS))
        .group_by(event_t.c.campaign_id, key)
    )
    return [
        (str(cid), str(k), int(total), int(unique))
        for cid, k, total, unique in conn.execute(query)
        if k is not None
    ]


def problems(conn: sa.Connection, campaign_ids: Sequence[str]) -> list[tuple[str, str, int]]:
    """(status, reason, deliveries) for bounced, complained and failed deliveries."""
    reason = sa.func.coalesce(delivery_t.c.last_error, "").label("reason")
    query = (
        sa.select(delivery_t.c.status, reason, sa.func.count().label("n"))
        .where(
            delivery_t.c.campaign_id.in_(campaign_ids),
            delivery_t.c.status.in_(
                [DeliveryStatus.BOUNCED, DeliveryStatus.COMPLAINED, DeliveryStatus.FAILED]
            ),
        )
        .group_by(delivery_t.c.status, reason)
        .order_by(delivery_t.c.status, sa.desc("n"), reason)
    )
    return [(str(status), str(why), int(n)) for status, why, n in conn.execute(query)]


def top_recipients(
    conn: sa.Connection, campaign_ids: Sequence[str], limit: int
) -> list[dict[str, Any]]:
    """The ``limit`` most engaged deliveries (clickers first, then openers, then by address),
    each with its lead's name and company (``RECIPIENT_FIELDS``)."""
    d = delivery_t
    query = (
        sa.select(
            d.c.recipient,
            lead_t.c.name,
            lead_t.c.company,
            d.c.status,
            d.c.sent_at,
            d.c.delivered_at,
            d.c.opened_at,
            d.c.open_count,
            d.c.first_click_at,
            d.c.click_count,
            d.c.unsubscribed_at,
            d.c.last_error,
        )
        .select_from(d.outerjoin(lead_t, lead_t.c.id == d.c.lead_id))
        .where(d.c.campaign_id.in_(campaign_ids))
        .order_by(sa.desc(d.c.click_count), sa.desc(d.c.open_count), d.c.recipient)
        .limit(limit)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


__all__ = [
    "CLICK_EVENTS",
    "FUNNEL_KEYS",
    "RECIPIENT_FIELDS",
    "aware",
    "clicks_per_key",
    "counters",
    "counters_query",
    "first_actions_per_hour",
    "per_campaign_counters",
    "problems",
    "top_recipients",
]
