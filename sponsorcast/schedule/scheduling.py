"""``schedule`` and ``unschedule``: a checked campaign stored with its time and content hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from sponsorcast.config import Config
from sponsorcast.errors import (
    BadInput,
    TemplateError,
)
from sponsorcast.schedule.times import localize, parse_send_time, show_time
from sponsorcast.send import campaign_values, plan_send, preflight, validate_all
from sponsorcast.store import Store
from sponsorcast.store.lifecycle import (
    get_campaign_row,
    record_event,
    transition,
)
from sponsorcast.store.models import CampaignStatus, utcnow
from sponsorcast.store.tables import campaign_t

# Statuses a campaign may be (re)scheduled from, provided it never started sending.
SCHEDULABLE = (
    CampaignStatus.DRAFT,
    CampaignStatus.SCHEDULED,
    CampaignStatus.MISSED,
    CampaignStatus.PAUSED,
    CampaignStatus.FAILED,
)


@dataclass(frozen=True)
class Scheduled:
    """What ``schedule`` stored."""

    campaign_id: str
    send_at: datetime
    recipients: int
    previous_status: str | None


def schedule_campaign(
    store: Store, config: Config, path: Path, *, at: str | None = None, now: datetime | None = None
) -> Scheduled:
    """Validate a campaign (every recipient rendered) and store it as ``scheduled`` for its time."""

    now = now or utcnow()
    plan = plan_send(store, config, path, run_preflight=False)
    campaign = plan.campaign
    _check_schedulable(store, campaign.id)
    if at is not None:
        send_at = parse_send_time(at, config, what="--at time", now=now)
    elif campaign.send_at_text is not None:
        send_at = parse_send_time(campaign.send_at_text, config, what="send_at", now=now)
    elif campaign.send_at is None:
        raise BadInput(
            f"{path} has no send_at and no --at was given; there is no time to schedule it for.",
            hint="Add 'send_at: tomorrow 09:00' (or 2026-12-01T09:00:00+01:00) to the front "
            "matter, or pass --at TIME.",
        )
    elif campaign.send_at.tzinfo is None:
        send_at = localize(campaign.send_at, config, what="send_at")
    else:
        send_at = campaign.send_at.astimezone(UTC)
    if send_at <= now:
        raise BadInput(
            f"The send time {show_time(send_at, config)} is in the past "
            f"(now is {show_time(now, config)}); nothing was scheduled.",
            hint=f"Give a later time with --at, or send it now with 'sponsorcast send {path}'.",
        )
    # after the file's own problems, before anything is stored: what the run will need
    preflight(config, plan, fresh=True)
    try:
        recipients = validate_all(store, plan, config)
    except TemplateError as exc:
        raise TemplateError(
            exc.reason.replace("nothing was sent", "nothing was scheduled"),
            path=exc.path,
            line=exc.line,
            hint=exc.hint,
        ) from None
    values = campaign_values(campaign, plan.sponsor, send_at=send_at)
    values["source_path"] = str(path.resolve())  # run-due may run from another directory
    with store.write() as conn:
        row = conn.execute(
            sa.select(campaign_t.c.status).where(campaign_t.c.id == campaign.id)
        ).first()
        previous = row.status if row is not None else None
        if row is None:
            conn.execute(
                campaign_t.insert().values(
                    id=campaign.id,
                    status=CampaignStatus.DRAFT,
                    created_at=utcnow(),
                    total_recipients=recipients,
                    **values,
                )
            )
            record_event(
                conn,
                campaign.id,
                "campaign.draft",
                {"from": None, "to": CampaignStatus.DRAFT, "cause": "created by schedule"},
            )
        moved = transition(
            conn,
            campaign.id,
            CampaignStatus.SCHEDULED,
            f"{'re' if previous == CampaignStatus.SCHEDULED else ''}scheduled for "
            f"{show_time(send_at, config)} by user",
            expect=SCHEDULABLE,
            extra={**values, "total_recipients": recipients},
        )
        if not moved or _started(conn, campaign.id):
            # another process started it between our check and this transaction
            raise BadInput(
                f"Campaign '{campaign.id}' started sending meanwhile; it cannot be scheduled."
            )
    return Scheduled(campaign.id, send_at, recipients, previous)


def _started(conn: sa.Connection, campaign_id: str) -> bool:
    row = get_campaign_row(conn, campaign_id)
    return row["started_at"] is not None


def _check_schedulable(store: Store, campaign_id: str) -> None:
    with store.read() as conn:
        row = conn.execute(
            sa.select(campaign_t.c.status, campaign_t.c.started_at).where(
                campaign_t.c.id == campaign_id
            )
        ).first()
    if row is None:
        return
    if row.status not in SCHEDULABLE or row.started_at is not None:
        raise BadInput(
            f"Campaign '{campaign_id}' is {row.status}: sending already began, so it cannot be "
            "scheduled again.",
            hint=f"'sponsorcast campaigns show {campaign_id}' shows where it is.",
        )


def unschedule_campaign(store: Store, campaign_id: str) -> str:
    """``scheduled`` or ``missed`` → ``draft`` (event recorded); returns the previous status."""
    with store.write() as conn:
        row = get_campaign_row(conn, campaign_id)
        ok = transition(
            conn,
            campaign_id,
            CampaignStatus.DRAFT,
            "unscheduled by user",
            expect=(CampaignStatus.SCHEDULED, CampaignStatus.MISSED),
            extra={"send_at": None},
        )
        if not ok:
            raise BadInput(
                f"Campaign '{campaign_id}' is {row['status']}; only a scheduled or missed campaign "
                "can be unscheduled.",
                hint=f"'sponsorcast campaigns pause {campaign_id}' or 'cancel' stops a campaign that is sending.",
            )
        return str(row["status"])
