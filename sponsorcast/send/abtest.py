"""A/B tests: the test group, each variant's numbers, and the decision.

At the snapshot the audience's sendable recipients are ordered by a hash of campaign and
lead; the first ``share`` of them (rounded) is the test group, dealt to the variants in turn,
so the split is even and the same on every machine. The rest is ``held``: delivery rows
without a batch, which no claim can take. ``send.pick`` later gives them the winner.

The decision compares the best variant's rate (clicks, or human opens, per email sent) with
the runner-up's in a two-proportion z-test. A difference meaningful at 95 % picks the best;
otherwise (or with no clicks at all) the test's ``fallback`` is sent.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from sponsorcast.store.models import BatchStatus, DeliveryStatus
from sponsorcast.store.tables import batch_t, campaign_t, delivery_t, event_t
from sponsorcast.variants import ABTest, Variant, stored_test, stored_variant

CONFIDENCE = 0.95
_EVENT_COLUMN = {"clicks": "first_click_at", "opens": "human_opened_at"}


def stored_ab(raw: Mapping[str, Any] | None) -> tuple[tuple[Variant, ...], ABTest | None]:
    """The variants and test kept in a campaign row's ``ab_test``."""
    if not raw:
        return (), None
    return tuple(stored_variant(v) for v in raw["variants"]), stored_test(raw["test"])


def _rank(campaign_id: str, lead_id: int) -> bytes:
    return hashlib.sha256(f"{campaign_id}:{lead_id}".encode()).digest()


def planned_split(recipients: int, names: Sequence[str], share: float) -> dict[str, int]:
    """How ``assign_test_group`` splits this many sendable recipients: per variant, and held."""
    size = min(recipients, math.floor(share * recipients + 0.5))
    split = {
        name: size // len(names) + (1 if i < size % len(names) else 0)
        for i, name in enumerate(names)
    }
    return {**split, "held": recipients - size}


def assign_test_group(
    conn: sa.Connection, campaign_id: str, names: Sequence[str], share: float, batch_size: int
) -> dict[str, int]:
    """Give the test group its variants and batches and hold the rest (see the module);
    returns how many recipients each variant got, and ``held``."""
    rows = conn.execute(
        sa.select(delivery_t.c.id, delivery_t.c.lead_id).where(
            delivery_t.c.campaign_id == campaign_id,
            delivery_t.c.status == DeliveryStatus.PENDING,
        )
    ).all()
    ranked = sorted(rows, key=lambda r: _rank(campaign_id, int(r.lead_id)))
    size = len(ranked) - planned_split(len(ranked), names, share)["held"]
    group = sorted(
        ((r.id, names[i % len(names)]) for i, r in enumerate(ranked[:size])),
        key=lambda pair: int(pair[0]),
    )
    conn.execute(
        delivery_t.update()
        .where(
            delivery_t.c.campaign_id == campaign_id, delivery_t.c.status == DeliveryStatus.PENDING
        )
        .values(status=DeliveryStatus.HELD, batch=None)
    )
    if group:
        conn.execute(
            delivery_t.update()
            .where(delivery_t.c.id == sa.bindparam("d_id"))
            .values(
                status=DeliveryStatus.PENDING,
                variant=sa.bindparam("v"),
                batch=sa.bindparam("b"),
            ),
            [{"d_id": d, "v": v, "b": i // batch_size} for i, (d, v) in enumerate(group)],
        )
    counts = {name: 0 for name in names}
    for _, name in group:
        counts[name] += 1
    return {**counts, "held": len(ranked) - size}


@dataclass(frozen=True)
class VariantResult:
    """One variant's numbers in the test: emails sent, and those clicked (or opened)."""

    name: str
    recipients: int
    events: int

    @property
    def rate(self) -> float:
        """events / recipients (0 with no recipients)."""
        return self.events / self.recipients if self.recipients else 0.0


def variant_results(
    conn: sa.Connection, campaign_id: str, variants: Sequence[str], by: str
) -> list[VariantResult]:
    """Each variant's recipients sent and how many of them clicked (or opened, not counting
    machine opens), from the ledger, before the held recipients got anything."""
    event = delivery_t.c[_EVENT_COLUMN[by]]
    rows = conn.execute(
        sa.select(
            delivery_t.c.variant,
            sa.func.count(delivery_t.c.sent_at),
            sa.func.count(event),
        )
        .where(delivery_t.c.campaign_id == campaign_id, delivery_t.c.variant.is_not(None))
        .group_by(delivery_t.c.variant)
    ).all()
    found = {r[0]: (int(r[1]), int(r[2])) for r in rows}
    return [VariantResult(n, *found.get(n, (0, 0))) for n in variants]


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """The two-sided p-value of a two-proportion z-test (pooled); 1.0 when it cannot tell."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class Decision:
    """Which variant the held recipients get, and why."""

    winner: str
    how: str  # "test": the best, meaningfully; "fallback": inconclusive; "hand": campaigns pick
    by: str
    results: list[VariantResult]
    p_value: float
    meaningful: bool

    def as_dict(self) -> dict[str, Any]:
        """The decision's numbers, as the campaign event and ``stats --json`` give them."""
        return {
            "winner": self.winner,
            "how": self.how,
            "by": self.by,
            "p_value": round(self.p_value, 6),
            "meaningful": self.meaningful,
            "variants": [
                {
                    "variant": r.name,
                    "recipients": r.recipients,
                    self.by: r.events,
                    "rate": round(r.rate, 6),
                }
                for r in self.results
            ],
        }

    def sentence(self) -> str:
        """``picked b: clicks 12.0 % (6 of 50) against 2.0 % (1 of 50), p = 0.05``."""
        shown = ", ".join(
            f"{r.name} {r.rate:.1%} ({r.events} of {r.recipients})" for r in self.results
        )
        why = {
            "test": f"meaningful at {CONFIDENCE:.0%}",
            "fallback": f"not meaningful at {CONFIDENCE:.0%}, so the fallback",
            "hand": "picked by hand",
        }[self.how]
        return f"variant {self.winner} ({why}; {self.by}: {shown}; p = {self.p_value:.3g})"


def decide(test: ABTest, results: Sequence[VariantResult], by_hand: str | None = None) -> Decision:
    """The best variant if it beats the runner-up meaningfully, else the fallback."""
    ranked = sorted(results, key=lambda r: -r.rate)  # stable: ties keep the file's order
    best, runner = ranked[0], ranked[1]
    p = two_proportion_p(best.events, best.recipients, runner.events, runner.recipients)
    meaningful = best.rate > runner.rate and p < 1 - CONFIDENCE
    if by_hand is not None:
        return Decision(by_hand, "hand", test.by, list(results), p, meaningful)
    if meaningful:
        return Decision(best.name, "test", test.by, list(results), p, True)
    return Decision(test.fallback, "fallback", test.by, list(results), p, False)


def pick_due_at(conn: sa.Connection, campaign_id: str, test: ABTest) -> datetime | None:
    """When the automatic pick is due: ``pick_after`` after the test group's last email was
    sent, once none of its batches is left; None while some are."""
    left = conn.execute(
        sa.select(sa.func.count()).where(
            batch_t.c.campaign_id == campaign_id,
            batch_t.c.status.in_((BatchStatus.PENDING, BatchStatus.CLAIMED)),
        )
    ).scalar_one()
    if left:
        return None
    last = conn.execute(
        sa.select(sa.func.max(delivery_t.c.sent_at)).where(
            delivery_t.c.campaign_id == campaign_id, delivery_t.c.variant.is_not(None)
        )
    ).scalar()
    if last is None:  # nobody of the test group was sent: from the start
        last = conn.execute(
            sa.select(campaign_t.c.started_at).where(campaign_t.c.id == campaign_id)
        ).scalar()
    return None if last is None else last + timedelta(seconds=test.pick_after_seconds)


def held_count(conn: sa.Connection, campaign_id: str) -> int:
    """Recipients held for the winner."""
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                delivery_t.c.campaign_id == campaign_id,
                delivery_t.c.status == DeliveryStatus.HELD,
            )
        ).scalar_one()
    )


