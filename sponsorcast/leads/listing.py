"""``leads list``, and the leads of a CSV file as recipients for ``render --check``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sponsorcast.audience import PERSON_COLUMNS, check_ledger, iter_recipients, select_recipients
from sponsorcast.errors import LeadsFileError, RowError
from sponsorcast.leads.columns import plan_columns
from sponsorcast.leads.normalise import DEFAULT_STATUS
from sponsorcast.leads.sources import CsvSource
from sponsorcast.store import get_sponsor

if TYPE_CHECKING:
    from sponsorcast.audience import Audience
    from sponsorcast.store import Store

# Stable keys of ``leads list --json`` / ``--csv``.
LIST_COLUMNS = (
    "id",
    *PERSON_COLUMNS,
    "tags",
    "event",
    "fields",
    "source",
    "consent",
    "created_at",
    "updated_at",
)


RECIPIENT_KEYS = (
    "id",
    "sponsor_id",
    "email",
    "name",
    "first_name",
    "last_name",
    "company",
    "title",
    "intent_level",
    "intent_score",
    "follow_up_status",
    "tags",
    "event",
    "fields",
)


def read_csv_recipients(
    path: Path | str, *, encoding: str | None = None, mapping: Mapping[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """Stream a leads CSV as recipient dicts (the shape of ``audience.recipient``), one per
    row, without touching the store; a bad row raises LeadsFileError naming the row."""
    source = CsvSource(path, encoding=encoding)
    plan = plan_columns(source.headers(), mapping, source.name, path=str(path))
    for number, raw in source.rows():
        try:
            lead = plan.lead(number, raw)
        except RowError as exc:
            raise LeadsFileError(f"row {number}: {exc.reason}", path=str(path)) from None
        yield {
            "id": None,
            "sponsor_id": None,
            **{k: lead.get(k) for k in RECIPIENT_KEYS[2:]},
            "follow_up_status": lead.get("follow_up_status") or DEFAULT_STATUS,
        }


def list_leads(
    store: Store, sponsor_id: str, audience: Audience, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """Stream the audience's leads (LIST_COLUMNS, tags as a list, fields a dict), by id."""

    get_sponsor(store, sponsor_id)
    query = select_recipients(sponsor_id, audience, columns=LIST_COLUMNS)
    if limit is not None:
        query = query.limit(limit)
    with store.read() as conn:
        check_ledger(conn, sponsor_id, audience)
        for row in iter_recipients(conn, query):
            yield {k: row[k] for k in LIST_COLUMNS}
