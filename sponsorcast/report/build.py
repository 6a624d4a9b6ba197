"""A report's numbers: one campaign, or every campaign of one sponsor, from the store's aggregates.

Rates are percentages of ``sent`` with one decimal, as in ``stats``. With ``anonymous`` no
address reaches the report: there is no per-recipient table, a bounce reason that quotes an
address has it masked, and clicks on URLs that are none of the campaign's links (which may
carry an address) are pooled into one row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sponsorcast.errors import BadInput
from sponsorcast.report import query
from sponsorcast.report.links import LinkClicks, link_clicks
from sponsorcast.report.timeline import Bucket, buckets
from sponsorcast.send.abtest import ab_state
from sponsorcast.store import Store
from sponsorcast.store.lifecycle import unknown_campaign
from sponsorcast.store.models import utcnow
from sponsorcast.store.tables import campaign_t, sponsor_t

RATE_KEYS = {
    "delivery_rate": "delivered",
    "open_rate": "opened",
    "click_rate": "clicked",
    "bounce_rate": "bounced",
    "complaint_rate": "complained",
    "unsubscribe_rate": "unsubscribed",
}

TOP_LINKS = 10

_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")
MASK = "[address]"


@dataclass(frozen=True)
class SponsorLook:
    """Who the report is for: the sponsor's id, name, logo and accent colour."""

    id: str
    name: str
    logo_url: str | None
    accent: str | None


@dataclass(frozen=True)
class Problem:
    """Deliveries that ``kind`` (bounced, complained, failed) for one ``reason``."""

    kind: str
    reason: str
    count: int


@dataclass(frozen=True)
class CampaignSummary:
    """One campaign's identity and counters."""

    campaign: str
    name: str
    subject: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    funnel: dict[str, int]
    rates: dict[str, float]


@dataclass(frozen=True)
class VariantRow:
    """One A/B variant's numbers in a report."""

    variant: str
    sent: int
    opened: int
    clicked: int
    open_rate: float
    click_rate: float


@dataclass(frozen=True)
class CampaignReport:
    """Everything ``report ID`` shows but the per-recipient rows (streamed on their own)."""

    sponsor: SponsorLook
    summary: CampaignSummary
    timeline: list[Bucket]
    links: list[LinkClicks]
    problems: list[Problem]
    anonymous: bool
    generated_at: datetime
    variants: list[VariantRow] = field(default_factory=list)  # an A/B test's
    test_line: str | None = None  # the test's state and decision


@dataclass(frozen=True)
class SponsorReport:
    """Every campaign of one sponsor: a row each, the combined funnel, the best links."""

    sponsor: SponsorLook
    campaigns: list[CampaignSummary]
    funnel: dict[str, int]
    rates: dict[str, float]
    links: list[LinkClicks]
    problems: list[Problem]
    anonymous: bool
    generated_at: datetime
    campaign_ids: list[str] = field(default_factory=list)


def rate(part: int, whole: int) -> float:
    """``part`` as a percentage of ``whole``, one decimal; 0.0 of nothing."""
    return round(100.0 * part / whole, 1) if whole else 0.0


def rates_of(funnel: dict[str, int]) -> dict[str, float]:
    """The report's rates, each a percentage of ``sent``."""
    return {name: rate(funnel[key], funnel["sent"]) for name, key in RATE_KEYS.items()}


def mask_addresses(text: str) -> str:
    """``text`` with every email address in it replaced by ``[address]``."""
    return _ADDRESS.sub(MASK, text)


_CAMPAIGN_COLUMNS = (
    campaign_t.c.id,
    campaign_t.c.sponsor_id,
    campaign_t.c.name,
    campaign_t.c.subject,
    campaign_t.c.body,
    campaign_t.c.status,
    campaign_t.c.started_at,
    campaign_t.c.finished_at,
)


def _look(conn: sa.Connection, sponsor_id: str) -> SponsorLook:
    row = conn.execute(
        sa.select(sponsor_t.c.name, sponsor_t.c.logo_url, sponsor_t.c.accent_color).where(
            sponsor_t.c.id == sponsor_id
        )
    ).first()
    if row is None:
        return SponsorLook(sponsor_id, sponsor_id, None, None)
    return SponsorLook(sponsor_id, row.name or sponsor_id, row.logo_url, row.accent_color)


def _summary(row: Any, funnel: dict[str, int]) -> CampaignSummary:
    return CampaignSummary(
        campaign=row.id,
        name=row.name or row.id,
        subject=row.subject,
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        funnel=funnel,
        rates=rates_of(funnel),
    )


def _problems(conn: sa.Connection, ids: Sequence[str], anonymous: bool) -> list[Problem]:
    merged: dict[tuple[str, str], int] = {}
    for kind, reason, n in query.problems(conn, ids):
        key = (kind, mask_addresses(reason) if anonymous else reason)
        merged[key] = merged.get(key, 0) + n
    found = [Problem(kind, reason, n) for (kind, reason), n in merged.items()]
    return sorted(found, key=lambda p: (p.kind, -p.count, p.reason))


