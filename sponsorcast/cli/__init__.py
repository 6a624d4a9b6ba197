"""The ``sponsorcast`` command: thin Typer modules, one per command group.

Each module's ``register(app)`` adds its commands; commands declare parameters and make one
call into a domain module. Heavy imports happen inside the commands so ``--help`` is fast.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
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
    try:
        app()
        code = 0
    except SystemExit as done:
        if isinstance(done.code, str):
            sys.stderr.write(done.code + "\n")
        code = done.code if isinstance(done.code, int) else int(done.code is not None)
    leave(code)


def leave(code: int) -> None:
    """End the process without tearing the interpreter down.

    Unwinding every imported module (SQLAlchemy's registries most of all) costs 0.2-0.3 s of
    CPU at each exit and does nothing a finished command needs. What exit does that matters is
    done here: the stores' connections are closed, atexit callbacks run, output is flushed.
    """
    engine = sys.modules.get("sponsorcast.store.engine")  # not imported: no store was opened
    if engine is not None:
        engine.close_all()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)
