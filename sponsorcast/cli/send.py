"""CLI: ``send``, ``stats`` and ``deliveries``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from sponsorcast import console
from sponsorcast.cli.invocation import handle_errors, load, open_store
from sponsorcast.errors import BadInput, ExitCode, Reported
from sponsorcast.send.keyprobe import key_probe
from sponsorcast.wording import count

if TYPE_CHECKING:
    from sponsorcast.config import Config
    from sponsorcast.send import Plan, RunReport
    from sponsorcast.send.keyprobe import KeyProbe
    from sponsorcast.store import Store

TABLE_COLUMNS = [
    "recipient",
    "status",
    "attempts",
    "sent_at",
    "opened_at",
    "open_count",
    "first_click_at",
    "click_count",
    "last_error",
]


@handle_errors
def send(
    campaign: Annotated[
        Path, typer.Argument(metavar="CAMPAIGN_FILE", help="Campaign file (.md or .yaml).")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Render and count; send nothing, write nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    limit: Annotated[
        Optional[int],
        typer.Option("--limit", min=1, metavar="N", help="Send at most N emails in this run."),
    ] = None,
    include_new: Annotated[
        bool,
        typer.Option(
            "--include-new",
            help="Also send it to leads that joined the audience since it was snapshotted "
            "(what 'rolling: true' does at every send and run-due).",
        ),
    ] = False,
    test: Annotated[
        Optional[list[str]],
        typer.Option(
            "--test",
            metavar="EMAIL",
            help="Send only to this address (repeatable), subject prefixed [TEST], not recorded.",
        ),
    ] = None,
    as_: Annotated[
        Optional[str],
        typer.Option(
            "--as",
            metavar="EMAIL",
            help="With --test: render the test for this lead (default: the audience's first).",
        ),
    ] = None,
) -> None:
    """Send a campaign: every recipient of its audience exactly once, resumable."""
    if as_ is not None and not test:
        raise BadInput("--as chooses whose email a --test shows; add --test YOUR_ADDRESS.")
    config = load()
    # started before the sending machinery is imported: the key check's helper imports its own
    with key_probe(config, wanted=not dry_run and not test) as probe:
        _send(
            config,
            campaign,
            probe,
            dry_run=dry_run,
            yes=yes,
            limit=limit,
            include_new=include_new,
            test=test,
            as_=as_,
        )


def _send(
    config: Config,
    campaign: Path,
    probe: KeyProbe | None,
    *,
    dry_run: bool,
    yes: bool,
    limit: int | None,
    include_new: bool,
    test: list[str] | None,
    as_: str | None,
) -> None:
    from sponsorcast.send import plan_send, send_campaign, send_test, validate_all
    from sponsorcast.send.plan import bounce_warning

    store = open_store(config)
    # a test email goes to given addresses: an empty audience does not stop it
    plan = plan_send(store, config, campaign, run_preflight=not test)
    transport_note = "" if config.transport == "resend" else " (outbox: nothing will be sent)"
    if test:
        result = send_test(store, config, plan, test, as_email=as_)
        where = "written to the outbox" if config.transport == "outbox" else "sent"
        lead = f", rendered for {result.rendered_for}" if result.rendered_for else ""
        names = [v.name for v in plan.campaign.variants]
        what = f"Test emails of variants {', '.join(names)}" if names else "Test email"
        console.say(
            f"{what} {where} to {count(len(test), 'address')} ({', '.join(test)}){lead}. "
            "Nothing was recorded."
        )
        if result.note:
            console.warn(result.note)
        return
    warning = bounce_warning(plan) if plan.existing_status is None else None
    if warning is not None:
        console.warn(warning)
    if dry_run:
        checked = (
            validate_all(store, plan, config) if plan.existing_status is None else plan.recipients
        )
        fields: dict[str, object] = {
            "campaign": plan.campaign.id,
            "status": plan.existing_status or "new",
            "recipients": checked if plan.existing_status is None else plan.recipients,
            "suppressed": plan.suppressed,
            "transport": config.transport,
        }
        if plan.campaign.follows:
            fields = {**fields, **_due_fields(store, plan)}
        elif plan.campaign.test is not None and plan.existing_status is None:
            fields.update(_split_fields(plan, checked - plan.suppressed))
        if (
            plan.sponsor.frequency_cap
            and plan.existing_status is None
            and not plan.campaign.follows
        ):
            fields[f"would be skipped (frequency cap {plan.sponsor.frequency_cap})"] = _capped_now(
                store, plan
            )
        console.print_fields(fields, title="Dry run")
        console.say("Dry run: every recipient rendered; nothing was sent and nothing was written.")
        return
    topping_up = plan.existing_status == "sent" and (plan.campaign.rolling or include_new)
    if (plan.existing_status not in ("sent", "cancelled") or topping_up) and not yes:
        if not console.is_terminal() or not sys.stdin.isatty():
            raise BadInput(
                "Refusing to send without --yes when not on a terminal; nothing was sent."
            )
        to_send = plan.recipients - plan.suppressed
        whom = "the leads new to its audience" if topping_up else count(to_send, "recipient")
        if not typer.confirm(
            f"Send '{plan.campaign.id}' to {whom}{transport_note}?",
            default=False,
        ):
            console.say("Nothing was sent.")
            return
    with console.SendProgress(plan.recipients - plan.suppressed, plan.campaign.id) as bar:
        report = send_campaign(
            store,
            config,
            plan,
            limit=limit,
            progress=lambda p: bar.update(p.sent, p.failed, p.emails_per_second),
            include_new=include_new,
            probe=probe,
        )
    _summary(report)
    if limit is not None and report.status == "sending" and report.stopped_reason is None:
        console.say(
            f"Stopped at --limit {limit}: the rest stays 'sending'; the next "
            f"'sponsorcast send {campaign}' or 'sponsorcast run-due' continues it."
        )
    if not report.ok:
        raise Reported(ExitCode.FAILED)


def _split_fields(plan: Plan, sendable: int) -> dict[str, object]:
    """A new A/B test's dry run: the test group per variant, and who is held for the winner."""
    from sponsorcast.send.abtest import planned_split

    test = plan.campaign.test
    assert test is not None
    split = planned_split(sendable, [v.name for v in plan.campaign.variants], test.share)
    held = split.pop("held")
    fields: dict[str, object] = {f"test: variant {name}": n for name, n in split.items()}
    fields[f"held for the winner (by {test.by}, {test.pick_after} after the test)"] = held
    return fields


