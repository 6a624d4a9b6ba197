"""The ``sponsorcast`` command: thin Typer modules, one per command group.

Each module's ``register(app)`` adds its commands; commands declare parameters and make one
call into a domain module. Heavy imports happen inside the commands so ``--help`` is fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sponsorcast import __version__
from sponsorcast.cli import (
    campaigns,
    db,
    leads,
    project,
    render,
    report,
    schedule,
    send,
    sponsors,
    suppress,
    tracking,
)
from sponsorcast.cli.invocation import OPTIONS
from sponsorcast.cli.words import use_words

use_words()

app = typer.Typer(
    name="sponsorcast",
    help="Personalised email campaigns to event leads, through Resend, with a local ledger.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sponsorcast {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    config: Annotated[
        Optional[Path],
        typer.Option(
            "--config",
            metavar="FILE",
            help="Config file (default: ./sponsorcast.toml or SPONSORCAST_CONFIG).",
        ),
    ] = None,
    db_url: Annotated[
        Optional[str],
        typer.Option(
            "--db", metavar="URL", help="Store URL, overriding SPONSORCAST_DB and the config file."
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Global options."""
    OPTIONS.config_path = config
    OPTIONS.store_url = db_url


for _module in (
    project,
    sponsors,
    leads,
    render,
    send,
    campaigns,
    schedule,
    tracking,
    report,
    suppress,
    db,
):
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
