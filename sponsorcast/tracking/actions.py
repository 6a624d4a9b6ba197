"""What a recipient does through ``serve``: an open, a click, an unsubscribe."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sponsorcast.store import Store
from sponsorcast.store.models import (
    utcnow,
)
from sponsorcast.store.tables import campaign_t, delivery_t, event_t, sponsor_t
from sponsorcast.suppression import suppress_conn
from sponsorcast.tracking.events import _changes
from sponsorcast.tracking.links import campaign_links, link_index
from sponsorcast.tracking.machine import machine_open
from sponsorcast.tracking.tokens import KIND_CLICK, read_token


def _delivery(
    conn: sa.Connection, delivery_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    query = (
        sa.select(
            delivery_t,
            campaign_t.c.sponsor_id,
            campaign_t.c.body,
            sponsor_t.c.name.label("sponsor_name"),
        )
        .select_from(
            delivery_t.join(campaign_t, campaign_t.c.id == delivery_t.c.campaign_id).join(
                sponsor_t, sponsor_t.c.id == campaign_t.c.sponsor_id
            )
        )
        .where(delivery_t.c.id == delivery_id)
    )
    if lock:  # PostgreSQL: concurrent events for one delivery apply one after the other
        query = query.with_for_update(of=delivery_t)
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def _own_event(
    conn: sa.Connection,
    row: Mapping[str, Any],
    type_: str,
    at: datetime,
    payload: dict[str, Any],
    event_id: str | None = None,
) -> None:
    conn.execute(
        event_t.insert().values(
            campaign_id=row["campaign_id"],
            delivery_id=row["id"],
            type=type_,
            provider_event_id=event_id,
            occurred_at=at,
            payload=payload,
            created_at=at,
        )
    )


def record_open(
    store: Store,
    delivery_id: int,
    *,
    now: datetime | None = None,
    user_agent: str | None = None,
) -> bool:
    """Count an open from the pixel (a machine's apart: ``tracking.machine``); False when the
    delivery does not exist."""
    at = now or utcnow()
    with store.write() as conn:
        row = _delivery(conn, delivery_id, lock=True)
        if row is None:
            return False
        machine = machine_open(row["sent_at"], at, user_agent)
        _own_event(conn, row, "open", at, {"source": "pixel", "machine": machine})
        values = _changes(row, "opened", {}, at, polled=False, machine=machine)
        conn.execute(delivery_t.update().where(delivery_t.c.id == delivery_id).values(**values))
    return True


def resolve_click(store: Store, secret: str, token: str, url: str | None) -> tuple[int, str] | None:
    """(delivery id, where to redirect) for a valid click token, else None. Changes nothing."""
    data = read_token(secret, KIND_CLICK, token, url)
    if data is None or data.index is None:
        return None
    with store.read() as conn:
        row = _delivery(conn, data.delivery_id)
    if row is None:
        return None
    index = link_index(tuple(campaign_links(row["body"])))
    if url is None:
        target = index.target(data.index)
        return (data.delivery_id, target) if target is not None else None
    # personalised: the signed, rendered URL must come from that link's template
    if not url.startswith(("http://", "https://")):
        return None
    for i, pattern in index.templates:
        if i == data.index and pattern.match(url):
            return data.delivery_id, url
    return None


def record_click(store: Store, delivery_id: int, url: str, *, now: datetime | None = None) -> bool:
    """Count a click on a tracked link; False when the delivery does not exist."""
    at = now or utcnow()
    with store.write() as conn:
        row = _delivery(conn, delivery_id, lock=True)
        if row is None:
            return False
        payload = {"source": "redirect", "url": url}
        index = link_index(tuple(campaign_links(row["body"])))
        found = index.find(url)
        if found is not None:  # which of the campaign's links: reports count clicks per link
            payload["link"] = index.links[found[0]]
        _own_event(conn, row, "click", at, payload)
        values = _changes(row, "clicked", {}, at, polled=False)
        conn.execute(delivery_t.update().where(delivery_t.c.id == delivery_id).values(**values))
    return True


@dataclass(frozen=True)
class Recipient:
    """Who an unsubscribe token stands for (shown, partly masked, on the page)."""

    delivery_id: int
    email: str
    sponsor_id: str
    sponsor_name: str
    unsubscribed: bool


def unsubscribe_target(store: Store, delivery_id: int) -> Recipient | None:
    """The recipient behind an unsubscribe token, or None. Changes nothing."""
    with store.read() as conn:
        row = _delivery(conn, delivery_id)
    if row is None:
        return None
    return Recipient(
        row["id"],
        row["recipient"],
        row["sponsor_id"],
        row["sponsor_name"] or row["sponsor_id"],
        row["unsubscribed_at"] is not None,
    )


def unsubscribe(store: Store, delivery_id: int, *, now: datetime | None = None) -> Recipient | None:
    """Unsubscribe a delivery's recipient from its sponsor (idempotent); None if unknown."""
    at = now or utcnow()
    with store.write() as conn:
        row = _delivery(conn, delivery_id, lock=True)
        if row is None:
            return None
        if row["unsubscribed_at"] is None:
            conn.execute(
                delivery_t.update().where(delivery_t.c.id == delivery_id).values(unsubscribed_at=at)
            )
            _own_event(
                conn,
                row,
                "unsubscribe",
                at,
                {"source": "unsubscribe"},
                event_id=f"unsubscribe:{delivery_id}",
            )
        suppress_conn(conn, row["recipient"], row["sponsor_id"], "unsubscribed")
    return Recipient(
        row["id"],
        row["recipient"],
        row["sponsor_id"],
        row["sponsor_name"] or row["sponsor_id"],
        True,
    )
