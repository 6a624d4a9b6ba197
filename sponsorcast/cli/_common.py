"""What every command shares: the global options, loading config and store, and the one
place where sponsorcast errors become exit codes."""

from __future__ import annotations

import functools
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import typer

from sponsorcast import console
from sponsorcast.errors import ExitCode, SponsorcastError

if TYPE_CHECKING:
    from sponsorcast.config import Config
    from sponsorcast.store import Store

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class GlobalOptions:
    """Options given before the command name."""

    config_path: Path | None = None
    store_url: str | None = None


OPTIONS = GlobalOptions()


def load() -> Config:
    """The configuration for this invocation (flag > env > file > default)."""
    from sponsorcast.config import load_config

    return load_config(OPTIONS.config_path, store_url=OPTIONS.store_url)


def open_store(config: Config | None = None) -> Store:
    """Open and migrate the configured store."""
    from sponsorcast.store import open_from_config

    return open_from_config(config or load())


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn sponsorcast errors into one sentence on stderr and the spec's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        console.reset_consoles()
        debug = os.environ.get("SPONSORCAST_DEBUG") == "1"
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except SponsorcastError as exc:
            if debug:
                traceback.print_exc()
            console.error(exc.message, exc.hint)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            console.error(
                "Interrupted; nothing in flight was lost, run the command again to resume."
            )
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:
            if debug:
                traceback.print_exc()
            # database errors can carry whole statements and their parameters: one line only
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            console.error(
                f"Unexpected error: {type(exc).__name__}: {first}",
                "Run again with SPONSORCAST_DEBUG=1 for the traceback, and report it.",
            )
            raise typer.Exit(int(ExitCode.FAILED)) from None

    return wrapper