@dataclass(frozen=True)
class ABState:
    """Where an A/B test stands."""

    variants: list[str]
    share: float
    by: str
    pick_after: str
    fallback: str
    held: int
    pick_due: datetime | None  # while testing, once the test group was sent
    winner: str | None
    picked_at: datetime | None
    decision: dict[str, Any] | None  # the ``test.picked`` event's numbers

    def as_dict(self) -> dict[str, Any]:
        """Stable JSON keys (``stats --json``, ``campaigns show --json``)."""
        return {
            "variants": self.variants,
            "share": f"{self.share * 100:g}%",
            "by": self.by,
            "pick_after": self.pick_after,
            "fallback": self.fallback,
            "state": "testing" if self.winner is None else "picked",
            "held": self.held,
            "pick_due": self.pick_due,
            "winner": self.winner,
            "picked_at": self.picked_at,
            "decision": self.decision,
        }

    def line(self) -> str:
        """One line: ``20% split over a, b (by clicks); testing until …, 80 held``."""
        head = f"{self.share * 100:g}% split over {', '.join(self.variants)} (by {self.by})"
        if self.winner is not None and self.picked_at is not None:
            p = (self.decision or {}).get("p_value")
            return (
                f"{head}; picked {self.winner} at {self.picked_at:%Y-%m-%d %H:%M} UTC (p = {p:.3g})"
            )
        if self.pick_due is None:
            return f"{head}; testing while the test group is sent, {self.held} held"
        return f"{head}; testing until {self.pick_due:%Y-%m-%d %H:%M} UTC, {self.held} held"


def ab_state(conn: sa.Connection, campaign_id: str) -> ABState | None:
    """Where an A/B test stands (``campaigns show``, ``stats``, ``send``); None for a campaign
    without one."""
    row = conn.execute(
        sa.select(campaign_t.c.ab_test, campaign_t.c.winner, campaign_t.c.picked_at).where(
            campaign_t.c.id == campaign_id
        )
    ).one()
    variants, test = stored_ab(row.ab_test)
    if test is None:
        return None
    decision = conn.execute(
        sa.select(event_t.c.payload)
        .where(event_t.c.campaign_id == campaign_id, event_t.c.type == "test.picked")
        .order_by(event_t.c.id.desc())
        .limit(1)
    ).scalar()
    return ABState(
        variants=[v.name for v in variants],
        share=test.share,
        by=test.by,
        pick_after=test.pick_after,
        fallback=test.fallback,
        held=held_count(conn, campaign_id),
        pick_due=pick_due_at(conn, campaign_id, test) if row.winner is None else None,
        winner=row.winner,
        picked_at=row.picked_at,
        decision=decision,
    )
