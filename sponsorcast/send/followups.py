"""Follow-ups: a campaign file with ``follows: ID`` and ``after: 3d``.

Each recipient of campaign ID comes due ``after`` the moment *their* email of ID was sent.
The follow-up is snapshotted with no delivery at all; every ``send`` and ``run-due`` then
adds those who have come due since, in one write transaction under a lock on the follow-up's
row (``add_due``), and sends them. The follow-up's own audience is evaluated when a recipient
comes due, so ``not_clicked: ID``, or a CRM import that set ``follow_up_status``, stops it for
those who acted:

- who still qualifies becomes a pending delivery in a new batch (or ``suppressed``);
- who does not gets a ``skipped`` delivery, its reason in ``last_error``, and never an email.

A parent recipient gets exactly one row in the follow-up (the delivery table's unique
campaign and lead), so the numbers add up, and exactly-once holds as for any campaign: the
batches are ordinary batches, with their keys and leases. The follow-up is ``sent`` once its parent is finished and
every parent recipient that was sent the parent has come due (``waiting``). A follow-up can
follow a follow-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from sponsorcast.audience import Audience, audience_filter, parse_audience
from sponsorcast.config import Config
from sponsorcast.durations import FrequencyCap, format_duration
from sponsorcast.send.batches import make_renderer
from sponsorcast.send.frequency import DEFAULT_EXPIRES, capped_leads, expired_reason, frequency_cap
from sponsorcast.send.rolling import add_batches, check_added, next_batch_number, recount
from sponsorcast.send.snapshot import DELIVERY_COLUMNS, deliveries_from
from sponsorcast.store import Store
from sponsorcast.store.models import CampaignStatus, DeliveryStatus, Sponsor, utcnow
from sponsorcast.store.tables import campaign_t, delivery_t, lead_t
from sponsorcast.suppression import suppressed_condition
from sponsorcast.wording import count

NO_LONGER = "no longer in the audience when due"
FINISHED_PARENT = (CampaignStatus.SENT, CampaignStatus.CANCELLED)


@dataclass(frozen=True)
class Due:
    """What one ``add_due`` did."""

    added: int  # recipients who came due (pending, suppressed and skipped)
    skipped: int


def _not_here(
    conn: sa.Connection, campaign_id: str, lead_id: sa.ColumnElement[int]
) -> sa.ColumnElement[bool]:
    """Parent rows (``lead_id``: their column) whose lead has no row in the follow-up yet."""
    here = sa.select(delivery_t.c.lead_id).where(delivery_t.c.campaign_id == campaign_id)
    if conn.dialect.name == "sqlite":  # once into a temporary index, not a probe per parent row
        return lead_id.not_in(here)
    # PostgreSQL plans this as an anti-join; a large NOT IN may not be hashed
    return ~sa.exists(here.where(delivery_t.c.lead_id == lead_id))


def due_parent_rows(
    conn: sa.Connection, campaign_id: str, parent: str, cutoff: datetime
) -> sa.Select[tuple[int]]:
    """Lead ids of the parent's recipients sent by ``cutoff`` with no row here yet."""
    p = delivery_t.alias("p")
    return sa.select(p.c.lead_id).where(
        p.c.campaign_id == parent,
        p.c.sent_at.is_not(None),
        p.c.sent_at <= cutoff,
        _not_here(conn, campaign_id, p.c.lead_id),
    )


