"""The campaign ledger: lifecycle transitions (each recorded as an event), listings, deliveries.

Sending itself lives in ``send``; this module owns what a campaign's row and history say.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from sponsorcast.errors import BadInput, NotFound
from sponsorcast.store.models import (
    BatchStatus,
    CampaignStatus,
    DeliveryStatus,
    utcnow,
)
from sponsorcast.store.tables import batch_t, campaign_t, delivery_t, event_t

FINISHED = (CampaignStatus.SENT, CampaignStatus.CANCELLED)

DELIVERY_FIELDS = (
    "id",
    "recipient",
    "status",
    "attempts",
    "last_error",
    "provider_message_id",
    "batch",
    "sent_at",
    "delivered_at",
    "opened_at",
    "open_count",
    "first_click_at",
    "click_count",
    "unsubscribed_at",
    "variant",  # an A/B test's; empty for other campaigns
)


def get_campaign_row(conn: sa.Connection, campaign_id: str) -> sa.RowMapping:
    """The campaign's row, or NotFound."""
    row = (
        conn.execute(sa.select(campaign_t).where(campaign_t.c.id == campaign_id)).mappings().first()
    )
    if row is None:
        raise unknown_campaign(conn, campaign_id)
    return row


def unknown_campaign(conn: sa.Connection, campaign_id: str) -> NotFound:
    """The error for a campaign id the store does not know, with the id probably meant."""
    ids = list(conn.execute(sa.select(campaign_t.c.id, campaign_t.c.source_path)).all())
    if campaign_id.lower().endswith((".md", ".yaml", ".yml")) or "/" in campaign_id:
        stem = Path(campaign_id).stem
        known = [i for i, _ in ids if i == stem]
        hint = (
            f"This command takes a campaign id, not a file: did you mean '{known[0]}'?"
            if known
            else "This command takes a campaign id (the file's 'id:' key, else its name "
            "without the extension), not a file."
        )
        return NotFound(f"Unknown campaign '{campaign_id}'.", hint=hint)
    close = difflib.get_close_matches(campaign_id, [i for i, _ in ids], n=1, cutoff=0.6)
    if close:
        return NotFound(f"Unknown campaign '{campaign_id}'.", hint=f"Did you mean '{close[0]}'?")
    return NotFound(
        f"Unknown campaign '{campaign_id}'.",
        hint="'sponsorcast campaigns list' shows the campaigns in the store.",
    )


