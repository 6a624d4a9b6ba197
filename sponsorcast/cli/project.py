"""CLI: ``init``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sponsorcast import console
from sponsorcast.cli.invocation import handle_errors
from sponsorcast.errors import ExitCode, Reported


@handle_errors
def init(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Where to write (default: here).")
    ] = Path("."),
) -> None:
    """Write sponsorcast.toml, campaigns/welcome.md and a sample leads.csv; create the store."""
    from sponsorcast.scaffold import init_project

    result = init_project(directory)
    for path in result.written:
        console.say(f"wrote {path}")
    for path in result.kept:
        console.say(f"kept  {path} (exists; not overwritten)")
    console.say(f"store ready at {result.store_url}")
    console.say(
        "Next: sponsorcast leads import leads.csv && sponsorcast render campaigns/welcome.md"
    )


@handle_errors
def doctor(
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check config, API key, store and provider; say what to fix."""
    from sponsorcast.cli.invocation import OPTIONS
    from sponsorcast.doctor import run_checks

    checks = run_checks(OPTIONS.config_path, OPTIONS.store_url)
    rows = [{"check": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix} for c in checks]
    if json_:
        console.print_json(rows)
    else:
        console.print_table(
            [{**r, "ok": "ok" if r["ok"] else "FAIL"} for r in rows],
            ["check", "ok", "detail", "fix"],
            title="sponsorcast doctor",
        )
    if not all(c.ok for c in checks):
        raise Reported(ExitCode.CONFIG)


def register(app: typer.Typer) -> None:
    """Add ``init`` and ``doctor``."""
    app.command("init")(init)
    app.command("doctor")(doctor)
