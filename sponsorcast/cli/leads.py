"""CLI: ``leads import / list / count / show / export / forget`` (thin: parameters, one call into ``sponsorcast.leads``,
output through ``console``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from sponsorcast import console
from sponsorcast.cli.invocation import handle_errors, load, open_store, whole_file

if TYPE_CHECKING:
    from sponsorcast.leads import ImportReport, LeadSource

leads_app = typer.Typer(help="Import and look at leads.", no_args_is_help=True)

TABLE_COLUMNS = [
    "email",
    "name",
    "company",
    "title",
    "intent_level",
    "intent_score",
    "follow_up_status",
    "tags",
]
TABLE_HEADERS = {"intent_level": "intent", "intent_score": "score", "follow_up_status": "status"}
REJECTS_SHOWN = 20
PROGRESS_EVERY = 100_000  # rows between plain log lines when not on a terminal

SponsorOpt = Annotated[
    str, typer.Option("--sponsor", "-s", metavar="SPONSOR_ID", help="Sponsor id.")
]
AudienceOpt = Annotated[
    Optional[str],
    typer.Option(
        "--audience",
        "-a",
        metavar="TYPE",
        help="all | hot | warm | cold | new | contacted | custom.",
    ),
]
FilterOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--filter",
        metavar="KEY=VALUE",
        help="Custom audience filter KEY=VALUE (repeatable): intent_level, follow_up_status, "
        "intent_score_min, intent_score_max, tags, tags_any, event; received, opened, clicked "
        "(and not_…) =CAMPAIGN_ID; not_contacted_within=14d; lists comma-separated.",
    ),
]


@leads_app.command("import")
@handle_errors
def import_(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE", help="A CSV file, or a postgresql:// URL.", show_default=False
        ),
    ],
    sponsor: SponsorOpt = "default",
    map_: Annotated[
        Optional[list[str]],
        typer.Option(
            "--map", metavar="COLUMN=FIELD", help='Map a column: "Work Email=email" (repeatable).'
        ),
    ] = None,
    tag: Annotated[
        Optional[list[str]],
        typer.Option("--tag", metavar="TAG", help="Add this tag to every lead (repeatable)."),
    ] = None,
    encoding: Annotated[
        Optional[str],
        typer.Option("--encoding", metavar="NAME", help="The CSV's encoding (default: detected)."),
    ] = None,
    rejects: Annotated[
        Optional[Path],
        typer.Option(
            "--rejects",
            metavar="FILE",
            help="Import the valid rows; write bad ones to this CSV with a reason.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would happen; write nothing.")
    ] = False,
    table: Annotated[
        Optional[str],
        typer.Option("--table", metavar="NAME", help="PostgreSQL source: the table to read."),
    ] = None,
    query: Annotated[
        Optional[str],
        typer.Option("--query", metavar="SQL", help="PostgreSQL source: the SELECT to run."),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="--rejects cells exactly as read, not neutralised for spreadsheets (=, +, -, @ get a leading ').",
        ),
    ] = False,
) -> None:
    """Upsert leads by email from a CSV file (or PostgreSQL); atomic unless --rejects."""
    from sponsorcast.leads import import_leads, parse_mapping

    lead_source = _source(source, encoding=encoding, table=table, query=query)
    mapping = parse_mapping(map_ or [])
    store = open_store()
    with _progress(enabled=not json_) as progress:
        report = import_leads(
            store,
            lead_source,
            sponsor_id=sponsor,
            mapping=mapping,
            extra_tags=tag or [],
            dry_run=dry_run,
            rejects_path=rejects,
            raw_rejects=raw,
            progress=progress,
        )
    if json_:
        console.print_json(report.as_dict())
    else:
        _print_report(report)
    for warning in report.warnings:
        console.warn(warning)


def _source(
    source: str, *, encoding: str | None, table: str | None, query: str | None
) -> LeadSource:
    from sponsorcast.errors import BadInput, SourceError

    if source.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        if encoding:
            raise BadInput("--encoding is for CSV files; a PostgreSQL source has its own encoding.")
        try:
            from sponsorcast.leads import postgres as leads_postgres
        except ImportError:
            raise SourceError(
                "PostgreSQL lead sources are not available in this version."
            ) from None
        result: LeadSource = leads_postgres.PostgresSource(source, table=table, query=query)
        return result
    if table or query:
        raise BadInput(
            "--table and --query are for PostgreSQL sources: SOURCE must be a postgresql:// URL, "
            f"not '{source}'."
        )
    from sponsorcast.leads import CsvSource

    return CsvSource(source, encoding=encoding)


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A rich progress line on a terminal; a plain log line every PROGRESS_EVERY rows otherwise."""
    if not enabled:
        yield None
        return
    if console.is_terminal():
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(
            SpinnerColumn(),
            TextColumn("{task.completed:,} rows read"),
            TimeElapsedColumn(),
            console=console.err,
            transient=True,
        ) as bar:
            task = bar.add_task("import", total=None)
            yield lambda rows: bar.update(task, completed=rows)
        return
    state = {"next": PROGRESS_EVERY}

    def log_line(rows: int) -> None:
        if rows >= state["next"]:
            console.log(f"{rows:,} rows read")
            state["next"] = (rows // PROGRESS_EVERY + 1) * PROGRESS_EVERY

    yield log_line


def _print_report(report: ImportReport) -> None:
    verb = "Dry run of" if report.dry_run else "Imported"
    console.say(
        f"{verb} {report.source} for sponsor '{report.sponsor_id}': {_rows(report.rows)} read."
    )
    console.say(_columns_line(report.columns))
    console.print_table(
        [
            {
                "inserted": report.inserted,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "rejected": report.rejected,
            }
        ],
        ["inserted", "updated", "unchanged", "rejected"],
    )
    if report.merged:
        console.say(
            f"{_rows(report.merged, 'repeated row')} merged into an earlier row with the same email."
        )
    if report.erased:
        console.say(
            f"{_rows(report.erased)} of people erased on their request skipped: "
            "they are never imported again."
        )
    if report.rejects:
        shown = report.rejects[:REJECTS_SHOWN]
        console.print_table(
            [{"row": r, "reason": reason} for r, reason in shown],
            ["row", "reason"],
            title="Rejected rows",
        )
        if report.rejected > len(shown):
            console.say(f"… and {report.rejected - len(shown)} more.")
    if report.rejects_path:
        console.say(f"Rejected rows written to {report.rejects_path} with a 'reason' column.")
    if report.dry_run:
        console.say("Dry run: nothing was written to the store (and no rejects file).")


def _rows(n: int, noun: str = "row") -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _columns_line(columns: list[tuple[str, str]]) -> str:
    """``Columns: Email → email, Name → name; kept in fields: Booth, Notes.``"""
    named = [f"{header} → {to}" for header, to in columns if not to.startswith("fields.")]
    kept = [header for header, to in columns if to.startswith("fields.")]
    line = "Columns: " + ", ".join(named)
    return line + (f"; kept in fields: {', '.join(kept)}." if kept else "; none kept in fields.")


@leads_app.command("list")
@handle_errors
def list_(
    sponsor: SponsorOpt = "default",
    audience: AudienceOpt = None,
    filter_: FilterOpt = None,
    limit: Annotated[
        Optional[int], typer.Option("--limit", min=1, metavar="N", help="At most N leads.")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="JSON list of lead objects.")] = False,
    csv_: Annotated[bool, typer.Option("--csv", help="CSV with a header.")] = False,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="CSV cells exactly as stored, not neutralised for spreadsheets (=, +, -, @ get a leading ').",
        ),
    ] = False,
) -> None:
    """List a sponsor's leads (every match unless --limit)."""
    from sponsorcast.audience import audience_from_options
    from sponsorcast.errors import BadInput
    from sponsorcast.leads import LIST_COLUMNS, list_leads

    if json_ and csv_:
        raise BadInput("Choose one of --json and --csv.")
    selected = audience_from_options(audience, filter_ or [])
    rows = list_leads(open_store(), sponsor, selected, limit)
    if json_:
        _stream_json(rows)
    elif csv_:
        console.print_csv(rows, LIST_COLUMNS, raw=raw)
    else:
        console.print_table(
            rows,
            TABLE_COLUMNS,
            headers=TABLE_HEADERS,
            title=f"Leads of '{sponsor}'",
            empty=f"No leads of sponsor '{sponsor}' in this audience ({selected.type}).",
            whole=("email",),
            optional=("title", "tags", "follow_up_status", "company", "intent_score"),
        )


