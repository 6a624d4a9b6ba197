"""The store's tables as SQLModel classes, and the status vocabularies.

Conventions: every datetime is timezone-aware UTC in Python and stored as UTC; ``Lead.tags``
is kept as ``,tag1,tag2,`` text so that "has tag t" is a portable, index-free ``LIKE`` in
SQL on both SQLite and PostgreSQL; free-form data (``fields``, payloads) is JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC and gives them back aware."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def _dt(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def _json() -> Any:
    return Field(default=None, sa_type=sa.JSON, nullable=True)


class CampaignStatus(StrEnum):
    """Campaign lifecycle states (docs/architecture.md draws them)."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    PAUSED = "paused"
    FAILED = "failed"
    MISSED = "missed"
    CANCELLED = "cancelled"


class DeliveryStatus(StrEnum):
    """Delivery states; ``sent`` and everything after it are never sent again."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"
    SKIPPED = (
        "skipped"  # a follow-up's recipient who no longer qualified when due (last_error says why)
    )
    HELD = "held"  # an A/B test's recipient outside the test group, until the winner is picked


class BatchStatus(StrEnum):
    """Send-batch states: a batch is claimed with a lease, then done."""

    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    UNKNOWN = "unknown"  # outcome unknown past the provider's 24 h idempotency window


ALL_SPONSORS = "*"


class Sponsor(SQLModel, table=True):
    """Owns leads and campaigns; its postal address goes in every footer."""

    id: str = Field(primary_key=True, max_length=64)
    name: str = ""
    from_address: str | None = None
    reply_to: str | None = None
    postal_address: str | None = None
    messaging_enabled: bool = True
    accent_color: str | None = None  # links and buttons, #rrggbb
    logo_url: str | None = None  # https:// image at the top of every email
    unsubscribe_mailto: str | None = None  # a List-Unsubscribe mailbox of the sponsor's own
    layout: str | None = None  # a layout file of the project's, e.g. layouts/acme.html
    daily_cap: int | None = None  # emails a day at most, over all its campaigns
    warmup: int | None = None  # emails on its first sending day, doubling daily to daily_cap
    frequency_cap: str | None = None  # ``1 per 3d``: emails of this sponsor one lead may get
    created_at: datetime | None = _dt()
    updated_at: datetime | None = _dt()


class Lead(SQLModel, table=True):
    """One person a sponsor may email; unique by (sponsor, lower-cased email)."""

    __table_args__ = (
        sa.UniqueConstraint("sponsor_id", "email", name="uq_lead_sponsor_email"),
        sa.Index("ix_lead_sponsor_intent_level", "sponsor_id", "intent_level"),
        sa.Index("ix_lead_sponsor_follow_up", "sponsor_id", "follow_up_status"),
        sa.Index("ix_lead_sponsor_score", "sponsor_id", "intent_score"),
        sa.Index("ix_lead_sponsor_event", "sponsor_id", "event"),
    )

    id: int | None = Field(default=None, primary_key=True)
    sponsor_id: str = Field(foreign_key="sponsor.id")
    email: str
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    intent_level: str | None = None
    intent_score: int | None = None
    follow_up_status: str = "new"
    tags: str = ""  # ",a,b," — see module docstring
    event: str | None = None
    fields: dict[str, Any] | None = _json()
    source: str | None = None
    consent: str | None = None
    created_at: datetime | None = _dt()
    updated_at: datetime | None = _dt()
    source_row: int | None = None  # the row of ``source`` that last changed the lead


class Campaign(SQLModel, table=True):
    """A campaign file's snapshot as it was when sending began, and its lifecycle."""

    __table_args__ = (sa.Index("ix_campaign_status_send_at", "status", "send_at"),)

    id: str = Field(primary_key=True, max_length=128)
    sponsor_id: str = Field(foreign_key="sponsor.id")
    name: str = ""
    subject: str = ""
    body: str = ""
    audience: dict[str, Any] | None = _json()
    from_address: str | None = None
    reply_to: str | None = None
    tags: dict[str, Any] | None = _json()
    look: dict[str, Any] | None = _json()  # preheader, language, line_breaks of the file
    source_path: str | None = None
    send_at: datetime | None = _dt()
    status: str = CampaignStatus.DRAFT
    status_reason: str | None = None
    content_hash: str = ""
    rolling: bool = False  # leads joining the audience later are added by send and run-due
    follows: str | None = None  # a follow-up of this campaign (``send.followups``)
    # … each recipient due this long after their email of it
    after_seconds: float | None = Field(default=None, sa_type=sa.Float(precision=53))
    # … and held back by the frequency cap until this long after it came due, then skipped
    expires_seconds: float | None = Field(default=None, sa_type=sa.Float(precision=53))
    ab_test: dict[str, Any] | None = _json()  # an A/B test's variants and test (``send.abtest``)
    winner: str | None = None  # … the variant picked for the held recipients, and when
    picked_at: datetime | None = _dt()
    total_recipients: int = 0
    created_at: datetime | None = _dt()
    started_at: datetime | None = _dt()
    finished_at: datetime | None = _dt()


