"""The in-memory provider and lead seeding of the send-engine tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr

from sponsorcast.errors import (
    OutcomeUnknown,
)
from sponsorcast.store import Store
from sponsorcast.store.models import utcnow
from sponsorcast.store.tables import lead_t
from sponsorcast.transport import BatchOutcome, OutgoingEmail
from tests.support.pg import both_store_backends  # noqa: F401 - every test here runs on SQLite and on PostgreSQL

CAMPAIGN = """\
---
name: Spring
subject: "{{ first_name }}, hello from {{ sponsor.name }}"
audience:
  type: all
---
Hi {{ first_name }} of {{ company }}!
"""


def add_leads(store: Store, n: int, *, prefix: str = "lead", sponsor: str = "default") -> None:
    """Insert n leads through Core."""
    now = utcnow()
    with store.write() as conn:
        conn.execute(
            lead_t.insert(),
            [
                {
                    "sponsor_id": sponsor,
                    "email": f"{prefix}{i}@example.com",
                    "name": f"Lead {i}",
                    "first_name": f"L{i}",
                    "company": f"Co{i}",
                    "follow_up_status": "new",
                    "tags": "",
                    "fields": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n)
            ],
        )


@dataclass
class MemoryTransport:
    """A provider in memory with Resend's idempotency: same key, same body → first answer."""

    name: str = "memory"
    sends_for_real: bool = True
    delivered: list[tuple[str, str]] = field(default_factory=list)  # (address, key)
    to_headers: list[str] = field(default_factory=list)  # each accepted email's To, as sent
    answers: dict[str, tuple[str, BatchOutcome]] = field(default_factory=dict)
    lose_next: int = 0  # accept, then lose the answer
    fail_next: list[Exception] = field(default_factory=list)
    reject: set[str] = field(default_factory=set)  # addresses refused per email
    keys: list[str] = field(default_factory=list)
    latency: float = 0.0  # seconds each request takes
    preflights: int = 0  # times the run asked before recording anything

    def preflight(self) -> Callable[[], None]:
        def ask() -> None:
            self.preflights += 1

        return ask

    async def send_batch(
        self, emails: Sequence[OutgoingEmail], idempotency_key: str
    ) -> BatchOutcome:
        self.keys.append(idempotency_key)
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.fail_next:
            raise self.fail_next.pop(0)
        body = json.dumps([e.to_resend() for e in emails], sort_keys=True)
        if idempotency_key in self.answers:
            first_body, outcome = self.answers[idempotency_key]
            assert first_body == body, "same key, other body: the provider would answer 409"
        else:
            outcome = BatchOutcome()
            for e in emails:
                address = parseaddr(e.to)[1]
                if address in self.reject:
                    outcome.rejected[e.delivery_id] = f"Invalid `to` field: {address}"
                else:
                    outcome.accepted[e.delivery_id] = f"msg-{len(self.delivered)}"
                    self.delivered.append((address, idempotency_key))
                    self.to_headers.append(e.to)
            self.answers[idempotency_key] = (body, outcome)
        if self.lose_next:
            self.lose_next -= 1
            raise OutcomeUnknown("connection dropped before the answer")
        return outcome

    async def aclose(self) -> None:
        return None