def transition(
    conn: sa.Connection,
    campaign_id: str,
    to: str,
    cause: str,
    *,
    expect: tuple[str, ...] | None = None,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Move a campaign to status ``to`` and record the event; returns False if ``expect`` failed.

    The status check and the update are one statement, so two processes racing to move the
    same campaign cannot both succeed.
    """
    row = conn.execute(sa.select(campaign_t.c.status).where(campaign_t.c.id == campaign_id)).first()
    if row is None:
        raise unknown_campaign(conn, campaign_id)
    before = row.status
    now = utcnow()
    values: dict[str, Any] = {"status": to, "status_reason": cause, **(extra or {})}
    if to == CampaignStatus.SENDING:
        values.setdefault("started_at", sa.func.coalesce(campaign_t.c.started_at, now))
    if to in (CampaignStatus.SENT, CampaignStatus.CANCELLED, CampaignStatus.FAILED):
        values.setdefault("finished_at", now)
    stmt = campaign_t.update().where(campaign_t.c.id == campaign_id)
    if expect is not None:
        stmt = stmt.where(campaign_t.c.status.in_(expect))
    if conn.execute(stmt.values(**values)).rowcount == 0:
        return False
    if before != to or cause:
        record_event(
            conn, campaign_id, f"campaign.{to}", {"from": before, "to": to, "cause": cause}
        )
    return True


def record_event(
    conn: sa.Connection,
    campaign_id: str | None,
    type_: str,
    payload: dict[str, Any],
    *,
    delivery_id: int | None = None,
) -> None:
    """Append one event to the log."""
    now = utcnow()
    conn.execute(
        event_t.insert().values(
            campaign_id=campaign_id,
            delivery_id=delivery_id,
            type=type_,
            occurred_at=now,
            created_at=now,
            payload=payload,
        )
    )


def status_counts(conn: sa.Connection, campaign_id: str) -> dict[str, int]:
    """Deliveries per status for one campaign."""
    rows = conn.execute(
        sa.select(delivery_t.c.status, sa.func.count())
        .where(delivery_t.c.campaign_id == campaign_id)
        .group_by(delivery_t.c.status)
    ).all()
    return {status: n for status, n in rows}


def list_campaigns(conn: sa.Connection) -> list[dict[str, Any]]:
    """Every campaign with `campaigns list --json`'s keys."""
    sent = (
        sa.select(sa.func.count())
        .where(delivery_t.c.campaign_id == campaign_t.c.id, delivery_t.c.sent_at.is_not(None))
        .scalar_subquery()
    )
    failed = (
        sa.select(sa.func.count())
        .where(
            delivery_t.c.campaign_id == campaign_t.c.id,
            delivery_t.c.status == DeliveryStatus.FAILED,
        )
        .scalar_subquery()
    )
    rows = conn.execute(
        sa.select(
            campaign_t.c.id,
            campaign_t.c.name,
            campaign_t.c.sponsor_id,
            campaign_t.c.status,
            campaign_t.c.total_recipients,
            sent.label("sent"),
            failed.label("failed"),
            campaign_t.c.send_at,
        ).order_by(campaign_t.c.created_at, campaign_t.c.id)
    ).mappings()
    return [
        {
            "id": r["id"],
            "name": r["name"],
            "sponsor": r["sponsor_id"],
            "status": r["status"],
            "total_recipients": r["total_recipients"],
            "sent": r["sent"],
            "failed": r["failed"],
            "send_at": r["send_at"],
        }
        for r in rows
    ]


def campaign_history(conn: sa.Connection, campaign_id: str) -> list[dict[str, Any]]:
    """The campaign's lifecycle events, oldest first."""
    rows = conn.execute(
        sa.select(event_t.c.occurred_at, event_t.c.type, event_t.c.payload)
        .where(
            event_t.c.campaign_id == campaign_id,
            event_t.c.delivery_id.is_(None),
            event_t.c.type.like("campaign.%"),
        )
        .order_by(event_t.c.id)
    ).mappings()
    return [
        {
            "at": r["occurred_at"],
            "status": (r["payload"] or {}).get("to"),
            "from": (r["payload"] or {}).get("from"),
            "cause": (r["payload"] or {}).get("cause"),
        }
        for r in rows
    ]


def show_campaign(conn: sa.Connection, campaign_id: str) -> dict[str, Any]:
    """A campaign's row, delivery counts per status and history."""
    row = get_campaign_row(conn, campaign_id)
    return {
        "id": row["id"],
        "name": row["name"],
        "sponsor": row["sponsor_id"],
        "status": row["status"],
        "status_reason": row["status_reason"],
        "subject": row["subject"],
        "audience": row["audience"],
        "source_path": row["source_path"],
        "content_hash": row["content_hash"],
        "send_at": row["send_at"],
        "total_recipients": row["total_recipients"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "deliveries": status_counts(conn, campaign_id),
        "history": campaign_history(conn, campaign_id),
    }


def iter_deliveries(
    conn: sa.Connection, campaign_id: str, status: str | None = None
) -> Iterator[dict[str, Any]]:
    """The campaign's deliveries (the ``deliveries --json`` fields), streamed in id order."""
    get_campaign_row(conn, campaign_id)
    if status is not None and status not in tuple(DeliveryStatus):
        raise BadInput(f"Unknown delivery status '{status}' (known: {', '.join(DeliveryStatus)}).")
    query = sa.select(*(delivery_t.c[f] for f in DELIVERY_FIELDS)).where(
        delivery_t.c.campaign_id == campaign_id
    )
    if status is not None:
        query = query.where(delivery_t.c.status == status)
    result = conn.execution_options(stream_results=True, yield_per=2000).execute(
        query.order_by(delivery_t.c.id)
    )
    for row in result.mappings():
        yield dict(row)


def pause_campaign(conn: sa.Connection, campaign_id: str, cause: str = "paused by user") -> None:
    """Pause: a running sender stops claiming at its next batch."""
    row = get_campaign_row(conn, campaign_id)
    ok = transition(
        conn,
        campaign_id,
        CampaignStatus.PAUSED,
        cause,
        expect=(CampaignStatus.SENDING, CampaignStatus.SCHEDULED),
    )
    if not ok:
        raise BadInput(
            f"Campaign '{campaign_id}' is {row['status']}; only a sending or scheduled campaign can be paused."
        )


BRAKE_CAUSE = "brake"  # a status_reason starting so: only `campaigns resume --force` undoes it
BRAKE_RESET_EVENT = "campaign.brake_reset"  # payload: the delivery counts at a forced resume


def braked(reason: str | None) -> bool:
    """True for a pause the brakes made (``send.brakes``)."""
    return (reason or "").startswith(BRAKE_CAUSE + ":")


def resume_campaign(conn: sa.Connection, campaign_id: str, *, force: bool = False) -> str:
    """Resume a paused campaign: back to ``sending`` (or ``scheduled`` if it never started).

    A campaign its brake paused resumes only with ``force``: someone has looked at the list."""
    row = get_campaign_row(conn, campaign_id)
    if row["status"] == CampaignStatus.PAUSED and braked(row["status_reason"]) and not force:
        raise BadInput(
            f"Campaign '{campaign_id}' paused itself ({row['status_reason']}); it resumes only "
            "with --force, once the list is clean.",
            hint=f"'sponsorcast report {campaign_id}' lists the bounces; suppress or remove those "
            f"addresses, then 'sponsorcast campaigns resume {campaign_id} --force'.",
        )
    if row["status"] not in (CampaignStatus.PAUSED, CampaignStatus.MISSED, CampaignStatus.FAILED):
        raise BadInput(
            f"Campaign '{campaign_id}' is {row['status']}; only a paused, missed or failed campaign can be resumed."
        )
    if row["status"] == CampaignStatus.MISSED:
        # back to scheduled it would only be missed again by the next run-due
        raise BadInput(
            f"Campaign '{campaign_id}' missed its send time; resuming would not send it.",
            hint=f"Send it now with 'sponsorcast send {row['source_path'] or 'CAMPAIGN'}', "
            "or give it a new time with 'sponsorcast schedule CAMPAIGN --at TIME'.",
        )
    to = CampaignStatus.SENDING if row["started_at"] is not None else CampaignStatus.SCHEDULED
    if to == CampaignStatus.SCHEDULED and row["send_at"] is None:
        to = CampaignStatus.DRAFT
    cause = "resumed by user"
    if force and braked(row["status_reason"]):
        cause = "resumed by user, past the brake"
        # the brake watches the emails sent from here on: what made it stop has been seen
        record_event(conn, campaign_id, BRAKE_RESET_EVENT, status_counts(conn, campaign_id))
    transition(conn, campaign_id, to, cause, expect=(row["status"],))
    return to


def cancel_campaign(conn: sa.Connection, campaign_id: str) -> int:
    """Cancel: pending deliveries become ``cancelled``; returns how many."""
    row = get_campaign_row(conn, campaign_id)
    if row["status"] in FINISHED:
        raise BadInput(f"Campaign '{campaign_id}' is already {row['status']}.")
    # a batch that was attempted may have reached the provider: its deliveries keep their state
    attempted = sa.select(batch_t.c.number).where(
        batch_t.c.campaign_id == campaign_id, batch_t.c.first_attempt_at.is_not(None)
    )
    n = conn.execute(
        delivery_t.update()
        .where(
            delivery_t.c.campaign_id == campaign_id,
            delivery_t.c.status.in_((DeliveryStatus.PENDING, DeliveryStatus.HELD)),
            sa.or_(delivery_t.c.batch.is_(None), delivery_t.c.batch.not_in(attempted)),
        )
        .values(status=DeliveryStatus.CANCELLED)
    ).rowcount
    conn.execute(
        batch_t.update()
        .where(
            batch_t.c.campaign_id == campaign_id,
            batch_t.c.status == BatchStatus.PENDING,
            batch_t.c.first_attempt_at.is_(None),
        )
        .values(status=BatchStatus.DONE, finished_at=utcnow())
    )
    transition(
        conn,
        campaign_id,
        CampaignStatus.CANCELLED,
        "cancelled by user",
        extra={"finished_at": utcnow()},
    )
    return n


def delete_campaign(conn: sa.Connection, campaign_id: str) -> None:
    """Delete a campaign that sent nothing (its deliveries, batches and events go with it)."""
    get_campaign_row(conn, campaign_id)
    attempted = conn.execute(
        sa.select(sa.func.count()).where(
            batch_t.c.campaign_id == campaign_id, batch_t.c.first_attempt_at.is_not(None)
        )
    ).scalar_one()
    sent = conn.execute(
        sa.select(sa.func.count()).where(
            delivery_t.c.campaign_id == campaign_id,
            sa.or_(
                delivery_t.c.sent_at.is_not(None), delivery_t.c.provider_message_id.is_not(None)
            ),
        )
    ).scalar_one()
    if attempted or sent:
        raise BadInput(
            f"Campaign '{campaign_id}' has sent emails and cannot be deleted.",
            hint="Cancel it instead; its ledger is kept.",
        )
    conn.execute(event_t.delete().where(event_t.c.campaign_id == campaign_id))
    conn.execute(batch_t.delete().where(batch_t.c.campaign_id == campaign_id))
    conn.execute(delivery_t.delete().where(delivery_t.c.campaign_id == campaign_id))
    conn.execute(campaign_t.delete().where(campaign_t.c.id == campaign_id))