class Delivery(SQLModel, table=True):
    """One (campaign, lead): the ledger of what was sent to whom."""

    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "lead_id", name="uq_delivery_campaign_lead"),
        sa.Index("ix_delivery_campaign_status", "campaign_id", "status"),
        sa.Index("ix_delivery_campaign_batch", "campaign_id", "batch"),
        # lead_id last: ledger audiences (opened: X) read these without the table
        sa.Index("ix_delivery_campaign_opened", "campaign_id", "opened_at"),
        sa.Index("ix_delivery_campaign_human", "campaign_id", "human_opened_at", "lead_id"),
        sa.Index("ix_delivery_campaign_clicked", "campaign_id", "first_click_at", "lead_id"),
        sa.Index("ix_delivery_campaign_sent", "campaign_id", "sent_at", "lead_id"),
        sa.Index("ix_delivery_sent_at", "sent_at"),  # a sponsor's emails of the day (caps)
        sa.Index("ix_delivery_recipient", "recipient"),  # bounced for another sponsor?
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id")
    lead_id: int = Field(foreign_key="lead.id")
    recipient: str
    status: str = DeliveryStatus.PENDING
    attempts: int = 0
    last_error: str | None = None
    provider_message_id: str | None = Field(default=None, index=True)
    batch: int | None = None
    sent_at: datetime | None = _dt()
    delivered_at: datetime | None = _dt()
    opened_at: datetime | None = _dt()
    open_count: int = 0
    # the first open not made by a machine (a scanner, a privacy proxy: tracking.machine)
    human_opened_at: datetime | None = _dt()
    first_click_at: datetime | None = _dt()
    click_count: int = 0
    unsubscribed_at: datetime | None = _dt()
    variant: str | None = None  # the A/B variant this recipient is (or was) sent


class Event(SQLModel, table=True):
    """Append-only log: provider webhooks, polled states, opens, clicks, campaign transitions."""

    __table_args__ = (sa.Index("ix_event_campaign_type", "campaign_id", "type"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str | None = Field(default=None, index=True)
    delivery_id: int | None = Field(default=None, index=True)
    type: str
    provider_event_id: str | None = Field(default=None, unique=True)
    occurred_at: datetime | None = _dt()
    payload: dict[str, Any] | None = _json()
    created_at: datetime | None = _dt()


class Suppression(SQLModel, table=True):
    """An address never to email again, for one sponsor or all (``sponsor_id = '*'``)."""

    __table_args__ = (
        sa.UniqueConstraint("email", "sponsor_id", name="uq_suppression_email_sponsor"),
    )

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True)
    sponsor_id: str = ALL_SPONSORS
    reason: str = "manual"
    created_at: datetime | None = _dt()


class SendBatch(SQLModel, table=True):
    """A batch of deliveries sent in one request; claimed under a lease by one process."""

    __tablename__ = "send_batch"
    __table_args__ = (sa.Index("ix_send_batch_claim", "campaign_id", "status", "lease_expires_at"),)

    campaign_id: str = Field(primary_key=True)
    number: int = Field(primary_key=True)
    status: str = BatchStatus.PENDING
    idempotency_key: str
    lease_owner: str | None = None
    lease_expires_at: datetime | None = _dt()
    attempts: int = 0
    first_attempt_at: datetime | None = _dt()
    finished_at: datetime | None = _dt()
    payload_hash: str | None = None
    # zlib-compressed JSON of the emails of the first attempt; cleared once the batch is final
    payload: bytes | None = Field(default=None, sa_type=sa.LargeBinary, nullable=True)


class RateBudget(SQLModel, table=True):
    """One provider team's request budget, shared by every sender (``store/budget.py``)."""

    __tablename__ = "rate_budget"

    team: str = Field(primary_key=True, max_length=64)  # a keyed hash of the API key
    tat: float = Field(default=0.0, sa_type=sa.Float(precision=53))  # no slot before, epoch s
    rate_limit: float | None = None  # the limit the provider announced, learned by any sender
    recent: str | None = None  # JSON: the slots of the last window, oldest first
    updated_at: datetime | None = _dt()


class StoreSetting(SQLModel, table=True):
    """A setting of the store itself (the key of erased people's hashes)."""

    __tablename__ = "store_setting"

    name: str = Field(primary_key=True, max_length=64)
    value: str
