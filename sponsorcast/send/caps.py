"""Daily caps and warm-up: how many emails a sponsor may still send today.

A sponsor's ``daily_cap`` bounds the emails of all its campaigns in one day (the project's
``timezone``, else UTC). ``warmup`` is the allowance of its first sending day, doubled each
day after (200, 400, 800, …) up to the cap: a new sending domain earns its reputation
gradually. Emails being sent count as soon as their batch is claimed, so two processes
never share one allowance twice (the claim locks the sponsor's row while it counts).

A claim that finds the day's allowance used up stops the run; the campaign stays
``sending`` and the next ``send`` or ``run-due`` on a later day continues it. A batch
larger than what is left is split (as ``--limit`` does), so the cap is never exceeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from sponsorcast.store.models import DeliveryStatus, Sponsor
from sponsorcast.store.tables import campaign_t, delivery_t, sponsor_t
from sponsorcast.wording import count

MAX_DOUBLINGS = 40  # 2**40 times the warm-up: beyond any cap


def allowance(sponsor: Sponsor, first_day: date | None, today: date) -> int | None:
    """Emails the sponsor may send on ``today`` (None: no cap)."""
    cap = sponsor.daily_cap
    if sponsor.warmup is None:
        return cap
    days = (today - (first_day or today)).days
    ramp = int(sponsor.warmup * 2 ** min(max(days, 0), MAX_DOUBLINGS))
    return ramp if cap is None else min(cap, ramp)


@dataclass
class DailyCap:
    """The cap of one sponsor, for the claims of one process."""

    sponsor: Sponsor
    zone: tzinfo
    _first_day: date | None = None

    @classmethod
    def of(cls, sponsor: Sponsor, timezone: str | None) -> DailyCap | None:
        """The sponsor's cap, or None when it has neither ``daily_cap`` nor ``warmup``."""
        if sponsor.daily_cap is None and sponsor.warmup is None:
            return None
        return cls(sponsor, ZoneInfo(timezone) if timezone else UTC)

    def left(self, conn: sa.Connection, now: datetime) -> tuple[int, str]:
        """How many emails may still go today, and a sentence for when none may."""
        sid = self.sponsor.id
        # serialises the count-then-claim of every process sending for this sponsor
        conn.execute(sa.select(sponsor_t.c.id).where(sponsor_t.c.id == sid).with_for_update())
        local = now.astimezone(self.zone)
        start = datetime.combine(local.date(), time(0), self.zone).astimezone(UTC)
        if self._first_day is None:
            first = conn.execute(
                sa.select(sa.func.min(delivery_t.c.sent_at))
                .join(campaign_t, campaign_t.c.id == delivery_t.c.campaign_id)
                .where(campaign_t.c.sponsor_id == sid)
            ).scalar()
            self._first_day = first.astimezone(self.zone).date() if first else local.date()
        today = allowance(self.sponsor, self._first_day, local.date())
        assert today is not None  # a DailyCap has a cap or a warm-up
        used = int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(delivery_t)
                .join(campaign_t, campaign_t.c.id == delivery_t.c.campaign_id)
                .where(
                    campaign_t.c.sponsor_id == sid,
                    sa.or_(
                        delivery_t.c.sent_at >= start,
                        delivery_t.c.status == DeliveryStatus.SENDING,
                    ),
                )
            ).scalar_one()
        )
        day = (local.date() - self._first_day).days + 1
        ramp = f" (warm-up day {day})" if self.sponsor.warmup is not None else ""
        tomorrow = local.date() + timedelta(days=1)
        reason = (
            f"daily cap of sponsor '{sid}' reached: {count(used, 'email')} of {today:,} "
            f"today{ramp}; the next send or run-due from {tomorrow.isoformat()} continues"
        )
        return max(today - used, 0), reason
