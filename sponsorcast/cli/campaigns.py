"""CLI: ``campaigns list/show/pause/resume/cancel/delete``."""

from __future__ import annotations

from typing import Annotated

import typer

from sponsorcast import console
from sponsorcast.cli.invocation import handle_errors, open_store
from sponsorcast.wording import count

campaigns_app = typer.Typer(
    help="Campaign lifecycle: list, show history, pause, resume, cancel, delete.",
    no_args_is_help=True,
)
LIST_COLUMNS = ["id", "name", "sponsor", "status", "total_recipients", "sent", "failed", "send_at"]


@campaigns_app.command("list")
@handle_errors
def list_(
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every campaign in the store."""
    from sponsorcast.store.lifecycle import list_campaigns

    with open_store().read() as conn:
        rows = list_campaigns(conn)
    if json_:
        console.print_json(rows)
    else:
        console.print_table(
            rows,
            LIST_COLUMNS,
            title="Campaigns",
            headers={"total_recipients": "recipients"},
            empty="No campaigns yet: 'sponsorcast send FILE' or 'sponsorcast schedule FILE' "
            "makes one.",
            whole=("id", "send_at"),
            optional=("name", "sponsor", "failed"),
        )


@campaigns_app.command("show")
@handle_errors
def show(
    campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN_ID")],
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """A campaign, its delivery counts and its history (a follow-up's: who is still to come due)."""
    from sponsorcast.send.abtest import ab_state
    from sponsorcast.send.followups import follow_up_state
    from sponsorcast.store.lifecycle import show_campaign

    with open_store().read() as conn:
        data = show_campaign(conn, campaign_id)
        data.update(follow_up_state(conn, campaign_id))
        test = ab_state(conn, campaign_id)
    if json_:
        console.print_json({**data, "test": test.as_dict()} if test is not None else data)
        return
    history = data.pop("history")
    if test is not None:
        data["test"] = test.line()
    console.print_fields(data, title=f"Campaign {campaign_id}")
    console.print_table(history, ["at", "from", "status", "cause"], title="History", whole=("at",))


@campaigns_app.command("pick")
@handle_errors
def pick(
    campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN_ID")],
    variant: Annotated[
        str | None,
        typer.Option("--variant", metavar="NAME", help="This variant, whatever the numbers say."),
    ] = None,
) -> None:
    """Pick an A/B test's winner now (before its pick_after too) and send it to the held recipients."""
    from sponsorcast.cli.invocation import load
    from sponsorcast.errors import CredentialsError
    from sponsorcast.send import run_campaign
    from sponsorcast.send.pick import pick as pick_winner

    config = load()
    if config.transport == "resend" and not config.secrets.resend_api_key:
        raise CredentialsError(
            "RESEND_API_KEY is not set, and the resend transport needs it; nothing was picked.",
            hint='Export RESEND_API_KEY, or set [transport] kind = "outbox" to write .eml files.',
        )
    store = open_store()
    batch = config.resend.batch_size if config.resend.endpoint == "batch" else 100
    decision = pick_winner(store, campaign_id, batch, variant=variant)
    assert decision is not None  # by hand it picks or raises
    console.say(f"Campaign '{campaign_id}' picked {decision.sentence()}.")
    report = run_campaign(store, config, campaign_id)
    console.say(
        f"Sent {count(report.sent_now, 'email')} of variant {decision.winner}; "
        f"the campaign is {report.status}."
    )


@campaigns_app.command("pause")
@handle_errors
def pause(campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN_ID")]) -> None:
    """Pause: a running sender stops claiming at its next batch."""
    from sponsorcast.store.lifecycle import pause_campaign

    with open_store().write() as conn:
        pause_campaign(conn, campaign_id)
    console.say(
        f"Paused campaign '{campaign_id}'; 'sponsorcast campaigns resume {campaign_id}' continues it."
    )


@campaigns_app.command("resume")
@handle_errors
def resume(
    campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN_ID")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Resume a campaign its bounce or complaint brake paused."),
    ] = False,
) -> None:
    """Resume a paused campaign (the next send or run-due continues it)."""
    from sponsorcast.store.lifecycle import resume_campaign

    with open_store().write() as conn:
        status = resume_campaign(conn, campaign_id, force=force)
    console.say(f"Campaign '{campaign_id}' is {status} again.")


@campaigns_app.command("cancel")
@handle_errors
def cancel(campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN_ID")]) -> None:
    """Cancel: pending deliveries become cancelled and are never sent."""
    from sponsorcast.store.lifecycle import cancel_campaign

    with open_store().write() as conn:
        n = cancel_campaign(conn, campaign_id)
    console.say(f"Cancelled campaign '{campaign_id}'; {n} pending deliveries will not be sent.")


@campaigns_app.command("delete")
@handle_errors
def delete(campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN_ID")]) -> None:
    """Delete a campaign that sent nothing."""
    from sponsorcast.store.lifecycle import delete_campaign

    with open_store().write() as conn:
        delete_campaign(conn, campaign_id)
    console.say(f"Deleted campaign '{campaign_id}'.")


def register(app: typer.Typer) -> None:
    """Add the ``campaigns`` group."""
    app.add_typer(campaigns_app, name="campaigns")
