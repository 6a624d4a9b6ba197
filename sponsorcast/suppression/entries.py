"""Entries of the suppression list: adding, removing, listing, and the SQL that honours them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from sponsorcast.errors import BadInput
from sponsorcast.store import Store, get_sponsor
from sponsorcast.store.models import ALL_SPONSORS, utcnow
from sponsorcast.store.tables import lead_t, suppression_t

REASONS = ("unsubscribed", "bounced", "complained", "manual")
COLUMNS = ["email", "sponsor", "reason", "created_at"]


@dataclass(frozen=True)
class SuppressResult:
    """What ``add`` or ``remove`` did: addresses changed and addresses left as they were."""

    changed: list[str]
    unchanged: list[str]


def normalize_email(email: str) -> str:
    """The form addresses are stored and compared in: trimmed, lower-cased."""
    return email.strip().lower()


def validate_emails(emails: Iterable[str]) -> list[str]:
    """Normalised addresses, or BadInput naming the first invalid one (nothing is changed)."""
    from email_validator import EmailNotValidError, validate_email  # on use: 20 ms to import

    result: list[str] = []
    for raw in emails:
        try:
            # the same normalisation as leads import, so suppressions match stored leads
            email = validate_email(raw.strip(), check_deliverability=False).normalized.lower()
        except EmailNotValidError as exc:
            raise BadInput(f"'{raw}' is not a valid email address: {exc}") from None
        if email not in result:
            result.append(email)
    if not result:
        raise BadInput("Give at least one email address.")
    return result


def suppressed_condition(
    sponsor_id: str | sa.ColumnElement[Any],
    email: sa.ColumnElement[Any] | None = None,
) -> sa.ColumnElement[bool]:
    """SQL EXISTS: the address in ``email`` (default ``lead.email``) is suppressed for the sponsor."""
    email_col = lead_t.c.email if email is None else email
    sponsor = sa.literal(sponsor_id) if isinstance(sponsor_id, str) else sponsor_id
    s = suppression_t
    return sa.exists(
        sa.select(sa.literal(1))
        .select_from(s)
        .where(
            s.c.email == sa.func.lower(email_col),
            sa.or_(s.c.sponsor_id == sponsor, s.c.sponsor_id == ALL_SPONSORS),
        )
    )


def is_suppressed(conn: sa.Connection, email: str, sponsor_id: str) -> bool:
    """True when ``email`` is suppressed for ``sponsor_id`` (or for all sponsors)."""
    s = suppression_t
    row = conn.execute(
        sa.select(s.c.id)
        .where(
            s.c.email == normalize_email(email),
            s.c.sponsor_id.in_([sponsor_id, ALL_SPONSORS]),
        )
        .limit(1)
    ).first()
    return row is not None


def insert_ignore(
    conn: sa.Connection, table: sa.Table, values: dict[str, Any], conflict: Sequence[str]
) -> bool:
    """INSERT … ON CONFLICT DO NOTHING (SQLite and PostgreSQL); True when a row went in.

    Safe against a concurrent transaction inserting the same key: it waits, then skips,
    instead of failing the whole transaction with an IntegrityError.
    """
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert  # PostgreSQL only

        pg_stmt = (
            pg_insert(table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=list(conflict))
            .returning(*table.primary_key.columns)
        )
        # psycopg's rowcount is not reliable here; RETURNING gives no row when skipped
        return conn.execute(pg_stmt).first() is not None

    stmt = (
        sqlite_insert(table).values(**values).on_conflict_do_nothing(index_elements=list(conflict))
    )
    return bool(conn.execute(stmt).rowcount == 1)


def suppress_conn(conn: sa.Connection, email: str, sponsor_id: str, reason: str) -> bool:
    """Add one entry inside an open write transaction; False when it was already there."""
    values = {
        "email": normalize_email(email),
        "sponsor_id": sponsor_id,
        "reason": reason,
        "created_at": utcnow(),
    }
    return insert_ignore(conn, suppression_t, values, ("email", "sponsor_id"))


def _check_sponsor(store: Store, sponsor_id: str | None) -> None:
    if sponsor_id is not None and sponsor_id != ALL_SPONSORS:
        get_sponsor(store, sponsor_id)


def add(
    store: Store, emails: Sequence[str], *, sponsor_id: str | None = None, reason: str = "manual"
) -> SuppressResult:
    """Suppress addresses for a sponsor (default: all sponsors); all or nothing."""
    if reason not in REASONS:
        raise BadInput(f"Unknown reason '{reason}' (choose from {', '.join(REASONS)}).")
    clean = validate_emails(emails)
    sponsor = sponsor_id or ALL_SPONSORS
    _check_sponsor(store, sponsor)
    changed: list[str] = []
    unchanged: list[str] = []
    with store.write() as conn:
        for email in clean:
            (changed if suppress_conn(conn, email, sponsor, reason) else unchanged).append(email)
    return SuppressResult(changed, unchanged)


def remove(store: Store, emails: Sequence[str], *, sponsor_id: str | None = None) -> SuppressResult:
    """Lift suppressions: for one sponsor (``'*'`` = the all-sponsors entry), or every entry."""
    clean = validate_emails(emails)
    _check_sponsor(store, sponsor_id)
    s = suppression_t
    changed: list[str] = []
    unchanged: list[str] = []
    with store.write() as conn:
        for email in clean:
            query = s.delete().where(s.c.email == email)
            if sponsor_id is not None:
                query = query.where(s.c.sponsor_id == sponsor_id)
            removed = conn.execute(query).rowcount
            (changed if removed else unchanged).append(email)
    return SuppressResult(changed, unchanged)


def list_suppressions(store: Store, *, sponsor_id: str | None = None) -> list[dict[str, Any]]:
    """Entries, ordered by address; with a sponsor, those that apply to it (its own and '*')."""
    _check_sponsor(store, sponsor_id)
    s = suppression_t
    query = sa.select(s.c.email, s.c.sponsor_id, s.c.reason, s.c.created_at).order_by(
        s.c.email, s.c.sponsor_id
    )
    if sponsor_id is not None:
        query = query.where(s.c.sponsor_id.in_([sponsor_id, ALL_SPONSORS]))
    with store.read() as conn:
        return [
            {
                "email": r.email,
                "sponsor": r.sponsor_id,
                "reason": r.reason,
                "created_at": r.created_at,
            }
            for r in conn.execute(query)
        ]


def suppressed_per_sponsor(store: Store) -> dict[str, tuple[int, int]]:
    """For each sponsor with leads: (leads, of them suppressed), in one query."""
    c = lead_t.c
    suppressed = sa.case((suppressed_condition(c.sponsor_id), 1), else_=0)
    query = sa.select(c.sponsor_id, sa.func.count(), sa.func.sum(suppressed)).group_by(c.sponsor_id)
    with store.read() as conn:
        return {row[0]: (int(row[1]), int(row[2] or 0)) for row in conn.execute(query)}
