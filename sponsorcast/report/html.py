"""The report as one self-contained HTML file: inline CSS and SVG, no script, no fetch.

Nothing in the file points outside it but the sponsor's logo and the campaign's own links,
so it opens offline and can be mailed to the sponsor as it is; it prints on A4.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

from markupsafe import Markup

from sponsorcast import __version__
from sponsorcast.branding import branding_problem
from sponsorcast.report.build import CampaignReport, SponsorReport
from sponsorcast.report.charts import (
    DEFAULT_ACCENT,
    campaigns_chart,
    funnel_chart,
    timeline_chart,
)
from sponsorcast.report.timeline import Bucket

STAGES = (
    ("Audience", "total_recipients", None),
    ("Sent", "sent", None),
    ("Delivered", "delivered", "delivery_rate"),
    ("Opened", "opened", "open_rate"),
    ("Clicked", "clicked", "click_rate"),
    ("Bounced", "bounced", "bounce_rate"),
    ("Complained", "complained", "complaint_rate"),
    ("Unsubscribed", "unsubscribed", "unsubscribe_rate"),
    ("Suppressed", "suppressed", None),
    ("Failed", "failed", None),
    ("Cancelled", "cancelled", None),
    ("Skipped when due", "skipped", None),  # a follow-up's; the row shows only when not 0
    ("Not sent yet", "pending", None),
)


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("sponsorcast.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _when(zone: tzinfo | None) -> Any:
    def when(value: datetime | None) -> str:
        if value is None:
            return ""
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z").strip()

    return when


def _short(zone: tzinfo | None) -> Any:
    def short(value: datetime | None) -> str:
        return value.astimezone(zone).strftime("%b %d %H:%M") if value is not None else ""

    return short


def _number(value: int) -> str:
    return f"{value:,}"


def bucket_label(bucket: Bucket, zone: tzinfo | None) -> str:
    """A bucket's start as the chart's axis shows it: the hour, or the day."""
    local = bucket.start.astimezone(zone)
    return local.strftime("%b %d %H:00") if bucket.hours == 1 else local.strftime("%b %d")


def _page(name: str, zone: tzinfo | None, **values: Any) -> str:
    env = _environment()
    env.filters["when"] = _when(zone)
    env.filters["short"] = _short(zone)
    env.filters["number"] = _number
    template = env.get_template(name)
    sponsor = values["sponsor"]
    # stored values were checked when set; checked again because they go into CSS and src
    accent, logo = sponsor.accent, sponsor.logo_url
    return str(
        template.render(
            version=__version__,
            accent=accent
            if accent and not branding_problem("accent_color", accent)
            else DEFAULT_ACCENT,
            logo_url=logo if logo and not branding_problem("logo_url", logo) else None,
            stages=STAGES,
            zone_name=_zone_name(zone),
            **values,
        )
    )


def _zone_name(zone: tzinfo | None) -> str:
    return str(getattr(zone, "key", None) or (zone.tzname(None) if zone else None) or "UTC")


def campaign_html(
    report: CampaignReport,
    recipients: Iterable[Mapping[str, Any]],
    *,
    zone: tzinfo | None = None,
) -> str:
    """The HTML report of one campaign; ``recipients`` the rows of its table (none if anonymous)."""
    accent = report.sponsor.accent
    shown = [] if report.anonymous else list(recipients)
    timeline = report.timeline
    return _page(
        "campaign.html",
        zone,
        sponsor=report.sponsor,
        summary=report.summary,
        timeline=timeline,
        links=report.links,
        problems=report.problems,
        anonymous=report.anonymous,
        generated_at=report.generated_at,
        variants=report.variants,
        test_line=report.test_line,
        recipients=shown,
        more=len(shown) < report.summary.funnel["total_recipients"],
        funnel_svg=Markup(funnel_chart(report.summary.funnel, accent)),
        timeline_svg=Markup(
            timeline_chart(
                [bucket_label(b, zone) for b in timeline],
                [b.opened for b in timeline],
                [b.clicked for b in timeline],
                accent,
            )
        )
        if timeline
        else "",
    )


def sponsor_html(report: SponsorReport, *, zone: tzinfo | None = None) -> str:
    """The HTML report of every campaign of one sponsor."""
    accent = report.sponsor.accent
    return _page(
        "sponsor.html",
        zone,
        sponsor=report.sponsor,
        campaigns=report.campaigns,
        funnel=report.funnel,
        rates=report.rates,
        links=report.links,
        problems=report.problems,
        anonymous=report.anonymous,
        generated_at=report.generated_at,
        funnel_svg=Markup(funnel_chart(report.funnel, accent)),
        campaigns_svg=Markup(
            campaigns_chart(
                [c.campaign for c in report.campaigns],
                [c.rates["open_rate"] for c in report.campaigns],
                [c.rates["click_rate"] for c in report.campaigns],
                accent,
            )
        )
        if report.campaigns
        else "",
    )


def write_text(path: Path, text: str) -> None:
    """Write a file whole or not at all (a reader never sees half a report)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


__all__ = ["STAGES", "bucket_label", "campaign_html", "sponsor_html", "write_text"]
