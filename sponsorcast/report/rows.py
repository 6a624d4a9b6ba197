"""A report's sections as rows of plain values: what ``--json``, ``--csv`` and ``links`` print.

The columns of each CSV file are the keys here, in this order; docs/reports.md lists them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sponsorcast.report.build import (
    RATE_KEYS,
    CampaignReport,
    CampaignSummary,
    Problem,
    SponsorReport,
)
from sponsorcast.report.links import LinkClicks
from sponsorcast.report.query import FUNNEL_KEYS, RECIPIENT_FIELDS
from sponsorcast.report.timeline import Bucket

FUNNEL_COLUMNS = ("stage", "recipients", "percent_of_sent")
TIMELINE_COLUMNS = ("start", "hours", "first_opens", "first_clicks")
LINK_COLUMNS = ("campaign", "text", "url", "unique_clicks", "total_clicks", "personalised")
PROBLEM_COLUMNS = ("kind", "reason", "recipients")
CAMPAIGN_COLUMNS = (
    "campaign",
    "name",
    "status",
    "started_at",
    "total_recipients",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "complained",
    "unsubscribed",
    "delivery_rate",
    "open_rate",
    "click_rate",
    "bounce_rate",
    "unsubscribe_rate",
)
RECIPIENT_COLUMNS = RECIPIENT_FIELDS

_RATE_OF = {counter: name for name, counter in RATE_KEYS.items()}  # "opened": "open_rate"


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with its offset, UTC as stored (as in every ``--json`` and ``--csv``)."""
    return value.isoformat() if value is not None else None


def funnel_rows(funnel: Mapping[str, int], rates: Mapping[str, float]) -> list[dict[str, Any]]:
    """One row a counter: its count, and its rate where it has one."""
    return [
        {
            "stage": key,
            "recipients": funnel[key],
            "percent_of_sent": rates[_RATE_OF[key]] if key in _RATE_OF else None,
        }
        for key in FUNNEL_KEYS
    ]


def timeline_rows(timeline: Iterable[Bucket]) -> list[dict[str, Any]]:
    """One row a bucket."""
    return [
        {
            "start": iso(b.start),
            "hours": b.hours,
            "first_opens": b.opened,
            "first_clicks": b.clicked,
        }
        for b in timeline
    ]


def link_rows(links: Iterable[LinkClicks]) -> list[dict[str, Any]]:
    """One row a link, most clicked first."""
    return [
        {
            "campaign": link.campaign,
            "text": link.text,
            "url": link.url,
            "unique_clicks": link.unique,
            "total_clicks": link.total,
            "personalised": link.personalised,
        }
        for link in links
    ]


def problem_rows(problems: Iterable[Problem]) -> list[dict[str, Any]]:
    """One row a (kind, reason)."""
    return [{"kind": p.kind, "reason": p.reason, "recipients": p.count} for p in problems]


def campaign_rows(campaigns: Iterable[CampaignSummary]) -> list[dict[str, Any]]:
    """One row a campaign of a sponsor."""
    rows = []
    for c in campaigns:
        row: dict[str, Any] = {
            "campaign": c.campaign,
            "name": c.name,
            "status": c.status,
            "started_at": iso(c.started_at),
        }
        row.update({k: c.funnel[k] for k in CAMPAIGN_COLUMNS if k in c.funnel})
        row.update({k: c.rates[k] for k in CAMPAIGN_COLUMNS if k in c.rates})
        rows.append({k: row[k] for k in CAMPAIGN_COLUMNS})
    return rows


def campaign_json(report: CampaignReport) -> dict[str, Any]:
    """``report ID --json``."""
    s = report.summary
    return {
        "campaign": s.campaign,
        "name": s.name,
        "subject": s.subject,
        "status": s.status,
        "sponsor": {"id": report.sponsor.id, "name": report.sponsor.name},
        "started_at": iso(s.started_at),
        "finished_at": iso(s.finished_at),
        "funnel": dict(s.funnel),
        "rates": dict(s.rates),
        "timeline": timeline_rows(report.timeline),
        "links": link_rows(report.links),
        "problems": problem_rows(report.problems),
        "anonymous": report.anonymous,
        "generated_at": iso(report.generated_at),
    }


def sponsor_json(report: SponsorReport) -> dict[str, Any]:
    """``report --sponsor S --json``."""
    return {
        "sponsor": {"id": report.sponsor.id, "name": report.sponsor.name},
        "campaigns": campaign_rows(report.campaigns),
        "funnel": dict(report.funnel),
        "rates": dict(report.rates),
        "links": link_rows(report.links),
        "problems": problem_rows(report.problems),
        "anonymous": report.anonymous,
        "generated_at": iso(report.generated_at),
    }


__all__ = [
    "CAMPAIGN_COLUMNS",
    "FUNNEL_COLUMNS",
    "LINK_COLUMNS",
    "PROBLEM_COLUMNS",
    "RECIPIENT_COLUMNS",
    "TIMELINE_COLUMNS",
    "campaign_json",
    "campaign_rows",
    "funnel_rows",
    "iso",
    "link_rows",
    "problem_rows",
    "sponsor_json",
    "timeline_rows",
]
