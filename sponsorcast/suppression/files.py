"""``suppress import`` and ``suppress export``: suppression lists in and out of files.

A file to import is read like a leads file (``leads.sources.CsvSource``: encoding and
delimiter detected, streamed). It may be

- a CSV with an address column (``email``, ``address``, ``email_address``, …) and, optionally,
  ``reason`` (or ``origin``, as Resend names it) and ``sponsor`` columns: what ``suppress
  export`` writes, and what Resend's suppression list gives;
- or one address a line, with no header at all.

An import is all or nothing: one bad row refuses the whole file, unless ``--rejects FILE``
takes the bad rows (with a ``reason`` column) and the rest is imported. It runs in one write
transaction, streamed, so memory does not grow with the file; ``--dry-run`` runs it and rolls
it back. Entries that stand for erased people (``suppression.erased``) are never exported:
their keyed hash means nothing to another store.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from sponsorcast.errors import BadInput, LeadsFileError
from sponsorcast.leads.sources import ROW_PROBLEM, CsvSource, display_header
from sponsorcast.spreadsheet import FORMULA_STARTS, safe_cell
from sponsorcast.store import Store
from sponsorcast.store.models import ALL_SPONSORS, utcnow
from sponsorcast.store.tables import sponsor_t, suppression_t
from sponsorcast.suppression.entries import COLUMNS, REASONS
from sponsorcast.suppression.erased import ERASED_PREFIX
from sponsorcast.wording import count

ADDRESS_HEADERS = ("email", "emailaddress", "address", "mail", "recipient", "to")
REASON_HEADERS = ("reason", "origin")
SPONSOR_HEADERS = ("sponsor", "sponsorid")
# what other tools call the reasons (Resend's ``origin`` among them), lower-cased
REASON_WORDS = {
    **{reason: reason for reason in REASONS},
    "bounce": "bounced",
    "hardbounce": "bounced",
    "complaint": "complained",
    "spamcomplaint": "complained",
    "unsubscribe": "unsubscribed",
    "import": "manual",
    "": "manual",
}
CHUNK = 1_000  # rows a statement (4 parameters each: under SQLite's 32,766)
REJECTS_SHOWN = 5  # bad rows named in the message when there is no --rejects file


@dataclass
class SuppressImport:
    """What an import did (or, with ``dry_run``, would do)."""

    file: str
    dry_run: bool
    rows: int = 0
    added: int = 0
    already: int = 0  # on the list before, or repeated in the file
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (row, reason)
    rejects_file: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The report as ``--json`` prints it."""
        return {
            "file": self.file,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "added": self.added,
            "already": self.already,
            "rejected": len(self.rejected),
            "rejects_file": self.rejects_file,
        }


class _RolledBack(Exception):
    """Raised inside the write transaction of a dry run, so that nothing it did is kept."""


def import_suppressions(
    store: Store,
    path: Path,
    *,
    sponsor_id: str | None = None,
    reason: str | None = None,
    rejects: Path | None = None,
    dry_run: bool = False,
) -> SuppressImport:
    """Add every address of the file to the suppression list, in one transaction."""
    if reason is not None and reason not in REASONS:
        raise BadInput(f"Unknown reason '{reason}' (choose from {', '.join(REASONS)}).")
    source = CsvSource(path)
    headers = source.headers()
    plan = _plan(headers, path)
    report = SuppressImport(file=str(path), dry_run=dry_run)
    with store.read() as conn:
        sponsors = {row.id for row in conn.execute(sa.select(sponsor_t.c.id))}
    if sponsor_id is not None and sponsor_id != ALL_SPONSORS and sponsor_id not in sponsors:
        raise BadInput(f"No sponsor '{sponsor_id}'; nothing was imported.")
    bad: list[tuple[int, dict[Any, Any], str]] = []
    try:
        with store.write() as conn:
            chunk: list[dict[str, Any]] = []
            now = utcnow()
            for number, raw in _rows(source, headers, plan):
                report.rows += 1
                entry = _entry(raw, plan, sponsors, sponsor_id, reason)
                if isinstance(entry, str):
                    report.rejected.append((number, entry))
                    if rejects is None and len(report.rejected) > REJECTS_SHOWN:
                        break
                    bad.append((number, raw, entry))
                    continue
                chunk.append({**entry, "created_at": now})
                if len(chunk) >= CHUNK:
                    report.added += _insert(conn, chunk)
                    chunk = []
            if report.rejected and rejects is None:
                raise _refused(path, report)
            if chunk:
                report.added += _insert(conn, chunk)
            report.already = report.rows - len(report.rejected) - report.added
            if dry_run:
                raise _RolledBack
    except _RolledBack:
        pass
    if rejects is not None and bad and not dry_run:
        _write_rejects(rejects, headers, bad)
        report.rejects_file = str(rejects)
    return report


@dataclass(frozen=True)
class _Plan:
    address: str | None  # None: a file of bare addresses (its first line is one too)
    reason: str | None
    sponsor: str | None


def _plan(headers: list[str], path: Path) -> _Plan:
    keys = {_key(h): h for h in reversed(headers)}  # the first of two alike wins
    address = next((keys[k] for k in ADDRESS_HEADERS if k in keys), None)
    if address is None:
        if len(headers) == 1 and "@" in headers[0]:
            return _Plan(None, None, None)
        raise LeadsFileError(
            "no column of addresses: name one 'email' (columns: "
            f"{', '.join(display_header(h) for h in headers)}); nothing was imported.",
            path=path,
        )
    return _Plan(
        address,
        next((keys[k] for k in REASON_HEADERS if k in keys), None),
        next((keys[k] for k in SPONSOR_HEADERS if k in keys), None),
    )


