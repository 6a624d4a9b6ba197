"""How arguments read in ``--help``: as words (``CAMPAIGN...``), never as types.

Typer prints an argument with its Python type (``CAMPAIGN <list[Path]>``) and a required one
in braces in the usage line (``{CAMPAIGN}``); neither is how a person reads a command line.
Options name their values with ``metavar`` (``--limit N``); arguments have no such switch, so
the three methods that draw them are replaced here, once, before any help is printed. The
generated reference (docs/cli.md, checked in CI) shows at once if an upgrade changes them.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument


def _usage_name(self: TyperArgument) -> str:
    name = self.display_name_raw
    many = "..." if self.nargs != 1 else ""
    return f"{name}{many}" if self.required else f"[{name}{many}]"


def _help_name(self: TyperArgument) -> str:
    return self.display_name_raw + ("..." if self.nargs != 1 else "")


def _no_type(self: TyperArgument, ctx: Any) -> str | None:
    return None


def use_words() -> None:
    """Make every argument read as its metavar: ``CAMPAIGN...`` in usage and help."""
    TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]
    TyperArgument._rich_display_name = _help_name  # type: ignore[method-assign]
    TyperArgument.display_type_rich = _no_type  # type: ignore[method-assign,assignment]


__all__ = ["use_words"]
