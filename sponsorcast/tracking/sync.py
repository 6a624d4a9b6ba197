"""``sync``: ask Resend (``GET /emails/{id}``) for deliveries not yet final."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from sponsorcast.errors import CredentialsError, NotFound, TransportError
from sponsorcast.store import Store
from sponsorcast.store.lifecycle import unknown_campaign
from sponsorcast.store.models import (
    DeliveryStatus,
)
from sponsorcast.store.tables import campaign_t, delivery_t
from sponsorcast.tracking.events import EMAIL_EVENTS, apply_event

if TYPE_CHECKING:
    pass


# GET /emails/{id} last_event values that say something about a delivery
SYNC_EVENTS = frozenset(e.removeprefix("email.") for e in EMAIL_EVENTS)


NOT_FINAL = (DeliveryStatus.SENDING, DeliveryStatus.SENT)


class EmailStatusSource(Protocol):
    """What ``sync`` needs from a transport: Resend's ``GET /emails/{id}``."""

    async def get_email(self, message_id: str) -> dict[str, Any]:
        """The provider's record of one email."""
        ...


@dataclass
class SyncResult:
    """Counts from ``sync``: deliveries asked about and what became of them."""

    checked: int = 0
    updated: int = 0
    unchanged: int = 0
    missing: int = 0
    errors: list[str] = field(default_factory=list)


def _sync_query(campaign_id: str | None, after: int, chunk: int) -> sa.Select[Any]:
    d = delivery_t
    query = (
        sa.select(d.c.id, d.c.provider_message_id)
        .where(d.c.provider_message_id.is_not(None), d.c.status.in_(NOT_FINAL), d.c.id > after)
        .order_by(d.c.id)
        .limit(chunk)
    )
    if campaign_id is not None:
        query = query.where(d.c.campaign_id == campaign_id)
    return query


def polled_payload(message_id: str, email: Mapping[str, Any]) -> dict[str, Any] | None:
    """The event a ``GET /emails/{id}`` answer amounts to, or None when it says nothing new."""
    last = email.get("last_event")
    if not isinstance(last, str) or last not in SYNC_EVENTS:
        return None
    return {
        "type": f"email.{last}",
        "source": "sync",
        "data": {"email_id": message_id},
        "email": dict(email),
    }


async def sync_deliveries(
    store: Store,
    source: EmailStatusSource,
    campaign_id: str | None = None,
    *,
    concurrency: int = 4,
    chunk: int = 500,
) -> SyncResult:
    """Ask the provider about every delivery not yet final (sending/sent with a message id)."""

    if campaign_id is not None:
        with store.read() as conn:
            found = conn.execute(
                sa.select(campaign_t.c.id).where(campaign_t.c.id == campaign_id)
            ).first()
            if found is None:
                raise unknown_campaign(conn, campaign_id)
    result = SyncResult()
    gate = asyncio.Semaphore(concurrency)

    async def one(message_id: str) -> None:
        async with gate:
            try:
                email = await source.get_email(message_id)
            except NotFound:
                result.missing += 1
                return
            except CredentialsError:
                raise
            except TransportError as exc:
                result.errors.append(exc.message)
                return
        payload = polled_payload(message_id, email)
        outcome = "ignored"
        if payload is not None:
            event_id = f"sync:{message_id}:{payload['type']}"
            outcome = apply_event(store, payload, event_id, "sync", polled=True).outcome
        if outcome == "applied":
            result.updated += 1
        else:
            result.unchanged += 1

    after = 0
    while True:
        with store.read() as conn:
            rows = conn.execute(_sync_query(campaign_id, after, chunk)).all()
        if not rows:
            break
        after = rows[-1].id
        result.checked += len(rows)
        await asyncio.gather(*(one(r.provider_message_id) for r in rows))
    return result
