"""CLI: ``sponsors add/list/show``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from sponsorcast import console
from sponsorcast.cli.invocation import handle_errors, load, open_store
from sponsorcast.errors import BadInput

sponsors_app = typer.Typer(
    help="Manage sponsors (who sends, and whose postal address is printed).", no_args_is_help=True
)

COLUMNS = ["id", "name", "from", "reply_to", "postal_address", "messaging_enabled"]


@sponsors_app.command("add")
@handle_errors
def add(
    sponsor_id: Annotated[str, typer.Argument(metavar="SPONSOR_ID", help="Slug, e.g. acme.")],
    name: Annotated[
        Optional[str],
        typer.Option("--name", metavar="NAME", help="Display name (needed for a new sponsor)."),
    ] = None,
    from_: Annotated[
        Optional[str],
        typer.Option("--from", metavar="ADDRESS", help="From address: 'Name <addr@domain>'."),
    ] = None,
    reply_to: Annotated[
        Optional[str], typer.Option("--reply-to", metavar="ADDRESS", help="Reply-To address.")
    ] = None,
    postal_address: Annotated[
        Optional[str],
        typer.Option("--postal-address", metavar="ADDRESS", help="Printed in every footer."),
    ] = None,
    enabled: Annotated[
        Optional[bool],
        typer.Option("--enabled/--disabled", help="Allow or refuse sends for this sponsor."),
    ] = None,
    accent_color: Annotated[
        Optional[str],
        typer.Option("--accent-color", metavar="#RRGGBB", help="Links and buttons ('' clears)."),
    ] = None,
    logo_url: Annotated[
        Optional[str],
        typer.Option("--logo-url", metavar="URL", help="https:// logo atop every email."),
    ] = None,
    unsubscribe_mailto: Annotated[
        Optional[str],
        typer.Option(
            "--unsubscribe-mailto",
            metavar="ADDRESS",
            help="Mailbox for List-Unsubscribe (default: [tracking] unsubscribe_mailto).",
        ),
    ] = None,
    layout: Annotated[
        Optional[str],
        typer.Option(
            "--layout", metavar="FILE", help="Layout file of the project's, e.g. layouts/acme.html."
        ),
    ] = None,
) -> None:
    """Add a sponsor, or change the given options of one (not one defined in sponsorcast.toml)."""
    from sponsorcast.sponsors import add_sponsor

    config = load()
    if any(s.id == sponsor_id for s in config.sponsors):
        raise BadInput(
            f"Sponsor '{sponsor_id}' is defined in {config.path}; edit it there (a change made "
            "here would be overwritten the next time the file is read), so nothing was changed."
        )
    sponsor, created = add_sponsor(
        open_store(config),
        sponsor_id,
        name=name,
        from_address=from_,
        reply_to=reply_to,
        postal_address=postal_address,
        messaging_enabled=enabled,
        branding={
            "accent_color": accent_color,
            "logo_url": logo_url,
            "unsubscribe_mailto": unsubscribe_mailto,
            "layout": layout,
        },
    )
    console.say(f"{'Added' if created else 'Updated'} sponsor '{sponsor.id}'.")


@sponsors_app.command("list")
@handle_errors
def list_(
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List sponsors."""
    from sponsorcast.sponsors import list_sponsors, sponsor_dict

    rows = [sponsor_dict(s) for s in list_sponsors(open_store())]
    if json_:
        console.print_json(rows)
    else:
        console.print_table(
            rows,
            COLUMNS,
            title="Sponsors",
            headers={"messaging_enabled": "enabled"},
            empty="No sponsors: add one with 'sponsorcast sponsors add ID --from ADDRESS'.",
            whole=("id", "from"),
            optional=("reply_to", "postal_address"),
        )


@sponsors_app.command("show")
@handle_errors
def show(
    sponsor_id: Annotated[str, typer.Argument(metavar="SPONSOR_ID")],
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show one sponsor with its lead and campaign counts."""
    from sponsorcast.sponsors import show_sponsor

    data = show_sponsor(open_store(), sponsor_id)
    if json_:
        console.print_json(data)
    else:
        console.print_fields(data, title=f"Sponsor {sponsor_id}")


def register(app: typer.Typer) -> None:
    """Add the ``sponsors`` group."""
    app.add_typer(sponsors_app, name="sponsors")
