"""CLI: ``schedule``, ``unschedule`` and ``run-due`` (thin: parameters, one call into the domain, output)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sponsorcast import console
from sponsorcast.cli.invocation import handle_errors, load, open_store
from sponsorcast.wording import count

if TYPE_CHECKING:
    from datetime import datetime

    from sponsorcast.config import Config

NOW_ENV = "SPONSORCAST_NOW"


def _now(config: Config) -> datetime | None:
    """The clock: ``SPONSORCAST_NOW`` (a testing aid) or None for the real time."""
    from sponsorcast.schedule import parse_send_time

    text = os.environ.get(NOW_ENV)
    return parse_send_time(text, config, what=NOW_ENV) if text else None


@handle_errors
def schedule(
    campaign: Annotated[
        Path, typer.Argument(metavar="CAMPAIGN_FILE", help="Campaign file (.md or .yaml).")
    ],
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="TIME",
            help="When to send: 'tomorrow 09:00', 'today 17:30', 'in 2h', a local time in the "
            "configured timezone (2026-12-01 09:00) or ISO-8601 with an offset "
            "(2026-12-01T09:00+01:00). Default: the file's send_at.",
        ),
    ] = None,
) -> None:
    """Validate a campaign (every recipient rendered) and mark it for run-due at its time."""
    from sponsorcast.schedule import schedule_campaign, show_time, zone_name

    config = load()
    store = open_store(config)
    done = schedule_campaign(store, config, campaign, at=at, now=_now(config))
    again = "Rescheduled" if done.previous_status == "scheduled" else "Scheduled"
    console.say(
        f"{again} '{done.campaign_id}' for {show_time(done.send_at, config)} ({zone_name(config)}) "
        f"to {count(done.recipients, 'recipient')}; every recipient rendered. 'sponsorcast run-due' "
        "sends it once that time has come."
    )


@handle_errors
def unschedule(campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN_ID")]) -> None:
    """Take a scheduled (or missed) campaign back to draft; run-due will not send it."""
    from sponsorcast.schedule import unschedule_campaign

    unschedule_campaign(open_store(), campaign_id)
    console.say(f"Unscheduled '{campaign_id}'; it is a draft again.")


@handle_errors
def run_due(
    max_seconds: Annotated[
        float | None,
        typer.Option(
            "--max-seconds",
            min=1,
            metavar="N",
            help="Stop claiming new batches after N seconds (what is left resumes next run).",
        ),
    ] = None,
    max_lateness: Annotated[
        str,
        typer.Option(
            "--max-lateness",
            metavar="DURATION",
            help="A scheduled campaign later than this past its time is not started but marked missed "
            "(90m, 24h, 2d).",
        ),
    ] = "24h",
) -> None:
    """For cron: start due campaigns, resume sending and quota-paused ones; silent when idle."""
    from sponsorcast.schedule import parse_duration
    from sponsorcast.schedule import run_due as run

    lateness = parse_duration(max_lateness)
    config = load()
    store = open_store(config)
    report = run(
        store,
        config,
        now=_now(config),
        max_seconds=max_seconds,
        max_lateness=lateness,
        log=console.log,
    )
    code = int(report.exit_code)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``schedule``, ``unschedule`` and ``run-due``."""
    app.command("schedule")(schedule)
    app.command("unschedule")(unschedule)
    app.command("run-due")(run_due)
