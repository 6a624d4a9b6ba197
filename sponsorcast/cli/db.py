"""CLI: ``db upgrade`` and ``db status``."""

from __future__ import annotations

from typing import Annotated

import typer

from sponsorcast import console
from sponsorcast.cli.invocation import handle_errors, load
from sponsorcast.wording import count

db_app = typer.Typer(help="The store's schema migrations.", no_args_is_help=True)


@db_app.command("status")
@handle_errors
def status(
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show applied and pending migrations (without applying any)."""
    from sponsorcast.store import open_store

    config = load()
    store = open_store(config.store_url, migrate=False, create=False)
    state = store.migration_state()
    rows = [{"migration": n, "status": "applied", "applied_at": at} for n, at in state.applied]
    rows += [{"migration": n, "status": "pending", "applied_at": None} for n in state.pending]
    if json_:
        console.print_json(rows)
    else:
        console.print_table(rows, ["migration", "status", "applied_at"], title="Migrations")


@db_app.command("upgrade")
@handle_errors
def upgrade() -> None:
    """Apply pending migrations (they also run whenever the store is opened)."""
    from sponsorcast.store import open_store

    store = open_store(load().store_url, migrate=False)
    applied = store.upgrade()
    if applied:
        console.say(f"Applied {count(len(applied), 'migration')}: {', '.join(applied)}.")
    else:
        console.say("The store is up to date; nothing to apply.")


def register(app: typer.Typer) -> None:
    """Add the ``db`` group."""
    app.add_typer(db_app, name="db")
