"""Seeding and reading a store for the tracking tests: sponsors, leads, sent deliveries, event payloads, tables."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from sponsorcast.config import Config, Secrets, TrackingConfig
from sponsorcast.errors import NotFound
from sponsorcast.store import Store
from sponsorcast.store.tables import (
    batch_t,
    campaign_t,
    delivery_t,
    event_t,
    lead_t,
    sponsor_t,
    suppression_t,
)
from sponsorcast.suppression import suppressed_condition

SECRET = "test-secret-0123456789abcdef"


T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


BODY = """Hi {{ first_name }},

[Book a demo](https://example.com/demo?src=mail&x=1). See <https://example.com/agenda>.
<a href="https://example.com/raw">raw</a> and https://example.com/plain.
[Your page](https://example.com/p?c={{ company | urlencode }}) and [again](https://example.com/demo?src=mail&x=1)
"""


LINKS = [
    "https://example.com/demo?src=mail&x=1",
    "https://example.com/agenda",
    "https://example.com/raw",
    "https://example.com/plain",
    "https://example.com/p?c={{ company | urlencode }}",
]


# Svix's published test vector
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"


VECTOR_TS = 1614265330


VECTOR_BODY = b'{"test": 2432232314}'


VECTOR_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def add_sponsor(store: Store, sponsor_id: str, name: str | None = None) -> None:
    """Insert a sponsor row."""
    with store.write() as conn:
        conn.execute(
            sponsor_t.insert().values(
                id=sponsor_id, name=name or sponsor_id, messaging_enabled=True
            )
        )


def seed(
    store: Store,
    emails: Sequence[str],
    *,
    campaign: str = "spring",
    sponsor: str = "default",
    body: str = BODY,
    status: str = "sent",
    started_at: datetime | None = T0,
) -> list[int]:
    """A campaign with one lead and one delivery per address (sent, with msg ids); the delivery ids."""
    with store.write() as conn:
        conn.execute(
            campaign_t.insert().values(
                id=campaign,
                sponsor_id=sponsor,
                name=campaign.title(),
                subject="Hello",
                body=body,
                status="sent",
                content_hash="h",
                total_recipients=len(emails),
                created_at=T0,
                started_at=started_at,
            )
        )
        ids = []
        for i, email in enumerate(emails):
            existing = conn.execute(
                sa.select(lead_t.c.id).where(
                    lead_t.c.sponsor_id == sponsor, lead_t.c.email == email
                )
            ).scalar()
            lead_id = (
                existing
                or conn.execute(
                    lead_t.insert().values(
                        sponsor_id=sponsor,
                        email=email,
                        first_name=email.split("@")[0],
                        company="ACME & Co",
                        follow_up_status="new",
                        tags="",
                    )
                ).inserted_primary_key[0]  # type: ignore[index]  # a Row after an INSERT
            )
            sent = status not in ("pending", "sending", "suppressed", "cancelled")
            ids.append(
                conn.execute(
                    delivery_t.insert().values(
                        campaign_id=campaign,
                        lead_id=lead_id,
                        recipient=email,
                        status=status,
                        batch=0,
                        provider_message_id=f"{campaign}-msg-{i}" if sent else None,
                        sent_at=T0 + timedelta(seconds=i) if sent else None,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]  # a Row after an INSERT
            )
        if started_at is not None and emails:
            # one batch, claimed at the start and answered a second after the last sent_at
            conn.execute(
                batch_t.insert().values(
                    campaign_id=campaign,
                    number=0,
                    status="done",
                    idempotency_key=f"sc-{campaign}-0",
                    attempts=1,
                    first_attempt_at=started_at,
                    finished_at=started_at + timedelta(seconds=len(emails)),
                )
            )
    return ids


def delivery(store: Store, delivery_id: int) -> dict[str, Any]:
    """One delivery row as a dict."""
    with store.read() as conn:
        return dict(
            conn.execute(sa.select(delivery_t).where(delivery_t.c.id == delivery_id))
            .mappings()
            .one()
        )


def table_rows(store: Store, table: sa.Table) -> list[dict[str, Any]]:
    """Every row of a table, for before/after comparisons."""
    with store.read() as conn:
        return [
            dict(r)
            for r in conn.execute(sa.select(table).order_by(*table.primary_key.columns)).mappings()
        ]


def snapshot(store: Store) -> tuple[Any, ...]:
    """Deliveries, events and suppressions: what tracking may change."""
    return tuple(table_rows(store, t) for t in (delivery_t, event_t, suppression_t))


def suppressed_leads(store: Store, sponsor: str) -> list[str]:
    """Lead addresses of a sponsor that suppressed_condition excludes."""
    with store.read() as conn:
        return list(
            conn.execute(
                sa.select(lead_t.c.email)
                .where(lead_t.c.sponsor_id == sponsor, suppressed_condition(sponsor))
                .order_by(lead_t.c.email)
            ).scalars()
        )


def tracking_config(config: Config, public_url: str = "https://t.example.com", **kw: Any) -> Config:
    """The project's config with tracking and secrets set."""
    return dataclasses.replace(
        config,
        tracking=TrackingConfig(public_url=public_url, **kw),
        secrets=Secrets(sponsorcast_secret=SECRET, webhook_secret=VECTOR_SECRET),
    )


def event(type_: str, email_id: str | None, created: datetime = T0, **data: Any) -> dict[str, Any]:
    """A Resend webhook payload."""
    body: dict[str, Any] = {
        "created_at": created.isoformat(),
        "to": ["someone@example.org"],
        **data,
    }
    if email_id is not None:
        body["email_id"] = email_id
    return {"type": type_, "created_at": created.isoformat(), "data": body}


def vector_headers(sig: str = VECTOR_SIG, ts: int = VECTOR_TS) -> dict[str, str]:
    return {"svix-id": VECTOR_ID, "svix-timestamp": str(ts), "svix-signature": sig}


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
        encoding="utf-8",
    )
    return path


class FakeResend:
    """Answers get_email from a dict; ids not in it are unknown (NotFound)."""

    def __init__(self, states: dict[str, str | Exception]) -> None:
        self.states = states
        self.asked: list[str] = []

    async def get_email(self, message_id: str) -> dict[str, Any]:
        self.asked.append(message_id)
        state = self.states.get(message_id)
        if state is None:
            raise NotFound(f"Resend has no email with id {message_id}.")
        if isinstance(state, Exception):
            raise state
        return {"object": "email", "id": message_id, "last_event": state}


E2E_CAMPAIGN = """\
---
name: Spring
subject: "Hello {{ first_name }}"
---
Hi {{ first_name }}, [book a demo](https://example.com/demo) or [see yours](https://example.com/u?e={{ email | urlencode }}).
"""
