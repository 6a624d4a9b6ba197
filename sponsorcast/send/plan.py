"""Planning a send: a campaign file checked against its sponsor and the store, and every
recipient rendered once before anything is written (a template error sends nothing)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from sponsorcast.audience import Audience, check_ledger, select_recipients
from sponsorcast.campaign import load_campaign
from sponsorcast.config import Config
from sponsorcast.errors import (
    BadInput,
    ConfigError,
    CredentialsError,
    NothingToSend,
    TemplateError,
)
from sponsorcast.headers import mailbox_problem
from sponsorcast.render import RecipientSource, check_variants, compile_variants
from sponsorcast.render.partials import with_layout, with_partials
from sponsorcast.store import Store, get_sponsor
from sponsorcast.store.lifecycle import (
    status_counts,
)
from sponsorcast.store.models import (
    CampaignStatus,
    DeliveryStatus,
    Sponsor,
)
from sponsorcast.store.tables import campaign_t, delivery_t
from sponsorcast.suppression import suppressed_condition
from sponsorcast.tracking.tokens import require_secret
from sponsorcast.transport import api_key_problem
from sponsorcast.wording import count

if TYPE_CHECKING:
    from sponsorcast.campaign import CampaignFile
    from sponsorcast.render.partials import with_layout, with_partials
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
    bounced_elsewhere: int = 0  # of the audience: addresses that bounced for another sponsor
    variants: tuple[CompiledCampaign, ...] = ()  # every A/B variant compiled (else ``compiled``)


def plan_send(store: Store, config: Config, path: Path, *, run_preflight: bool = True) -> Plan:
    """Load and validate a campaign file for sending; refuses a file changed after sending began.

    With ``run_preflight`` (the default) it also checks everything a run needs (``preflight``);
    ``send --test`` and ``schedule`` call ``preflight`` themselves, or not at all.
    """

    campaign = with_partials(load_campaign(path), config.root)
    sponsor = get_sponsor(store, campaign.sponsor)
    check_sponsor(sponsor, campaign)
    campaign = with_layout(campaign, sponsor.layout, config.root)
    every = compile_variants(
        campaign,
        sponsor,
        unsubscribe_mailto=config.tracking.unsubscribe_mailto,
        language=config.language,
    )
    compiled = every[0]
    with store.read() as conn:
        check_ledger(conn, campaign.sponsor, campaign.audience)
        if campaign.follows:
            check_parent(conn, campaign.sponsor, campaign.follows)
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
        if row is not None and row.started_at is not None:
            counts = status_counts(conn, campaign.id)
            total = sum(counts.values())
            suppressed = counts.get(DeliveryStatus.SUPPRESSED, 0)
            elsewhere = 0
        else:  # not snapshotted yet: the audience as it is now
            total, suppressed = _audience_size(conn, campaign)
            elsewhere = _bounced_elsewhere(conn, campaign)
    plan = Plan(
        campaign,
        sponsor,
        compiled,
        row.status if row else None,
        total,
        suppressed,
        elsewhere,
        tuple(every),
    )
    if run_preflight:
        preflight(config, plan, fresh=row is None or row.started_at is None)
    return plan


def campaign_hash(store: Store, config: Config, path: Path) -> str:
    """The content hash a send of ``path`` would store: the file's, with its partials and
    layout folded in (what run-due compares with the scheduled version)."""
    campaign = with_partials(load_campaign(path), config.root)
    sponsor = get_sponsor(store, campaign.sponsor)
    return with_layout(campaign, sponsor.layout, config.root).content_hash


def preflight(config: Config, plan: Plan, *, fresh: bool) -> None:
    """Everything a run will need, checked before any delivery row is written.

    The provider key for the ``resend`` transport, ``SPONSORCAST_SECRET`` when tracking links
    are made, the sponsor's postal address (every footer carries it), and, for a campaign not
    yet started, an audience with someone in it. The sponsor's from address and messaging
    switch are checked by ``check_sponsor``.
    """
    if config.transport == "resend":
        key = config.secrets.resend_api_key
        if not key:
            raise CredentialsError(
                "RESEND_API_KEY is not set, and the resend transport needs it; nothing was sent.",
                hint='Export RESEND_API_KEY, or set [transport] kind = "outbox" to write .eml files.',
            )
        problem = api_key_problem(key)
        if problem is not None:
            raise CredentialsError(problem + "; nothing was sent.")
    if config.tracking.public_url:
        require_secret(config)
    sponsor = plan.sponsor
    if not sponsor.postal_address:
        raise ConfigError(
            f"Sponsor '{sponsor.id}' has no postal address, which every email's footer carries; "
            "nothing was sent.",
            hint=f"Set 'postal_address' under [sponsors.{sponsor.id}] in sponsorcast.toml.",
        )
    # a follow-up's audience is judged as each recipient comes due: none may match yet
    if fresh and plan.recipients - plan.suppressed <= 0 and not plan.campaign.follows:
        who = describe_audience(plan.campaign.audience)
        if plan.recipients:
            reason = f"every one of the {count(plan.recipients, 'lead')} of {who} is suppressed"
        else:
            reason = f"{who} matches no lead of sponsor '{sponsor.id}'"
        raise NothingToSend(
            f"Campaign '{plan.campaign.id}' has nobody to send to: {reason}; nothing was "
            "sent and the campaign was not recorded.",
            hint="Import leads ('sponsorcast leads import'), or widen the audience in "
            f"{plan.campaign.path}.",
        )


def describe_audience(audience: Audience) -> str:
    """An audience as a person would name it: ``audience 'hot'``, ``audience custom (tags=vip)``."""
    if not audience.filter:
        return f"audience '{audience.type}'"
    parts = [
        f"{key}={','.join(map(str, value)) if isinstance(value, list) else value}"
        for key, value in audience.filter.items()
    ]
    return f"audience custom ({', '.join(parts)})"


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
            f"{campaign.path} (or a partial or layout it uses) changed after campaign "
            f"'{campaign.id}' was {status}; "
            "recipients must not get two versions of one campaign, so nothing was sent.",
            hint="Restore the file, or give the new version another id (front-matter 'id:').",
        )


def check_parent(conn: sa.Connection, sponsor_id: str, follows: str) -> None:
    """BadInput unless ``follows`` is a campaign of the same sponsor in the store."""
    row = conn.execute(sa.select(campaign_t.c.sponsor_id).where(campaign_t.c.id == follows)).first()
    if row is None:
        raise BadInput(
            f"The campaign follows '{follows}', which the store does not have; nothing was sent.",
            hint="Send (or schedule) that campaign first; a follow-up follows what was sent.",
        )
    if row.sponsor_id != sponsor_id:
        raise BadInput(
            f"The campaign follows '{follows}' of sponsor '{row.sponsor_id}'; a follow-up of "
            f"sponsor '{sponsor_id}' can only follow its own campaigns. Nothing was sent."
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


def _bounced_elsewhere(conn: sa.Connection, campaign: CampaignFile) -> int:
    """Addresses of the audience, not suppressed, that bounced in another sponsor's campaign
    (a hard bounce suppresses an address for everyone; these bounced softly, or before)."""
    sel = select_recipients(campaign.sponsor, campaign.audience, ("email", "sponsor_id")).subquery()
    d, c = delivery_t, campaign_t
    bounced = sa.exists(
        sa.select(sa.literal(1))
        .select_from(d.join(c, c.c.id == d.c.campaign_id))
        .where(
            d.c.recipient == sel.c.email,
            d.c.status == DeliveryStatus.BOUNCED,
            c.c.sponsor_id != campaign.sponsor,
        )
    )
    query = (
        sa.select(sa.func.count())
        .select_from(sel)
        .where(bounced, ~suppressed_condition(sel.c.sponsor_id, sel.c.email))
    )
    return int(conn.execute(query).scalar_one())


def bounce_warning(plan: Plan) -> str | None:
    """A warning before the snapshot when many of the audience bounced for other sponsors."""
    n, total = plan.bounced_elsewhere, plan.recipients - plan.suppressed
    if n < BOUNCED_ELSEWHERE_MIN or total <= 0 or n / total < BOUNCED_ELSEWHERE_SHARE:
        return None
    return (
        f"{count(n, 'address')} of this audience ({n / total:.1%}) bounced in other sponsors' "
        "campaigns; they may bounce again, and bounces past the brake pause the campaign "
        "('sponsorcast suppress add' keeps them out)."
    )


BOUNCED_ELSEWHERE_MIN = 5  # addresses, and
BOUNCED_ELSEWHERE_SHARE = 0.01  # of the audience, before send warns


def validate_all(
    store: Store, plan: Plan, config: Config, *, beside: Callable[[], None] | None = None
) -> int:
    """Render every recipient of the audience; any problem raises TemplateError, nothing sent.
    ``beside`` starts work that runs beside the check (``render.parallel.check_audience``)."""

    source = RecipientSource(config, store=store)
    report = check_variants(plan.variants or (plan.compiled,), source, beside=beside)
    if report.problems:
        first = report.problems[0]
        more = (
            f" (and {count(len(report.problems) - 1, 'more problem')})"
            if len(report.problems) > 1
            else ""
        )
        raise TemplateError(
            f"{first.message} for {count(first.count, 'recipient')}{more}; nothing was sent",
            path=first.path,
            line=first.line,
            hint=f"'sponsorcast render {plan.campaign.path} --check' lists every problem.",
        )
    return int(report.checked)
