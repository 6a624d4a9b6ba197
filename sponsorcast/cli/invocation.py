"""What every command shares: the global options, loading config and store, and the one
place where sponsorcast errors become exit codes."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TextIO, TypeVar

import typer

from sponsorcast import console
from sponsorcast.errors import (
    DEBUG_ENV,
    BadInput,
    Interrupted,
    SponsorcastError,
    debug_requested,
    exit_code_for,
)

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


def load(*, project: bool = True) -> Config:
    """The configuration for this invocation (flag > env > file > default).

    ``project``: the command needs a sponsorcast.toml (every command that opens the store or
    sends); ``render --leads`` does not, so a repository of campaign files can check them in CI.
    """
    from sponsorcast.config import CONFIG_NAME, load_config

    config = load_config(OPTIONS.config_path, store_url=OPTIONS.store_url)
    if project and config.path is None:
        # on built-in defaults a command would make ./sponsorcast.db wherever it was run
        raise BadInput(
            f"There is no {CONFIG_NAME} in {Path.cwd()}, and neither --config nor "
            "SPONSORCAST_CONFIG names one; nothing was done.",
            hint="Run 'sponsorcast init' to make a project here, or cd into one.",
        )
    if config.timezone:
        from zoneinfo import ZoneInfo  # on use: keeps start-up fast

        console.use_timezone(ZoneInfo(config.timezone))
    return config


def open_store(config: Config | None = None) -> Store:
    """Open and migrate the configured store."""
    from sponsorcast.store import open_from_config

    return open_from_config(config or load())


@contextmanager
def whole_file(path: Path) -> Iterator[TextIO]:
    """Write ``path`` whole or not at all: into ``path.part``, renamed once complete (removed
    if the writing fails, so a reader never finds half a file)."""
    part = path.with_name(path.name + ".part")
    try:
        with part.open("w", encoding="utf-8", newline="") as out:
            yield out
        part.replace(path)
    finally:
        part.unlink(missing_ok=True)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """The one place where errors become output and exit codes (``errors.exit_code_for``)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        console.reset_consoles()
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except BrokenPipeError:
            # the reader went away (`… --csv | head`): what it wanted it has; stop quietly
            _silence_stdout()
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            error: BaseException = Interrupted(
                "Interrupted; nothing in flight was lost, run the command again to resume."
            )
        except Exception as exc:
            error = exc
        if debug_requested():
            traceback.print_exception(error)
        code = int(exit_code_for(error))
        if isinstance(error, SponsorcastError):
            if not error.message:  # a Reported error has shown its output already
                raise typer.Exit(code)
            message, hint = error.message, error.hint
        else:
            # database errors can carry whole statements and their parameters: one line only
            first = (str(error).strip().splitlines() or [""])[0][:300]
            message = f"Unexpected error: {type(error).__name__}: {first}"
            hint = f"Run again with {DEBUG_ENV}=1 for the traceback, and report it."
        console.error(message, hint)
        if kwargs.get("json_") is True or kwargs.get("format_") == "json":
            # a program reading stdout gets the failure in the shape it asked for
            kind = type(error).__name__
            console.print_json(
                {"error": {"message": message, "hint": hint, "exit_code": code, "type": kind}}
            )
        raise typer.Exit(code)

    return wrapper


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (tests capture it)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
