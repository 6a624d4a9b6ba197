"""Numbered schema migrations, run in order whenever the store is opened.

Each migration is a function ``mNNN_name(conn)`` that gets a connection inside its own
transaction; the runner records its name in ``_sponsorcast_migrations`` in that same
transaction, so a migration is applied completely or not at all. Table shapes are frozen
here as they were at that version (not imported from ``models``), so that an old database
upgrades the same way forever; ``tests/store/test_migrations.py`` checks that the result matches
the models. A new migration's name also goes into ``fastread.CURRENT_MIGRATIONS`` (the
SQLAlchemy-free read that ``leads count`` uses; ``tests/store/test_fastread.py`` checks the two agree).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from sponsorcast.store.fastread import MIGRATIONS_TABLE
from sponsorcast.store.models import UTCDateTime, utcnow

Migration = Callable[[sa.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register a migration; order of definition is order of application."""
    MIGRATIONS.append(fn)
    return fn


def _now_col(name: str) -> sa.Column[datetime]:
    return sa.Column(name, UTCDateTime(), nullable=True)


@migration
def m001_initial(conn: sa.Connection) -> None:
    """Sponsors, leads, campaigns, deliveries, events and suppressions."""
    md = sa.MetaData()
    sa.Table(
        "sponsor",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("from_address", sa.String(), nullable=True),
        sa.Column("reply_to", sa.String(), nullable=True),
        sa.Column("postal_address", sa.String(), nullable=True),
        sa.Column("messaging_enabled", sa.Boolean(), nullable=False),
        _now_col("created_at"),
        _now_col("updated_at"),
    )
    sa.Table(
        "lead",
        md,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("sponsor_id", sa.String(), sa.ForeignKey("sponsor.id"), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("first_name", sa.String(), nullable=True),
        sa.Column("last_name", sa.String(), nullable=True),
        sa.Column("company", sa.String(), nullable=True),
        sa.Column("title", sa.String(), nullable=True),
        sa.Column("intent_level", sa.String(), nullable=True),
        sa.Column("intent_score", sa.Integer(), nullable=True),
        sa.Column("follow_up_status", sa.String(), nullable=False),
        sa.Column("tags", sa.String(), nullable=False),
        sa.Column("event", sa.String(), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=True),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("consent", sa.String(), nullable=True),
        _now_col("created_at"),
        _now_col("updated_at"),
        sa.UniqueConstraint("sponsor_id", "email", name="uq_lead_sponsor_email"),
        sa.Index("ix_lead_sponsor_intent_level", "sponsor_id", "intent_level"),
        sa.Index("ix_lead_sponsor_follow_up", "sponsor_id", "follow_up_status"),
        sa.Index("ix_lead_sponsor_score", "sponsor_id", "intent_score"),
        sa.Index("ix_lead_sponsor_event", "sponsor_id", "event"),
    )
    sa.Table(
        "campaign",
        md,
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("sponsor_id", sa.String(), sa.ForeignKey("sponsor.id"), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.Column("audience", sa.JSON(), nullable=True),
        sa.Column("from_address", sa.String(), nullable=True),
        sa.Column("reply_to", sa.String(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("source_path", sa.String(), nullable=True),
        _now_col("send_at"),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("total_recipients", sa.Integer(), nullable=False),
        _now_col("created_at"),
        _now_col("started_at"),
        _now_col("finished_at"),
    )
    sa.Table(
        "delivery",
        md,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.String(), sa.ForeignKey("campaign.id"), nullable=False),
        sa.Column("lead_id", sa.Integer(), sa.ForeignKey("lead.id"), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("provider_message_id", sa.String(), nullable=True, index=True),
        sa.Column("batch", sa.Integer(), nullable=True),
        _now_col("sent_at"),
        _now_col("delivered_at"),
        _now_col("opened_at"),
        sa.Column("open_count", sa.Integer(), nullable=False),
        _now_col("first_click_at"),
        sa.Column("click_count", sa.Integer(), nullable=False),
        _now_col("unsubscribed_at"),
        sa.UniqueConstraint("campaign_id", "lead_id", name="uq_delivery_campaign_lead"),
        sa.Index("ix_delivery_campaign_status", "campaign_id", "status"),
        sa.Index("ix_delivery_campaign_batch", "campaign_id", "batch"),
    )
    sa.Table(
        "event",
        md,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.String(), nullable=True, index=True),
        sa.Column("delivery_id", sa.Integer(), nullable=True, index=True),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("provider_event_id", sa.String(), nullable=True, unique=True),
        _now_col("occurred_at"),
        sa.Column("payload", sa.JSON(), nullable=True),
        _now_col("created_at"),
    )
    sa.Table(
        "suppression",
        md,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(), nullable=False, index=True),
        sa.Column("sponsor_id", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        _now_col("created_at"),
        sa.UniqueConstraint("email", "sponsor_id", name="uq_suppression_email_sponsor"),
    )
    md.create_all(conn)


@migration
def m002_send_batches(conn: sa.Connection) -> None:
    """Batches claimed under leases, a reason beside each campaign status, due-campaign index."""
    md = sa.MetaData()
    sa.Table(
        "send_batch",
        md,
        sa.Column("campaign_id", sa.String(), primary_key=True),
        sa.Column("number", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("lease_owner", sa.String(), nullable=True),
        _now_col("lease_expires_at"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _now_col("first_attempt_at"),
        _now_col("finished_at"),
        sa.Index("ix_send_batch_claim", "campaign_id", "status", "lease_expires_at"),
    )
    md.create_all(conn)
    conn.execute(sa.text("ALTER TABLE campaign ADD COLUMN status_reason VARCHAR"))
    conn.execute(sa.text("CREATE INDEX ix_campaign_status_send_at ON campaign (status, send_at)"))


@migration
def m003_batch_payload_hash(conn: sa.Connection) -> None:
    """Remember what a batch's first attempt sent, so a re-send is provably the same payload."""
    conn.execute(sa.text("ALTER TABLE send_batch ADD COLUMN payload_hash VARCHAR"))


@migration
def m004_batch_payload(conn: sa.Connection) -> None:
    """Keep an attempted batch's exact emails until it is answered, so a resume re-sends them."""
    blob = "BYTEA" if conn.dialect.name == "postgresql" else "BLOB"
    conn.execute(sa.text(f"ALTER TABLE send_batch ADD COLUMN payload {blob}"))


@migration
def m005_email_look(conn: sa.Connection) -> None:
    """A sponsor's accent colour, logo and own unsubscribe mailbox, and a campaign's preheader,
    language and line-break rule, so that a resumed send renders the email it started with."""
    for column in ("accent_color", "logo_url", "unsubscribe_mailto"):
        conn.execute(sa.text(f"ALTER TABLE sponsor ADD COLUMN {column} VARCHAR"))
    conn.execute(sa.text("ALTER TABLE campaign ADD COLUMN look JSON"))


@migration
def m006_sponsor_layout(conn: sa.Connection) -> None:
    """A sponsor's own layout file (layouts/acme.html), wrapped around its emails."""
    conn.execute(sa.text("ALTER TABLE sponsor ADD COLUMN layout VARCHAR"))


@migration
def m007_report_indexes(conn: sa.Connection) -> None:
    """Indexes for reports: a campaign's clicks without reading all its events, and its first
    opens and clicks per hour from the index alone."""
    conn.execute(sa.text("CREATE INDEX ix_event_campaign_type ON event (campaign_id, type)"))
    conn.execute(
        sa.text("CREATE INDEX ix_delivery_campaign_opened ON delivery (campaign_id, opened_at)")
    )
    conn.execute(
        sa.text(
            "CREATE INDEX ix_delivery_campaign_clicked ON delivery (campaign_id, first_click_at)"
        )
    )


@migration
def m008_rate_budget(conn: sa.Connection) -> None:
    """One request budget per provider team, shared by every sender of the store."""
    md = sa.MetaData()
    sa.Table(
        "rate_budget",
        md,
        sa.Column("team", sa.String(64), primary_key=True),
        sa.Column("tat", sa.Float(precision=53), nullable=False),
        sa.Column("rate_limit", sa.Float(), nullable=True),
        _now_col("updated_at"),
    )
    md.create_all(conn)


@migration
def m009_guard_rails(conn: sa.Connection) -> None:
    """Settings of the store itself (the key of erased people's hashes), the row of the
    source file each lead came from, each sponsor's daily cap and warm-up, the delivery
    indexes that caps, bounce warnings and ledger audiences read, rolling campaigns and
    follow-ups."""
    md = sa.MetaData()
    sa.Table(
        "store_setting",
        md,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(), nullable=False),
    )
    md.create_all(conn)
    conn.execute(sa.text("ALTER TABLE lead ADD COLUMN source_row INTEGER"))
    for column in ("daily_cap", "warmup"):
        conn.execute(sa.text(f"ALTER TABLE sponsor ADD COLUMN {column} INTEGER"))
    conn.execute(sa.text("CREATE INDEX ix_delivery_sent_at ON delivery (sent_at)"))
    conn.execute(sa.text("CREATE INDEX ix_delivery_recipient ON delivery (recipient)"))
    conn.execute(sa.text("DROP INDEX ix_delivery_campaign_clicked"))
    conn.execute(
        sa.text(
            "CREATE INDEX ix_delivery_campaign_clicked ON delivery "
            "(campaign_id, first_click_at, lead_id)"
        )
    )
    stamp = UTCDateTime().dialect_impl(conn.dialect).compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE delivery ADD COLUMN human_opened_at {stamp}"))
    conn.execute(
        sa.text(
            "CREATE INDEX ix_delivery_campaign_human ON delivery "
            "(campaign_id, human_opened_at, lead_id)"
        )
    )
    conn.execute(
        sa.text(
            "CREATE INDEX ix_delivery_campaign_sent ON delivery (campaign_id, sent_at, lead_id)"
        )
    )
    conn.execute(sa.text("ALTER TABLE campaign ADD COLUMN rolling BOOLEAN NOT NULL DEFAULT false"))
    conn.execute(sa.text("ALTER TABLE campaign ADD COLUMN follows VARCHAR"))
    real = sa.Float(precision=53).compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE campaign ADD COLUMN after_seconds {real}"))


@migration
def m010_frequency_cap(conn: sa.Connection) -> None:
    """Each sponsor's frequency cap, and how long a follow-up holds a capped recipient back."""
    conn.execute(sa.text("ALTER TABLE sponsor ADD COLUMN frequency_cap VARCHAR"))
    real = sa.Float(precision=53).compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE campaign ADD COLUMN expires_seconds {real}"))


@migration
def m011_ab_tests(conn: sa.Connection) -> None:
    """A/B tests: a campaign's variants and test, the variant picked and when, and the variant
    of each delivery."""
    conn.execute(sa.text("ALTER TABLE campaign ADD COLUMN ab_test JSON"))
    conn.execute(sa.text("ALTER TABLE campaign ADD COLUMN winner VARCHAR"))
    stamp = UTCDateTime().dialect_impl(conn.dialect).compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE campaign ADD COLUMN picked_at {stamp}"))
    conn.execute(sa.text("ALTER TABLE delivery ADD COLUMN variant VARCHAR"))


@migration
def m012_budget_window(conn: sa.Connection) -> None:
    """The shared budget keeps the team's recent slots: a window rule instead of even spacing."""
    conn.execute(sa.text("ALTER TABLE rate_budget ADD COLUMN recent VARCHAR"))


@dataclass(frozen=True)
class MigrationState:
    """Which migrations a store has, and which it still needs."""

    applied: list[tuple[str, datetime | None]]
    pending: list[str]


def _ledger() -> sa.Table:
    return sa.Table(
        MIGRATIONS_TABLE,
        sa.MetaData(),
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("applied_at", UTCDateTime(), nullable=True),
    )


def migration_state(conn: sa.Connection) -> MigrationState:
    """Read what has been applied; a store without the ledger has nothing applied."""
    ledger = _ledger()
    if not sa.inspect(conn).has_table(MIGRATIONS_TABLE):
        return MigrationState(applied=[], pending=[m.__name__ for m in MIGRATIONS])
    rows = conn.execute(sa.select(ledger.c.name, ledger.c.applied_at)).all()
    done = {r.name for r in rows}
    applied = sorted(((r.name, r.applied_at) for r in rows), key=lambda r: r[0])
    return MigrationState(
        applied=applied, pending=[m.__name__ for m in MIGRATIONS if m.__name__ not in done]
    )


def run_migrations(
    begin_write: Callable[[], AbstractContextManager[sa.Connection]],
    *,
    upto: str | None = None,
) -> list[str]:
    """Apply every pending migration (up to and including ``upto``), each in its own transaction.

    ``begin_write`` opens a write transaction (the store's ``write``); inside it the ledger is
    read again, so two processes opening one store at once apply each migration once.
    """
    applied_now: list[str] = []
    ledger = _ledger()
    with begin_write() as conn:
        _lock(conn)
        ledger.create(conn, checkfirst=True)
    for fn in MIGRATIONS:
        with begin_write() as conn:
            _lock(conn)
            done = set(conn.execute(sa.select(ledger.c.name)).scalars())
            if fn.__name__ not in done:
                fn(conn)
                conn.execute(ledger.insert().values(name=fn.__name__, applied_at=utcnow()))
                applied_now.append(fn.__name__)
        if upto is not None and fn.__name__ == upto:
            break
    return applied_now


def _lock(conn: sa.Connection) -> None:
    # SQLite write transactions are already exclusive (BEGIN IMMEDIATE); PostgreSQL needs a lock
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(7411001)"))
