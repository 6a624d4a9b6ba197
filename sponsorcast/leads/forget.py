"""``leads forget``: erase one person from the store, in one write transaction.

- Their lead row of every sponsor becomes a tombstone: the address replaced by the person's
  token (``suppression.erased``), every other field of theirs emptied. Deliveries keep
  pointing at it, so old campaigns' counts still add up, and no audience selects it.
- Deliveries to them keep their status and times; the recipient becomes the token (a
  pending one is then suppressed when its batch is claimed), and the address is cut out of
  any error text.
- The address is cut out of every text and JSON column of every table that still has it
  (event payloads from the provider, bounce reasons, …) and out of a batch's kept payload.
- Their suppression entries are replaced by one entry of the token for every sponsor, so a
  later import skips them (``leads.importer``).

An email already handed to the provider cannot be called back: what is in flight stays so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from sponsorcast.audience import PERSON_COLUMNS
from sponsorcast.store import Store
from sponsorcast.store.models import ALL_SPONSORS, utcnow
from sponsorcast.store.tables import (
    batch_t,
    delivery_t,
    lead_t,
    suppression_t,
)
from sponsorcast.suppression.entries import insert_ignore, validate_emails
from sponsorcast.suppression.erased import ERASED_REASON, erased_token, erasure_key
from sponsorcast.transport.base import freeze_emails, thaw_emails

REDACTED = "[erased]"
# a sponsor's own settings (its from address may be the address asked about) and the store's
_NOT_PERSONAL = ("sponsor", "store_setting", "rate_budget")
# emptied in a tombstone (follow_up_status, which cannot be empty, becomes "erased")
_PERSONAL = (
    *(c for c in PERSON_COLUMNS[1:] if c != "follow_up_status"),
    "event",
    "fields",
    "consent",
    "source",
    "source_row",
)


@dataclass(frozen=True)
class Erasure:
    """What ``forget`` found and changed."""

    email: str
    leads: int
    deliveries: int
    cells: int  # other cells the address was cut out of (events, errors, payloads)
    suppressions: int  # entries of the address, now one entry of its token


def erasure_preview(store: Store, email: str) -> Erasure:
    """What ``forget`` would change, without changing it."""
    address = validate_emails([email])[0]
    with store.read() as conn:
        leads, deliveries = _lead_and_delivery_ids(conn, address)
        suppressions = conn.execute(
            sa.select(sa.func.count())
            .select_from(suppression_t)
            .where(suppression_t.c.email == address)
        ).scalar_one()
        cells = sum(len(rows) for rows in _cells_with(conn, address).values())
    return Erasure(address, len(leads), len(deliveries), cells, int(suppressions))


def forget(store: Store, email: str) -> Erasure:
    """Erase ``email`` from every table, keeping only its keyed hash (see the module)."""
    address = validate_emails([email])[0]
    pattern = re.compile(re.escape(address), re.IGNORECASE)
    now = utcnow()
    with store.write() as conn:
        token = erased_token(erasure_key(conn), address)
        lead_ids, delivery_ids = _lead_and_delivery_ids(conn, address)
        if lead_ids:
            conn.execute(
                lead_t.update()
                .where(lead_t.c.id.in_(lead_ids))
                .values(
                    email=token,
                    tags="",
                    follow_up_status="erased",
                    updated_at=now,
                    **dict.fromkeys(_PERSONAL),
                )
            )
        if delivery_ids:
            conn.execute(
                delivery_t.update().where(delivery_t.c.id.in_(delivery_ids)).values(recipient=token)
            )
        _drop_from_payloads(conn, set(delivery_ids))
        removed = conn.execute(
            suppression_t.delete().where(suppression_t.c.email == address)
        ).rowcount
        cells = 0
        for (table, column), rows in _cells_with(conn, address).items():
            for key, value in rows:
                conn.execute(
                    table.update()
                    .where(*[c == key[c.name] for c in table.primary_key.columns])
                    .values({column.name: _scrubbed(value, pattern)})
                )
                cells += 1
        insert_ignore(
            conn,
            suppression_t,
            {
                "email": token,
                "sponsor_id": ALL_SPONSORS,
                "reason": ERASED_REASON,
                "created_at": now,
            },
            ("email", "sponsor_id"),
        )
    return Erasure(address, len(lead_ids), len(delivery_ids), cells, int(removed or 0))


def _lead_and_delivery_ids(conn: sa.Connection, address: str) -> tuple[list[int], list[int]]:
    leads = [
        int(i)
        for i in conn.execute(
            sa.select(lead_t.c.id).where(sa.func.lower(lead_t.c.email) == address)
        ).scalars()
    ]
    query = sa.select(delivery_t.c.id).where(sa.func.lower(delivery_t.c.recipient) == address)
    if leads:
        query = sa.select(delivery_t.c.id).where(
            sa.or_(
                sa.func.lower(delivery_t.c.recipient) == address, delivery_t.c.lead_id.in_(leads)
            )
        )
    return leads, [int(i) for i in conn.execute(query).scalars()]


def _cells_with(
    conn: sa.Connection, address: str
) -> dict[tuple[sa.Table, sa.Column[Any]], list[tuple[dict[str, Any], Any]]]:
    """Every text or JSON cell of every table that has the address in it, by (table, column):
    the row's primary key and the cell's value."""
    found: dict[tuple[sa.Table, sa.Column[Any]], list[tuple[dict[str, Any], Any]]] = {}
    for table in lead_t.metadata.sorted_tables:
        if table.name in _NOT_PERSONAL:
            continue
        keys = list(table.primary_key.columns)
        for column in table.columns:
            kind = column.type
            if isinstance(kind, sa.TypeDecorator):  # AutoString, for one
                kind = kind.impl_instance
            if not isinstance(kind, (sa.String, sa.JSON)):
                continue
            text = sa.cast(column, sa.Text) if isinstance(kind, sa.JSON) else column
            rows = conn.execute(
                sa.select(*keys, column).where(
                    sa.func.lower(text).contains(address, autoescape=True)
                )
            ).all()
            if rows:
                found[(table, column)] = [
                    ({k.name: row[i] for i, k in enumerate(keys)}, row[-1]) for row in rows
                ]
    return found


def _scrubbed(value: Any, pattern: re.Pattern[str]) -> Any:
    """The value with every occurrence of the address replaced, inside JSON too."""
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, list):
        return [_scrubbed(v, pattern) for v in value]
    if isinstance(value, dict):
        return {_scrubbed(k, pattern): _scrubbed(v, pattern) for k, v in value.items()}
    return value


def _drop_from_payloads(conn: sa.Connection, delivery_ids: set[int]) -> None:
    """Take the person's emails out of batches that keep their payload to send it again.

    The batch's payload hash is left as it was: sent again, the rest would not match what the
    provider saw under that idempotency key, so the batch is not re-sent but marked unknown
    (never a duplicate), as for any payload that changed.
    """
    if not delivery_ids:
        return
    rows = conn.execute(
        sa.select(batch_t.c.campaign_id, batch_t.c.number, batch_t.c.payload).where(
            batch_t.c.payload.is_not(None)
        )
    ).all()
    for campaign_id, number, blob in rows:
        emails = thaw_emails(bytes(blob))
        kept = [e for e in emails if e.delivery_id not in delivery_ids]
        if len(kept) != len(emails):
            conn.execute(
                batch_t.update()
                .where(batch_t.c.campaign_id == campaign_id, batch_t.c.number == number)
                .values(payload=freeze_emails(kept) if kept else None)
            )