def _test_line(test: dict[str, object]) -> str:
    """The test's state in the title of ``stats``' variants table."""
    if test["state"] == "picked":
        decision = test["decision"]
        how = decision.get("how") if isinstance(decision, dict) else None
        return f"picked {test['winner']} ({how})"
    return f"testing, {test['held']} held"


def _capped_now(store: Store, plan: Plan) -> int:
    """A new campaign's dry run: its audience's leads the frequency cap would skip now."""
    from sponsorcast.send.frequency import capped_in_audience

    with store.read() as conn:
        return capped_in_audience(conn, plan.sponsor, plan.campaign.audience, plan.campaign.id)


def _due_fields(store: Store, plan: Plan) -> dict[str, object]:
    """A follow-up's dry run: its parent's recipients due now (and what would become of them),
    and those still to come due."""
    from sponsorcast.durations import parse_duration
    from sponsorcast.send.followups import preview_due

    campaign = plan.campaign
    assert campaign.follows is not None and campaign.after is not None
    with store.read() as conn:
        due = preview_due(
            conn,
            campaign.id,
            plan.sponsor,
            campaign.audience,
            campaign.follows,
            parse_duration(campaign.after),
            parse_duration(campaign.expires) if campaign.expires else None,
        )
    fields: dict[str, object] = {
        "follows": f"{campaign.follows}, {campaign.after} after each recipient's email",
        "due now": due.due_now,
        "would be sent": due.would_send,
        "would be suppressed": due.would_be_suppressed,
        "would be skipped (no longer in the audience)": due.would_be_skipped,
    }
    if plan.sponsor.frequency_cap:
        cap = plan.sponsor.frequency_cap
        fields[f"would wait (frequency cap {cap})"] = due.would_wait
        fields["would be skipped (held back past expires)"] = due.would_expire
    return {**fields, "due later": due.later, "next due": due.next_due}


