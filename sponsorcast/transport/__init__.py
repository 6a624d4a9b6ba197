"""Transports: what carries a rendered batch of emails to the provider (or to the outbox).

Rule of this package: ``base`` holds the shared types and depends on nothing else here;
``outbox`` and ``resend`` implement ``Transport`` and import only ``base`` (and the parts
of a request to Resend: ``limiter``, ``keycheck``, ``wire``);
the send engine sees the protocol, never a concrete class, except through ``make_transport``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sponsorcast.errors import AuthError
from sponsorcast.transport.base import (
    BatchOutcome,
    OutgoingEmail,
    Transport,
    api_key_problem,
    check_batch,
    freeze_emails,
    tag_safe,
    thaw_emails,
)

if TYPE_CHECKING:
    from sponsorcast.config import Config
    from sponsorcast.transport.limiter import RateLimiter, SharedSlots


def make_transport(
    config: Config,
    campaign_id: str,
    *,
    shared: SharedSlots | None = None,
    limiter: RateLimiter | None = None,
) -> Transport:
    """The transport ``config.transport`` names, ready for one run of ``campaign_id``;
    ``shared``: the team's request budget in the store, ``limiter``: one that has handed out
    slots already (Resend only)."""
    # imported on use: a command that never sends should not pay for httpx and tenacity
    if config.transport == "outbox":
        from sponsorcast.transport.outbox import OutboxTransport  # on use: keeps start-up fast

        return OutboxTransport(config.outbox_dir, campaign_id)
    from sponsorcast.transport.limiter import RateLimiter  # on use: keeps start-up fast
    from sponsorcast.transport.resend import ResendTransport  # on use: keeps start-up fast

    key = config.secrets.resend_api_key
    if not key:
        raise AuthError(
            "RESEND_API_KEY is not set.",
            hint='Export RESEND_API_KEY, or set [transport] kind = "outbox" to write .eml files.',
        )
    if limiter is None:
        limiter = RateLimiter(config.resend.rate_limit, shared=shared)
    return ResendTransport(config.resend, key, limiter=limiter)


__all__ = [
    "BatchOutcome",
    "OutgoingEmail",
    "Transport",
    "api_key_problem",
    "check_batch",
    "freeze_emails",
    "make_transport",
    "tag_safe",
    "thaw_emails",
]