def _stream_json(rows: Iterable[dict[str, Any]]) -> None:
    """A JSON list, one object at a time, formatted exactly as ``console.print_json``."""
    out = sys.stdout
    first = True
    for row in rows:
        text = json.dumps(row, indent=2, ensure_ascii=False, default=_json_default)
        out.write(
            ("[\n" if first else ",\n") + "\n".join("  " + line for line in text.splitlines())
        )
        first = False
    out.write("[]\n" if first else "\n]\n")


def _json_default(value: Any) -> Any:
    from datetime import datetime

    if isinstance(value, datetime):
        return console.iso_time(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@leads_app.command("count")
@handle_errors
def count(
    sponsor: SponsorOpt = "default",
    audience: AudienceOpt = None,
    filter_: FilterOpt = None,
    json_: Annotated[bool, typer.Option("--json", help='Print {"count": N}.')] = False,
) -> None:
    """Count a sponsor's leads in an audience."""
    from sponsorcast.audience import audience_from_options, count_audience

    selected = audience_from_options(audience, filter_ or [])
    n = count_audience(load(), sponsor, selected)
    if json_:
        console.print_json({"count": n})
    else:
        console.say(f"{n} lead{'' if n == 1 else 's'} ({selected.type} of sponsor '{sponsor}').")


EmailArg = Annotated[str, typer.Argument(metavar="EMAIL", help="The person's address.")]


@leads_app.command("show")
@handle_errors
def show(
    email: EmailArg,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Everything held about one person: leads, deliveries, events, suppressions."""
    from sponsorcast.leads.person import person_record

    record = person_record(open_store(), email)
    if json_:
        console.print_json(record)
        return
    _print_person(record)


@leads_app.command("export")
@handle_errors
def export(
    email: EmailArg,
    json_: Annotated[
        bool, typer.Option("--json", help="JSON (the only format, and the default).")
    ] = True,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", metavar="FILE", help="Write here instead of stdout."),
    ] = None,
) -> None:
    """Everything held about one person as JSON, for a data-subject access request."""
    from sponsorcast.leads.person import person_record

    record = person_record(open_store(), email)
    if output is None:
        console.print_json(record)
        return
    with whole_file(output) as out:
        out.write(console.json_text(record))
    console.say(f"Wrote everything held about {record['email']} to {output}.")


@leads_app.command("forget")
@handle_errors
def forget(
    email: EmailArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a person from every sponsor's leads, deliveries and events; keep only a keyed
    hash, so that a later import never brings them back."""
    from sponsorcast.errors import BadInput
    from sponsorcast.leads.forget import erasure_preview
    from sponsorcast.leads.forget import forget as erase
    from sponsorcast.wording import count as counted

    store = open_store()
    if not yes:
        if not console.is_terminal() or not sys.stdin.isatty():
            raise BadInput(
                "Refusing to erase without --yes when not on a terminal; nothing was changed."
            )
        seen = erasure_preview(store, email)
        if not typer.confirm(
            f"Erase {seen.email} from {counted(seen.leads, 'lead row')} and "
            f"{counted(seen.deliveries, 'delivery', 'deliveries')}? This cannot be undone.",
            default=False,
        ):
            console.say("Nothing was changed.")
            return
    done = erase(store, email)
    console.say(
        f"Erased {done.email}: {counted(done.leads, 'lead row')} emptied, "
        f"{counted(done.deliveries, 'delivery', 'deliveries')} anonymised, the address cut out "
        f"of {counted(done.cells, 'other cell')}; "
        f"{counted(done.suppressions, 'suppression entry', 'suppression entries')} replaced by a "
        "keyed hash that keeps them from being imported or emailed again."
    )


def _print_person(record: dict[str, Any]) -> None:
    console.say(f"Everything held about {record['email']}:")
    if record["erased"]:
        at = record["erased"]["at"]
        when = f" on {console.show_time(at)}" if at else ""
        console.say(f"Erased on request{when}: only a keyed hash of the address is kept.")
    leads = record["leads"]
    console.say(f"Leads ({len(leads)}):" if leads else "No lead rows.")
    for lead in leads:
        held = {k: v for k, v in lead.items() if v not in (None, "", [], {})}
        if lead["source"] and lead["source_row"]:
            held["source"] = f"{lead['source']}, row {held.pop('source_row')}"
        console.print_fields(held, title=f"Lead of sponsor '{lead['sponsor_id']}'")
    deliveries = record["deliveries"]
    console.print_table(
        deliveries,
        [
            "campaign_id",
            "sponsor_id",
            "status",
            "sent_at",
            "opened_at",
            "first_click_at",
            "last_error",
        ],
        title=f"Deliveries ({len(deliveries)})",
        headers={
            "campaign_id": "campaign",
            "sponsor_id": "sponsor",
            "first_click_at": "clicked_at",
        },
        empty="No deliveries.",
        optional=("opened_at", "first_click_at", "last_error"),
    )
    events = record["events"]
    console.print_table(
        [
            {**e, "payload": json.dumps(e["payload"], ensure_ascii=False) if e["payload"] else ""}
            for e in events
        ],
        ["campaign_id", "type", "occurred_at", "payload"],
        title=f"Events ({len(events)})",
        headers={"campaign_id": "campaign"},
        empty="No events.",
        optional=("payload",),
    )
    console.print_table(
        record["suppressions"],
        ["sponsor", "reason", "created_at"],
        title=f"Suppressions ({len(record['suppressions'])})",
        empty="Not suppressed.",
    )


def register(app: typer.Typer) -> None:
    """Add the ``leads`` group."""
    app.add_typer(leads_app, name="leads")
