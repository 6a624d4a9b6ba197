"""Everything that prints: rich tables for people, JSON/CSV for machines, plain log lines for cron.

Only this module and ``sponsorcast.cli`` import rich or typer.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def reset_consoles() -> None:
    """Rebuild the consoles on the current sys.stdout/sys.stderr (the test runner swaps them)."""
    global out, err
    out = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    err = Console(file=sys.stderr, highlight=False, soft_wrap=True)


def is_terminal() -> bool:
    """True when stdout is a terminal a person is looking at."""
    return out.is_terminal and os.environ.get("TERM") != "dumb"


def error(message: str, hint: str | None = None) -> None:
    """One clear sentence on stderr, and a hint on the next line when there is one."""
    err.print(f"[bold red]Error:[/] {_escape(message)}")
    if hint:
        err.print(f"[dim]Hint:[/] {_escape(hint)}")


def warn(message: str) -> None:
    """A warning on stderr."""
    err.print(f"[yellow]Warning:[/] {_escape(message)}")


def say(message: str) -> None:
    """A line for a person on stdout (rich markup escaped)."""
    out.print(_escape(message), soft_wrap=True)


def log(message: str) -> None:
    """A timestamped plain line on stderr, for cron and logs."""
    stamp = datetime.now(UTC).astimezone().isoformat(timespec="seconds")
    err.print(f"{stamp} {_escape(message)}", markup=True)


def print_json(data: Any) -> None:
    """Machine-readable JSON on stdout (stable keys, no colours)."""
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default, ensure_ascii=False) + "\n")


def print_csv(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[str], *, raw: bool = False
) -> None:
    """CSV with a header on stdout; formula-like cells neutralised unless ``raw``."""
    from sponsorcast.spreadsheet import safe_cell  # on use: keeps start-up fast

    cell = _csv_value if raw else (lambda value: safe_cell(_csv_value(value)))
    writer = csv.writer(sys.stdout, lineterminator="\n")
    first = True
    for row in rows:
        if first:  # the header only once there is a first row, or the end: errors come first
            writer.writerow(list(columns))
            first = False
        writer.writerow([cell(row.get(k)) for k in columns])
    if first:
        writer.writerow(list(columns))


def print_table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """A rich table of rows on stdout."""
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column((headers or {}).get(col, col), overflow="fold")
    for row in rows:
        table.add_row(*(_escape(_cell(row.get(c))) for c in columns))
    out.print(table)


def print_fields(data: Mapping[str, Any], *, title: str | None = None) -> None:
    """A two-column key/value table."""
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in data.items():
        table.add_row(key, _escape(_cell(value)))
    out.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _escape(text: str) -> str:
    from rich.markup import escape  # on use: keeps start-up fast

    return escape(text)


class SendProgress:
    """A rich progress bar on a terminal (sent, failed, emails/s, ETA); log lines otherwise."""

    def __init__(self, total: int, label: str, *, log_every: float = 10.0) -> None:
        self.total = total
        self.label = label
        self.log_every = log_every
        self._last_log = 0.0
        self._bar: Any = None
        self._task: Any = None
        self._started = 0.0

    def __enter__(self) -> SendProgress:

        self._started = time.monotonic()
        if is_terminal():
            from rich.progress import (  # on use: keeps start-up fast
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("failed {task.fields[failed]}"),
                TextColumn("{task.fields[rate]:.0f} emails/s"),
                TimeRemainingColumn(),
                console=out,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total, failed=0, rate=0.0)
        return self

    def update(self, sent: int, failed: int) -> None:
        """Show the counts so far."""

        elapsed = max(time.monotonic() - self._started, 1e-9)
        if self._bar is not None:
            self._bar.update(
                self._task, completed=sent + failed, failed=failed, rate=sent / elapsed
            )
        elif time.monotonic() - self._last_log >= self.log_every:
            self._last_log = time.monotonic()
            log(
                f"{self.label}: {sent} sent, {failed} failed of {self.total} ({sent / elapsed:.0f} emails/s)"
            )

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
