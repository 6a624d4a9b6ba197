"""CLI: ``report`` and ``links`` (thin: parameters, one call into ``sponsorcast.report``, output)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from sponsorcast import console
from sponsorcast.cli.invocation import handle_errors, load, open_store
from sponsorcast.errors import BadInput

LINK_TABLE = ("text", "url", "unique_clicks", "total_clicks")
LINK_HEADERS = {"unique_clicks": "recipients", "total_clicks": "clicks"}


def _zone() -> Any:
    config = load()
    if not config.timezone:
        return None
    from zoneinfo import ZoneInfo  # on use: keeps start-up fast

    return ZoneInfo(config.timezone)


@handle_errors
def report(
    campaign_id: Annotated[
        Optional[str], typer.Argument(metavar="CAMPAIGN_ID", show_default=False)
    ] = None,
    sponsor: Annotated[
        Optional[str],
        typer.Option("--sponsor", metavar="SPONSOR", help="Every campaign of this sponsor."),
    ] = None,
    html: Annotated[
        Optional[Path],
        typer.Option("--html", metavar="FILE", help="Write a self-contained HTML report."),
    ] = None,
    csv_dir: Annotated[
        Optional[Path],
        typer.Option("--csv", metavar="DIR", help="Write the report's tables as CSV files here."),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    anonymous: Annotated[
        bool,
        typer.Option("--anonymous", help="Aggregates only: no recipient table, no address."),
    ] = False,
) -> None:
    """What a campaign (or every campaign of a sponsor) did: funnel, time, links, bounces."""
    from sponsorcast.report import make_campaign_report, make_sponsor_report

    if (campaign_id is None) == (sponsor is None):
        raise BadInput(
            "Give either a CAMPAIGN_ID or --sponsor SPONSOR, not both and not neither.",
            hint="'sponsorcast campaigns list' lists the campaigns.",
        )
    zone = _zone()
    store = open_store()
    if campaign_id is not None:
        _, made = make_campaign_report(
            store, campaign_id, html=html, csv_dir=csv_dir, anonymous=anonymous, zone=zone
        )
        title = f"Campaign {campaign_id}"
    else:
        assert sponsor is not None
        _, made = make_sponsor_report(
            store, sponsor, html=html, csv_dir=csv_dir, anonymous=anonymous, zone=zone
        )
        title = f"Campaigns of {sponsor}"
    if json_:
        console.print_json(made.data)
        return
    data = made.data
    console.print_fields(
        {**data["funnel"], **{k: f"{v} %" for k, v in data["rates"].items()}}, title=title
    )
    if "campaigns" in data:
        console.print_table(
            data["campaigns"],
            ("campaign", "status", "sent", "open_rate", "click_rate", "bounce_rate"),
            title="Campaigns",
            empty=f"Sponsor '{sponsor}' has no campaigns yet.",
        )
    if data["links"]:
        console.print_table(
            data["links"][:5],
            LINK_TABLE,
            title="Top links",
            headers=LINK_HEADERS,
            whole=("url", "unique_clicks", "total_clicks"),
        )
    for path in made.files:
        console.say(f"Wrote {path}")
    if not made.files:
        console.say(
            "'--html FILE' writes this as a report for the sponsor; '--csv DIR' as CSV files."
        )


@handle_errors
def links(
    campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN_ID")],
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    csv_: Annotated[bool, typer.Option("--csv", help="CSV output.")] = False,
) -> None:
    """Clicks per link of a campaign: recipients who clicked and clicks, most clicked first."""
    from sponsorcast.report.build import campaign_links_report
    from sponsorcast.report.rows import LINK_COLUMNS, link_rows

    rows = link_rows(campaign_links_report(open_store(), campaign_id))
    if json_:
        console.print_json(rows)
    elif csv_:
        console.print_csv(rows, LINK_COLUMNS)
    else:
        console.print_table(
            rows,
            LINK_TABLE,
            title=f"Links of {campaign_id}",
            headers=LINK_HEADERS,
            empty=f"Campaign '{campaign_id}' has no links.",
            whole=("url", "unique_clicks", "total_clicks"),
        )


def register(app: typer.Typer) -> None:
    """Add ``report`` and ``links``."""
    app.command("report")(report)
    app.command("links")(links)
