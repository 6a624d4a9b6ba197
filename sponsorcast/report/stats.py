"""A campaign's numbers (``stats --json``), from one aggregate query over its deliveries.

Counters are cumulative along the way an email travels: ``sent`` is every delivery the provider
accepted (``sent_at`` set), whatever happened after; ``delivered`` every one with
``delivered_at`` (set too when an open, click or complaint arrives first); ``opened`` and
``clicked`` count recipients, not events. ``pending`` is pending plus sending. ``cancelled``
(deliveries a cancelled campaign will never send) and ``skipped`` (a follow-up's recipients who
no longer qualified when they came due, or the frequency cap's) are beyond the documented
list, so that the numbers add up to ``total_recipients``; an A/B test's held recipients count
as ``pending``, and ``variants`` gives every counter per variant. Rates are
percentages of ``sent`` with one decimal (0.0 when nothing was sent). ``timeline`` and
``links`` are the report's (``report.rows``): first opens and clicks per hour, then per day,
and each link's clicks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sponsorcast.report.build import links_of, rate, timeline_of
from sponsorcast.report.query import (
    FUNNEL_KEYS,
    aware,
    counters,
    per_campaign_counters,
    per_variant_counters,
)
from sponsorcast.report.rows import link_rows, timeline_rows
from sponsorcast.send.abtest import ab_state
from sponsorcast.store import Store
from sponsorcast.store.lifecycle import unknown_campaign
from sponsorcast.store.tables import batch_t as b
from sponsorcast.store.tables import campaign_t

STATS_KEYS = (
    "campaign",
    "status",
    "status_reason",  # why it is paused (a brake's numbers, a quota), failed or cancelled
    *FUNNEL_KEYS,
    "open_rate",
    "click_rate",
    "started_at",
    "finished_at",
    "emails_per_second",
    "timeline",
    "links",
    "follow_ups",  # each campaign that follows this one: sent, skipped and still waiting
    "variants",  # an A/B test's counters per variant ([] for other campaigns)
    "test",  # an A/B test's state and decision (None for other campaigns)
)


def _follow_ups(conn: sa.Connection, campaign_id: str) -> list[dict[str, Any]]:
    """The campaigns that follow this one, with their numbers so far."""
    from sponsorcast.send.followups import waiting

    ids = list(
        conn.execute(
            sa.select(campaign_t.c.id)
            .where(campaign_t.c.follows == campaign_id)
            .order_by(campaign_t.c.created_at, campaign_t.c.id)
        ).scalars()
    )
    numbers = per_campaign_counters(conn, ids) if ids else {}
    return [
        {
            "campaign": cid,
            "sent": numbers[cid]["sent"],
            "suppressed": numbers[cid]["suppressed"],
            "skipped": numbers[cid]["skipped"],
            "waiting": waiting(conn, cid)[0],
        }
        for cid in ids
    ]


def campaign_stats(store: Store, campaign_id: str) -> dict[str, Any]:
    """The ``stats --json`` numbers for one campaign; NotFound for an unknown id."""
    with store.read() as conn:
        campaign = conn.execute(
            sa.select(
                campaign_t.c.id,
                campaign_t.c.status,
                campaign_t.c.status_reason,
                campaign_t.c.started_at,
                campaign_t.c.finished_at,
                campaign_t.c.body,
            ).where(campaign_t.c.id == campaign_id)
        ).first()
        if campaign is None:
            raise unknown_campaign(conn, campaign_id)
        numbers = counters(conn, [campaign_id])
        timeline = timeline_of(conn, campaign_id, campaign.started_at)
        links = links_of(conn, campaign_id, campaign.body)
        follow_ups = _follow_ups(conn, campaign_id)
        test = ab_state(conn, campaign_id)
        per_variant = per_variant_counters(conn, campaign_id) if test is not None else {}
        first_claim, last_answer = conn.execute(
            sa.select(sa.func.min(b.c.first_attempt_at), sa.func.max(b.c.finished_at)).where(
                b.c.campaign_id == campaign_id
            )
        ).one()
    started: datetime | None = campaign.started_at
    # the sending time, first batch claimed to last batch answered: what `send` measures too
    per_second = None
    begin, end = aware(first_claim), aware(last_answer)
    if begin is not None and end is not None and numbers["sent"]:
        elapsed = (end - begin).total_seconds()
        if elapsed > 0:
            per_second = round(numbers["sent"] / elapsed, 1)
    result: dict[str, Any] = {
        "campaign": campaign.id,
        "status": campaign.status,
        "status_reason": campaign.status_reason,
        **numbers,
        "open_rate": rate(numbers["opened"], numbers["sent"]),
        "click_rate": rate(numbers["clicked"], numbers["sent"]),
        "started_at": started,
        "finished_at": campaign.finished_at,
        "emails_per_second": per_second,
        "timeline": timeline_rows(timeline),
        "links": link_rows(links),
        "follow_ups": follow_ups,
        "variants": [
            _variant_row(name, per_variant.get(name))
            for name in (test.variants if test is not None else [])
        ],
        "test": test.as_dict() if test is not None else None,
    }
    return {key: result[key] for key in STATS_KEYS}


def _variant_row(name: str, numbers: dict[str, int] | None) -> dict[str, Any]:
    """One variant's counters and rates in ``stats``."""
    numbers = numbers or dict.fromkeys(FUNNEL_KEYS, 0)
    return {
        "variant": name,
        **numbers,
        "open_rate": rate(numbers["opened"], numbers["sent"]),
        "click_rate": rate(numbers["clicked"], numbers["sent"]),
    }
