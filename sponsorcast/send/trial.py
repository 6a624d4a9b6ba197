"""``send --test``: the first recipient's email to given addresses, "[TEST]" subject, no ledger."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from email_validator import EmailNotValidError, validate_email

from sponsorcast.audience import select_recipients
from sponsorcast.config import Config
from sponsorcast.errors import BadInput
from sponsorcast.send.batches import BatchRenderer
from sponsorcast.send.plan import Plan
from sponsorcast.store import Store
from sponsorcast.transport import make_transport

if TYPE_CHECKING:
    from sponsorcast.transport import Transport


def send_test(
    store: Store,
    config: Config,
    plan: Plan,
    addresses: Sequence[str],
    *,
    transport: Transport | None = None,
) -> int:
    """``send --test``: the first recipient's email to the given addresses, "[TEST]" subject, no ledger."""

    for address in addresses:
        try:
            validate_email(address, check_deliverability=False)
        except EmailNotValidError as exc:
            raise BadInput(f"--test address {address!r} is not valid: {exc}.") from None
    with store.read() as conn:
        first = (
            conn.execute(select_recipients(plan.campaign.sponsor, plan.campaign.audience).limit(1))
            .mappings()
            .first()
        )
    sample: dict[str, Any] = (
        dict(first) if first else {"email": addresses[0], "tags": "", "fields": {}}
    )
    renderer = BatchRenderer(
        config=config,
        campaign_id=plan.campaign.id,
        campaign_tags=dict(plan.campaign.tags),
        sponsor=plan.sponsor,
        compiled=plan.compiled,
        from_address=plan.campaign.from_address or str(plan.sponsor.from_address),
        reply_to=plan.campaign.reply_to or plan.sponsor.reply_to,
        subject_prefix="[TEST] ",
    )
    # test emails are not in the ledger: negative ids keep them apart in the batch
    emails = [
        renderer.render_one({**sample, "recipient": a, "delivery_id": -(i + 1)})
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

    return asyncio.run(main())
