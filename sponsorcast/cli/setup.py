"""CLI: ``init``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sponsorcast import console
from sponsorcast.cli._common import handle_errors


@handle_errors
def init(
    directory: Annotated[Path, typer.Argument(metavar="[DIR]", help="Where to write (default: here).")] = Path("."),
) -> None:
    """Write sponsorcast.toml, campaigns/welcome.md and a sample leads.csv; create the store."""
    from sponsorcast.project import init_project

    result = init_project(directory)
    for path in result.written:
        console.say(f"wrote {path}")
    for path in result.kept:
        console.say(f"kept  {path} (exists; not overwritten)")
    console.say(f"store ready at {result.store_url}")
    console.say("Next: sponsorcast leads import leads.csv && sponsorcast render campaigns/welcome.md")


def register(app: typer.Typer) -> None:
    """Add ``init``."""
    app.command("init")(init)
