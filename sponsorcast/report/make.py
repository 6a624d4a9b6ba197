"""``report``: build a campaign's or a sponsor's report and write the files asked for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from sponsorcast.errors import BadInput
from sponsorcast.report import rows
from sponsorcast.report.build import CampaignReport, SponsorReport, campaign_report, sponsor_report
from sponsorcast.report.csvfiles import write_csv, write_csv_text
from sponsorcast.report.export import recipient_lines
from sponsorcast.report.html import campaign_html, sponsor_html, write_text
from sponsorcast.report.query import top_recipients
from sponsorcast.store import Store

# the recipients an HTML report lists, most engaged first; the CSV file has all of them
HTML_RECIPIENTS = 1000


@dataclass(frozen=True)
class Made:
    """What ``report`` built: the data (``--json``) and the files it wrote."""

    data: dict[str, Any]
    files: list[Path]


def check_outputs(html: Path | None, csv_dir: Path | None) -> None:
    """Refuse output paths that cannot be written, before anything is computed."""
    if html is not None:
        if html.is_dir():
            raise BadInput(f"--html {html} is a folder; give the name of the file to write.")
        if not html.parent.is_dir():
            raise BadInput(f"--html {html}: the folder {html.parent} does not exist.")
    if csv_dir is not None and csv_dir.exists() and not csv_dir.is_dir():
        raise BadInput(f"--csv {csv_dir} is a file; give a folder to write the CSV files into.")


def _csv_dir(csv_dir: Path) -> Path:
    csv_dir.mkdir(parents=True, exist_ok=True)
    return csv_dir


def make_campaign_report(
    store: Store,
    campaign_id: str,
    *,
    html: Path | None = None,
    csv_dir: Path | None = None,
    anonymous: bool = False,
    zone: tzinfo | None = None,
    now: datetime | None = None,
) -> tuple[CampaignReport, Made]:
    """Build one campaign's report and write ``html`` and the CSV files of ``csv_dir``."""
    check_outputs(html, csv_dir)
    report = campaign_report(store, campaign_id, anonymous=anonymous, now=now)
    files: list[Path] = []
    ids = [campaign_id]
    if html is not None:
        with store.read() as conn:
            recipients = [] if anonymous else top_recipients(conn, ids, HTML_RECIPIENTS)
            write_text(html, campaign_html(report, recipients, zone=zone))
        files.append(html)
    if csv_dir is not None:
        folder = _csv_dir(csv_dir)
        s = report.summary
        files.append(
            write_csv(
                folder / "funnel.csv", rows.FUNNEL_COLUMNS, rows.funnel_rows(s.funnel, s.rates)
            )
        )
        files.append(
            write_csv(
                folder / "timeline.csv",
                rows.TIMELINE_COLUMNS,
                rows.timeline_rows(report.timeline),
            )
        )
        files.append(
            write_csv(folder / "links.csv", rows.LINK_COLUMNS, rows.link_rows(report.links))
        )
        files.append(
            write_csv(
                folder / "problems.csv", rows.PROBLEM_COLUMNS, rows.problem_rows(report.problems)
            )
        )
        if not anonymous:
            with store.read() as conn:
                files.append(
                    write_csv_text(
                        folder / "recipients.csv",
                        rows.RECIPIENT_COLUMNS,
                        recipient_lines(conn, ids),
                    )
                )
    return report, Made(rows.campaign_json(report), files)


def make_sponsor_report(
    store: Store,
    sponsor_id: str,
    *,
    html: Path | None = None,
    csv_dir: Path | None = None,
    anonymous: bool = False,
    zone: tzinfo | None = None,
    now: datetime | None = None,
) -> tuple[SponsorReport, Made]:
    """Build the report of every campaign of a sponsor and write the files asked for."""
    check_outputs(html, csv_dir)
    report = sponsor_report(store, sponsor_id, anonymous=anonymous, now=now)
    files: list[Path] = []
    if html is not None:
        write_text(html, sponsor_html(report, zone=zone))
        files.append(html)
    if csv_dir is not None:
        folder = _csv_dir(csv_dir)
        files.append(
            write_csv(
                folder / "campaigns.csv",
                rows.CAMPAIGN_COLUMNS,
                rows.campaign_rows(report.campaigns),
            )
        )
        files.append(
            write_csv(
                folder / "funnel.csv",
                rows.FUNNEL_COLUMNS,
                rows.funnel_rows(report.funnel, report.rates),
            )
        )
        files.append(
            write_csv(folder / "links.csv", rows.LINK_COLUMNS, rows.link_rows(report.links))
        )
        files.append(
            write_csv(
                folder / "problems.csv", rows.PROBLEM_COLUMNS, rows.problem_rows(report.problems)
            )
        )
    return report, Made(rows.sponsor_json(report), files)


__all__ = [
    "HTML_RECIPIENTS",
    "Made",
    "check_outputs",
    "make_campaign_report",
    "make_sponsor_report",
]