def _key(header: str) -> str:
    return "".join(ch for ch in header.lower() if ch.isalnum())


def _rows(
    source: CsvSource, headers: list[str], plan: _Plan
) -> Iterator[tuple[int, dict[Any, Any]]]:
    if plan.address is None:  # no header: the first line is an address too
        yield 1, {headers[0]: headers[0]}
    yield from source.rows()


def _entry(
    raw: dict[Any, Any],
    plan: _Plan,
    sponsors: set[str],
    sponsor_id: str | None,
    reason: str | None,
) -> dict[str, Any] | str:
    """The suppression row for one file row, or the reason it is refused."""
    if ROW_PROBLEM in raw:
        return str(raw[ROW_PROBLEM])
    column = plan.address or next(iter(raw))
    value = str(raw.get(column) or "").strip()
    if value.startswith("'") and value[1:2] in FORMULA_STARTS:
        value = value[1:]  # the mark an export put before a formula-like cell
    if not value:
        return "no address"
    if value.startswith(ERASED_PREFIX):
        return "an erased person's hash belongs to the store it was made in"
    from email_validator import EmailNotValidError, validate_email  # on use: 20 ms to import

    try:
        email = validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        return f"'{_shown(value)}' is not a valid email address: {exc}"
    scope = sponsor_id
    if scope is None and plan.sponsor is not None:
        scope = str(raw.get(plan.sponsor) or "").strip() or ALL_SPONSORS
        if scope != ALL_SPONSORS and scope not in sponsors:
            return f"no sponsor '{_shown(scope)}'"
    why = reason
    if why is None:
        word = _key(str(raw.get(plan.reason) or "")) if plan.reason else ""
        why = REASON_WORDS.get(word)
        if why is None:
            shown = _shown(str(raw.get(plan.reason)))
            return f"unknown reason '{shown}' (use {', '.join(REASONS)})"
    return {"email": email, "sponsor_id": scope or ALL_SPONSORS, "reason": why}


def _shown(value: str, most: int = 80) -> str:
    """A cell as a message quotes it: a huge one cut short."""
    return value if len(value) <= most else value[: most - 1] + "…"


def _insert(conn: sa.Connection, rows: list[dict[str, Any]]) -> int:
    """Insert what is not on the list yet (one statement); how many went in."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert  # PostgreSQL only

        on_pg = pg_insert(suppression_t).values(rows)
        stmt: Any = on_pg.on_conflict_do_nothing(index_elements=["email", "sponsor_id"])
    else:
        on_sqlite = sqlite_insert(suppression_t).values(rows)
        stmt = on_sqlite.on_conflict_do_nothing(index_elements=["email", "sponsor_id"])
    return len(conn.execute(stmt.returning(suppression_t.c.id)).all())


def _refused(path: Path, report: SuppressImport) -> BadInput:
    shown = report.rejected[:REJECTS_SHOWN]
    rows = "; ".join(f"row {number}: {why.rstrip('.')}" for number, why in shown)
    more = " (and more)" if len(report.rejected) > REJECTS_SHOWN else ""
    return BadInput(
        f"{path}: {rows}{more}; nothing was imported.",
        hint="Fix the rows, or give --rejects FILE to import the rest and keep the bad ones there.",
    )


def _write_rejects(
    path: Path, headers: list[str], bad: list[tuple[int, dict[Any, Any], str]]
) -> None:
    names = [display_header(h) for h in headers]
    part = path.with_name(path.name + ".part")
    with part.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["row", *names, "reason"])
        for number, raw, why in bad:
            cells = [safe_cell(str(raw.get(h) or "")) for h in headers]
            writer.writerow([number, *cells, safe_cell(why)])
    part.replace(path)


def export_rows(store: Store, *, sponsor_id: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """The entries to export (``COLUMNS``), and how many erased people's hashes were left out."""
    s = suppression_t
    query = sa.select(s.c.email, s.c.sponsor_id, s.c.reason, s.c.created_at).order_by(
        s.c.email, s.c.sponsor_id
    )
    if sponsor_id is not None:
        query = query.where(s.c.sponsor_id.in_([sponsor_id, ALL_SPONSORS]))
    rows: list[dict[str, Any]] = []
    erased = 0
    with store.read() as conn:
        for r in conn.execute(query):
            if r.email.startswith(ERASED_PREFIX):
                erased += 1
                continue
            rows.append(
                dict(zip(COLUMNS, (r.email, r.sponsor_id, r.reason, r.created_at), strict=True))
            )
    return rows, erased


def describe(report: SuppressImport) -> str:
    """The import's report as a sentence."""
    verb = "Would add" if report.dry_run else "Added"
    text = (
        f"{report.file}: {count(report.rows, 'row')} read. {verb} {count(report.added, 'address')} "
        f"to the suppression list; {report.already} already on it or repeated."
    )
    if report.rejected:
        where = f" (in {report.rejects_file})" if report.rejects_file else ""
        text += f" {count(len(report.rejected), 'row')} rejected{where}."
    if report.dry_run:
        text += " Dry run: nothing was changed."
    return text
