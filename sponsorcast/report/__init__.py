"""Reports: what a campaign did, for the organiser's terminal and for the sponsor's inbox.

Rule of this package: every number is an aggregate computed by the store (``query``), never
a loop over deliveries or events in Python; the only per-recipient work is streaming the
recipients' rows to a CSV file or the first rows of the HTML table. Nothing here writes to the
store.

- ``query``: the SQL aggregates (funnel counters, first actions per hour, clicks per link, reasons)
- ``stats``: ``stats`` and ``stats --json``
- ``timeline``: hours and days as the report's buckets
- ``links``: clicks per link of a campaign, with each link's text
- ``build``: a campaign's or a sponsor's report as data
- ``rows``: the sections as rows (``--json``, ``--csv``, ``links``)
- ``charts``: the SVG charts (pygal)
- ``html``: the self-contained HTML file; ``templates/`` its Jinja templates
- ``csvfiles``: the CSV files
- ``export``: ``recipients.csv``, each line made by the database
- ``make``: ``report`` itself
"""

from __future__ import annotations

from sponsorcast.report.build import (
    CampaignReport,
    CampaignSummary,
    Problem,
    SponsorLook,
    SponsorReport,
    campaign_report,
    sponsor_report,
)
from sponsorcast.report.links import LinkClicks
from sponsorcast.report.make import Made, make_campaign_report, make_sponsor_report
from sponsorcast.report.timeline import Bucket

__all__ = [
    "Bucket",
    "CampaignReport",
    "CampaignSummary",
    "LinkClicks",
    "Made",
    "Problem",
    "SponsorLook",
    "SponsorReport",
    "campaign_report",
    "make_campaign_report",
    "make_sponsor_report",
    "sponsor_report",
]