def add_due(
    store: Store, config: Config, campaign_id: str, batch_size: int, now: datetime | None = None
) -> Due:
    """Add the recipients of the parent who have come due by ``now`` (see the module); a
    recipient the sponsor's frequency cap holds back waits, and is skipped once it expires."""
    now = now or utcnow()
    renderer = make_renderer(store, config, campaign_id)
    cap = frequency_cap(renderer.sponsor)
    with store.write() as conn:
        row = conn.execute(
            sa.select(
                campaign_t.c.status,
                campaign_t.c.sponsor_id,
                campaign_t.c.audience,
                campaign_t.c.follows,
                campaign_t.c.after_seconds,
                campaign_t.c.expires_seconds,
            )
            .where(campaign_t.c.id == campaign_id)
            .with_for_update()  # due additions to one follow-up queue here on PostgreSQL
        ).one()
        if row.follows is None or row.status not in (CampaignStatus.SENDING, CampaignStatus.SENT):
            return Due(0, 0)
        cutoff = now - timedelta(seconds=float(row.after_seconds or 0))
        due = lead_t.c.id.in_(due_parent_rows(conn, campaign_id, row.follows, cutoff))
        qualifies = audience_filter(row.sponsor_id, parse_audience(row.audience), now)
        hold = _Hold.of(conn, cap, campaign_id, row, cutoff, now)
        first = next_batch_number(conn, campaign_id)
        before = _rows(conn, campaign_id)
        conn.execute(
            delivery_t.insert().from_select(
                DELIVERY_COLUMNS,
                deliveries_from(
                    campaign_id,
                    sa.and_(due, qualifies, *hold.free),
                    first_batch=first,
                    batch_size=batch_size,
                ),
            )
        )
        qualified = _rows(conn, campaign_id) - before
        if qualified:
            check_added(conn, renderer.compiled, campaign_id, first)
            add_batches(conn, campaign_id, first)
        if hold.cap is not None:  # who qualifies and is still due now is capped
            _skip(conn, campaign_id, expired_reason(hold.cap), due, qualifies, hold.expired)
        # who is still due now did not qualify (or waits for the cap): the others have a row
        _skip(conn, campaign_id, NO_LONGER, due, *hold.not_waiting)
        added = _rows(conn, campaign_id) - before
        if added:
            recount(conn, campaign_id, row.status, f"{count(added, 'recipient')} came due")
    return Due(added, added - qualified)


@dataclass(frozen=True)
class _Hold:
    """The frequency cap's conditions over due leads (``lead_t.c.id``); none without a cap."""

    cap: FrequencyCap | None
    held: sa.ColumnElement[bool] = field(default_factory=sa.false)
    expired: sa.ColumnElement[bool] = field(default_factory=sa.false)  # due over ``expires`` ago

    @classmethod
    def of(
        cls,
        conn: sa.Connection,
        cap: FrequencyCap | None,
        campaign_id: str,
        row: Any,
        cutoff: datetime,
        now: datetime,
    ) -> _Hold:
        if cap is None:
            return cls(None)
        expires = (
            timedelta(seconds=float(row.expires_seconds))
            if row.expires_seconds
            else DEFAULT_EXPIRES
        )
        old = due_parent_rows(conn, campaign_id, row.follows, cutoff - expires)
        return cls(cap, capped_leads(cap, campaign_id, lead_t.c.id, now), lead_t.c.id.in_(old))

    @property
    def free(self) -> tuple[sa.ColumnElement[bool], ...]:
        """Not held back by the cap."""
        return () if self.cap is None else (~self.held,)

    @property
    def not_waiting(self) -> tuple[sa.ColumnElement[bool], ...]:
        """Not among those the cap still holds back (held, not expired)."""
        return () if self.cap is None else (~sa.and_(self.held, ~self.expired),)


def _skip(
    conn: sa.Connection, campaign_id: str, reason: str, *where: sa.ColumnElement[bool]
) -> None:
    """``skipped`` deliveries, with ``reason``, for the leads where ``where`` holds."""
    conn.execute(
        delivery_t.insert().from_select(
            [
                "campaign_id",
                "lead_id",
                "recipient",
                "status",
                "attempts",
                "last_error",
                "open_count",
                "click_count",
            ],
            sa.select(
                sa.literal(campaign_id),
                lead_t.c.id,
                lead_t.c.email,
                sa.literal(DeliveryStatus.SKIPPED.value),
                sa.literal(0),
                sa.literal(reason),
                sa.literal(0),
                sa.literal(0),
            ).where(*where),
        )
    )


def _rows(conn: sa.Connection, campaign_id: str) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(delivery_t.c.campaign_id == campaign_id)
        ).scalar_one()
    )


def waiting(conn: sa.Connection, campaign_id: str) -> tuple[int, datetime | None]:
    """(parent recipients not due yet or not sent yet, when the next one comes due) of a
    follow-up; (0, None) for any other campaign. A follow-up is finished when this is 0 and
    its parent is finished."""
    row = conn.execute(
        sa.select(campaign_t.c.follows, campaign_t.c.after_seconds).where(
            campaign_t.c.id == campaign_id
        )
    ).one()
    if row.follows is None:
        return 0, None
    parent = conn.execute(
        sa.select(campaign_t.c.status).where(campaign_t.c.id == row.follows)
    ).scalar()
    p = delivery_t.alias("p")
    not_here = ~sa.exists(
        sa.select(sa.literal(1)).where(
            delivery_t.c.campaign_id == campaign_id, delivery_t.c.lead_id == p.c.lead_id
        )
    )
    query = sa.select(sa.func.count(), sa.func.min(p.c.sent_at)).where(
        p.c.campaign_id == row.follows, not_here
    )
    if parent in FINISHED_PARENT:  # a running parent may still send its pending recipients
        query = query.where(p.c.sent_at.is_not(None))
    left, first_sent = conn.execute(query).one()
    after = timedelta(seconds=float(row.after_seconds or 0))
    return int(left), (first_sent + after if first_sent is not None else None)


