"""Planning a send: a campaign file checked against its sponsor and the store, and every
recipient rendered once before anything is written (a template error sends nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from sponsorcast.audience import select_recipients
from sponsorcast.campaign import load_campaign
from sponsorcast.config import Config
from sponsorcast.errors import BadInput, ConfigError, TemplateError
from sponsorcast.headers import mailbox_problem
from sponsorcast.render import RecipientSource, check_audience, compile_campaign
from sponsorcast.store import Store, get_sponsor
from sponsorcast.store.lifecycle import (
    status_counts,
)
from sponsorcast.store.models import (
    CampaignStatus,
    DeliveryStatus,
    Sponsor,
)
from sponsorcast.store.tables import campaign_t
from sponsorcast.suppression import suppressed_condition

if TYPE_CHECKING:
    from sponsorcast.campaign import CampaignFile
    from sponsorcast.render import CompiledCampaign


# Statuses from which a campaign that never started sending is snapshotted afresh.
NOT_STARTED = (
    CampaignStatus.DRAFT,
    CampaignStatus.SCHEDULED,
    CampaignStatus.MISSED,
    CampaignStatus.PAUSED,
    CampaignStatus.FAILED,
)


@dataclass(frozen=True)
class Plan:
    """A campaign file checked against its sponsor and the store, ready to send or preview."""

    campaign: CampaignFile
    sponsor: Sponsor
    compiled: CompiledCampaign
    existing_status: str | None
    recipients: int
    suppressed: int


def plan_send(store: Store, config: Config, path: Path) -> Plan:
    """Load and validate a campaign file for sending; refuses a file changed after sending began."""

    campaign = load_campaign(path)
    sponsor = get_sponsor(store, campaign.sponsor)
    check_sponsor(sponsor, campaign)
    compiled = compile_campaign(
        campaign, sponsor, unsubscribe_mailto=config.tracking.unsubscribe_mailto
    )
    with store.read() as conn:
        row = conn.execute(
            sa.select(
                campaign_t.c.status,
                campaign_t.c.content_hash,
                campaign_t.c.source_path,
                campaign_t.c.started_at,
            ).where(campaign_t.c.id == campaign.id)
        ).first()
        if row is not None:
            _refuse_changed(
                campaign, row.status, row.content_hash, started=row.started_at is not None
            )
            counts = status_counts(conn, campaign.id)
            total = sum(counts.values())
            suppressed = counts.get(DeliveryStatus.SUPPRESSED, 0)
        else:
            total, suppressed = _audience_size(conn, campaign)
    return Plan(campaign, sponsor, compiled, row.status if row else None, total, suppressed)


def check_sponsor(sponsor: Sponsor, campaign: CampaignFile) -> None:
    """A sponsor must be allowed to send and must have a from address."""
    if not sponsor.messaging_enabled:
        raise BadInput(
            f"Sponsor '{sponsor.id}' is not enabled for messaging; nothing was sent.",
            hint=f"Set messaging_enabled = true under [sponsors.{sponsor.id}] in sponsorcast.toml.",
        )
    if not (campaign.from_address or sponsor.from_address):
        raise ConfigError(
            f"Sponsor '{sponsor.id}' has no from address; nothing was sent.",
            hint=f"Set 'from' under [sponsors.{sponsor.id}] in sponsorcast.toml, or 'from:' in {campaign.path}.",
        )

    for key, value in (("from", sponsor.from_address), ("reply_to", sponsor.reply_to)):
        problem = mailbox_problem(value) if value else None
        if problem is not None:
            raise BadInput(
                f"Sponsor '{sponsor.id}' has {key} {value!r}, which cannot be a sender "
                f"address: {problem}; nothing was sent."
            )


def _refuse_changed(
    campaign: CampaignFile, status: str, stored_hash: str, *, started: bool = True
) -> None:
    # before sending began (draft, scheduled, missed, paused/failed before the start) no
    # recipient got anything yet: the new version replaces the stored one
    if (
        stored_hash
        and stored_hash != campaign.content_hash
        and (started or status not in NOT_STARTED)
    ):
        raise BadInput(
            f"{campaign.path} changed after campaign '{campaign.id}' was {status}; "
            "recipients must not get two versions of one campaign, so nothing was sent.",
            hint="Restore the file, or give the new version another id (front-matter 'id:').",
        )


def _audience_size(conn: sa.Connection, campaign: CampaignFile) -> tuple[int, int]:
    sel = select_recipients(campaign.sponsor, campaign.audience, ("email", "sponsor_id")).subquery()
    supp = suppressed_condition(sel.c.sponsor_id, sel.c.email)
    row = conn.execute(
        sa.select(
            sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((supp, 1), else_=0)), 0)
        ).select_from(sel)
    ).one()
    return int(row[0]), int(row[1])


def validate_all(store: Store, plan: Plan, config: Config) -> int:
    """Render every recipient of the audience; any problem raises TemplateError, nothing sent."""

    report = check_audience(plan.compiled, RecipientSource(config, store=store))
    if report.problems:
        first = report.problems[0]
        more = (
            f" (and {len(report.problems) - 1} more problem(s))" if len(report.problems) > 1 else ""
        )
        raise TemplateError(
            f"{first.message} for {first.count} recipient(s){more}; nothing was sent",
            path=first.path,
            line=first.line,
            hint=f"'sponsorcast render {plan.campaign.path} --check' lists every problem.",
        )
    return int(report.checked)
