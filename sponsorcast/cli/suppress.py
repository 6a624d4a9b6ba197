"""CLI: ``suppress add/remove/list/import/export`` (thin: parameters, one call into the domain,
output)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sponsorcast import console
from sponsorcast.cli.invocation import handle_errors, open_store, whole_file
from sponsorcast.wording import count

suppress_app = typer.Typer(
    help="The suppression list: addresses never to email again.", no_args_is_help=True
)

SPONSOR_HELP = "Sponsor id; '*' means all sponsors."


@suppress_app.command("add")
@handle_errors
def add(
    emails: Annotated[list[str], typer.Argument(metavar="EMAIL", help="Addresses to suppress.")],
    sponsor: Annotated[
        Optional[str],
        typer.Option("--sponsor", metavar="SPONSOR_ID", help=SPONSOR_HELP + " Default: all."),
    ] = None,
    reason: Annotated[
        str,
        typer.Option(
            "--reason", metavar="REASON", help="unsubscribed, bounced, complained or manual."
        ),
    ] = "manual",
) -> None:
    """Suppress addresses (for all sponsors unless --sponsor)."""
    from sponsorcast.suppression import add as add_suppressions

    result = add_suppressions(open_store(), emails, sponsor_id=sponsor, reason=reason)
    scope = f"sponsor '{sponsor}'" if sponsor and sponsor != "*" else "all sponsors"
    console.say(
        f"Suppressed {count(len(result.changed), 'address')} for {scope}; "
        f"{len(result.unchanged)} already were."
    )


@suppress_app.command("remove")
@handle_errors
def remove(
    emails: Annotated[list[str], typer.Argument(metavar="EMAIL", help="Addresses to allow again.")],
    sponsor: Annotated[
        Optional[str],
        typer.Option(
            "--sponsor", metavar="SPONSOR_ID", help=SPONSOR_HELP + " Default: every entry."
        ),
    ] = None,
) -> None:
    """Lift suppressions (every entry for the address unless --sponsor)."""
    from sponsorcast.suppression import remove as remove_suppressions

    result = remove_suppressions(open_store(), emails, sponsor_id=sponsor)
    console.say(f"Removed {count(len(result.changed), 'address')} from the suppression list.")
    if result.unchanged:
        console.warn(f"Not on the list: {', '.join(result.unchanged)}.")


@suppress_app.command("list")
@handle_errors
def list_(
    sponsor: Annotated[
        Optional[str],
        typer.Option(
            "--sponsor", metavar="SPONSOR_ID", help="Only entries that apply to this sponsor."
        ),
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
    """List suppressed addresses."""
    from sponsorcast.suppression import COLUMNS, list_suppressions

    rows = list_suppressions(open_store(), sponsor_id=sponsor)
    if json_:
        console.print_json(rows)
    elif csv_:
        console.print_csv(rows, COLUMNS, raw=raw)
    else:
        whose = f" for sponsor '{sponsor}'" if sponsor else ""
        console.print_table(
            rows,
            COLUMNS,
            title=f"Suppressed addresses ({len(rows)})",
            empty=f"No suppressed addresses{whose}.",
            whole=("email", "created_at"),
            optional=("created_at",),
        )


@suppress_app.command("import")
@handle_errors
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="A CSV with an email column (reason/origin and sponsor optional), "
            "or one address a line.",
        ),
    ],
    sponsor: Annotated[
        Optional[str],
        typer.Option(
            "--sponsor",
            metavar="SPONSOR_ID",
            help=SPONSOR_HELP + " Default: the file's sponsor column, else all.",
        ),
    ] = None,
    reason: Annotated[
        Optional[str],
        typer.Option(
            "--reason",
            metavar="REASON",
            help="unsubscribed, bounced, complained or manual. Default: the file's reason "
            "column, else manual.",
        ),
    ] = None,
    rejects: Annotated[
        Optional[Path],
        typer.Option(
            "--rejects",
            metavar="FILE",
            help="Import the good rows and write the bad ones here (default: one bad row "
            "refuses the file).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would change; change nothing.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
) -> None:
    """Add every address of a file to the suppression list (all or nothing)."""
    from sponsorcast.suppression.files import describe, import_suppressions

    report = import_suppressions(
        open_store(), file, sponsor_id=sponsor, reason=reason, rejects=rejects, dry_run=dry_run
    )
    if json_:
        console.print_json(report.as_dict())
    else:
        console.say(describe(report))


@suppress_app.command("export")
@handle_errors
def export(
    sponsor: Annotated[
        Optional[str],
        typer.Option(
            "--sponsor", metavar="SPONSOR_ID", help="Only entries that apply to this sponsor."
        ),
    ] = None,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="Cells exactly as stored, not neutralised for spreadsheets (=, +, -, @ get a "
            "leading ', which import removes again).",
        ),
    ] = False,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", metavar="FILE", help="Write here instead of stdout."),
    ] = None,
) -> None:
    """Write the suppression list as CSV, in the form 'suppress import' reads."""
    from sponsorcast.suppression import COLUMNS
    from sponsorcast.suppression.files import export_rows

    rows, erased = export_rows(open_store(), sponsor_id=sponsor)
    if output is None:
        console.print_csv(rows, COLUMNS, raw=raw)
    else:
        with whole_file(output) as out:
            console.print_csv(rows, COLUMNS, raw=raw, out=out)
        console.say(f"Wrote {count(len(rows), 'entry', 'entries')} to {output}.")
    if erased:
        console.warn(
            f"Left out {count(erased, 'erased person', 'erased people')}: their keyed hashes "
            "only mean something in this store."
        )


def register(app: typer.Typer) -> None:
    """Add the ``suppress`` group."""
    app.add_typer(suppress_app, name="suppress")