def follow_up_state(conn: sa.Connection, campaign_id: str) -> dict[str, object]:
    """What ``campaigns show`` adds for a follow-up: its parent, the wait, who is still to come
    due and when the next one does, and the skipped by reason; nothing for other campaigns."""
    row = conn.execute(
        sa.select(campaign_t.c.follows, campaign_t.c.after_seconds).where(
            campaign_t.c.id == campaign_id
        )
    ).one()
    if row.follows is None:
        return {}
    left, next_due = waiting(conn, campaign_id)
    skipped = conn.execute(
        sa.select(delivery_t.c.last_error, sa.func.count())
        .where(
            delivery_t.c.campaign_id == campaign_id,
            delivery_t.c.status == DeliveryStatus.SKIPPED,
        )
        .group_by(delivery_t.c.last_error)
    ).all()
    return {
        "follows": row.follows,
        "after": format_duration(timedelta(seconds=float(row.after_seconds or 0))),
        "waiting": left,
        "next_due": next_due,
        "skipped": {str(reason): int(n) for reason, n in skipped},
    }


@dataclass(frozen=True)
class DuePreview:
    """How a follow-up's parent recipients stand at a moment, without changing anything."""

    due_now: int  # come due and not added yet: to be sent, suppressed, skipped or held back
    would_send: int
    would_be_suppressed: int
    would_be_skipped: int  # no longer in the audience
    later: int  # not due yet (or not sent the parent yet)
    next_due: datetime | None
    would_wait: int = 0  # held back by the frequency cap, to come due again
    would_expire: int = 0  # held back past ``expires``: skipped


def preview_due(
    conn: sa.Connection,
    campaign_id: str,
    sponsor: Sponsor,
    audience: Audience,
    follows: str,
    after: timedelta,
    expires: timedelta | None = None,
    now: datetime | None = None,
) -> DuePreview:
    """What ``add_due`` would do now, and who is still to come due (``send --dry-run``)."""
    now = now or utcnow()
    cutoff = now - after
    due = due_parent_rows(conn, campaign_id, follows, cutoff)
    qualifies = audience_filter(sponsor.id, audience, now)
    supp = suppressed_condition(lead_t.c.sponsor_id, lead_t.c.email)
    cap = frequency_cap(sponsor)
    held = capped_leads(cap, campaign_id, lead_t.c.id, now) if cap is not None else sa.false()
    old = due_parent_rows(conn, campaign_id, follows, cutoff - (expires or DEFAULT_EXPIRES))
    expired = lead_t.c.id.in_(old)

    def leads(*where: sa.ColumnElement[bool]) -> int:
        # conditions in WHERE, never inside a CASE: there PostgreSQL turns the audience's
        # EXISTS into joins, while in a CASE they would run once per lead
        query = sa.select(sa.func.count()).select_from(lead_t).where(lead_t.c.id.in_(due), *where)
        return int(conn.execute(query).scalar_one())

    due_now = leads()
    free = () if cap is None else (~held,)
    qualified = leads(qualifies, *free)
    suppressed = leads(qualifies, *free, supp)
    wait = 0 if cap is None else leads(held, ~expired)
    expire = 0 if cap is None else leads(qualifies, held, expired)
    p = delivery_t.alias("p")
    later, first_sent = conn.execute(
        sa.select(sa.func.count(), sa.func.min(p.c.sent_at)).where(
            p.c.campaign_id == follows,
            sa.or_(p.c.sent_at.is_(None), p.c.sent_at > cutoff),
            _not_here(conn, campaign_id, p.c.lead_id),
        )
    ).one()
    return DuePreview(
        due_now=due_now,
        would_send=qualified - suppressed,
        would_be_suppressed=suppressed,
        would_be_skipped=due_now - qualified - wait - expire,
        later=int(later),
        next_due=first_sent + after if first_sent is not None else None,
        would_wait=wait,
        would_expire=expire,
    )
