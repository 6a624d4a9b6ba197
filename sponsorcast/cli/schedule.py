"""CLI: schedule commands (thin: parameters, one call into the domain, output)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
