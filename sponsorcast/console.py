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
from datetime import UTC, datetime, tzinfo
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_zone: tzinfo | None = None  # where times are shown: the project's timezone, else the system's


def use_timezone(zone: tzinfo | None) -> None:
    """Show every time from now on in ``zone`` (None: the system's zone)."""
    global _zone
    _zone = zone


def iso_time(value: datetime) -> str:
    """A time for programs: ISO 8601 with its offset (UTC, as stored, for a naive value)."""
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()


def show_time(value: datetime) -> str:
    """A time for a person: ``2026-12-01 09:00:00 CET``, in the project's zone, labelled."""
    if value.tzinfo is None:  # the store keeps UTC; a driver may hand it back naive
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(_zone) if _zone is not None else value.astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or local.strftime("%z"))


def reset_consoles() -> None:
    """Rebuild the consoles on the current sys.stdout/sys.stderr (the test runner swaps them)."""
    global out, err, _zone
    out = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    _zone = None


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
    now = datetime.now(UTC)
    stamp = (now.astimezone(_zone) if _zone is not None else now.astimezone()).isoformat(
        timespec="seconds"
    )
    err.print(f"{stamp} {_escape(message)}", markup=True)


def print_json(data: Any) -> None:
    """Machine-readable JSON on stdout (stable keys, no colours)."""
    sys.stdout.write(json_text(data))


def json_text(data: Any) -> str:
    """The JSON ``print_json`` prints, as text."""
    return json.dumps(data, indent=2, default=_json_default, ensure_ascii=False) + "\n"


def print_csv(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    raw: bool = False,
    out: TextIO | None = None,
) -> None:
    """CSV with a header on stdout (or ``out``); formula-like cells neutralised unless ``raw``."""
    from sponsorcast.spreadsheet import safe_cell  # on use: keeps start-up fast

    cell = _csv_value if raw else (lambda value: safe_cell(_csv_value(value)))
    writer = csv.writer(out or sys.stdout, lineterminator="\n")
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
    empty: str | None = None,
    optional: Sequence[str] = (),
    whole: Sequence[str] = (),
) -> None:
    """A rich table of rows on stdout that stays readable in a narrow terminal.

    ``empty``: the sentence printed instead of a table with no rows. ``whole``: columns never
    wrapped (addresses, times); the others fold. ``optional``: columns dropped, in that order,
    while the table is wider than the terminal, with a line saying which were left out.
    """
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    if not cells and empty is not None:
        say(empty)
        return
    names = [(headers or {}).get(c, c) for c in columns]
    widths = [
        max([len(name), *(len(line) for r in cells for line in r[i].splitlines() or [""])])
        for i, name in enumerate(names)
    ]
    shown = list(range(len(columns)))
    dropped: list[str] = []
    for col in optional:
        if sum(widths[i] + 3 for i in shown) + 1 <= out.width:
            break
        if col in columns:
            shown.remove(columns.index(col))
            dropped.append(names[columns.index(col)])
    table = Table(title=title, show_lines=False)
    # a whole column holds its width, up to 60 % of the terminal (a longer one folds)
    most = max(int(out.width * 0.6), 20)
    for i in shown:
        whole_column = columns[i] in whole
        keep = whole_column and widths[i] <= most
        table.add_column(
            names[i],
            overflow="fold",
            no_wrap=keep,
            min_width=widths[i] if keep else None,
        )
    for r in cells:
        table.add_row(*(_escape(r[i]) for i in shown))
    out.print(table)
    if dropped:  # wrapped at the terminal's width, like the table above it
        left_out = ", ".join(dropped)
        out.print(
            _escape(f"Not shown at this width: {left_out} (--json or a wider terminal shows them).")
        )


_BLOCKS = " ▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[int]) -> str:
    """One character a value, from blank (0) to a full block (the largest)."""
    top = max(values, default=0)
    if top <= 0:
        return " " * len(values)
    steps = len(_BLOCKS) - 1
    return "".join(_BLOCKS[-(-v * steps // top)] if v > 0 else _BLOCKS[0] for v in values)


def print_timeline(rows: Sequence[Mapping[str, Any]], *, width: int | None = None) -> None:
    """First opens and clicks over time as two sparklines, from the first bucket to the last."""
    if not rows:
        say("Nobody has opened or clicked yet.")
        return
    room = max(10, (width or out.width) - 16)
    shown = list(rows)[:room]
    start = datetime.fromisoformat(str(shown[0]["start"]))
    end = datetime.fromisoformat(str(shown[-1]["start"]))
    table = Table(title="First opens and clicks over time", show_header=False, box=None)
    table.add_column("series", style="bold", no_wrap=True)
    table.add_column("chart", no_wrap=True)
    for label, key in (("opens", "first_opens"), ("clicks", "first_clicks")):
        values = [int(r[key]) for r in shown]
        table.add_row(f"{label} {max(values):>5}", sparkline(values))
    out.print(table)
    hourly = sum(1 for r in shown if r["hours"] == 1)
    tail = f", then {len(shown) - hourly} days" if len(shown) > hourly else ""
    more = f"; {len(rows) - len(shown)} later buckets not shown" if len(rows) > len(shown) else ""
    out.print(
        _escape(
            f"{show_time(start)} → {show_time(end)}: {hourly} hours{tail} "
            f"(the number is the busiest bucket){more}."
        )
    )


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
        return show_time(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_time(value)
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_time(value)
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

    def __enter__(self) -> SendProgress:

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
                TextColumn("{task.fields[rate]:.1f} emails/s"),
                TimeRemainingColumn(),
                console=out,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total, failed=0, rate=0.0)
        return self

    def update(self, sent: int, failed: int, rate: float) -> None:
        """Show the counts so far and the engine's emails/s (the figure the summary ends with)."""

        if self._bar is not None:
            self._bar.update(self._task, completed=sent + failed, failed=failed, rate=rate)
        elif time.monotonic() - self._last_log >= self.log_every:
            self._last_log = time.monotonic()
            log(f"{self.label}: {sent} sent, {failed} failed of {self.total} ({rate:.1f} emails/s)")

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


class CountProgress:
    """A transient "N recipients rendered" line on a terminal, once a count passes ``shown_from``;
    nothing at all in a pipe, in CI or for a small count."""

    def __init__(self, label: str, *, shown_from: int = 2000) -> None:
        self.label = label
        self.shown_from = shown_from
        self._status: Any = None

    def update(self, n: int) -> None:
        """About ``n`` done so far."""
        if n < self.shown_from or not is_terminal():
            return
        text = f"{self.label}: {n:,} recipients rendered…"
        if self._status is None:
            self._status = err.status(_escape(text))
            self._status.__enter__()
        else:
            self._status.update(_escape(text))

    def __enter__(self) -> CountProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)
