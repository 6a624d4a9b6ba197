"""``leads import``: a source's rows planned, normalised and upserted atomically, with its report."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sponsorcast.errors import BadInput, LeadsFileError, RowError
from sponsorcast.leads.columns import plan_columns
from sponsorcast.leads.normalise import split_tags
from sponsorcast.leads.report import ImportReport
from sponsorcast.leads.sources import LeadSource, display_header
from sponsorcast.leads.upsert import CHUNK_ROWS, Upserter
from sponsorcast.spreadsheet import safe_cell
from sponsorcast.store import get_sponsor
from sponsorcast.suppression.erased import erased_token, erased_tokens, erasure_key

if TYPE_CHECKING:
    from sponsorcast.store import Store

REJECTS_KEPT = 100  # rejects kept in ImportReport.rejects; every one goes to the rejects file


class _Rollback(Exception):
    """Raised inside the write transaction to undo it (dry run, or bad rows)."""


def import_leads(
    store: Store,
    source: LeadSource,
    *,
    sponsor_id: str = "default",
    mapping: Mapping[str, str] | None = None,
    extra_tags: Sequence[str] = (),
    dry_run: bool = False,
    rejects_path: Path | str | None = None,
    raw_rejects: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Upsert a source's leads for a sponsor, atomically; see the module docstring for rules.

    Without ``rejects_path`` any bad row raises LeadsFileError (row number and reason, plus how
    many other rows are bad) and nothing is written. With it, bad rows go to that CSV file
    (original columns, then ``reason`` last; formula-like cells neutralised unless
    ``raw_rejects``) and the rest is imported. ``dry_run`` runs everything in a transaction
    that is rolled back, so the numbers are exactly those of a real run, and writes no
    rejects file.
    ``progress`` is called after each chunk with the number of rows read so far.
    """

    get_sponsor(store, sponsor_id)
    source_path = getattr(source, "path", None)
    if (
        rejects_path
        and source_path is not None
        and Path(rejects_path).resolve() == Path(source_path).resolve()
    ):
        raise BadInput(f"--rejects {rejects_path} is the file being imported; name another file.")
    headers = source.headers()
    path = str(getattr(source, "path", source.name))
    plan = plan_columns(headers, mapping, source.name, path=path)
    tags = split_tags(list(extra_tags))
    report = ImportReport(
        source=source.name,
        sponsor_id=sponsor_id,
        dry_run=dry_run,
        rejects_path=str(rejects_path) if rejects_path and not dry_run else None,
        columns=plan.mapping(),
        warnings=list(plan.warnings),
    )
    rejects = (
        _RejectsFile(rejects_path, headers, source, raw=raw_rejects)
        if rejects_path and not dry_run
        else None
    )
    keep_going = rejects_path is not None  # with --rejects (dry run too), bad rows do not stop it
    bad_rows: list[int] = []  # the first few, for the message
    bad_count = 0
    try:
        try:
            with store.write() as conn, Upserter(conn, sponsor_id, source.name, report) as upsert:
                erased = erased_tokens(conn)
                key = erasure_key(conn) if erased else b""
                for number, raw in source.rows():
                    report.rows += 1
                    try:
                        lead = plan.lead(number, raw, sponsor_id, tags)
                    except RowError as exc:
                        report.rejected += 1
                        if len(report.rejects) < REJECTS_KEPT:
                            report.rejects.append((number, exc.reason))
                        if rejects is not None:
                            rejects.write(raw, exc.reason)
                        elif not keep_going:
                            bad_count += 1
                            if len(bad_rows) < 6:
                                bad_rows.append(number)
                        continue
                    if erased and erased_token(key, lead["email"]) in erased:
                        report.erased += 1
                        continue
                    if not bad_count:
                        upsert.add(number, lead)
                        if progress is not None and report.rows % CHUNK_ROWS == 0:
                            progress(report.rows)
                if bad_count:
                    raise _Rollback
                upsert.finish()
                if progress is not None:
                    progress(report.rows)
                if dry_run:
                    raise _Rollback
        except _Rollback:
            pass
    except BaseException:
        if rejects is not None:
            rejects.discard()
        raise
    if rejects is not None:
        rejects.commit()
    if bad_count:
        first_row, reason = report.rejects[0]
        others = bad_count - 1
        more = ""
        if others:
            listed = ", ".join(str(n) for n in bad_rows[1:]) + (", …" if others > 5 else "")
            more = f" ({others} more bad row{'s' if others > 1 else ''}: {listed})"
        raise LeadsFileError(
            f"row {first_row}: {reason.rstrip('.')}{more}; nothing was imported.",
            path=path,
            hint="Fix the file, or import with --rejects FILE to import the valid rows and "
            "write the bad ones to FILE.",
        )
    return report


class _RejectsFile:
    """The ``--rejects`` CSV, written to a temp file and moved into place when the import ends."""

    def __init__(
        self, path: Path | str, headers: Sequence[str], source: LeadSource, *, raw: bool = False
    ) -> None:

        self.safe: Callable[[Any], Any] = (lambda value: value) if raw else safe_cell
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.headers = list(headers)
        try:
            self.fh = open(  # noqa: SIM115 - lives until commit() or discard()
                self.tmp, "w", encoding=getattr(source, "rejects_encoding", "utf-8"), newline=""
            )
        except OSError as exc:
            raise BadInput(
                f"Cannot write the rejects file {self.path} ({exc.strerror or exc})."
            ) from None
        self.writer = csv.writer(
            self.fh, delimiter=getattr(source, "delimiter", ","), lineterminator="\r\n"
        )
        self.writer.writerow([self.safe(display_header(h)) for h in self.headers] + ["reason"])

    def write(self, raw: Mapping[Any, Any], reason: str) -> None:
        cells = ["" if raw.get(h) is None else _cell(raw.get(h)) for h in self.headers]
        surplus = [_cell(c) for c in raw.get(None) or []]
        if surplus:  # the reason stays the last column; a too-long row's extra cells go in it
            reason = f"{reason} Extra cells: {' | '.join(surplus)}"
        self.writer.writerow([self.safe(c) for c in [*cells, reason]])

    def commit(self) -> None:
        self.fh.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return str(value)
