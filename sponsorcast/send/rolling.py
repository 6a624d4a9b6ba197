"""Rolling campaigns: leads that join the audience after the snapshot are sent it too.

A campaign file with ``rolling: true`` (a welcome email for every new lead), or one ``send
--include-new``, tops the campaign up: the audience's leads that have no delivery row in it
yet become delivery rows in new batches, in one write transaction, and the run sends them.
The delivery table's unique (campaign, lead) and the lock on the campaign row keep anyone
from being added twice, however many ``send`` and ``run-due`` processes top it up at once.

Every added recipient is rendered before the transaction commits, from the campaign as it
was snapshotted. One who does not render refuses the whole top-up: nothing is added, as
for a first snapshot.
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa

from sponsorcast.audience import (
    RECIPIENT_COLUMNS,
    audience_filter,
    iter_recipients,
    parse_audience,
)
from sponsorcast.config import Config
from sponsorcast.errors import TemplateError
from sponsorcast.render import CompiledCampaign, check_recipients
from sponsorcast.send.batches import make_renderer
from sponsorcast.send.snapshot import DELIVERY_COLUMNS, deliveries_from
from sponsorcast.store import Store
from sponsorcast.store.lifecycle import transition
from sponsorcast.store.models import BatchStatus, CampaignStatus
from sponsorcast.store.tables import batch_t, campaign_t, delivery_t, lead_t
from sponsorcast.wording import count

TOP_UP_CAUSE = "new leads in the audience"


def add_new_leads(store: Store, config: Config, campaign_id: str, batch_size: int) -> int:
    """Add the audience's leads without a delivery in the campaign yet, as new batches, and
    render each before the transaction commits; returns how many became deliveries."""
    renderer = make_renderer(store, config, campaign_id)
    with store.write() as conn:
        row = conn.execute(
            sa.select(campaign_t.c.status, campaign_t.c.sponsor_id, campaign_t.c.audience)
            .where(campaign_t.c.id == campaign_id)
            .with_for_update()  # top-ups of one campaign queue here on PostgreSQL
        ).one()
        if row.status not in (CampaignStatus.SENDING, CampaignStatus.SENT):
            return 0
        first = next_batch_number(conn, campaign_id)
        added = _insert_new(conn, campaign_id, row.sponsor_id, row.audience, first, batch_size)
        if not added:
            return 0
        check_added(conn, renderer.compiled, campaign_id, first)
        add_batches(conn, campaign_id, first)
        recount(conn, campaign_id, row.status, f"{TOP_UP_CAUSE}: {count(added, 'recipient')} added")
    return added


def add_batches(conn: sa.Connection, campaign_id: str, first: int) -> None:
    """Batch rows (under keys of a new nonce) for the deliveries numbered from ``first``."""
    nonce = secrets.token_hex(4)
    numbers = (
        sa.select(delivery_t.c.batch)
        .where(delivery_t.c.campaign_id == campaign_id, delivery_t.c.batch >= first)
        .distinct()
        .subquery()
    )
    conn.execute(
        batch_t.insert().from_select(
            ["campaign_id", "number", "status", "idempotency_key", "attempts"],
            sa.select(
                sa.literal(campaign_id),
                numbers.c.batch,
                sa.literal(BatchStatus.PENDING.value),
                sa.literal(f"sc-{campaign_id}-{nonce}-b") + sa.cast(numbers.c.batch, sa.String),
                sa.literal(0),
            ),
        )
    )


def recount(conn: sa.Connection, campaign_id: str, status: str, cause: str) -> None:
    """After deliveries were added: the total again, and a sent campaign sending again."""
    total = conn.execute(
        sa.select(sa.func.count()).where(delivery_t.c.campaign_id == campaign_id)
    ).scalar_one()
    conn.execute(
        campaign_t.update()
        .where(campaign_t.c.id == campaign_id)
        .values(total_recipients=total, finished_at=None)
    )
    if status == CampaignStatus.SENT:
        transition(conn, campaign_id, CampaignStatus.SENDING, cause, expect=(CampaignStatus.SENT,))


def next_batch_number(conn: sa.Connection, campaign_id: str) -> int:
    """The first batch number no batch of the campaign has yet."""
    used = conn.execute(
        sa.select(sa.func.max(batch_t.c.number)).where(batch_t.c.campaign_id == campaign_id)
    ).scalar()
    return 0 if used is None else int(used) + 1


def _insert_new(
    conn: sa.Connection,
    campaign_id: str,
    sponsor_id: str,
    stored_audience: Any,
    first: int,
    batch_size: int,
) -> int:
    """The new leads as delivery rows (suppressed ones without a batch); how many."""
    already = sa.exists(
        sa.select(sa.literal(1)).where(
            delivery_t.c.campaign_id == campaign_id, delivery_t.c.lead_id == lead_t.c.id
        )
    )
    where = sa.and_(audience_filter(sponsor_id, parse_audience(stored_audience)), ~already)
    source = deliveries_from(campaign_id, where, first_batch=first, batch_size=batch_size)
    before = conn.execute(
        sa.select(sa.func.count()).where(delivery_t.c.campaign_id == campaign_id)
    ).scalar_one()
    conn.execute(delivery_t.insert().from_select(DELIVERY_COLUMNS, source))
    after = conn.execute(
        sa.select(sa.func.count()).where(delivery_t.c.campaign_id == campaign_id)
    ).scalar_one()
    return int(after) - int(before)


def check_added(
    conn: sa.Connection, compiled: CompiledCampaign, campaign_id: str, first: int
) -> None:
    """Render every recipient just added; a problem raises TemplateError (the caller's
    transaction then rolls the whole top-up back)."""
    query = (
        sa.select(*[lead_t.c[name] for name in RECIPIENT_COLUMNS])
        .join(delivery_t, delivery_t.c.lead_id == lead_t.c.id)
        .where(delivery_t.c.campaign_id == campaign_id, delivery_t.c.batch >= first)
        .order_by(lead_t.c.id)
    )
    report = check_recipients(compiled, iter_recipients(conn, query))
    if report.problems:
        problem = report.problems[0]
        raise TemplateError(
            f"{problem.message} for {count(problem.count, 'new recipient')}; nobody was added",
            path=problem.path,
            line=problem.line,
        )
