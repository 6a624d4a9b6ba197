"""``send --test``: the first recipient's email to given addresses, "[TEST]" subject, no ledger."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sponsorcast.audience import Audience, select_recipients
from sponsorcast.config import Config
from sponsorcast.errors import BadInput, NotFound
from sponsorcast.send.batches import BatchRenderer
from sponsorcast.send.plan import Plan
from sponsorcast.store import Store
from sponsorcast.store.tables import lead_t
from sponsorcast.transport import OutgoingEmail, make_transport

if TYPE_CHECKING:
    from sponsorcast.transport import Transport


def send_test(
    store: Store,
    config: Config,
    plan: Plan,
    addresses: Sequence[str],
    *,
    as_email: str | None = None,
    transport: Transport | None = None,
) -> TestSend:
    """``send --test``: one lead's email (``as_email``'s, else the audience's first) to the
    given addresses, "[TEST]" subject, nothing recorded."""
    from email_validator import EmailNotValidError, validate_email  # on use: 20 ms to import

    for address in addresses:
        try:
            validate_email(address, check_deliverability=False)
        except EmailNotValidError as exc:
            raise BadInput(f"--test address {address!r} is not valid: {exc}.") from None
    sample, note = _sample(store, plan, as_email)
    if sample is None:
        sample = {"email": addresses[0], "tags": "", "fields": {}}
    # an A/B test's: one email of each variant to each address, "[TEST b]" telling them apart
    variants = [c for c in plan.variants if c.campaign.variant is not None]
    emails: list[OutgoingEmail] = []
    for compiled in variants or [plan.compiled]:
        name = compiled.campaign.variant
        renderer = BatchRenderer(
            config=config,
            campaign_id=plan.campaign.id,
            campaign_tags=dict(plan.campaign.tags),
            sponsor=plan.sponsor,
            compiled=compiled,
            from_address=plan.campaign.from_address or str(plan.sponsor.from_address),
            reply_to=plan.campaign.reply_to or plan.sponsor.reply_to,
            subject_prefix=f"[TEST {name}] " if name else "[TEST] ",
        )
        # test emails are not in the ledger: negative ids keep them apart in the batch
        emails += [
            renderer.render_one({**sample, "recipient": a, "delivery_id": -(len(emails) + i + 1)})
            for i, a in enumerate(addresses)
        ]
    key = f"sc-test-{plan.campaign.id}-{secrets.token_hex(6)}"

    async def main() -> int:
        t = transport or make_transport(config, plan.campaign.id + "-test")
        try:
            outcome = await t.send_batch(emails, key)
        finally:
            await t.aclose()
        if outcome.rejected:
            raise BadInput(
                "The provider rejected the test email: "
                + "; ".join(outcome.rejected.values())
                + "."
            )
        return len(emails)

    rendered_for = str(sample["email"]) if "id" in sample else None
    return TestSend(sent=asyncio.run(main()), rendered_for=rendered_for, note=note)


@dataclass(frozen=True)
class TestSend:
    """What ``send --test`` did: how many emails, rendered for which lead, and a note."""

    sent: int
    rendered_for: str | None  # the lead's email; None when the audience was empty
    note: str | None = None  # e.g. "ada@… is not in this campaign's audience"


def _sample(
    store: Store, plan: Plan, as_email: str | None
) -> tuple[dict[str, Any] | None, str | None]:
    """The lead a test renders for: ``as_email`` (in the audience or not), else the first."""
    sponsor_id, audience = plan.campaign.sponsor, plan.campaign.audience
    query = select_recipients(sponsor_id, audience)
    with store.read() as conn:
        if as_email is None:
            first = conn.execute(query.limit(1)).mappings().first()
            return (dict(first) if first else None), None
        wanted = as_email.strip().lower()
        row = conn.execute(query.where(lead_t.c.email == wanted).limit(1)).mappings().first()
        if row is not None:
            return dict(row), None
        everyone = select_recipients(sponsor_id, Audience())
        row = conn.execute(everyone.where(lead_t.c.email == wanted).limit(1)).mappings().first()
    if row is None:
        raise NotFound(
            f"--as {as_email}: sponsor '{sponsor_id}' has no lead with that address.",
            hint=f"'sponsorcast leads list --sponsor {sponsor_id}' shows its leads.",
        )
    return dict(row), f"{wanted} is not in this campaign's audience ({audience.type})."