def timeline_of(conn: sa.Connection, campaign_id: str, started: datetime | None) -> list[Bucket]:
    """A campaign's first opens and first clicks over time, from when sending began."""
    return buckets(query.first_actions_per_hour(conn, [campaign_id]), started)


def links_of(
    conn: sa.Connection, campaign_id: str, body: str, *, anonymous: bool = False
) -> list[LinkClicks]:
    """A campaign's links with their clicks, most clicked first."""
    keyed = [
        (key, total, unique) for _, key, total, unique in query.clicks_per_key(conn, [campaign_id])
    ]
    return link_clicks(campaign_id, body, keyed, anonymous=anonymous)


def campaign_links_report(store: Store, campaign_id: str) -> list[LinkClicks]:
    """A campaign's links with their clicks (``links ID``); NotFound for an unknown id."""
    with store.read() as conn:
        body = conn.execute(
            sa.select(campaign_t.c.body).where(campaign_t.c.id == campaign_id)
        ).scalar()
        if body is None:
            raise unknown_campaign(conn, campaign_id)
        return links_of(conn, campaign_id, body)


def campaign_report(
    store: Store, campaign_id: str, *, anonymous: bool = False, now: datetime | None = None
) -> CampaignReport:
    """The report of one campaign; NotFound for an unknown id."""
    with store.read() as conn:
        row = conn.execute(
            sa.select(*_CAMPAIGN_COLUMNS).where(campaign_t.c.id == campaign_id)
        ).first()
        if row is None:
            raise unknown_campaign(conn, campaign_id)
        summary = _summary(row, query.counters(conn, [campaign_id]))
        test = ab_state(conn, campaign_id)
        numbers = query.per_variant_counters(conn, campaign_id) if test is not None else {}
        variants = [
            VariantRow(
                name,
                n["sent"],
                n["opened"],
                n["clicked"],
                rate(n["opened"], n["sent"]),
                rate(n["clicked"], n["sent"]),
            )
            for name in (test.variants if test is not None else [])
            for n in [numbers.get(name) or dict.fromkeys(query.FUNNEL_KEYS, 0)]
        ]
        return CampaignReport(
            sponsor=_look(conn, row.sponsor_id),
            summary=summary,
            timeline=timeline_of(conn, campaign_id, row.started_at),
            links=links_of(conn, campaign_id, row.body, anonymous=anonymous),
            problems=_problems(conn, [campaign_id], anonymous),
            anonymous=anonymous,
            generated_at=now or utcnow(),
            variants=variants,
            test_line=test.line() if test is not None else None,
        )


def sponsor_report(
    store: Store, sponsor_id: str, *, anonymous: bool = False, now: datetime | None = None
) -> SponsorReport:
    """The report of every campaign of one sponsor, oldest first; BadInput for an unknown one."""
    with store.read() as conn:
        known = conn.execute(sa.select(sponsor_t.c.id).where(sponsor_t.c.id == sponsor_id)).first()
        if known is None:
            raise BadInput(
                f"Unknown sponsor '{sponsor_id}'.", hint="'sponsorcast sponsors list' lists them."
            )
        rows = conn.execute(
            sa.select(*_CAMPAIGN_COLUMNS)
            .where(campaign_t.c.sponsor_id == sponsor_id)
            .order_by(
                sa.func.coalesce(campaign_t.c.started_at, campaign_t.c.created_at), campaign_t.c.id
            )
        ).all()
        ids = [row.id for row in rows]
        per_campaign = query.per_campaign_counters(conn, ids)
        links: list[LinkClicks] = []
        keyed: dict[str, list[tuple[str, int, int]]] = {cid: [] for cid in ids}
        for cid, key, total, unique in query.clicks_per_key(conn, ids):
            keyed[cid].append((key, total, unique))
        for row in rows:
            links += link_clicks(row.id, row.body, keyed[row.id], anonymous=anonymous)
        funnel = query.counters(conn, ids) if ids else dict.fromkeys(query.FUNNEL_KEYS, 0)
        best = sorted((link for link in links if link.total), key=lambda r: (-r.unique, -r.total))
        return SponsorReport(
            sponsor=_look(conn, sponsor_id),
            campaigns=[_summary(row, per_campaign[row.id]) for row in rows],
            funnel=funnel,
            rates=rates_of(funnel),
            links=best[:TOP_LINKS],
            problems=_problems(conn, ids, anonymous) if ids else [],
            anonymous=anonymous,
            generated_at=now or utcnow(),
            campaign_ids=ids,
        )


__all__ = [
    "MASK",
    "RATE_KEYS",
    "CampaignReport",
    "CampaignSummary",
    "Problem",
    "SponsorLook",
    "SponsorReport",
    "campaign_links_report",
    "campaign_report",
    "links_of",
    "mask_addresses",
    "rate",
    "rates_of",
    "sponsor_report",
    "timeline_of",
]
