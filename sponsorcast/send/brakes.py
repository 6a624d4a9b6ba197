"""Brakes: a campaign whose bounces or complaints pass a threshold pauses itself.

Providers review or suspend an account whose bounce or complaint rate passes theirs (Amazon
SES from 5 % bounces and 0.1 % complaints; Gmail asks bulk senders for under 0.1 % spam and
never 0.3 %), and a suspended team stops every sponsor's campaigns. So while a campaign
sends, each claim looks at its ledger (bounces and complaints arrive by webhook and ``sync``)
at most every ``CHECK_EVERY`` seconds: once at least ``min_sample`` emails were sent, a rate
over its threshold pauses the campaign with the numbers in the reason (``BRAKE_CAUSE``).

Unlike the other pauses the tool makes (quota, a refused key, Ctrl-C), no ``send`` or
``run-due`` undoes a brake: a person looks at the list and runs ``campaigns resume ID
--force``. From then on the brake watches only the emails sent after that resume (a
``campaign.brake_reset`` event marks it; late bounces of earlier emails are not held against
the rest): if the rest of the list bounces as badly, the campaign pauses again after another
``min_sample``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from sponsorcast.config import BrakeConfig
from sponsorcast.store.lifecycle import BRAKE_CAUSE, BRAKE_RESET_EVENT, status_counts
from sponsorcast.store.models import DeliveryStatus
from sponsorcast.store.tables import delivery_t, event_t

CHECK_EVERY = 2.0  # seconds between two looks at one campaign's ledger
SENT_STATES = (
    DeliveryStatus.SENT,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.BOUNCED,
    DeliveryStatus.COMPLAINED,
)


def percent(rate: float) -> str:
    """A rate as people read it: ``3 %``, ``0.05 %``, ``4.2 %``."""
    value = rate * 100
    text = (
        f"{value:.2f}".rstrip("0").rstrip(".")
        if value < 1
        else f"{value:.1f}".rstrip("0").rstrip(".")
    )
    return f"{text} %"


def brake_reason(counts: dict[str, int], brakes: BrakeConfig) -> str | None:
    """Why a campaign with these delivery counts must stop, or None."""
    sent = sum(counts.get(s, 0) for s in SENT_STATES)
    if sent < brakes.min_sample or sent == 0:
        return None
    for state, limit, what in (
        (DeliveryStatus.BOUNCED, brakes.bounce_rate, "bounced"),
        (DeliveryStatus.COMPLAINED, brakes.complaint_rate, "were reported as spam"),
    ):
        n = counts.get(state, 0)
        if n / sent > limit:
            return (
                f"{BRAKE_CAUSE}: {percent(n / sent)} of the emails sent {what} ({n:,} of "
                f"{sent:,}; the brake is at {percent(limit)})"
            )
    return None


@dataclass
class BrakeWatch:
    """Looks at one campaign's rates now and then, for the claims of one process."""

    brakes: BrakeConfig
    clock: Callable[[], float] = time.monotonic
    _last: float = field(default=-math.inf)
    _since: datetime | None = None  # the last forced resume: only emails sent after it count
    _loaded: bool = False

    def check(self, conn: sa.Connection, campaign_id: str) -> str | None:
        """The brake's reason when a rate is over its threshold; None (or not looked) else."""
        now = self.clock()
        if now - self._last < CHECK_EVERY:
            return None
        self._last = now
        if not self._loaded:
            self._since = conn.execute(
                sa.select(event_t.c.created_at)
                .where(event_t.c.campaign_id == campaign_id, event_t.c.type == BRAKE_RESET_EVENT)
                .order_by(event_t.c.id.desc())
                .limit(1)
            ).scalar()
            self._loaded = True
        if self._since is None:
            return brake_reason(status_counts(conn, campaign_id), self.brakes)
        rows = conn.execute(
            sa.select(delivery_t.c.status, sa.func.count())
            .where(delivery_t.c.campaign_id == campaign_id, delivery_t.c.sent_at >= self._since)
            .group_by(delivery_t.c.status)
        ).all()
        return brake_reason({status: n for status, n in rows}, self.brakes)