def _summary(report: RunReport) -> None:
    if report.already_finished:
        console.say(
            f"Campaign '{report.campaign_id}' is already {report.status}; nothing was sent."
        )
        return
    counts = report.counts
    console.print_fields(
        {
            "campaign": report.campaign_id,
            "status": report.status,
            "recipients": report.total,
            "sent now": report.sent_now,
            "failed now": report.failed_now,
            **{f"total {k}": v for k, v in sorted(counts.items())},
            "emails/s": f"{report.emails_per_second:.1f}",
        },
        title="Send summary",
    )
    if not report.sends_for_real:
        console.say("Outbox transport: emails were written as .eml files; nothing was sent.")
    if report.failed_now:
        unknown = (
            f", {report.unknown_now} of them with an outcome the provider never confirmed"
            if report.unknown_now
            else ""
        )
        console.warn(
            f"{count(report.failed_now, 'delivery')} failed in this run{unknown}; "
            f"'sponsorcast deliveries {report.campaign_id} --status failed' lists them."
        )
    if report.unknown_batches:
        console.warn(
            f"{count(report.unknown_batches, 'batch')} got no answer from the provider; "
            "run the same command again to re-send them under their idempotency keys."
        )
    if report.stopped_reason:
        console.say(f"Stopped: {report.stopped_reason}; run the command again to continue.")
    if report.capped:
        console.say(f"Held back: {report.capped}.")
    test = report.test
    if test is not None and test.winner is None and test.held:
        when = (
            f"from {test.pick_due:%Y-%m-%d %H:%M} UTC"
            if test.pick_due is not None
            else f"{test.pick_after} after the test's last email"
        )
        console.say(
            f"Testing: {count(test.held, 'recipient')} held for the winner, picked by {test.by} "
            f"{when} by the next run-due, or now with 'sponsorcast campaigns pick "
            f"{report.campaign_id}'."
        )
    if report.held and report.follow_up:
        console.say(
            f"Waiting: {count(report.held, 'recipient')} had an email of this sponsor within its "
            f"frequency cap of {report.frequency}; run-due sends them once the cap allows."
        )
    elif report.held:
        console.say(
            f"Skipped: {count(report.held, 'recipient')} had an email of this sponsor within its "
            f"frequency cap of {report.frequency}."
        )


@handle_errors
def stats(
    campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN_ID")],
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """A campaign's numbers: sent, delivered, opened, clicked, rates."""
    from sponsorcast.report.stats import campaign_stats

    data = campaign_stats(open_store(), campaign_id)
    if json_:
        console.print_json(data)
    else:
        hidden = ("timeline", "links", "follow_ups", "variants", "test")
        shown = {k: v for k, v in data.items() if k not in hidden}
        console.print_fields(shown, title=f"Campaign {campaign_id}")
        if data["variants"]:
            console.print_table(
                data["variants"],
                ["variant", "sent", "delivered", "opened", "clicked", "open_rate", "click_rate"],
                title=f"A/B test: {_test_line(data['test'])}",
            )
        console.print_timeline(data["timeline"])
        if data["follow_ups"]:
            console.print_table(
                data["follow_ups"],
                ["campaign", "sent", "suppressed", "skipped", "waiting"],
                title="Follow-ups",
            )
        clicked = [link for link in data["links"] if link["total_clicks"]][:5]
        if clicked:
            console.print_table(
                clicked,
                ("text", "url", "unique_clicks", "total_clicks"),
                title="Top links",
                headers={"unique_clicks": "recipients", "total_clicks": "clicks"},
                whole=("url", "unique_clicks", "total_clicks"),
            )


@handle_errors
def deliveries(
    campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN_ID")],
    status: Annotated[
        Optional[str],
        typer.Option("--status", metavar="STATUS", help="Only deliveries in this status."),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    csv_: Annotated[bool, typer.Option("--csv", help="CSV output.")] = False,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="CSV cells exactly as stored, not neutralised for spreadsheets (=, +, -, @ get a leading ').",
        ),
    ] = False,
) -> None:
    """Per-recipient ledger of a campaign."""
    from sponsorcast.store.lifecycle import DELIVERY_FIELDS, get_campaign_row, iter_deliveries

    store = open_store()
    with store.read() as conn:
        ab_test = get_campaign_row(conn, campaign_id)["ab_test"]
        rows = iter_deliveries(conn, campaign_id, status)
        if json_:
            console.print_json(list(rows))
        elif csv_:
            console.print_csv(rows, DELIVERY_FIELDS, raw=raw)
        else:
            which = f" with status '{status}'" if status else ""
            console.print_table(
                rows,
                [*TABLE_COLUMNS[:3], "variant", *TABLE_COLUMNS[3:]] if ab_test else TABLE_COLUMNS,
                title=f"Deliveries of {campaign_id}",
                empty=f"Campaign '{campaign_id}' has no deliveries{which}.",
                whole=("recipient", "sent_at", "opened_at", "first_click_at"),
                optional=(
                    "first_click_at",
                    "click_count",
                    "opened_at",
                    "open_count",
                    "attempts",
                    "sent_at",
                ),
            )


def register(app: typer.Typer) -> None:
    """Add ``send``, ``stats`` and ``deliveries``."""
    app.command("send")(send)
    app.command("stats")(stats)
    app.command("deliveries")(deliveries)
